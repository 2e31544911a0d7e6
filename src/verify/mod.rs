//! Signature verification: the [`Verifier`] signet uses in production, backed by real
//! registries. Signatures are fetched once per (location, digest) and shared by every
//! authority and policy that needs them; concurrent admissions of the same digest share one
//! in-flight fetch.

pub mod blob;
pub mod bundle;
pub mod cosign;
pub mod dsse;
pub mod keyless;
pub mod keys;
pub mod merkle;
pub mod referrers;
pub mod rekor;
pub mod sct;
pub mod tree;
pub mod trust;
pub mod tsa;
pub mod tuf;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use futures::future::BoxFuture;

use crate::api::cip::{Authority, Identity, KeyRef, KeylessRef};
use crate::metrics::Metrics;
use crate::policy::evaluate::{AuthorityCheck, RequestContext, Verifier};
use crate::policy::program::{AuthorityMatch, PolicySignature};
use crate::policy::reference::ImageRef;
use crate::policy::rego::Verdict;
use crate::policy::snapshot::AuthorityKind;
use crate::registry::config::{ConfigFileError, ImageLocation, config_files};
use crate::registry::credentials::Keychain;
use crate::registry::{Credentials, RegistryClient};
use crate::sources::cluster::ClusterAccess;
use cosign::{FetchError, SignatureLayer, SignatureLocation, fetch_attestations, fetch_signatures, parse_payload};
use keyless::{CertificateIdentity, KeylessRequirements};
use keys::{HashAlgorithm, PublicKey};
use rekor::{EntryExpectation, verify_bundle};
use trust::{CertificateAuthority, TrustRoot};

const KMS_SCHEMES: &[&str] = &["awskms://", "gcpkms://", "azurekms://", "hashivault://"];

type SignatureCache = moka::future::Cache<(SignatureLocation, String, LayerKind), Arc<Vec<SignatureLayer>>>;
/// (location, digest) → the Sigstore bundles referring to it (none is cached too: an
/// unsigned image must not cost registry requests on every admission).
type BundleCache = moka::future::Cache<(SignatureLocation, String), Arc<Vec<referrers::AttachedBundle>>>;

/// Which of cosign's tags a cached layer list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LayerKind {
    Signatures,
    Attestations,
}
/// (registry/repository, digest, authority fingerprint) → what was verified.
type VerifiedCache = moka::future::Cache<(String, String, String), Arc<(String, AuthorityMatch)>>;
/// (registry/repository:tag) → digest.
type DigestCache = moka::future::Cache<String, Arc<String>>;
/// (registry/repository, digest, credential identity) → config files by platform.
type ConfigCache = moka::future::Cache<(String, String, String), Arc<serde_json::Value>>;

/// Settings of the verifier's caches.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    /// How long fetched signatures and verified results are reused; a removed signature
    /// stops counting after this.
    pub signature_ttl: Duration,
    /// How long a tag's digest is reused (mutation and validation of one object share it).
    pub digest_ttl: Duration,
    /// Most entries of each cache.
    pub cache_entries: u64,
}

impl Default for VerifierSettings {
    fn default() -> Self {
        VerifierSettings {
            signature_ttl: Duration::from_secs(60),
            digest_ttl: Duration::from_secs(10),
            cache_entries: 10_000,
        }
    }
}

fn cache<K, V>(entries: u64, ttl: Duration) -> moka::future::Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    moka::future::Cache::builder()
        .max_capacity(entries)
        .time_to_live(ttl)
        .build()
}

/// Resolves digests and verifies authorities against real registries.
pub struct RegistryVerifier {
    registry: RegistryClient,
    trust: Arc<TrustRoot>,
    signatures: SignatureCache,
    bundles: BundleCache,
    verified: VerifiedCache,
    digests: DigestCache,
    configs: ConfigCache,
    /// Secrets and ServiceAccounts, when signet runs in a cluster.
    cluster: Option<ClusterAccess>,
    /// Credentials from `--registry-auth-file`, tried after the pod's own.
    keychain: Keychain,
    metrics: Option<Metrics>,
    /// `TrustRoot` resources resolved once per spec (TUF ones verified or fetched).
    trust_roots: tuf::TrustRootStore,
}

