//! Tenant records held in memory, optionally loaded from a JSON file.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::{StoreError, TenantStore};
use crate::tenant::{RecordError, TenantRecord};
use crate::tenant_id::TenantId;

/// Tenant records in memory. Used by the local gateway (from a tenants file)
/// and by tests; records can be replaced at run time, as an operator would
/// rotate a secret.
#[derive(Debug, Clone, Default)]
pub struct MemoryTenantStore {
    records: Arc<RwLock<HashMap<TenantId, TenantRecord>>>,
}

/// Why a tenants file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TenantsFileError {
    /// The file could not be read.
    #[error("cannot read tenants file {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// The file is neither a JSON array of records nor one record.
    #[error("tenants file must be a JSON array of tenant records, or one record ({0})")]
    NotRecords(String),
    /// One record is invalid.
    #[error("tenants file record {index}: {error}")]
    Record {
        /// Position in the array, from 0.
        index: usize,
        /// What is wrong with it (in the message, so not also a `source`).
        error: RecordError,
    },
    /// Two records have the same tenant ID.
    #[error("tenants file has tenant {0} more than once")]
    Duplicate(TenantId),
}

impl MemoryTenantStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a tenants file: a JSON array of tenant records, or a single
    /// record (what `formbridge tenants new` prints).
    pub fn from_json(text: &str) -> Result<Self, TenantsFileError> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            TenantsFileError::NotRecords(format!("line {}, column {}", e.line(), e.column()))
        })?;
        let items = match value {
            Value::Array(items) => items,
            record @ Value::Object(_) => vec![record],
            _ => {
                return Err(TenantsFileError::NotRecords(
                    "top level is neither an array nor an object".into(),
                ));
            }
        };
        let mut records = HashMap::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let record = TenantRecord::from_value(item)
                .map_err(|error| TenantsFileError::Record { index, error })?;
            let id = record.tenant_id.clone();
            if records.insert(id.clone(), record).is_some() {
                return Err(TenantsFileError::Duplicate(id));
            }
        }
        Ok(Self {
            records: Arc::new(RwLock::new(records)),
        })
    }

    /// Reads and parses a tenants file.
    pub fn from_file(path: &Path) -> Result<Self, TenantsFileError> {
        let text = std::fs::read_to_string(path).map_err(|error| TenantsFileError::Io {
            path: path.display().to_string(),
            error,
        })?;
        Self::from_json(&text)
    }

    /// Adds or replaces a tenant's record.
    pub fn upsert(&self, record: TenantRecord) {
        self.write().insert(record.tenant_id.clone(), record);
    }

    /// A tenant's record, if held.
    pub fn get(&self, tenant: &TenantId) -> Option<TenantRecord> {
        self.read().get(tenant).cloned()
    }

    /// Removes a tenant.
    pub fn remove(&self, tenant: &TenantId) {
        self.write().remove(tenant);
    }

    /// The tenant IDs held, sorted.
    pub fn tenant_ids(&self) -> Vec<TenantId> {
        let mut ids: Vec<_> = self.read().keys().cloned().collect();
        ids.sort();
        ids
    }

    // A poisoned lock only means another thread panicked mid-insert of a
    // whole record; the map itself is still consistent.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<TenantId, TenantRecord>> {
        self.records.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<TenantId, TenantRecord>> {
        self.records.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl TenantStore for MemoryTenantStore {
    async fn fetch(&self, tenant: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        Ok(self.get(tenant))
    }

    async fn list(&self) -> Result<Option<Vec<TenantId>>, StoreError> {
        Ok(Some(self.read().keys().cloned().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "0123456789abcdef0123456789abcdef";

    fn id(s: &str) -> TenantId {
        TenantId::parse(s).expect("valid")
    }

    #[tokio::test]
    async fn loads_a_tenants_file_and_serves_it() {
        let text = format!(
            r#"[{{"tenant_id":"acme","status":"active","signing_secrets":["{S}"]}},
               {{"tenant_id":"globex","status":"suspended","signing_secrets":["{S}"],"routing":"dedicated"}}]"#
        );
        let store = MemoryTenantStore::from_json(&text).expect("valid file");
        assert_eq!(store.tenant_ids(), vec![id("acme"), id("globex")]);
        // One record on its own, as `formbridge tenants new` prints it.
        let one = format!(r#"{{"tenant_id":"acme","status":"active","signing_secrets":["{S}"]}}"#);
        let single = MemoryTenantStore::from_json(&one).expect("one record");
        assert_eq!(single.tenant_ids(), vec![id("acme")]);
        let acme = store
            .fetch(&id("acme"))
            .await
            .expect("ok")
            .expect("present");
        assert_eq!(acme.tenant_id, id("acme"));
        assert!(store.fetch(&id("nobody")).await.expect("ok").is_none());
        store.remove(&id("acme"));
        assert!(store.fetch(&id("acme")).await.expect("ok").is_none());
    }

    #[test]
    fn rejects_bad_files_naming_the_record() {
        let cases = [
            ("3".to_string(), "must be a JSON array"),
            (
                "{}".to_string(),
                "record 0: invalid tenant record: missing field",
            ),
            ("[".to_string(), "line 1"),
            (
                format!(r#"[{{"tenant_id":"a","status":"active","signing_secrets":["{S}"]}}, 3]"#),
                "record 1",
            ),
            (
                format!(
                    r#"[{{"tenant_id":"a","status":"active","signing_secrets":["{S}"]}},
                        {{"tenant_id":"a","status":"active","signing_secrets":["{S}"]}}]"#
                ),
                "more than once",
            ),
        ];
        for (text, want) in cases {
            let err = MemoryTenantStore::from_json(&text)
                .expect_err("invalid")
                .to_string();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
        let err = MemoryTenantStore::from_file(Path::new("/nonexistent/tenants.json"))
            .expect_err("missing")
            .to_string();
        assert!(err.contains("/nonexistent/tenants.json"), "{err}");
    }
}
