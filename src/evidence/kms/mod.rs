//! Public keys held in a KMS (`key.kms`): `awskms://`, `gcpkms://`, `azurekms://`,
//! `hashivault://`. Verifying needs only the public key, so each key a snapshot names is
//! fetched in the background as soon as it is named, refreshed every `--kms-refresh-seconds`
//! (a rotated key or a re-pointed alias shows up within that), and kept through transient
//! failures. Admissions read the store and never call a KMS; until the first fetch succeeds
//! the authority is denied with the KMS reference and the provider's answer.
//!
//! Each provider is reached through its documented REST API with signet's own HTTP client:
//! the providers' Rust SDKs would add hundreds of crates (and their own TLS stacks) for one
//! read-only call each. AWS requests are signed with the `aws-sigv4` crate.

mod aws;
mod azure;
mod gcp;
mod http;
mod vault;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::AbortHandle;

use crate::policy::snapshot::PolicySnapshot;
use crate::verify::keys::PublicKey;

/// An environment variable the providers' SDKs read, when it is set and not blank.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A `key.kms` reference, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmsRef {
    /// `awskms://[ENDPOINT]/KEY_ID|KEY_ARN|alias/NAME|ALIAS_ARN`
    Aws { endpoint: Option<String>, key_id: String },
    /// `gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/V]`;
    /// without a version, the newest enabled one.
    Gcp { name: String },
    /// `azurekms://VAULT_HOST/KEY[/VERSION]`; without a version, the current one.
    Azure {
        vault: String,
        key: String,
        version: Option<String>,
    },
    /// `hashivault://KEY` (a transit key); its latest version.
    Vault { key: String },
}

#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    #[error("{0}")]
    Malformed(String),
    #[error("no credentials: {0}")]
    Credentials(String),
    #[error("{provider} answered HTTP {status}: {message}")]
    Provider {
        provider: &'static str,
        status: u16,
        message: String,
    },
    #[error("cannot reach {what}: {detail}")]
    Transport { what: String, detail: String },
    #[error("the key it returned is unusable: {0}")]
    Key(String),
}

impl KmsError {
    /// The provider's own answer that the key cannot be had (not found, disabled, access
    /// denied: a 4xx other than 429), or an unusable key: not a passing outage.
    fn is_definitive(&self) -> bool {
        match self {
            KmsError::Provider { status, .. } => (400..500).contains(status) && *status != 429,
            KmsError::Key(_) | KmsError::Malformed(_) => true,
            KmsError::Credentials(_) | KmsError::Transport { .. } => false,
        }
    }
}

impl KmsRef {
    pub fn parse(text: &str) -> Result<KmsRef, KmsError> {
        let malformed = |why: &str| KmsError::Malformed(format!("{text:?}: {why}"));
        if let Some(rest) = text.strip_prefix("awskms://") {
            let (endpoint, key_id) = rest
                .split_once('/')
                .ok_or_else(|| malformed("expected awskms://[ENDPOINT]/KEY"))?;
            if key_id.is_empty() {
                return Err(malformed("no key id"));
            }
            let endpoint = Some(endpoint.to_string()).filter(|e| !e.is_empty());
            return Ok(KmsRef::Aws {
                endpoint,
                key_id: key_id.to_string(),
            });
        }
        if let Some(name) = text.strip_prefix("gcpkms://") {
            let parts: Vec<&str> = name.split('/').collect();
            let shape_ok = matches!(
                parts.as_slice(),
                ["projects", _, "locations", _, "keyRings", _, "cryptoKeys", _]
                    | [
                        "projects",
                        _,
                        "locations",
                        _,
                        "keyRings",
                        _,
                        "cryptoKeys",
                        _,
                        "cryptoKeyVersions",
                        _
                    ]
            );
            if !shape_ok || parts.iter().any(|p| p.is_empty()) {
                return Err(malformed(
                    "expected gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/V]",
                ));
            }
            return Ok(KmsRef::Gcp { name: name.to_string() });
        }
        if let Some(rest) = text.strip_prefix("azurekms://") {
            let parts: Vec<&str> = rest.split('/').collect();
            return match parts.as_slice() {
                [vault, key] if !vault.is_empty() && !key.is_empty() => Ok(KmsRef::Azure {
                    vault: vault.to_string(),
                    key: key.to_string(),
                    version: None,
                }),
                [vault, key, version] if !vault.is_empty() && !key.is_empty() && !version.is_empty() => {
                    Ok(KmsRef::Azure {
                        vault: vault.to_string(),
                        key: key.to_string(),
                        version: Some(version.to_string()),
                    })
                }
                _ => Err(malformed("expected azurekms://VAULT_HOST/KEY[/VERSION]")),
            };
        }
        if let Some(key) = text.strip_prefix("hashivault://") {
            if key.is_empty() || key.contains('/') {
                return Err(malformed("expected hashivault://KEY"));
            }
            return Ok(KmsRef::Vault { key: key.to_string() });
        }
        Err(malformed(
            "not a KMS reference (awskms://, gcpkms://, azurekms://, hashivault://)",
        ))
    }
}

