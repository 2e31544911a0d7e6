//! The evidence layer: all I/O and caching behind verification. It resolves digests, fetches
//! cosign's `.sig`/`.att` layers and Sigstore bundles attached as referrers, resolves keys
//! (inline, Secret), CA certificates and trust roots (TUF), and hands them to the pure
//! judgement in [`crate::policy::judge`]. Signatures are fetched once per (location, digest)
//! and shared by every authority and policy that needs them; concurrent admissions of the
//! same digest share one in-flight fetch.

pub mod kms;
pub mod layers;
pub mod referrers;
pub mod tree;
pub mod tuf;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::api::cip::{Authority, KeyRef, KeylessRef};
use crate::cluster::ClusterAccess;
use crate::metrics::Metrics;
use crate::policy::evaluate::{AuthorityCheck, RequestContext, Verifier};
use crate::policy::failure::AuthorityFailure;
use crate::policy::judge::{Checker, Judge, KeylessChecker, Matched, Misses};
use crate::policy::program::AuthorityMatch;
use crate::policy::reference::ImageRef;
use crate::policy::snapshot::AuthorityKind;
use crate::registry::config::{ConfigFileError, ImageLocation, config_files};
use crate::registry::credentials::Keychain;
use crate::registry::{Credentials, RegistryClient};
use crate::verify::bundle::{AttachedBundle, Timestamps};
use crate::verify::cosign::SignatureLayer;
use crate::verify::keyless;
use crate::verify::keys::{HashAlgorithm, PublicKey};
use crate::verify::trust::TrustRoot;
use layers::{FetchError, SignatureLocation, fetch_attestations, fetch_signatures};

type SignatureCache = moka::future::Cache<(SignatureLocation, String, LayerKind), Arc<Vec<SignatureLayer>>>;
/// (location, digest) → the Sigstore bundles referring to it (none is cached too: an
/// unsigned image must not cost registry requests on every admission).
type BundleCache = moka::future::Cache<(SignatureLocation, String), Arc<Vec<AttachedBundle>>>;

/// Which of cosign's tags a cached layer list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum LayerKind {
    Signatures,
    Attestations,
}

/// One authority's outcome for one digest: what was verified, or a definitive failure.
type Judged = Result<(String, AuthorityMatch), AuthorityFailure>;
/// (registry/repository, digest, authority fingerprint) → the outcome. Successes live for
/// the signature TTL, definitive failures for the (shorter) failure TTL; transient failures
/// are never stored.
type VerifiedCache = moka::future::Cache<(String, String, String), Arc<Judged>>;
/// (registry/repository:tag|credentials) → the digest, or why it cannot be known when that
/// is definitive (no such tag, no access); like [`VerifiedCache`], failures live shorter.
type DigestCache = moka::future::Cache<String, Arc<Result<String, String>>>;
/// (registry/repository, digest, credential identity) → config files by platform.
type ConfigCache = moka::future::Cache<(String, String, String), Arc<serde_json::Value>>;

/// Settings of the verifier's caches.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    /// How long fetched signatures and verified results are reused; a removed signature
    /// stops counting after this.
    pub signature_ttl: Duration,
    /// How long a definitive failure (unsigned, signed by someone else, denied by an
    /// attestation policy) is reused; never longer than `signature_ttl`.
    pub failure_ttl: Duration,
    /// How long a tag's digest is reused (mutation and validation of one object share it).
    pub digest_ttl: Duration,
    /// Most entries of each cache.
    pub cache_entries: u64,
}

