//! Tenant records in AWS Secrets Manager.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};

use super::{StoreError, TenantStore, check_owner};
use crate::tenant::{RecordError, TenantRecord};
use crate::tenant_id::TenantId;

/// Reads the secret `{prefix}{tenant_id}`, whose `SecretString` is the
/// tenant record as JSON.
#[derive(Debug, Clone)]
pub struct SecretsManagerStore {
    client: Client,
    prefix: String,
}

impl SecretsManagerStore {
    /// A store reading secrets named `{prefix}{tenant_id}` through `client`.
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
        }
    }

    /// A store with a client built from `sdk` (see [`crate::aws::sdk_config`]).
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, prefix: impl Into<String>) -> Self {
        Self::new(Client::new(sdk), prefix)
    }

    /// The secret name for a tenant.
    pub fn secret_name(&self, tenant: &TenantId) -> String {
        format!("{}{}", self.prefix, tenant)
    }
}

impl TenantStore for SecretsManagerStore {
    async fn fetch(&self, tenant: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(self.secret_name(tenant))
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(err) => {
                return match err.as_service_error() {
                    // Deleted (or scheduled for deletion, which Secrets
                    // Manager reports as an invalid request): the tenant is
                    // gone, which is a deny, not an outage to ride out with
                    // a stale record.
                    Some(
                        GetSecretValueError::ResourceNotFoundException(_)
                        | GetSecretValueError::InvalidRequestException(_),
                    ) => Ok(None),
                    // The SDK's messages describe the request and the service
                    // answer; they never contain the secret value.
                    _ => Err(StoreError::Unavailable(
                        DisplayErrorContext(&err).to_string(),
                    )),
                };
            }
        };
        let text = output
            .secret_string()
            .ok_or_else(RecordError::not_a_string_secret)?;
        let record = TenantRecord::from_json(text)?;
        check_owner(tenant, record).map(Some)
    }

    /// `ListSecrets` filtered by the prefix, 100 names a page; names and
    /// metadata only, never values. Secrets scheduled for deletion are
    /// left out (their values can no longer be read), and so is any name
    /// after the prefix that is not a valid tenant ID.
    async fn list(&self) -> Result<Option<Vec<TenantId>>, StoreError> {
        let filter = Filter::builder()
            .key(FilterNameStringType::Name)
            .values(&self.prefix)
            .build();
        let mut pages = self
            .client
            .list_secrets()
            .filters(filter)
            .max_results(100)
            .into_paginator()
            .send();
        let mut ids = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|err| StoreError::Unavailable(DisplayErrorContext(&err).to_string()))?;
            // The service's name filter also matches words inside names:
            // only names that start with the prefix are tenants'.
            ids.extend(
                page.secret_list()
                    .iter()
                    .filter_map(|secret| secret.name()?.strip_prefix(&self.prefix))
                    .filter_map(|id| TenantId::parse(id).ok()),
            );
        }
        Ok(Some(ids))
    }
}