impl RegistryVerifier {
    pub fn new(
        registry: RegistryClient,
        trust: Arc<TrustRoot>,
        settings: &VerifierSettings,
        cluster: Option<ClusterAccess>,
        keychain: Keychain,
    ) -> Self {
        RegistryVerifier {
            registry,
            trust,
            signatures: cache(settings.cache_entries, settings.signature_ttl),
            bundles: cache(settings.cache_entries, settings.signature_ttl),
            verified: cache(settings.cache_entries, settings.signature_ttl),
            digests: cache(settings.cache_entries, settings.digest_ttl),
            configs: cache(settings.cache_entries, settings.signature_ttl),
            cluster,
            keychain,
            metrics: None,
            trust_roots: tuf::TrustRootStore::default(),
        }
    }

    /// The store of resolved `TrustRoot` resources, for the background refresher.
    pub fn trust_roots(&self) -> tuf::TrustRootStore {
        self.trust_roots.clone()
    }

    /// The credentials the kubelet would use for this pod: its pull secrets, then its
    /// ServiceAccount's, then signet's own configured ones.
    async fn pod_keychain(&self, context: &RequestContext) -> Keychain {
        let mut keychain = Keychain::default();
        if let (Some(cluster), Some(namespace)) = (&self.cluster, context.namespace.as_deref()) {
            let mut names = context.image_pull_secrets.clone();
            let account = context.service_account.as_deref().unwrap_or("default");
            names.extend(cluster.service_account_pull_secrets(namespace, account).await);
            keychain.extend(cluster.keychain(namespace, &names).await);
        }
        keychain.extend(self.keychain.clone());
        keychain
    }

    /// Credentials for a signature location: `signaturePullSecrets` (in signet's namespace)
    /// when the source names them, else the pod's.
    async fn signature_credentials(&self, location: &Location, context: &RequestContext) -> Credentials {
        let registry = &location.signatures.registry;
        match (&self.cluster, location.pull_secrets.is_empty()) {
            (Some(cluster), false) => {
                let mut keychain = cluster.keychain(cluster.namespace(), &location.pull_secrets).await;
                keychain.extend(self.keychain.clone());
                keychain.for_registry(registry)
            }
            _ => self.pod_keychain(context).await.for_registry(registry),
        }
    }

    /// The signatures attached to `digest` at `location`, fetched at most once at a time.
    /// cosign's `.sig` or `.att` layers for `digest`, cached (an empty list too).
    async fn layers(
        &self,
        location: &Location,
        digest: &str,
        kind: LayerKind,
        context: &RequestContext,
    ) -> Result<Arc<Vec<SignatureLayer>>, String> {
        let signatures = &location.signatures;
        let key = (signatures.clone(), digest.to_string(), kind);
        let missed = AtomicBool::new(false);
        let fetched = self
            .signatures
            .try_get_with(key, async {
                missed.store(true, Ordering::Relaxed);
                let credentials = self.signature_credentials(location, context).await;
                match kind {
                    LayerKind::Signatures => fetch_signatures(&self.registry, signatures, digest, &credentials).await,
                    LayerKind::Attestations => {
                        fetch_attestations(&self.registry, signatures, digest, &credentials).await
                    }
                }
                .map(Arc::new)
            })
            .await
            .map_err(|e: Arc<FetchError>| format!("cannot fetch {kind:?} from {}: {e}", signatures.describe(digest)));
        let cache_name = match kind {
            LayerKind::Signatures => "signatures",
            LayerKind::Attestations => "attestations",
        };
        self.count_lookup(cache_name, &missed);
        fetched
    }

    /// The Sigstore bundles referring to `digest` at `location`, cached (none too).
    async fn bundles(
        &self,
        location: &Location,
        digest: &str,
        context: &RequestContext,
    ) -> Result<Arc<Vec<referrers::AttachedBundle>>, String> {
        let place = &location.signatures;
        let missed = AtomicBool::new(false);
        let fetched = self
            .bundles
            .try_get_with((place.clone(), digest.to_string()), async {
                missed.store(true, Ordering::Relaxed);
                let credentials = self.signature_credentials(location, context).await;
                referrers::fetch_bundles(&self.registry, place, digest, &credentials)
                    .await
                    .map(Arc::new)
            })
            .await
            .map_err(|e: Arc<FetchError>| {
                format!(
                    "cannot fetch Sigstore bundles from {}/{}: {e}",
                    place.registry, place.repository
                )
            });
        self.count_lookup("bundles", &missed);
        fetched
    }

