//! Signature verification: the [`Verifier`] signet uses in production, backed by real
//! registries. Signatures are fetched once per (location, digest) and shared by every
//! authority and policy that needs them; concurrent admissions of the same digest share one
//! in-flight fetch.

pub mod cosign;
pub mod keys;
pub mod rekor;
pub mod trust;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::api::cip::{Authority, KeyRef};
use crate::policy::evaluate::{AuthorityCheck, RequestContext, Verifier};
use crate::policy::reference::ImageRef;
use crate::policy::snapshot::AuthorityKind;
use crate::registry::{Credentials, RegistryClient};
use cosign::{FetchError, SignatureLayer, SignatureLocation, fetch_signatures, parse_payload};
use keys::{HashAlgorithm, PublicKey};
use rekor::{EntryExpectation, verify_bundle};
use trust::TrustRoot;

const KMS_SCHEMES: &[&str] = &["awskms://", "gcpkms://", "azurekms://", "hashivault://"];

type SignatureCache = moka::future::Cache<(SignatureLocation, String), Arc<Vec<SignatureLayer>>>;

/// Settings of the verifier's caches.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    /// How long fetched signatures are reused; a removed signature stops counting after this.
    pub signature_ttl: Duration,
    pub signature_cache_entries: u64,
}

impl Default for VerifierSettings {
    fn default() -> Self {
        VerifierSettings {
            signature_ttl: Duration::from_secs(60),
            signature_cache_entries: 10_000,
        }
    }
}

/// Resolves digests and verifies authorities against real registries.
pub struct RegistryVerifier {
    registry: RegistryClient,
    trust: Arc<TrustRoot>,
    signatures: SignatureCache,
}

impl RegistryVerifier {
    pub fn new(
        registry: RegistryClient,
        trust: Arc<TrustRoot>,
        settings: &VerifierSettings,
    ) -> Self {
        let signatures = moka::future::Cache::builder()
            .max_capacity(settings.signature_cache_entries)
            .time_to_live(settings.signature_ttl)
            .build();
        RegistryVerifier {
            registry,
            trust,
            signatures,
        }
    }

    /// The signatures attached to `digest` at `location`, fetched at most once at a time.
    async fn signatures(
        &self,
        location: &SignatureLocation,
        digest: &str,
    ) -> Result<Arc<Vec<SignatureLayer>>, String> {
        let key = (location.clone(), digest.to_string());
        self.signatures
            .try_get_with(key, async {
                fetch_signatures(&self.registry, location, digest, &Credentials::Anonymous)
                    .await
                    .map(Arc::new)
            })
            .await
            .map_err(|e: Arc<FetchError>| {
                format!(
                    "cannot fetch signatures from {}: {e}",
                    location.describe(digest)
                )
            })
    }

    async fn verify_key_authority(
        &self,
        check: &AuthorityCheck<'_>,
        key_ref: &KeyRef,
    ) -> Result<String, String> {
        let key = inline_key(key_ref)?;
        let hash_name = key_ref.hash_algorithm.as_deref().unwrap_or_default();
        let hash = HashAlgorithm::from_name(hash_name)
            .ok_or_else(|| format!("hashAlgorithm {hash_name:?} is not supported"))?;
        let requirements = LayerRequirements {
            key: &key,
            hash,
            digest: check.digest,
            authority: &check.authority.spec,
            trust: &self.trust,
        };
        let mut failures = Vec::new();
        for location in signature_locations(check.image, &check.authority.spec) {
            let layers = self.signatures(&location, check.digest).await?;
            if layers.is_empty() {
                failures.push(format!(
                    "no signatures found at {}",
                    location.describe(check.digest)
                ));
                continue;
            }
            for (index, layer) in layers.iter().enumerate() {
                match requirements.check(layer) {
                    Ok(detail) => {
                        return Ok(format!(
                            "signature {} at {} verified with {} key {}{detail}",
                            layer.layer_digest,
                            location.describe(check.digest),
                            key.kind_name(),
                            key.fingerprint()
                        ));
                    }
                    Err(why) => failures.push(format!(
                        "signature {} of {}: {why}",
                        index + 1,
                        layers.len()
                    )),
                }
            }
        }
        Err(failures.join("; "))
    }
}

impl Verifier for RegistryVerifier {
    fn resolve_digest<'a>(
        &'a self,
        image: &'a ImageRef,
        _context: &'a RequestContext,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            self.registry
                .resolve_digest(
                    image.registry(),
                    image.repository(),
                    image.registry_reference(),
                    &Credentials::Anonymous,
                )
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn verify<'a>(&'a self, check: AuthorityCheck<'a>) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            match (&check.authority.kind, &check.authority.spec.key) {
                (AuthorityKind::Key, Some(key_ref)) => {
                    self.verify_key_authority(&check, key_ref).await
                }
                (AuthorityKind::Keyless, _) => Err(
                    "keyless authorities are not supported yet by this signet build".to_string(),
                ),
                _ => Err("this authority has nothing to verify".to_string()),
            }
        })
    }
}

