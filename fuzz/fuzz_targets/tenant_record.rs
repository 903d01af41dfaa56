//! Tenant records and tenants files (docs/protocol.md, section 4): the
//! functions' reader (`TenantRecord::from_json`), the operators' document
//! (`TenantDocument`: kept whole, redacted for people, edited) and the
//! local gateway's tenants file (`MemoryTenantStore::from_json`).
//!
//! Input: the JSON text (seeds: the fixture tenants, the examples, and
//! records with every field wrong in some way).
//! Asserts: nothing panics; no error message, `Debug` output or redacted
//! record shows a string from a secret field (signing secrets, the
//! destination's secret and header values, sources' secrets) that the
//! record does not also hold in a field shown to people; the document
//! accepts what the reader accepts, survives its own JSON unchanged, and
//! stays valid through edits; a tenants file of one record holds it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shared::store::MemoryTenantStore;
use shared::tenant::{TenantDocument, TenantRecord};
use shared::{Isolation, Routing, TenantStatus};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let value: Option<Value> = serde_json::from_str(text).ok();
    let secrets = value.as_ref().map(checked_secrets).unwrap_or_default();
    let hides = |what: &str, shown: &str| {
        for secret in &secrets {
            assert!(
                !shown.contains(secret.as_str()),
                "a secret in {what}: {shown}"
            );
        }
    };

    let record = TenantRecord::from_json(text);
    match &record {
        Ok(record) => hides("Debug", &format!("{record:?}")),
        Err(e) => hides("an error", &e.to_string()),
    }

    match TenantDocument::from_json(text) {
        Ok(document) => {
            hides("the redacted record", &document.redacted().to_string());
            hides("Debug", &format!("{document:?}"));
            let validated = document.validate();
            assert_eq!(
                validated.is_ok(),
                record.is_ok(),
                "{validated:?} vs {record:?}"
            );
            let again = TenantDocument::from_json(&document.to_json()).expect("its own JSON");
            // serde_json without its float_roundtrip feature may read a
            // float it wrote back one bit off (docs/fuzzing.md,
            // "Findings"): every other value must survive exactly.
            assert!(
                again == document || has_float(&document.clone().into_value()),
                "the document changed through its JSON"
            );
            let _ = (document.status(), document.routing(), document.isolation());
            let _ = (document.current_signing_secret(), document.suspended_at());
            if let Some(host) = document.destination_host() {
                hides("the destination host", &host);
            }
            let mut edited = document.clone();
            if edited
                .set_status(TenantStatus::Suspended, fuzz::NOW)
                .is_ok()
            {
                edited.validate().expect("an edit keeps the record valid");
            }
            if edited.set_routing(Routing::Dedicated).is_ok() {
                edited.validate().expect("an edit keeps the record valid");
            }
            if edited.set_isolation(Isolation::PerTenant).is_ok() {
                edited.validate().expect("an edit keeps the record valid");
            }
        }
        Err(e) => hides("an error", &e.to_string()),
    }

    match MemoryTenantStore::from_json(text) {
        Ok(store) => {
            if let (Some(Value::Object(_)), Ok(record)) = (&value, &record) {
                assert_eq!(store.tenant_ids(), vec![record.tenant_id.clone()]);
            }
        }
        Err(e) => hides("an error", &e.to_string()),
    }
});

/// The secrets the input holds that it holds nowhere else: each record's
/// secret fields, when the text of the record without them does not
/// contain them (a secret pasted into `tenant_id` as well is shown there,
/// rightly). Only plain, long ones, which cannot occur by chance.
fn checked_secrets(value: &Value) -> Vec<String> {
    let records: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut checked = Vec::new();
    for record in records {
        let mut without = record.clone();
        if let Some(fields) = without.as_object_mut() {
            fields.remove("signing_secrets");
            if let Some(Value::Object(destination)) = fields.get_mut("destination") {
                destination.remove("secret");
                if let Some(Value::Object(headers)) = destination.get_mut("headers") {
                    headers.values_mut().for_each(|v| *v = Value::Null);
                }
            }
            if let Some(Value::Object(sources)) = fields.get_mut("sources") {
                for source in sources.values_mut() {
                    if let Some(source) = source.as_object_mut() {
                        source.remove("secrets");
                    }
                }
            }
        }
        let public = without.to_string();
        checked.extend(
            fuzz::secrets_in(record)
                .into_iter()
                .filter(|s| fuzz::plain(s) && !public.contains(s.as_str())),
        );
    }
    checked
}

/// Whether `value` holds a number serde_json keeps as a float.
fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}