    fn count_lookup(&self, cache: &'static str, missed: &AtomicBool) {
        if let Some(metrics) = &self.metrics {
            let result = if missed.load(Ordering::Relaxed) { "miss" } else { "hit" };
            metrics.cache_lookups.with_label_values(&[cache, result]).inc();
        }
    }

    /// Records metrics: registry requests by the client, caches and verification times here.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.registry = self.registry.with_request_counter(metrics.registry_requests.clone());
        self.metrics = Some(metrics);
        self
    }

    /// The public key of a `key` authority: inline, or from a Secret in signet's namespace.
    /// KMS keys are answered with a clear error, never silently skipped.
    async fn public_key(&self, key_ref: &KeyRef) -> Result<PublicKey, String> {
        if let Some(data) = key_ref.data.as_deref().filter(|d| !d.trim().is_empty()) {
            return PublicKey::from_pem(data).map_err(|e| format!("key.data: {e}"));
        }
        if let Some(secret) = &key_ref.secret_ref {
            let name = secret.name.as_deref().unwrap_or_default();
            let cluster = self.cluster.as_ref().ok_or_else(|| {
                format!("key.secretRef {name:?} needs cluster access; in standalone mode put the key in key.data")
            })?;
            let pem = cluster.key_from_secret(name).await?;
            return PublicKey::from_pem(&pem).map_err(|e| format!("key.secretRef {name:?}: {e}"));
        }
        if let Some(kms) = key_ref.kms.as_deref() {
            let scheme = KMS_SCHEMES.iter().find(|s| kms.starts_with(**s)).unwrap_or(&"kms");
            return Err(format!(
                "KMS not available: signet cannot reach {scheme} keys; put the public key in key.data"
            ));
        }
        Err("the key authority names no key".to_string())
    }

    fn observe_verification(&self, check: &AuthorityCheck<'_>, passed: bool, elapsed: Duration) {
        if let Some(metrics) = &self.metrics {
            let kind = match check.authority.kind {
                AuthorityKind::Key => "key",
                AuthorityKind::Keyless => "keyless",
                AuthorityKind::Static { .. } => "static",
            };
            let outcome = if passed { "passed" } else { "failed" };
            metrics
                .verification_seconds
                .with_label_values(&[kind, outcome])
                .observe(elapsed.as_secs_f64());
        }
    }

    async fn verify_uncached(&self, check: &AuthorityCheck<'_>) -> Result<(String, AuthorityMatch), String> {
        let spec = &check.authority.spec;
        unsupported_requirements(spec)?;
        self.trust_roots.prepare(spec, check.trust_roots).await;
        let checker = match (&check.authority.kind, &spec.key, &spec.keyless) {
            (AuthorityKind::Key, Some(key_ref), _) => self.key_checker(key_ref).await?,
            (AuthorityKind::Keyless, _, Some(keyless)) => self.keyless_checker(keyless, check).await?,
            _ => return Err("this authority has nothing to verify".to_string()),
        };
        // As in policy-controller: an authority that names attestations is satisfied by
        // them (signed by the authority, judged by their policies), not by signatures.
        if check.authority.attestations.is_empty() {
            self.find_signature(check, &checker).await
        } else {
            self.verify_attestations(check, &checker).await
        }
    }

    /// Every `attestations[]` entry needs a verified attestation of its predicate type that
    /// its policy (if any) accepts.
    async fn verify_attestations(
        &self,
        check: &AuthorityCheck<'_>,
        checker: &Checker,
    ) -> Result<(String, AuthorityMatch), String> {
        let (verified, failures) = self.verified_statements(check, checker).await?;
        let mut passed = Vec::new();
        let mut matched = BTreeMap::new();
        for wanted in &check.authority.attestations {
            let candidates: Vec<&VerifiedStatement> = verified
                .iter()
                .filter(|v| v.statement.predicate_type == wanted.predicate_type)
                .collect();
            if candidates.is_empty() {
                let mut why = format!(
                    "attestation {:?}: no verified attestation of type {}",
                    wanted.name, wanted.predicate_type
                );
                if !failures.is_empty() {
                    why.push_str(&format!(" ({})", failures.join("; ")));
                }
                return Err(why);
            }
            let mut denials = Vec::new();
            for candidate in candidates {
                match wanted.evaluate(candidate.json.clone()).await {
                    Verdict::Allow { warning } => {
                        let warning = warning.map(|w| format!(", warning: {w}")).unwrap_or_default();
                        passed.push(format!("attestation {:?} ({}{warning})", wanted.name, candidate.detail));
                        let mut entry = serde_json::to_value(&candidate.signature).unwrap_or_default();
                        entry["predicateType"] = candidate.statement.predicate_type.clone().into();
                        entry["payload"] = base64::engine::general_purpose::STANDARD
                            .encode(&candidate.payload)
                            .into();
                        matched.insert(wanted.name.clone(), vec![entry]);
                        denials.clear();
                        break;
                    }
                    Verdict::Deny { error, .. } => denials.push(error),
                }
            }
            if !denials.is_empty() {
                return Err(format!(
                    "attestation {:?} failed its policy: {}",
                    wanted.name,
                    denials.join("; ")
                ));
            }
        }
        Ok((passed.join("; "), AuthorityMatch::Attestations(matched)))
    }

    /// The in-toto statements about this digest that the authority verifiably signed, from
    /// cosign's `.att` layout and from bundles attached as referrers; and why others failed.
    async fn verified_statements(
        &self,
        check: &AuthorityCheck<'_>,
        checker: &Checker,
    ) -> Result<(Vec<VerifiedStatement>, Vec<String>), String> {
        let mut verified = Vec::new();
        let mut failures = Vec::new();
        for location in signature_locations(check.image, &check.authority.spec) {
            let layers = self
                .layers(&location, check.digest, LayerKind::Attestations, check.context)
                .await?;
            let bundles = self.bundles(&location, check.digest, check.context).await?;
            let parsed = layers
                .iter()
                .map(|layer| (layer.layer_digest.clone(), bundle::Bundle::from_cosign_layer(layer)))
                .chain(
                    bundles
                        .iter()
                        .map(|b| (b.manifest_digest.clone(), bundle::Bundle::from_json(&b.json))),
                );
            for (source, parsed) in parsed {
                let outcome = parsed
                    .map_err(|e| e.to_string())
                    .and_then(|bundle| self.verify_statement(&source, &bundle, checker, check));
                match outcome {
                    Ok(statement) => verified.push(statement),
                    Err(why) => failures.push(format!("{source}: {why}")),
                }
            }
        }
        Ok((verified, failures))
    }

    /// Verifies one DSSE bundle for the authority and returns its statement.
    fn verify_statement(
        &self,
        source: &str,
        bundle: &bundle::Bundle,
        checker: &Checker,
        check: &AuthorityCheck<'_>,
    ) -> Result<VerifiedStatement, String> {
        let bundle::Content::Dsse(envelope) = &bundle.content else {
            return Err("not a DSSE envelope".to_string());
        };
        let verified = self.verify_bundle_for(bundle, checker, check)?;
        let statement = envelope.statement().map_err(|e| e.to_string())?;
        let json = serde_json::from_slice(&envelope.payload).map_err(|e| format!("the statement: {e}"))?;
        Ok(VerifiedStatement {
            statement,
            json,
            payload: envelope.payload.clone(),
            detail: format!("{source}: {}", verified.describe()),
            signature: policy_signature(source, verified.identity.as_ref()),
        })
    }

    /// How a `key` authority checks a signature: its key and hash.
    /// The trust root an authority names (`trustRootRef`), else signet's own.
    fn trust_for(&self, reference: Option<&str>, check: &AuthorityCheck<'_>) -> Result<Arc<TrustRoot>, String> {
        match reference.filter(|r| !r.is_empty()) {
            None => Ok(self.trust.clone()),
            Some(name) => {
                let spec = check
                    .trust_roots
                    .get(name)
                    .ok_or_else(|| format!("trustRootRef {name:?} names no TrustRoot"))?;
                self.trust_roots.get(name, spec)
            }
        }
    }

    async fn key_checker(&self, key_ref: &KeyRef) -> Result<Checker, String> {
        let key = self.public_key(key_ref).await?;
        let hash_name = key_ref.hash_algorithm.as_deref().unwrap_or_default();
        let hash = HashAlgorithm::from_name(hash_name)
            .ok_or_else(|| format!("hashAlgorithm {hash_name:?} is not supported"))?;
        Ok(Checker::Key { key, hash })
    }

    /// How a `keyless` authority checks a signature: identities and CAs (the policy's
    /// `ca-cert`, else the trust root's Fulcio CAs).
    async fn keyless_checker(&self, keyless: &KeylessRef, check: &AuthorityCheck<'_>) -> Result<Checker, String> {
        let trust = self.trust_for(keyless.trust_root_ref.as_deref(), check)?;
        let authorities = match &keyless.ca_cert {
            Some(ca_cert) => vec![keyless::authority_from_pem(&self.ca_cert_pem(ca_cert).await?)?],
            None => trust.certificate_authorities.clone(),
        };
        Ok(Checker::Keyless(KeylessChecker {
            trust,
            identities: keyless.identities.clone(),
            ignore_sct: keyless.insecure_ignore_sct.unwrap_or(false),
            authorities,
        }))
    }

    async fn ca_cert_pem(&self, ca_cert: &KeyRef) -> Result<String, String> {
        if let Some(data) = ca_cert.data.as_deref().filter(|d| !d.trim().is_empty()) {
            return Ok(data.to_string());
        }
        match (&ca_cert.secret_ref, &self.cluster) {
            (Some(secret), Some(cluster)) => {
                cluster
                    .key_from_secret(secret.name.as_deref().unwrap_or_default())
                    .await
            }
            (Some(_), None) => Err("ca-cert.secretRef needs cluster access; put the PEM in ca-cert.data".to_string()),
            (None, _) => Err("ca-cert names no certificate".to_string()),
        }
    }

    /// Legacy `.sig` signatures first, then Sigstore bundles attached as referrers (cosign
    /// v3), unless the authority's `signatureFormat` asks for one of them only.
    async fn find_signature(
        &self,
        check: &AuthorityCheck<'_>,
        checker: &Checker,
    ) -> Result<(String, AuthorityMatch), String> {
        let format = check.authority.spec.signature_format.as_deref().unwrap_or_default();
        let mut failures = Vec::new();
        let found = |(detail, signature): Found| (detail, AuthorityMatch::Signatures(vec![signature]));
        for location in signature_locations(check.image, &check.authority.spec) {
            if format != "bundle" {
                match self.verify_legacy(check, checker, &location).await? {
                    Ok(verified) => return Ok(found(verified)),
                    Err(why) => failures.extend(why),
                }
            }
            if format != "simplesigning" {
                match self.verify_bundles(check, checker, &location).await? {
                    Ok(verified) => return Ok(found(verified)),
                    Err(why) => failures.extend(why),
                }
            }
        }
        Err(failures.join("; "))
    }

    /// cosign's `.sig` layout at one location: `Ok(Ok(detail))` for the first good signature,
    /// `Ok(Err(reasons))` when none is, `Err` when the registry cannot be read.
    async fn verify_legacy(
        &self,
        check: &AuthorityCheck<'_>,
        checker: &Checker,
        location: &Location,
    ) -> Result<Result<Found, Vec<String>>, String> {
        let layers = self
            .layers(location, check.digest, LayerKind::Signatures, check.context)
            .await?;
        let location = &location.signatures;
        if layers.is_empty() {
            return Ok(Err(vec![format!(
                "no signatures found at {}",
                location.describe(check.digest)
            )]));
        }
        let mut failures = Vec::new();
        for (index, layer) in layers.iter().enumerate() {
            match self.check_layer(layer, checker, check) {
                Ok((detail, signature)) => {
                    let detail = format!(
                        "signature {} at {}: {detail}",
                        layer.layer_digest,
                        location.describe(check.digest)
                    );
                    return Ok(Ok((detail, signature)));
                }
                Err(why) => failures.push(format!("signature {} of {}: {why}", index + 1, layers.len())),
            }
        }
        Ok(Err(failures))
    }

    /// Sigstore bundles referring to the image at one location; same answers as
    /// [`Self::verify_legacy`].
    async fn verify_bundles(
        &self,
        check: &AuthorityCheck<'_>,
        checker: &Checker,
        location: &Location,
    ) -> Result<Result<Found, Vec<String>>, String> {
        let place = format!(
            "{}/{} referrers",
            location.signatures.registry, location.signatures.repository
        );
        let bundles = self.bundles(location, check.digest, check.context).await?;
        if bundles.is_empty() {
            return Ok(Err(vec![format!("no Sigstore bundles found in {place}")]));
        }
        let mut failures = Vec::new();
        for attached in bundles.iter() {
            match self.check_bundle(&attached.json, checker, check) {
                Ok(verified) => {
                    let detail = format!(
                        "bundle {} in {place}: {}",
                        attached.manifest_digest,
                        verified.describe()
                    );
                    let signature = policy_signature(&attached.manifest_digest, verified.identity.as_ref());
                    return Ok(Ok((detail, signature)));
                }
                Err(why) => failures.push(format!("bundle {}: {why}", attached.manifest_digest)),
            }
        }
        Ok(Err(failures))
    }

    /// One attached bundle: a DSSE envelope whose in-toto statement is cosign's signature
    /// statement about this digest, verified for the authority's key or identities.
    fn check_bundle(
        &self,
        json: &[u8],
        checker: &Checker,
        check: &AuthorityCheck<'_>,
    ) -> Result<bundle::Verified, String> {
        if !check.authority.spec.require_annotations.is_empty() {
            return Err("requireAnnotations is checked on cosign's .sig signatures only".to_string());
        }
        let bundle = bundle::Bundle::from_json(json).map_err(|e| e.to_string())?;
        let bundle::Content::Dsse(envelope) = &bundle.content else {
            return Err("a message-signature bundle cannot sign an image; expected a DSSE envelope".to_string());
        };
        let statement = envelope.statement().map_err(|e| e.to_string())?;
        if statement.predicate_type != COSIGN_SIGN_PREDICATE {
            return Err(format!(
                "the bundle is an attestation ({}), not a signature",
                statement.predicate_type
            ));
        }
        self.verify_bundle_for(&bundle, checker, check)
    }

    /// Verifies `bundle` for this image digest, signed as the authority requires.
    fn verify_bundle_for(
        &self,
        bundle: &bundle::Bundle,
        checker: &Checker,
        check: &AuthorityCheck<'_>,
    ) -> Result<bundle::Verified, String> {
        let digest = image_digest_bytes(check.digest)?;
        let artifact = bundle::Artifact::Sha256(digest);
        match checker {
            Checker::Key { key, .. } => {
                let ctlog = check.authority.spec.ctlog.as_ref();
                let trust = match ctlog {
                    Some(ctlog) => self.trust_for(ctlog.trust_root_ref.as_deref(), check)?,
                    None => self.trust.clone(),
                };
                let signer = bundle::Signer::Key {
                    key,
                    require_log: ctlog.is_some(),
                };
                bundle::verify(bundle, &artifact, &signer, &trust)
            }
            Checker::Keyless(keyless) => {
                let signer = bundle::Signer::Keyless(keyless.requirements());
                bundle::verify(bundle, &artifact, &signer, &keyless.trust)
            }
        }
        .map_err(|e| e.to_string())
    }

    /// One signature layer: the cryptographic check of the authority's kind, then the claims
    /// every signature must make (this digest, the required annotations).
    fn check_layer(
        &self,
        layer: &SignatureLayer,
        checker: &Checker,
        check: &AuthorityCheck<'_>,
    ) -> Result<Found, String> {
        let signature = layer
            .signature
            .as_deref()
            .ok_or("the layer has no valid dev.cosignproject.cosign/signature annotation")?;
        let (detail, identity) = match checker {
            Checker::Key { key, hash } => {
                key.verify(&layer.payload, signature, *hash)
                    .map_err(|_| format!("not signed by key {} ({hash:?})", key.fingerprint()))?;
                let logged = match &check.authority.spec.ctlog {
                    Some(ctlog) => {
                        let trust = self.trust_for(ctlog.trust_root_ref.as_deref(), check)?;
                        logged_with_key(layer, signature, key, &trust)?
                    }
                    None => String::new(),
                };
                let detail = format!("verified with {} key {}{logged}", key.kind_name(), key.fingerprint());
                (detail, None)
            }
            Checker::Keyless(keyless) => {
                let verified = keyless.requirements().check(layer, signature)?;
                let detail = format!("{}, {}", verified.identity.describe(), verified.logged);
                (detail, Some(verified.identity))
            }
        };
        check_claims(layer, check.digest, &check.authority.spec)?;
        Ok((detail, policy_signature(&layer.layer_digest, identity.as_ref())))
    }
}