impl Default for VerifierSettings {
    fn default() -> Self {
        VerifierSettings {
            signature_ttl: Duration::from_secs(60),
            failure_ttl: Duration::from_secs(5),
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

/// How long an outcome stays cached: successes and (definitive) failures have their own TTLs.
struct OutcomeExpiry {
    success: Duration,
    failure: Duration,
}

impl<K, T, E> moka::Expiry<K, Arc<Result<T, E>>> for OutcomeExpiry {
    fn expire_after_create(&self, _key: &K, value: &Arc<Result<T, E>>, _created_at: Instant) -> Option<Duration> {
        Some(if value.is_ok() { self.success } else { self.failure })
    }
}

/// A cache of outcomes: a success lives `success`, a failure `failure` (at most `success`).
fn outcome_cache<K, T, E>(
    entries: u64,
    success: Duration,
    failure: Duration,
) -> moka::future::Cache<K, Arc<Result<T, E>>>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    moka::future::Cache::builder()
        .max_capacity(entries)
        .expire_after(OutcomeExpiry {
            success,
            failure: failure.min(success),
        })
        .build()
}

/// Resolves digests and gathers the evidence each authority needs from real registries
/// and the cluster, then has [`Judge`] decide.
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
    /// `key.kms` public keys, fetched in the background.
    kms: kms::KmsKeys,
    /// One-shot commands fetch a KMS key on first use; the webhook never does.
    fetch_kms_inline: bool,
}

impl RegistryVerifier {
    pub fn new(
        registry: RegistryClient,
        trust: Arc<TrustRoot>,
        settings: &VerifierSettings,
        cluster: Option<ClusterAccess>,
        keychain: Keychain,
        kms: kms::KmsKeys,
    ) -> Self {
        RegistryVerifier {
            registry,
            trust,
            signatures: cache(settings.cache_entries, settings.signature_ttl),
            bundles: cache(settings.cache_entries, settings.signature_ttl),
            verified: outcome_cache(settings.cache_entries, settings.signature_ttl, settings.failure_ttl),
            digests: outcome_cache(settings.cache_entries, settings.digest_ttl, settings.failure_ttl),
            configs: cache(settings.cache_entries, settings.signature_ttl),
            cluster,
            keychain,
            metrics: None,
            trust_roots: tuf::TrustRootStore::default(),
            kms,
            fetch_kms_inline: false,
        }
    }

    /// The store of KMS keys, for the background refresher.
    pub fn kms_keys(&self) -> kms::KmsKeys {
        self.kms.clone()
    }

    /// For one-shot commands (`signet verify`): a KMS key not fetched yet is fetched when an
    /// authority needs it, instead of denying until a background fetch lands.
    pub fn fetching_kms_inline(mut self) -> Self {
        self.fetch_kms_inline = true;
        self
    }

    /// The store of resolved `TrustRoot` resources, for the background refresher.
    pub fn trust_roots(&self) -> tuf::TrustRootStore {
        self.trust_roots.clone()
    }

    /// Records metrics: registry requests by the client, caches and verification times here.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.registry = self.registry.with_request_counter(metrics.registry_requests.clone());
        self.metrics = Some(metrics);
        self
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

