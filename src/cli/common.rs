//! The argument groups several commands share (`DecisionArgs`, `RegistryArgs`), what is built
//! from them (registry client, keychain, trust root, verifier), and the policy loading of the
//! one-shot commands.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::cluster::ClusterAccess;
use crate::evidence::kms::{KmsKeys, KmsSettings};
use crate::evidence::{RegistryVerifier, VerifierSettings};
use crate::policy::evaluate::{DEFAULT_IMAGES_AT_ONCE, NoMatchPolicy};
use crate::policy::program::PolicyTexts;
use crate::policy::snapshot::PolicySnapshot;
use crate::registry::credentials::Keychain;
use crate::registry::{DEFAULT_MAX_CONCURRENT_OPERATIONS, RegistryClient, RegistryConfig};
use crate::sources::folder;
use crate::sources::policy_text::PolicyTextReader;
use crate::verify::trust::TrustRoot;

#[derive(Args, Debug)]
pub(super) struct DecisionArgs {
    /// What to do with images no ClusterImagePolicy matches.
    #[arg(long, env = "SIGNET_NO_MATCH_POLICY", value_enum, default_value = "deny")]
    pub(super) no_match_policy: NoMatchPolicy,
    /// Answer budget when the API server sends no `?timeout=` (seconds, at most 30 like the
    /// API server's own webhook timeout).
    #[arg(long, env = "SIGNET_ADMISSION_TIMEOUT_SECONDS", default_value = "8",
          value_parser = clap::value_parser!(u64).range(1..=30))]
    pub(super) admission_timeout_seconds: u64,
    /// Distinct images of one review verified at once; the rest of that review waits.
    #[arg(long, env = "SIGNET_REVIEW_CONCURRENCY", default_value_t = DEFAULT_IMAGES_AT_ONCE as u16,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(super) review_concurrency: u16,
}

#[derive(Args, Debug)]
pub(super) struct RegistryArgs {
    /// Extra CA certificate (PEM) trusted for registries; repeatable.
    #[arg(long, env = "SIGNET_REGISTRY_CA", value_delimiter = ',')]
    registry_ca: Vec<PathBuf>,
    /// Registry `host[:port]` reached over plain HTTP; repeatable.
    #[arg(long, env = "SIGNET_INSECURE_REGISTRY", value_delimiter = ',')]
    insecure_registry: Vec<String>,
    /// Deadline of one registry operation (seconds).
    #[arg(long, env = "SIGNET_REGISTRY_TIMEOUT_SECONDS", default_value = "5",
          value_parser = clap::value_parser!(u64).range(1..=300))]
    registry_timeout_seconds: u64,
    /// Registry operations in flight at once across all reviews; the rest queue in arrival
    /// order. Bounds connections, file descriptors and buffered bodies.
    #[arg(long, env = "SIGNET_REGISTRY_CONCURRENCY", default_value_t = DEFAULT_MAX_CONCURRENT_OPERATIONS as u16,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    registry_concurrency: u16,
    /// Sigstore `trusted_root.json` (Rekor, Fulcio, CT log keys); default: the embedded
    /// Sigstore public-good root.
    #[arg(long, env = "SIGNET_TRUST_ROOT")]
    trust_root: Option<PathBuf>,
    /// How long fetched signatures are reused (seconds).
    #[arg(long, env = "SIGNET_SIGNATURE_TTL_SECONDS", default_value = "60",
          value_parser = clap::value_parser!(u64).range(0..=86400))]
    signature_ttl_seconds: u64,
    /// How long a definitive verification failure (unsigned, wrong signer, attestation
    /// policy denied) is reused (seconds; at most the signature TTL). Registry trouble that
    /// may pass is never reused.
    #[arg(long, env = "SIGNET_FAILURE_TTL_SECONDS", default_value = "5",
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    failure_ttl_seconds: u64,
    /// How long a tag's resolved digest is reused (seconds).
    #[arg(long, env = "SIGNET_DIGEST_TTL_SECONDS", default_value = "10",
          value_parser = clap::value_parser!(u64).range(0..=86400))]
    digest_ttl_seconds: u64,
    /// Docker `config.json` with registry credentials, tried after the pod's pull secrets.
    #[arg(long, env = "SIGNET_REGISTRY_AUTH_FILE")]
    registry_auth_file: Option<PathBuf>,
    /// Most entries of each cache (signatures, verified results, tag digests).
    #[arg(long, env = "SIGNET_CACHE_ENTRIES", default_value = "10000")]
    cache_entries: u64,
    /// A KMS provider's API base URL instead of its public endpoint, as PROVIDER=URL
    /// (`aws`, `gcp`, `azure`): VPC or private endpoints, sovereign clouds; repeatable.
    /// Vault is always `VAULT_ADDR`.
    #[arg(
        long,
        env = "SIGNET_KMS_ENDPOINT",
        value_delimiter = ',',
        value_name = "PROVIDER=URL"
    )]
    kms_endpoint: Vec<String>,
    /// How often `key.kms` public keys are fetched again (seconds): a rotated key or a
    /// re-pointed alias is used within this.
    #[arg(long, env = "SIGNET_KMS_REFRESH_SECONDS", default_value = "300",
          value_parser = clap::value_parser!(u64).range(5..=86400))]
    kms_refresh_seconds: u64,
}