/// With `ctlog`, a keyed signature must be in the transparency log, under this key.
fn logged_with_key(
    layer: &SignatureLayer,
    signature: &[u8],
    key: &PublicKey,
    trust: &TrustRoot,
) -> Result<String, String> {
    let bundle = layer
        .bundle_json
        .as_deref()
        .ok_or("the policy requires a transparency log entry (ctlog) but the signature has no Rekor bundle")?;
    let expected = EntryExpectation {
        payload: &layer.payload,
        signature,
    };
    let entry = verify_bundle(bundle, trust, &expected)?;
    let logged_key = PublicKey::from_pem(&entry.public_key_pem)
        .map_err(|e| format!("the Rekor entry's public key is unusable: {e}"))?;
    if logged_key.spki_der() != key.spki_der() {
        return Err(format!(
            "the Rekor entry records key {}, not the policy's key {}",
            logged_key.fingerprint(),
            key.fingerprint()
        ));
    }
    Ok(format!(
        ", logged in {} at index {} ({})",
        entry.log_url, entry.log_index, entry.integrated_time
    ))
}

/// How an authority checks signatures, prepared once per check.
enum Checker {
    Key { key: PublicKey, hash: HashAlgorithm },
    Keyless(KeylessChecker),
}

/// A keyless authority's identities and CAs, owned for the length of one check.
struct KeylessChecker {
    trust: Arc<TrustRoot>,
    identities: Vec<Identity>,
    ignore_sct: bool,
    authorities: Vec<CertificateAuthority>,
}

