//! What signet reads from the cluster besides policies: key Secrets (`key.secretRef`), pull
//! secrets (the pod's, its ServiceAccount's, and `source[].signaturePullSecrets`), and
//! ConfigMaps holding policy text (`configMapRef`); and what signet writes: Events about its
//! decisions ([`events`]), ClusterImagePolicy status ([`status`]) by the replica holding the
//! Lease ([`lease`]).
//!
//! Reads are cached briefly so a burst of admissions costs one API call per object, and a
//! rotated Secret is picked up within the TTL.

pub mod events;
pub mod lease;
pub mod status;
pub mod workloads;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::Api;

use crate::registry::credentials::Keychain;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot read Secret {namespace}/{name}: {detail}")]
    Secret {
        namespace: String,
        name: String,
        detail: String,
    },
    #[error("cannot read ConfigMap {namespace}/{name}: {detail}")]
    ConfigMap {
        namespace: String,
        name: String,
        detail: String,
    },
    #[error("cannot read ServiceAccount {namespace}/{name}: {detail}")]
    ServiceAccount {
        namespace: String,
        name: String,
        detail: String,
    },
}

type SecretData = Arc<BTreeMap<String, Vec<u8>>>;

/// Cluster reads on behalf of verification.
#[derive(Clone)]
pub struct ClusterAccess {
    client: kube::Client,
    /// signet's own namespace: key Secrets and signature pull secrets live here.
    namespace: String,
    secrets: moka::future::Cache<(String, String), SecretData>,
    service_accounts: moka::future::Cache<(String, String), Arc<Vec<String>>>,
}

impl ClusterAccess {
    pub fn new(client: kube::Client, namespace: String) -> Self {
        ClusterAccess {
            client,
            namespace,
            secrets: short_lived_cache(),
            service_accounts: short_lived_cache(),
        }
    }

    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A Secret's data. A missing Secret is an error: policies that name one expect it.
    pub async fn secret(&self, namespace: &str, name: &str) -> Result<SecretData, ClusterError> {
        let key = (namespace.to_string(), name.to_string());
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        self.secrets
            .try_get_with(key, async move {
                let secret = api.get(name).await.map_err(|e| e.to_string())?;
                let data = secret.data.unwrap_or_default();
                Ok::<_, String>(Arc::new(data.into_iter().map(|(k, v)| (k, v.0)).collect()))
            })
            .await
            .map_err(|detail: Arc<String>| ClusterError::Secret {
                namespace: namespace.to_string(),
                name: name.to_string(),
                detail: detail.to_string(),
            })
    }

    /// A ConfigMap's data, `None` when there is no such ConfigMap. Not cached: only the
    /// background policy-text reader asks, once per refresh.
    pub async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, ClusterError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await {
            Ok(found) => Ok(found.map(|cm| cm.data.unwrap_or_default())),
            Err(e) => Err(ClusterError::ConfigMap {
                namespace: namespace.to_string(),
                name: name.to_string(),
                detail: e.to_string(),
            }),
        }
    }

    /// The public key in a `key.secretRef` Secret (in signet's namespace): its only entry.
    pub async fn key_from_secret(&self, name: &str) -> Result<String, String> {
        let data = self.secret(&self.namespace, name).await.map_err(|e| e.to_string())?;
        let mut entries = data.iter();
        match (entries.next(), entries.next()) {
            (Some((_, value)), None) => String::from_utf8(value.clone())
                .map_err(|_| format!("Secret {}/{name} holds no PEM text", self.namespace)),
            (None, _) => Err(format!("Secret {}/{name} is empty", self.namespace)),
            (Some(_), Some(_)) => {
                let keys: Vec<&str> = data.keys().map(String::as_str).collect();
                Err(format!(
                    "Secret {}/{name} has several entries ({}); key.secretRef needs a Secret with exactly one",
                    self.namespace,
                    keys.join(", ")
                ))
            }
        }
    }

    /// The credentials of pull secrets `names` in `namespace`. Secrets that are missing or not
    /// Docker configs are skipped with a warning, as the kubelet does.
    pub async fn keychain(&self, namespace: &str, names: &[String]) -> Keychain {
        let mut keychain = Keychain::default();
        for name in names {
            match self.secret(namespace, name).await {
                Ok(data) => match pull_secret_keychain(&data, &format!("Secret {namespace}/{name}")) {
                    Some(Ok(found)) => keychain.extend(found),
                    Some(Err(e)) => tracing::warn!(error = %e, "pull secret ignored"),
                    None => {
                        tracing::warn!(secret = %name, %namespace, "pull secret has no .dockerconfigjson")
                    }
                },
                Err(e) => tracing::warn!(error = %e, "pull secret ignored"),
            }
        }
        keychain
    }

    /// The pull secret names of a ServiceAccount (`default` when the pod names none).
    pub async fn service_account_pull_secrets(&self, namespace: &str, name: &str) -> Vec<String> {
        let key = (namespace.to_string(), name.to_string());
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let result = self
            .service_accounts
            .try_get_with(key, async move {
                let account = api.get(name).await.map_err(|e| e.to_string())?;
                let names = account
                    .image_pull_secrets
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| s.name)
                    .filter(|n| !n.is_empty())
                    .collect();
                Ok::<_, String>(Arc::new(names))
            })
            .await;
        match result {
            Ok(names) => names.as_ref().clone(),
            Err(detail) => {
                let error = ClusterError::ServiceAccount {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    detail: detail.to_string(),
                };
                tracing::warn!(error = %error, "ServiceAccount pull secrets unavailable");
                Vec::new()
            }
        }
    }
}

fn short_lived_cache<V: Clone + Send + Sync + 'static>() -> moka::future::Cache<(String, String), V> {
    moka::future::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_secs(30))
        .build()
}

fn pull_secret_keychain(
    data: &BTreeMap<String, Vec<u8>>,
    source_name: &str,
) -> Option<Result<Keychain, crate::registry::credentials::CredentialsError>> {
    if let Some(json) = data.get(".dockerconfigjson") {
        return Some(Keychain::from_docker_config(json, source_name));
    }
    data.get(".dockercfg")
        .map(|json| Keychain::from_dockercfg(json, source_name))
}