    /// cosign's `.sig` or `.att` layers for `digest` at `location`, fetched at most once at
    /// a time and cached (an empty list too).
    async fn layers(
        &self,
        location: &Location,
        digest: &str,
        kind: LayerKind,
        context: &RequestContext,
    ) -> Result<Arc<Vec<SignatureLayer>>, AuthorityFailure> {
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
            .map_err(|e| {
                fetch_failure(
                    &e,
                    format!("cannot fetch {kind:?} from {}", signatures.describe(digest)),
                )
            });
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
    ) -> Result<Arc<Vec<AttachedBundle>>, AuthorityFailure> {
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
            .map_err(|e| {
                let what = format!(
                    "cannot fetch Sigstore bundles from {}/{}",
                    place.registry, place.repository
                );
                fetch_failure(&e, what)
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

    /// The public key of a `key` authority: inline, or from a Secret in signet's namespace.
    /// KMS keys are answered with a clear error, never silently skipped.
    async fn public_key(&self, key_ref: &KeyRef) -> Result<PublicKey, AuthorityFailure> {
        let unavailable = AuthorityFailure::KeyUnavailable;
        if let Some(data) = key_ref.data.as_deref().filter(|d| !d.trim().is_empty()) {
            return PublicKey::from_pem(data).map_err(|e| unavailable(format!("key.data: {e}")));
        }
        if let Some(secret) = &key_ref.secret_ref {
            let name = secret.name.as_deref().unwrap_or_default();
            let cluster = self.cluster.as_ref().ok_or_else(|| {
                unavailable(format!(
                    "key.secretRef {name:?} needs cluster access; in standalone mode put the key in key.data"
                ))
            })?;
            let pem = cluster.key_from_secret(name).await.map_err(unavailable)?;
            return PublicKey::from_pem(&pem).map_err(|e| unavailable(format!("key.secretRef {name:?}: {e}")));
        }
        if let Some(kms) = key_ref.kms.as_deref().filter(|k| !k.trim().is_empty()) {
            if self.fetch_kms_inline {
                self.kms.fetch_if_unknown(kms).await;
            }
            return self.kms.get(kms).map_err(unavailable);
        }
        Err(unavailable("the key authority names no key".to_string()))
    }

    fn observe_verification(&self, check: &AuthorityCheck<'_>, outcome: &Judged, elapsed: Duration) {
        let Some(metrics) = &self.metrics else {
            return;
        };
        let kind = match check.authority.kind {
            AuthorityKind::Key => "key",
            AuthorityKind::Keyless => "keyless",
            AuthorityKind::Static { .. } => "static",
        };
        let passed = if outcome.is_ok() { "passed" } else { "failed" };
        metrics
            .verification_seconds
            .with_label_values(&[kind, passed])
            .observe(elapsed.as_secs_f64());
        if let Err(failure) = outcome {
            metrics
                .authority_failures
                .with_label_values(&[kind, failure.metric_label()])
                .inc();
        }
    }

    /// Gathers what the authority needs and has [`Judge`] decide.
    async fn verify_uncached(&self, check: &AuthorityCheck<'_>) -> Judged {
        let spec = &check.authority.spec;
        self.trust_roots.prepare(spec, check.trust_roots).await;
        let checker = match (&check.authority.kind, &spec.key, &spec.keyless) {
            (AuthorityKind::Key, Some(key_ref), _) => self.key_checker(key_ref, check).await?,
            (AuthorityKind::Keyless, _, Some(keyless)) => self.keyless_checker(keyless, check).await?,
            _ => return Err(AuthorityFailure::NothingToVerify),
        };
        let judge = Judge {
            authority: check.authority,
            checker: &checker,
            digest: check.digest,
        };
        if judge.wants_attestations() {
            self.judge_attestations(check, &judge).await
        } else {
            let found = |(detail, signatures): Matched| (detail, AuthorityMatch::Signatures(signatures));
            self.find_signature(check, &judge).await.map(found)
        }
    }

    /// Legacy `.sig` signatures first, then Sigstore bundles attached as referrers (cosign
    /// v3), in each place the authority names, as far as its `signatureFormat` allows. The
    /// bundles of a place are fetched only when its `.sig` signatures did not do.
    async fn find_signature(&self, check: &AuthorityCheck<'_>, judge: &Judge<'_>) -> Result<Matched, AuthorityFailure> {
        let formats = judge.formats();
        let mut misses = Misses::default();
        for location in signature_locations(check.image, &check.authority.spec) {
            let place = &location.signatures;
            if formats.legacy {
                let layers = self
                    .layers(&location, check.digest, LayerKind::Signatures, check.context)
                    .await?;
                match judge.signature_layers(&place.describe(check.digest), &layers) {
                    Ok(found) => return Ok(found),
                    Err(missed) => misses.add(missed),
                }
            }
            if formats.bundles {
                let bundles = self.bundles(&location, check.digest, check.context).await?;
                let described = format!("{}/{} referrers", place.registry, place.repository);
                match judge.attached_bundles(&described, &bundles) {
                    Ok(found) => return Ok(found),
                    Err(missed) => misses.add(missed),
                }
            }
        }
        Err(misses.into_failure())
    }

    /// The attestations of every place the authority names (`.att` layers and referrer
    /// bundles), judged together.
    async fn judge_attestations(&self, check: &AuthorityCheck<'_>, judge: &Judge<'_>) -> Judged {
        let mut verified = Vec::new();
        let mut failures = Vec::new();
        for location in signature_locations(check.image, &check.authority.spec) {
            let layers = self
                .layers(&location, check.digest, LayerKind::Attestations, check.context)
                .await?;
            let bundles = self.bundles(&location, check.digest, check.context).await?;
            let (statements, why) = judge.statements(&layers, &bundles);
            verified.extend(statements);
            failures.extend(why);
        }
        judge.attestations(&verified, &failures).await
    }

    /// The trust root an authority names (`trustRootRef`), else signet's own.
    fn trust_for(
        &self,
        reference: Option<&str>,
        check: &AuthorityCheck<'_>,
    ) -> Result<Arc<TrustRoot>, AuthorityFailure> {
        match reference.filter(|r| !r.is_empty()) {
            None => Ok(self.trust.clone()),
            Some(name) => {
                let spec = check
                    .trust_roots
                    .get(name)
                    .ok_or_else(|| AuthorityFailure::TrustRoot(format!("trustRootRef {name:?} names no TrustRoot")))?;
                self.trust_roots.get(name, spec).map_err(AuthorityFailure::TrustRoot)
            }
        }
    }

    /// How a `key` authority checks a signature: its key and hash, and with `ctlog` the
    /// trust root whose logs must hold the signature.
    async fn key_checker(&self, key_ref: &KeyRef, check: &AuthorityCheck<'_>) -> Result<Checker, AuthorityFailure> {
        let key = self.public_key(key_ref).await?;
        let hash_name = key_ref.hash_algorithm.as_deref().unwrap_or_default();
        let hash = HashAlgorithm::from_name(hash_name)
            .ok_or_else(|| AuthorityFailure::KeyUnavailable(format!("hashAlgorithm {hash_name:?} is not supported")))?;
        let (tsa, timestamps) = self.timestamp_root(check)?;
        let ctlog = match &check.authority.spec.ctlog {
            Some(ctlog) => Some(self.trust_for(ctlog.trust_root_ref.as_deref(), check)?),
            None => None,
        };
        let with_tsa = |root: &Arc<TrustRoot>| match &tsa {
            Some(tsa) => root.with_timestamp_authorities_of(tsa),
            None => root.clone(),
        };
        Ok(Checker::Key {
            key,
            hash,
            ctlog: ctlog.as_ref().map(with_tsa),
            trust: with_tsa(&self.trust),
            timestamps,
        })
    }

    /// With `rfc3161timestamp`, the trust root whose timestamp authorities must have dated
    /// the signature (its `trustRootRef`, else signet's own).
    fn timestamp_root(
        &self,
        check: &AuthorityCheck<'_>,
    ) -> Result<(Option<Arc<TrustRoot>>, Timestamps), AuthorityFailure> {
        match &check.authority.spec.rfc3161timestamp {
            Some(tsa) => Ok((
                Some(self.trust_for(tsa.trust_root_ref.as_deref(), check)?),
                Timestamps::Required,
            )),
            None => Ok((None, Timestamps::Optional)),
        }
    }

    /// How a `keyless` authority checks a signature: identities and CAs (the policy's
    /// `ca-cert`, else the trust root's Fulcio CAs).
    async fn keyless_checker(
        &self,
        keyless: &KeylessRef,
        check: &AuthorityCheck<'_>,
    ) -> Result<Checker, AuthorityFailure> {
        let trust = self.trust_for(keyless.trust_root_ref.as_deref(), check)?;
        let trust = match &keyless.ca_cert {
            Some(ca_cert) => {
                let pem = self
                    .ca_cert_pem(ca_cert)
                    .await
                    .map_err(AuthorityFailure::KeyUnavailable)?;
                let authority = keyless::authority_from_pem(&pem).map_err(AuthorityFailure::KeyUnavailable)?;
                Arc::new(trust.with_certificate_authorities(vec![authority]))
            }
            None => trust,
        };
        let (tsa, timestamps) = self.timestamp_root(check)?;
        Ok(Checker::Keyless(KeylessChecker {
            trust: match &tsa {
                Some(tsa) => trust.with_timestamp_authorities_of(tsa),
                None => trust,
            },
            identities: keyless.identities.clone(),
            ignore_sct: keyless.insecure_ignore_sct.unwrap_or(false),
            timestamps,
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
}

/// A registry failure while fetching evidence, saying what was being fetched.
fn fetch_failure(error: &FetchError, what: String) -> AuthorityFailure {
    AuthorityFailure::Registry {
        detail: format!("{what}: {error}"),
        definitive: error.is_definitive(),
    }
}

impl Verifier for RegistryVerifier {
    /// Concurrent resolutions of one tag share one registry call; the digest is reused for
    /// a few seconds, a definitive failure (no such tag, no access) for the failure TTL, and
    /// registry trouble that may pass not at all.
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
                    let resolved = self
                        .registry
                        .resolve_digest(
                            image.endpoint(),
                            image.repository(),
                            image.registry_reference(),
                            &credentials,
                        )
                        .await;
                    match resolved {
                        Err(e) if !e.is_definitive() => Err(e),
                        resolved => Ok(Arc::new(resolved.map_err(|e| e.to_string()))),
                    }
                })
                .await
                .map_err(|transient| transient.to_string());
            self.count_lookup("digests", &missed);
            digest?.as_ref().clone()
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

    /// Successes are reused until the signature TTL and definitive failures until the failure
    /// TTL; concurrent checks of the same (image, digest, authority) share one verification.
    /// Transient failures (registry trouble, a Secret not readable now) are recomputed.
    fn verify<'a>(&'a self, check: AuthorityCheck<'a>) -> BoxFuture<'a, Judged> {
        Box::pin(async move {
            let key = (
                check.image.location(),
                check.digest.to_string(),
                check.authority.fingerprint.clone(),
            );
            let missed = AtomicBool::new(false);
            let judged = self
                .verified
                .try_get_with(key, async {
                    missed.store(true, Ordering::Relaxed);
                    let started = Instant::now();
                    let outcome = self.verify_uncached(&check).await;
                    self.observe_verification(&check, &outcome, started.elapsed());
                    match outcome {
                        Err(failure) if !failure.is_definitive() => Err(failure),
                        outcome => Ok(Arc::new(outcome)),
                    }
                })
                .await;
            self.count_lookup("verified", &missed);
            match judged {
                Ok(judged) => judged.as_ref().clone(),
                Err(transient) => Err(transient.as_ref().clone()),
            }
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