impl KeylessChecker {
    fn requirements(&self) -> KeylessRequirements<'_> {
        KeylessRequirements {
            identities: &self.identities,
            ignore_sct: self.ignore_sct,
            authorities: &self.authorities,
            trust: &self.trust,
        }
    }
}

/// Requirements this build cannot check fail the authority: passing it on a signature alone
/// would admit images that never met them.
fn unsupported_requirements(authority: &Authority) -> Result<(), String> {
    if authority.rfc3161timestamp.is_some() {
        return Err("rfc3161timestamp (TSA timestamps) is not supported by this signet build yet".to_string());
    }
    Ok(())
}

/// A verified in-toto statement, parsed, as JSON (what attestation policies read) and as
/// signed (the `payload` a `spec.policy` sees, as in policy-controller).
struct VerifiedStatement {
    statement: dsse::Statement,
    json: serde_json::Value,
    payload: Vec<u8>,
    detail: String,
    signature: PolicySignature,
}

/// A verified signature: what to say about it, and how `spec.policy` sees it.
type Found = (String, PolicySignature);

/// policy-controller's view of a verified signature: its id (the layer or referrer digest)
/// and, for certificates, the first subject, the issuer and the GitHub workflow extensions.
fn policy_signature(id: &str, identity: Option<&CertificateIdentity>) -> PolicySignature {
    PolicySignature {
        id: id.trim_start_matches("sha256:").to_string(),
        subject: identity.and_then(|i| i.subjects.first().cloned()).unwrap_or_default(),
        issuer: identity.map(|i| i.issuer.clone()).unwrap_or_default(),
        github: identity.map(|i| i.github.clone()).unwrap_or_default(),
    }
}