/// The `key.kms` store's settings.
fn kms_keys(args: &RegistryArgs) -> anyhow::Result<KmsKeys> {
    let mut endpoints = std::collections::BTreeMap::new();
    for pair in &args.kms_endpoint {
        let (provider, url) = pair
            .split_once('=')
            .with_context(|| format!("--kms-endpoint {pair:?}: expected PROVIDER=URL"))?;
        anyhow::ensure!(
            ["aws", "gcp", "azure"].contains(&provider),
            "--kms-endpoint {provider:?}: expected aws, gcp or azure"
        );
        anyhow::ensure!(
            url.starts_with("https://") || url.starts_with("http://"),
            "--kms-endpoint {pair:?}: the URL needs http:// or https://"
        );
        endpoints.insert(provider.to_string(), url.to_string());
    }
    let settings = KmsSettings {
        endpoints,
        refresh: Duration::from_secs(args.kms_refresh_seconds),
        ..KmsSettings::default()
    };
    KmsKeys::new(settings).context("cannot configure the KMS client")
}

pub(super) fn registry_client(args: &RegistryArgs) -> anyhow::Result<RegistryClient> {
    let extra_roots_pem = args
        .registry_ca
        .iter()
        .map(|path| std::fs::read(path).with_context(|| format!("cannot read --registry-ca {}", path.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = RegistryConfig {
        extra_roots_pem,
        insecure_hosts: args.insecure_registry.clone(),
        request_timeout: Duration::from_secs(args.registry_timeout_seconds),
        max_concurrent_operations: usize::from(args.registry_concurrency),
        ..RegistryConfig::default()
    };
    RegistryClient::new(config).context("cannot configure the registry client")
}

/// Credentials from `--registry-auth-file` (a Docker `config.json`).
pub(super) fn keychain(args: &RegistryArgs) -> anyhow::Result<Keychain> {
    match &args.registry_auth_file {
        None => Ok(Keychain::default()),
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read --registry-auth-file {}", path.display()))?;
            Ok(Keychain::from_docker_config(&bytes, &path.display().to_string())?)
        }
    }
}

pub(super) fn trust_root(args: &RegistryArgs) -> anyhow::Result<TrustRoot> {
    match &args.trust_root {
        None => TrustRoot::public_good().context("the embedded Sigstore trust root is invalid"),
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read --trust-root {}", path.display()))?;
            TrustRoot::from_json(&bytes).with_context(|| format!("--trust-root {}", path.display()))
        }
    }
}

pub(super) fn verifier(
    args: &RegistryArgs,
    trust: TrustRoot,
    cluster: Option<ClusterAccess>,
) -> anyhow::Result<RegistryVerifier> {
    let settings = VerifierSettings {
        signature_ttl: Duration::from_secs(args.signature_ttl_seconds),
        failure_ttl: Duration::from_secs(args.failure_ttl_seconds),
        digest_ttl: Duration::from_secs(args.digest_ttl_seconds),
        cache_entries: args.cache_entries,
    };
    Ok(RegistryVerifier::new(
        registry_client(args)?,
        Arc::new(trust),
        &settings,
        cluster,
        keychain(args)?,
        kms_keys(args)?,
    ))
}

/// Policy files for the one-shot commands, with their `remote` policy texts fetched (a
/// `configMapRef` needs the cluster, so such a policy denies with that reason).
pub(super) async fn load_policies(paths: &[PathBuf]) -> anyhow::Result<PolicySnapshot> {
    let mut snapshot = folder::load_paths(paths, &PolicyTexts::new())?;
    if !snapshot.policy_sources.is_empty() {
        let reader = PolicyTextReader::new(None)?;
        let texts = reader.read_all(&snapshot.policy_sources, &PolicyTexts::new()).await;
        snapshot = folder::load_paths(paths, &texts)?;
    }
    for rejected in &snapshot.rejected {
        eprintln!("warning: policy {} rejected: {}", rejected.name, rejected.error);
    }
    Ok(snapshot)
}