/// The key of a `key` authority. Keys in Secrets and KMS are answered with a clear error
/// until their support lands, never silently skipped.
fn inline_key(key_ref: &KeyRef) -> Result<PublicKey, String> {
    if let Some(data) = key_ref.data.as_deref().filter(|d| !d.trim().is_empty()) {
        return PublicKey::from_pem(data).map_err(|e| format!("key.data: {e}"));
    }
    if let Some(kms) = key_ref.kms.as_deref() {
        let scheme = KMS_SCHEMES
            .iter()
            .find(|s| kms.starts_with(**s))
            .unwrap_or(&"kms");
        return Err(format!(
            "KMS not available: signet cannot reach {scheme} keys; put the public key in key.data"
        ));
    }
    if key_ref.secret_ref.is_some() {
        return Err(
            "key.secretRef needs access to the cluster's Secrets, which this signet does not have"
                .to_string(),
        );
    }
    Err("the key authority names no key".to_string())
}

/// Where to look for signatures: each `source[].oci` (with its tag prefix), else the image's
/// own repository.
fn signature_locations(image: &ImageRef, authority: &Authority) -> Vec<SignatureLocation> {
    let own = || SignatureLocation {
        registry: image.registry().to_string(),
        repository: image.repository().to_string(),
        tag_prefix: String::new(),
    };
    if authority.sources.is_empty() {
        return vec![own()];
    }
    authority
        .sources
        .iter()
        .map(|source| {
            let tag_prefix = source.tag_prefix.clone().unwrap_or_default();
            let repository = source
                .oci
                .as_deref()
                .filter(|o| !o.is_empty())
                .and_then(|oci| {
                    // A repository reference: parse it as an image to normalise the registry.
                    ImageRef::parse(oci).ok()
                });
            match repository {
                Some(repo) => SignatureLocation {
                    registry: repo.registry().to_string(),
                    repository: repo.repository().to_string(),
                    tag_prefix,
                },
                None => SignatureLocation {
                    tag_prefix,
                    ..own()
                },
            }
        })
        .collect()
}

/// What one signature layer must satisfy for a key authority.
struct LayerRequirements<'a> {
    key: &'a PublicKey,
    hash: HashAlgorithm,
    digest: &'a str,
    authority: &'a Authority,
    trust: &'a TrustRoot,
}

impl LayerRequirements<'_> {
    /// `Ok` with extra detail (the Rekor entry) when the layer passes; `Err` says why not.
    fn check(&self, layer: &SignatureLayer) -> Result<String, String> {
        let signature = layer
            .signature
            .as_deref()
            .ok_or("the layer has no valid dev.cosignproject.cosign/signature annotation")?;
        self.key
            .verify(&layer.payload, signature, self.hash)
            .map_err(|_| {
                format!(
                    "not signed by key {} ({:?})",
                    self.key.fingerprint(),
                    self.hash
                )
            })?;
        let claims = parse_payload(&layer.payload)?;
        if claims.docker_manifest_digest != self.digest {
            return Err(format!(
                "the signed payload is for {}, not {}",
                claims.docker_manifest_digest, self.digest
            ));
        }
        for (name, value) in &self.authority.require_annotations {
            match claims.annotations.get(name) {
                Some(found) if found == value => {}
                Some(found) => {
                    return Err(format!(
                        "annotation {name:?} is {found:?}, the policy requires {value:?}"
                    ));
                }
                None => {
                    return Err(format!(
                        "annotation {name:?} is missing, the policy requires {value:?}"
                    ));
                }
            }
        }
        if self.authority.ctlog.is_none() {
            return Ok(String::new());
        }
        self.check_transparency_log(layer, signature)
    }

    fn check_transparency_log(
        &self,
        layer: &SignatureLayer,
        signature: &[u8],
    ) -> Result<String, String> {
        let bundle = layer
            .bundle_json
            .as_deref()
            .ok_or("the policy requires a transparency log entry (ctlog) but the signature has no Rekor bundle")?;
        let expected = EntryExpectation {
            payload: &layer.payload,
            signature,
        };
        let entry = verify_bundle(bundle, self.trust, &expected)?;
        let logged_key = PublicKey::from_pem(&entry.public_key_pem)
            .map_err(|e| format!("the Rekor entry's public key is unusable: {e}"))?;
        if logged_key.spki_der() != self.key.spki_der() {
            return Err(format!(
                "the Rekor entry records key {}, not the policy's key {}",
                logged_key.fingerprint(),
                self.key.fingerprint()
            ));
        }
        Ok(format!(
            ", logged in {} at index {} ({})",
            entry.log_url, entry.log_index, entry.integrated_time
        ))
    }
}