/// The predicate type of cosign v3's image signatures (a DSSE statement about the digest).
const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

/// `sha256:<hex>` as bytes.
fn image_digest_bytes(digest: &str) -> Result<[u8; 32], String> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64)
        .ok_or_else(|| format!("{digest} is not a sha256 digest"))?;
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| format!("{digest} is not hex"))?;
    }
    Ok(bytes)
}

/// The payload must be about `digest` and carry the annotations the policy requires.
fn check_claims(layer: &SignatureLayer, digest: &str, authority: &Authority) -> Result<(), String> {
    let claims = parse_payload(&layer.payload)?;
    if claims.docker_manifest_digest != digest {
        return Err(format!(
            "the signed payload is for {}, not {digest}",
            claims.docker_manifest_digest
        ));
    }
    for (name, value) in &authority.require_annotations {
        match claims.annotations.get(name) {
            Some(found) if found == value => {}
            Some(found) => {
                return Err(format!(
                    "annotation {name:?} is {found:?}, the policy requires {value:?}"
                ));
            }
            None => {
                return Err(format!("annotation {name:?} is missing, the policy requires {value:?}"));
            }
        }
    }
    Ok(())
}

impl Verifier for RegistryVerifier {
    /// Concurrent resolutions of one tag share one registry call; the digest is reused for
    /// a few seconds. Failures are never cached.
    fn resolve_digest<'a>(
        &'a self,
        image: &'a ImageRef,
        context: &'a RequestContext,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            // Keyed by the credentials too: a pod without access to a private image must not
            // learn its digest from another pod's lookup.
            let credentials = self.pod_keychain(context).await.for_registry(image.registry());
            let key = format!(
                "{}:{}|{}",
                image.location(),
                image.registry_reference(),
                credentials.identity()
            );
            let missed = AtomicBool::new(false);
            let digest = self
                .digests
                .try_get_with(key, async {
                    missed.store(true, Ordering::Relaxed);
                    self.registry
                        .resolve_digest(
                            image.endpoint(),
                            image.repository(),
                            image.registry_reference(),
                            &credentials,
                        )
                        .await
                        .map(Arc::new)
                })
                .await
                .map_err(|e| e.to_string());
            self.count_lookup("digests", &missed);
            Ok(digest?.as_ref().clone())
        })
    }

    /// Read with the pod's credentials and cached per credential identity, like digests; a
    /// digest's config files never change, so the signature TTL only bounds memory.
    fn config_files<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a str,
        context: &'a RequestContext,
    ) -> BoxFuture<'a, Result<serde_json::Value, String>> {
        Box::pin(async move {
            let credentials = self.pod_keychain(context).await.for_registry(image.registry());
            let key = (image.location(), digest.to_string(), credentials.identity());
            let missed = AtomicBool::new(false);
            let configs = self
                .configs
                .try_get_with(key, async {
                    missed.store(true, Ordering::Relaxed);
                    let location = ImageLocation {
                        registry: image.endpoint(),
                        repository: image.repository(),
                        credentials: &credentials,
                    };
                    let files = config_files(&self.registry, &location, digest).await?;
                    Ok::<_, ConfigFileError>(Arc::new(serde_json::to_value(files).unwrap_or_default()))
                })
                .await
                .map_err(|e| e.to_string());
            self.count_lookup("configs", &missed);
            Ok(configs?.as_ref().clone())
        })
    }

    fn verify<'a>(&'a self, check: AuthorityCheck<'a>) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            Verifier::verify_signatures(self, check)
                .await
                .map(|(summary, _)| summary)
        })
    }

    fn verify_signatures<'a>(
        &'a self,
        check: AuthorityCheck<'a>,
    ) -> BoxFuture<'a, Result<(String, AuthorityMatch), String>> {
        Box::pin(async move {
            let key = (
                check.image.location(),
                check.digest.to_string(),
                check.authority.fingerprint.clone(),
            );
            // Successes are reused until the signature TTL; concurrent checks of the same
            // (image, digest, authority) share one verification. Failures are recomputed.
            let missed = AtomicBool::new(false);
            let verified = self
                .verified
                .try_get_with(key, async {
                    missed.store(true, Ordering::Relaxed);
                    let started = std::time::Instant::now();
                    let outcome = self.verify_uncached(&check).await;
                    self.observe_verification(&check, outcome.is_ok(), started.elapsed());
                    outcome.map(Arc::new)
                })
                .await
                .map_err(|e| e.as_ref().clone());
            self.count_lookup("verified", &missed);
            Ok(verified?.as_ref().clone())
        })
    }
}