/// Where the providers are, and how often keys are fetched again.
#[derive(Debug, Clone)]
pub struct KmsSettings {
    /// API base URLs by provider (`aws`, `gcp`, `azure`), replacing the public endpoints:
    /// VPC / private endpoints, sovereign clouds, and tests.
    pub endpoints: BTreeMap<String, String>,
    pub refresh: Duration,
    /// Deadline of one provider call (token and key requests each).
    pub timeout: Duration,
}

impl Default for KmsSettings {
    fn default() -> Self {
        KmsSettings {
            endpoints: BTreeMap::new(),
            refresh: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What the store knows of one reference.
#[derive(Default)]
struct Entry {
    /// The last key fetched; kept through later failures.
    key: Option<PublicKey>,
    /// Why the last fetch failed, if it did.
    last_error: Option<String>,
    /// The background refresher.
    task: Option<AbortHandle>,
}

/// The KMS public keys the policies name, kept fresh in the background.
#[derive(Clone)]
pub struct KmsKeys {
    entries: Arc<Mutex<BTreeMap<String, Entry>>>,
    client: reqwest::Client,
    settings: Arc<KmsSettings>,
}

impl KmsKeys {
    pub fn new(settings: KmsSettings) -> Result<KmsKeys, KmsError> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| KmsError::Transport {
                what: "the KMS client".to_string(),
                detail: e.to_string(),
            })?;
        Ok(KmsKeys {
            entries: Arc::default(),
            client,
            settings: Arc::new(settings),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        // A panic while holding the lock cannot leave an entry half-written (each write is
        // one assignment), so a poisoned lock is still consistent.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key for `reference`, without any I/O.
    pub fn get(&self, reference: &str) -> Result<PublicKey, String> {
        match self.lock().get(reference) {
            Some(Entry { key: Some(key), .. }) => Ok(key.clone()),
            Some(Entry {
                last_error: Some(why), ..
            }) => Err(format!("KMS key {reference}: {why}")),
            _ => Err(format!("KMS key {reference} has not been fetched yet")),
        }
    }

    /// Starts a refresher for every reference of `snapshot` not yet known, and stops those
    /// of references no policy names any more.
    pub fn sync(&self, snapshot: &PolicySnapshot) {
        let wanted = references(snapshot);
        let mut entries = self.lock();
        entries.retain(|reference, entry| {
            let keep = wanted.contains(reference);
            if !keep && let Some(task) = &entry.task {
                task.abort();
            }
            keep
        });
        for reference in wanted {
            if let std::collections::btree_map::Entry::Vacant(slot) = entries.entry(reference) {
                let task = tokio::spawn(self.clone().refresh_forever(slot.key().clone()));
                slot.insert(Entry {
                    task: Some(task.abort_handle()),
                    ..Entry::default()
                });
            }
        }
    }

    /// For one-shot commands: fetches `reference` now unless it is known.
    pub async fn fetch_if_unknown(&self, reference: &str) {
        if self.lock().contains_key(reference) {
            return;
        }
        self.lock().insert(reference.to_string(), Entry::default());
        let outcome = self.fetch(reference).await;
        self.record(reference, outcome);
    }

    async fn refresh_forever(self, reference: String) {
        let mut retry = Duration::from_secs(2);
        loop {
            let outcome = self.fetch(&reference).await;
            let wait = if outcome.is_ok() {
                retry = Duration::from_secs(2);
                self.settings.refresh
            } else {
                retry = (retry * 2).min(self.settings.refresh);
                retry
            };
            self.record(&reference, outcome);
            tokio::time::sleep(wait).await;
        }
    }

    fn record(&self, reference: &str, outcome: Result<PublicKey, KmsError>) {
        let mut entries = self.lock();
        // A reference dropped while its fetch was in flight stays dropped.
        let Some(entry) = entries.get_mut(reference) else {
            return;
        };
        match outcome {
            Ok(key) => {
                match &entry.key {
                    None => tracing::info!(kms = reference, key = %key.fingerprint(), "KMS key fetched"),
                    Some(old) if old.spki_der() != key.spki_der() => {
                        tracing::info!(kms = reference, key = %key.fingerprint(), previous = %old.fingerprint(), "KMS key rotated");
                    }
                    Some(_) => {}
                }
                entry.key = Some(key);
                entry.last_error = None;
            }
            Err(e) if e.is_definitive() => {
                // The provider says the key is gone, disabled or not ours to read: a revoked
                // key must stop verifying, not live on as "the last good key".
                tracing::warn!(kms = reference, error = %e, "KMS key refused by the provider; it is no longer used");
                entry.key = None;
                entry.last_error = Some(e.to_string());
            }
            Err(e) => {
                let kept = if entry.key.is_some() {
                    "; the last key fetched stays in use"
                } else {
                    ""
                };
                tracing::warn!(kms = reference, error = %e, "KMS key fetch failed{kept}");
                entry.last_error = Some(e.to_string());
            }
        }
    }

    async fn fetch(&self, reference: &str) -> Result<PublicKey, KmsError> {
        let endpoint = |provider: &str| self.settings.endpoints.get(provider).map(String::as_str);
        let spki = match KmsRef::parse(reference)? {
            KmsRef::Aws { endpoint: host, key_id } => {
                aws::public_key(&self.client, endpoint("aws"), host.as_deref(), &key_id).await?
            }
            KmsRef::Gcp { name } => gcp::public_key(&self.client, endpoint("gcp"), &name).await?,
            KmsRef::Azure { vault, key, version } => {
                azure::public_key(&self.client, endpoint("azure"), &vault, &key, version.as_deref()).await?
            }
            KmsRef::Vault { key } => vault::public_key(&self.client, &key).await?,
        };
        PublicKey::from_spki_der(&spki).map_err(|e| KmsError::Key(e.to_string()))
    }
}

/// Runs until the process ends: every published snapshot's KMS keys are fetched (and the
/// ones no policy names any more forgotten) as soon as it is published.
pub async fn keep_synced(snapshots: crate::policy::handle::SnapshotHandle, keys: KmsKeys) {
    let mut published = snapshots.subscribe();
    loop {
        keys.sync(&snapshots.load());
        if published.changed().await.is_err() {
            return;
        }
    }
}

/// Every `key.kms` of the enforced policies.
fn references(snapshot: &PolicySnapshot) -> BTreeSet<String> {
    snapshot
        .policies
        .iter()
        .flat_map(|policy| policy.authorities.iter())
        .filter_map(|authority| authority.spec.key.as_ref()?.kms.clone())
        .filter(|kms| !kms.trim().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_key() -> PublicKey {
        use p256::pkcs8::EncodePublicKey as _;
        let der = p256::SecretKey::from_slice(&[7; 32])
            .unwrap()
            .public_key()
            .to_public_key_der()
            .unwrap();
        PublicKey::from_spki_der(der.as_bytes()).unwrap()
    }

    #[test]
    fn outages_keep_the_last_key_and_refusals_drop_it() {
        let keys = KmsKeys::new(KmsSettings::default()).unwrap();
        let reference = "awskms:///arn:aws:kms:us-east-1:1:alias/release";
        keys.lock().insert(reference.to_string(), Entry::default());
        assert!(keys.get(reference).unwrap_err().contains("has not been fetched yet"));
        keys.record(reference, Ok(a_key()));
        assert!(keys.get(reference).is_ok());
        let outage = KmsError::Transport {
            what: "kms".into(),
            detail: "connection refused".into(),
        };
        keys.record(reference, Err(outage));
        assert!(keys.get(reference).is_ok(), "an outage keeps the key");
        let throttled = KmsError::Provider {
            provider: "AWS KMS",
            status: 429,
            message: "ThrottlingException".into(),
        };
        keys.record(reference, Err(throttled));
        assert!(keys.get(reference).is_ok(), "throttling keeps the key");
        let disabled = KmsError::Provider {
            provider: "AWS KMS",
            status: 400,
            message: "DisabledException: key is disabled".into(),
        };
        keys.record(reference, Err(disabled));
        let why = keys.get(reference).unwrap_err();
        assert!(why.contains("DisabledException"), "{why}");
        // A reference no policy names any more is not brought back by a late fetch.
        keys.lock().clear();
        keys.record(reference, Ok(a_key()));
        assert!(keys.lock().is_empty());
    }

    #[test]
    fn references_parse_or_say_why() {
        let cases: &[(&str, Result<KmsRef, &str>)] = &[
            (
                "awskms:///alias/release",
                Ok(KmsRef::Aws {
                    endpoint: None,
                    key_id: "alias/release".into(),
                }),
            ),
            (
                "awskms://localhost:4566/arn:aws:kms:eu-west-1:111122223333:key/abcd",
                Ok(KmsRef::Aws {
                    endpoint: Some("localhost:4566".into()),
                    key_id: "arn:aws:kms:eu-west-1:111122223333:key/abcd".into(),
                }),
            ),
            ("awskms://host", Err("expected awskms://[ENDPOINT]/KEY")),
            (
                "gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3",
                Ok(KmsRef::Gcp {
                    name: "projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3".into(),
                }),
            ),
            ("gcpkms://projects/p/keyRings/r", Err("expected gcpkms://projects/P")),
            (
                "azurekms://v.vault.azure.net/k/1f2e",
                Ok(KmsRef::Azure {
                    vault: "v.vault.azure.net".into(),
                    key: "k".into(),
                    version: Some("1f2e".into()),
                }),
            ),
            (
                "azurekms://v.vault.azure.net",
                Err("expected azurekms://VAULT_HOST/KEY"),
            ),
            ("hashivault://release", Ok(KmsRef::Vault { key: "release".into() })),
            ("hashivault://a/b", Err("expected hashivault://KEY")),
            ("k8s://ns/secret", Err("not a KMS reference")),
        ];
        for (text, expected) in cases {
            match (KmsRef::parse(text), expected) {
                (Ok(parsed), Ok(want)) => assert_eq!(&parsed, want, "{text}"),
                (Err(e), Err(fragment)) => assert!(e.to_string().contains(fragment), "{text}: {e}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }
}