/// A place to look for signatures and the secrets that open it.
struct Location {
    signatures: SignatureLocation,
    pull_secrets: Vec<String>,
}

/// Where to look for signatures: each `source[].oci` (with its tag prefix and pull
/// secrets), else the image's own repository.
fn signature_locations(image: &ImageRef, authority: &Authority) -> Vec<Location> {
    let own = || SignatureLocation {
        registry: image.endpoint().to_string(),
        repository: image.repository().to_string(),
        tag_prefix: String::new(),
    };
    if authority.sources.is_empty() {
        return vec![Location {
            signatures: own(),
            pull_secrets: Vec::new(),
        }];
    }
    authority
        .sources
        .iter()
        .map(|source| {
            let tag_prefix = source.tag_prefix.clone().unwrap_or_default();
            let repository = source.oci.as_deref().filter(|o| !o.is_empty()).and_then(|oci| {
                // A repository reference: parse it as an image to normalise the registry.
                ImageRef::parse(oci).ok()
            });
            let signatures = match repository {
                Some(repo) => SignatureLocation {
                    registry: repo.endpoint().to_string(),
                    repository: repo.repository().to_string(),
                    tag_prefix,
                },
                None => SignatureLocation { tag_prefix, ..own() },
            };
            let pull_secrets = source
                .signature_pull_secrets
                .iter()
                .map(|s| s.name.clone())
                .filter(|n| !n.is_empty())
                .collect();
            Location {
                signatures,
                pull_secrets,
            }
        })
        .collect()
}
