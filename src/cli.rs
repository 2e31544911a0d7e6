//! The command line: `serve`, `review`, `crd`. Every `serve` flag has a `SIGNET_*` twin.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::admission::workload::ContainerImage;
use crate::admission::{Admission, Endpoint};
use crate::metrics::Metrics;
use crate::policy::evaluate::{DEFAULT_IMAGES_AT_ONCE, NoMatchPolicy, RequestContext, ResourceInfo, evaluate};
use crate::policy::program::PolicyTexts;
use crate::policy::reference::ImageRef;
use crate::policy::snapshot::PolicySnapshot;
use crate::registry::credentials::Keychain;
use crate::registry::{DEFAULT_MAX_CONCURRENT_OPERATIONS, RegistryClient, RegistryConfig};
use crate::server::TlsSource;
use crate::sources::cluster::ClusterAccess;
use crate::sources::events::EventRecorder;
use crate::sources::policy_text::{self, PolicyTextReader, TextsReceiver};
use crate::sources::{SnapshotHandle, folder};
use crate::verify::trust::TrustRoot;
use crate::verify::{RegistryVerifier, VerifierSettings};

#[derive(Parser, Debug)]
#[command(
    name = "signet",
    version,
    about = "Kubernetes admission webhook that lets only signed container images run"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter, e.g. `info` or `signet=debug,info`.
    #[arg(long, env = "SIGNET_LOG_LEVEL", default_value = "info", global = true)]
    log_level: String,
    #[arg(long, env = "SIGNET_LOG_FORMAT", value_enum, default_value = "json", global = true)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the admission webhook.
    Serve(ServeArgs),
    /// Verify one image against policies, as admission would, and show every check.
    Verify(VerifyArgs),
    /// Answer an AdmissionReview file offline, exactly as the webhook would.
    Review(ReviewArgs),
    /// Verify a file's signature like `cosign verify-blob`; prints `Verified OK`.
    VerifyBlob(VerifyBlobArgs),
    /// Verify a Sigstore bundle for a file or a `sha256:` digest (the sigstore-conformance
    /// command line); exits 0 only when it verifies.
    VerifyBundle(VerifyBundleArgs),
    /// Show what is attached to an image: signatures, attestations, SBOMs, referrers.
    Tree {
        /// The image reference.
        image: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Print the CustomResourceDefinitions (or write them to a folder).
    Crd {
        /// Write one file per CRD into this folder instead of printing.
        #[arg(long)]
        write: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// HTTPS address of the webhook.
    #[arg(long, env = "SIGNET_LISTEN", default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// Plain-HTTP address of /healthz, /readyz and /metrics.
    #[arg(long, env = "SIGNET_ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    admin_listen: SocketAddr,
    /// Serving certificate (PEM, chain allowed); reloaded when it changes.
    #[arg(long, env = "SIGNET_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key of the serving certificate (PEM).
    #[arg(long, env = "SIGNET_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Without --tls-cert: where to write the generated CA certificate (for `caBundle`).
    #[arg(long, env = "SIGNET_TLS_CA_OUT")]
    tls_ca_out: Option<PathBuf>,
    /// Without --tls-cert: names the generated certificate is valid for.
    #[arg(
        long,
        env = "SIGNET_TLS_SAN",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1,::1"
    )]
    tls_san: Vec<String>,
    /// signet's own namespace: where `key.secretRef` and `signaturePullSecrets` Secrets and
    /// `configMapRef` policy ConfigMaps live.
    #[arg(long, env = "SIGNET_NAMESPACE", default_value = "signet-system")]
    namespace: String,
    /// Standalone mode: load policies from this folder (reloaded on change) instead of
    /// watching the cluster.
    #[arg(long, env = "SIGNET_POLICY_DIR")]
    policy_dir: Option<PathBuf>,
    /// How often policy text from a `configMapRef` is re-read, and a failed `remote` policy
    /// fetch retried (seconds).
    #[arg(long, env = "SIGNET_POLICY_TEXT_REFRESH_SECONDS", default_value = "30",
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    policy_text_refresh_seconds: u64,
    #[command(flatten)]
    decision: DecisionArgs,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Args, Debug)]
struct DecisionArgs {
    /// What to do with images no ClusterImagePolicy matches.
    #[arg(long, env = "SIGNET_NO_MATCH_POLICY", value_enum, default_value = "deny")]
    no_match_policy: NoMatchPolicy,
    /// Answer budget when the API server sends no `?timeout=` (seconds, at most 30 like the
    /// API server's own webhook timeout).
    #[arg(long, env = "SIGNET_ADMISSION_TIMEOUT_SECONDS", default_value = "8",
          value_parser = clap::value_parser!(u64).range(1..=30))]
    admission_timeout_seconds: u64,
    /// Distinct images of one review verified at once; the rest of that review waits.
    #[arg(long, env = "SIGNET_REVIEW_CONCURRENCY", default_value_t = DEFAULT_IMAGES_AT_ONCE as u16,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    review_concurrency: u16,
}

#[derive(Args, Debug)]
struct RegistryArgs {
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
}

#[derive(Args, Debug)]
struct ReviewArgs {
    /// AdmissionReview JSON file (`-` for standard input).
    request: PathBuf,
    /// Policy file or folder; repeatable.
    #[arg(long, required = true)]
    policy: Vec<PathBuf>,
    /// Which webhook to imitate; `mutate` also prints the patch.
    #[arg(long, value_enum, default_value = "mutate")]
    endpoint: EndpointArg,
    #[command(flatten)]
    decision: DecisionArgs,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// The image reference, as it would appear in a pod spec.
    image: String,
    /// Policy file or folder; repeatable.
    #[arg(long, required = true)]
    policy: Vec<PathBuf>,
    /// Also show, for every policy, whether its globs match the image and why not.
    #[arg(long)]
    explain: bool,
    #[command(flatten)]
    decision: DecisionArgs,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Args, Debug)]
struct VerifyBlobArgs {
    /// The file that was signed.
    file: PathBuf,
    /// base64 signature file (`cosign sign-blob --output-signature`).
    #[arg(long)]
    signature: Option<PathBuf>,
    /// Signing certificate (PEM or base64 PEM), for keyless.
    #[arg(long)]
    certificate: Option<PathBuf>,
    /// cosign's bundle (`cosign sign-blob --bundle`): signature, certificate and Rekor entry.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Public key (PEM) for keyed signatures.
    #[arg(long, conflicts_with_all = ["certificate_identity", "certificate_identity_regexp"])]
    key: Option<PathBuf>,
    #[arg(long)]
    certificate_identity: Option<String>,
    #[arg(long)]
    certificate_identity_regexp: Option<String>,
    #[arg(long)]
    certificate_oidc_issuer: Option<String>,
    #[arg(long)]
    certificate_oidc_issuer_regexp: Option<String>,
    /// Accept certificates without an embedded SCT.
    #[arg(long)]
    insecure_ignore_sct: bool,
    /// Sigstore `trusted_root.json`; default: the embedded public-good root.
    #[arg(long)]
    trust_root: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct VerifyBundleArgs {
    /// Use Sigstore's staging instance: needs its trusted root in --trusted-root.
    #[arg(long)]
    staging: bool,
    /// The Sigstore bundle (`*.sigstore.json`).
    #[arg(long)]
    bundle: PathBuf,
    /// The expected certificate identity (a SAN: email, URI…), matched exactly.
    #[arg(long, requires = "certificate_oidc_issuer")]
    certificate_identity: Option<String>,
    /// The expected OIDC issuer, matched exactly.
    #[arg(long)]
    certificate_oidc_issuer: Option<String>,
    /// Public key (PEM) for bundles signed with a key.
    #[arg(long, conflicts_with = "certificate_identity")]
    key: Option<PathBuf>,
    /// Sigstore `trusted_root.json`; default: the embedded public-good root.
    #[arg(long, alias = "trust-root")]
    trusted_root: Option<PathBuf>,
    /// The artifact: a file, or `sha256:<64 hex>` for its digest (unless such a file exists).
    file_or_digest: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EndpointArg {
    Mutate,
    Validate,
}

/// Parses the command line and runs it. Exit codes: 0 success (or allowed), 1 denied,
/// 2 error.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let log_guard = init_logging(&cli.log_level, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(dispatch(cli.command));
    // Flushes the queued log lines first, so that an error below is printed last.
    drop(log_guard);
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The returned guard keeps the log writer thread running; dropping it flushes the lines
/// still queued, so it must live until the process ends.
fn init_logging(level: &str, format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A thread of its own writes to stderr, so that an admission answer does not wait for its
    // log line to reach the pipe (an earlier benchmark put that at ~40 µs per request under
    // load; bench/RESULTS.md has the before/after). Not lossy: with the queue full, callers
    // wait rather than drop lines, which record every decision. 8192 queued lines (a few MiB)
    // instead of the default 128,000, so a slow log reader holds up admissions before it can
    // grow memory much.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(8_192)
        .thread_name("signet-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    guard
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(args).await.map(|()| ExitCode::SUCCESS),
        Command::Verify(args) => verify(args).await,
        Command::Review(args) => review(args).await,
        Command::VerifyBlob(args) => verify_blob(&args),
        Command::VerifyBundle(args) => verify_bundle(&args),
        Command::Tree { image, registry } => tree(&image, &registry).await,
        Command::Crd { write } => crd(write.as_deref()).map(|()| ExitCode::SUCCESS),
    }
}

fn registry_client(args: &RegistryArgs) -> anyhow::Result<RegistryClient> {
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
fn keychain(args: &RegistryArgs) -> anyhow::Result<Keychain> {
    match &args.registry_auth_file {
        None => Ok(Keychain::default()),
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read --registry-auth-file {}", path.display()))?;
            Ok(Keychain::from_docker_config(&bytes, &path.display().to_string())?)
        }
    }
}

fn trust_root(args: &RegistryArgs) -> anyhow::Result<TrustRoot> {
    match &args.trust_root {
        None => TrustRoot::public_good().context("the embedded Sigstore trust root is invalid"),
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read --trust-root {}", path.display()))?;
            TrustRoot::from_json(&bytes).with_context(|| format!("--trust-root {}", path.display()))
        }
    }
}

fn verifier(args: &RegistryArgs, trust: TrustRoot, cluster: Option<ClusterAccess>) -> anyhow::Result<RegistryVerifier> {
    let settings = VerifierSettings {
        signature_ttl: Duration::from_secs(args.signature_ttl_seconds),
        digest_ttl: Duration::from_secs(args.digest_ttl_seconds),
        cache_entries: args.cache_entries,
    };
    Ok(RegistryVerifier::new(
        registry_client(args)?,
        Arc::new(trust),
        &settings,
        cluster,
        keychain(args)?,
    ))
}

/// Publishes when the trust root starts to expire, and warns a month ahead.
fn report_trust_root_expiry(trust: &TrustRoot, metrics: &Metrics) {
    let now = time::OffsetDateTime::now_utc();
    let Some(expiry) = trust.earliest_expiry(now) else {
        return;
    };
    metrics.trust_root_expiry.set(expiry.unix_timestamp());
    if expiry - now < time::Duration::days(30) {
        tracing::warn!(expires = %expiry, "part of the trust root expires within 30 days; update --trust-root");
    }
}

fn admission(
    snapshot: SnapshotHandle,
    decision: &DecisionArgs,
    registry: &RegistryArgs,
    cluster: Option<ClusterAccess>,
) -> anyhow::Result<Admission> {
    let events = cluster.as_ref().map(|c| EventRecorder::new(c.client()));
    let metrics = Metrics::new().context("cannot register metrics")?;
    let trust = trust_root(registry)?;
    report_trust_root_expiry(&trust, &metrics);
    let base_expiry = trust.earliest_expiry(time::OffsetDateTime::now_utc());
    let verifier = verifier(registry, trust, cluster)?.with_metrics(metrics.clone());
    let store = verifier.trust_roots();
    tokio::spawn(crate::sources::trust_roots::keep_resolved(
        snapshot.clone(),
        store,
        base_expiry,
        metrics.clone(),
    ));
    Ok(Admission {
        snapshot,
        verifier: Arc::new(verifier),
        no_match: decision.no_match_policy,
        metrics,
        default_budget: Duration::from_secs(decision.admission_timeout_seconds),
        images_at_once: usize::from(decision.review_concurrency),
        events,
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let snapshot = SnapshotHandle::default();
    let (texts, texts_receiver) = policy_text::texts_channel();
    let cluster = start_policy_source(&args, snapshot.clone(), texts_receiver).await?;
    let reader = PolicyTextReader::new(cluster.clone())?;
    let refresh = Duration::from_secs(args.policy_text_refresh_seconds.max(1));
    tokio::spawn(policy_text::keep_read(snapshot.clone(), reader, texts, refresh));
    let admission = admission(snapshot.clone(), &args.decision, &args.registry, cluster)?;
    let metrics = admission.metrics.clone();

    let tls_source = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => TlsSource::SelfSigned {
            names: args.tls_san.clone(),
            ca_out: args.tls_ca_out.clone(),
        },
    };
    let tls = crate::server::tls_config(&tls_source).await?;
    if let TlsSource::Files { cert, key } = tls_source {
        tokio::spawn(crate::server::reload_on_change(
            tls.clone(),
            cert,
            key,
            Duration::from_secs(5),
        ));
    }

    let admin_listener = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("cannot listen on the admin address {}", args.admin_listen))?;
    let admin_app = crate::admin::router(snapshot, metrics);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(admin_listener, admin_app).await {
            tracing::error!(error = %e, "admin server stopped");
        }
    });

    let handle = axum_server::Handle::new();
    tokio::spawn(shutdown_on_signal(handle.clone()));
    tracing::info!(listen = %args.listen, admin = %args.admin_listen, "signet webhook starting");
    crate::server::serve(args.listen, tls, crate::server::router(admission), handle).await?;
    tracing::info!("signet webhook stopped");
    Ok(())
}

/// Starts the folder or cluster watch; both publish into `snapshot`, compiled with the policy
/// texts from `texts`. In a cluster, also returns access to its Secrets, ConfigMaps and
/// ServiceAccounts. Neither needs the network to start: the watch retries in the background
/// while readiness waits.
async fn start_policy_source(
    args: &ServeArgs,
    snapshot: SnapshotHandle,
    texts: TextsReceiver,
) -> anyhow::Result<Option<ClusterAccess>> {
    if let Some(dir) = args.policy_dir.clone() {
        anyhow::ensure!(dir.is_dir(), "--policy-dir {} is not a folder", dir.display());
        tokio::spawn(async move {
            if let Err(e) = folder::watch_folder(dir, snapshot, texts, Duration::from_secs(2)).await {
                tracing::error!(error = %e, "policy folder cannot be read; not ready");
            }
        });
        return Ok(None);
    }
    let client = kube::Client::try_default()
        .await
        .context("no --policy-dir given and no Kubernetes configuration found")?;
    tokio::spawn(crate::sources::kube::watch_policies(client.clone(), snapshot, texts));
    Ok(Some(ClusterAccess::new(client, args.namespace.clone())))
}

/// SIGTERM (Kubernetes) or Ctrl-C: stop accepting, let in-flight reviews finish.
async fn shutdown_on_signal(handle: axum_server::Handle<SocketAddr>) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; draining in-flight reviews");
    handle.graceful_shutdown(Some(Duration::from_secs(25)));
}

/// Policy files for the one-shot commands, with their `remote` policy texts fetched (a
/// `configMapRef` needs the cluster, so such a policy denies with that reason).
async fn load_policies(paths: &[PathBuf]) -> anyhow::Result<PolicySnapshot> {
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

async fn review(args: ReviewArgs) -> anyhow::Result<ExitCode> {
    let body = if args.request == Path::new("-") {
        let mut buffer = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer).context("cannot read standard input")?;
        buffer
    } else {
        std::fs::read(&args.request).with_context(|| format!("cannot read {}", args.request.display()))?
    };
    let snapshot = load_policies(&args.policy).await?;
    let admission = admission(SnapshotHandle::fixed(snapshot), &args.decision, &args.registry, None)?;
    let endpoint = match args.endpoint {
        EndpointArg::Mutate => Endpoint::Mutate,
        EndpointArg::Validate => Endpoint::Validate,
    };
    let answer = admission.handle(&body, endpoint, None).await?;
    let mut rendered: serde_json::Value = serde_json::from_slice(&answer)?;
    let allowed = rendered["response"]["allowed"].as_bool().unwrap_or(false);
    decode_patch_for_display(&mut rendered);
    println!("{}", serde_json::to_string_pretty(&rendered)?);
    Ok(if allowed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let snapshot = load_policies(&args.policy).await?;
    let verifier = verifier(&args.registry, trust_root(&args.registry)?, None)?;
    let images = [ContainerImage {
        path: String::new(),
        name: "verify".to_string(),
        source: crate::admission::workload::ImageSource::Container,
        image: args.image.clone(),
    }];
    let resource = ResourceInfo {
        group: String::new(),
        version: "v1".to_string(),
        resource: "pods".to_string(),
        ..ResourceInfo::default()
    };
    let evaluation = evaluate(
        &snapshot,
        &images,
        &resource,
        &RequestContext::default(),
        &verifier,
        args.decision.no_match_policy,
        usize::from(args.decision.review_concurrency),
    )
    .await;
    if args.explain {
        print!("{}", crate::report::explain_matching(&args.image, &snapshot));
    }
    print!("{}", crate::report::verification_report(&args.image, &evaluation));
    Ok(if evaluation.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn verify_blob(args: &VerifyBlobArgs) -> anyhow::Result<ExitCode> {
    use crate::verify::blob::{BlobAuthority, BlobSignature, verify_blob};
    let read = |path: &Option<PathBuf>| -> anyhow::Result<Option<String>> {
        path.as_ref()
            .map(|p| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display())))
            .transpose()
    };
    let blob = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let authority = match (&args.key, &args.certificate_identity, &args.certificate_identity_regexp) {
        (Some(key), _, _) => BlobAuthority::Key(crate::verify::keys::PublicKey::from_pem(&std::fs::read_to_string(
            key,
        )?)?),
        (None, None, None) => {
            anyhow::bail!("give --key, or --certificate-identity[-regexp] with --certificate-oidc-issuer[-regexp]")
        }
        _ => {
            anyhow::ensure!(
                args.certificate_oidc_issuer.is_some() || args.certificate_oidc_issuer_regexp.is_some(),
                "keyless verification needs --certificate-oidc-issuer or --certificate-oidc-issuer-regexp"
            );
            BlobAuthority::Keyless {
                identity: crate::api::cip::Identity {
                    issuer: args.certificate_oidc_issuer.clone(),
                    issuer_reg_exp: args.certificate_oidc_issuer_regexp.clone(),
                    subject: args.certificate_identity.clone(),
                    subject_reg_exp: args.certificate_identity_regexp.clone(),
                },
                ignore_sct: args.insecure_ignore_sct,
            }
        }
    };
    let trust = match &args.trust_root {
        None => TrustRoot::public_good()?,
        Some(path) => {
            TrustRoot::from_json(&std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)?
        }
    };
    let material = BlobSignature {
        signature_b64: read(&args.signature)?,
        certificate: read(&args.certificate)?,
        bundle: read(&args.bundle)?,
    };
    Ok(report_verification(verify_blob(&blob, material, &authority, &trust)))
}

fn verify_bundle(args: &VerifyBundleArgs) -> anyhow::Result<ExitCode> {
    use crate::verify::blob::{BlobAuthority, verify_sigstore_bundle};
    use crate::verify::bundle::Artifact;
    let authority = match (&args.key, &args.certificate_identity) {
        (Some(key), _) => BlobAuthority::Key(crate::verify::keys::PublicKey::from_pem(
            &std::fs::read_to_string(key).with_context(|| format!("cannot read {}", key.display()))?,
        )?),
        (None, Some(identity)) => BlobAuthority::Keyless {
            identity: crate::api::cip::Identity {
                issuer: args.certificate_oidc_issuer.clone(),
                subject: Some(identity.clone()),
                ..Default::default()
            },
            ignore_sct: false,
        },
        (None, None) => anyhow::bail!("give --key, or --certificate-identity with --certificate-oidc-issuer"),
    };
    let trust = match (&args.trusted_root, args.staging) {
        (Some(path), _) => {
            TrustRoot::from_json(&std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)?
        }
        (None, true) => anyhow::bail!(
            "--staging needs the staging trusted root in --trusted-root (signet embeds only the public-good root)"
        ),
        (None, false) => TrustRoot::public_good()?,
    };
    let bundle = std::fs::read(&args.bundle).with_context(|| format!("cannot read {}", args.bundle.display()))?;
    let contents;
    let artifact = match digest_argument(&args.file_or_digest) {
        Some(digest) => Artifact::Sha256(digest),
        None => {
            contents =
                std::fs::read(&args.file_or_digest).with_context(|| format!("cannot read {}", args.file_or_digest))?;
            Artifact::Bytes(&contents)
        }
    };
    Ok(report_verification(verify_sigstore_bundle(
        &bundle, &artifact, &authority, &trust,
    )))
}

/// cosign's way of saying it: the detail and "Verified OK" (exit 0), or why not (exit 1).
fn report_verification(outcome: Result<String, String>) -> ExitCode {
    match outcome {
        Ok(detail) => {
            eprintln!("{detail}");
            println!("Verified OK");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("error: verification failed: {why}");
            ExitCode::from(1)
        }
    }
}

/// `sha256:<64 hex>` that is not a file on disk is a digest (the conformance CLI's rule).
fn digest_argument(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix("sha256:")?;
    if hex.len() != 64 || std::path::Path::new(text).exists() {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(digest)
}

async fn tree(image: &str, args: &RegistryArgs) -> anyhow::Result<ExitCode> {
    let image = ImageRef::parse(image)?;
    let credentials = keychain(args)?.for_registry(image.registry());
    let text = crate::verify::tree::attachment_tree(&registry_client(args)?, &image, &credentials)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// Shows the patch as JSON next to its base64 form, which is what a person wants to read.
fn decode_patch_for_display(rendered: &mut serde_json::Value) {
    let decoded = rendered["response"]["patch"]
        .as_str()
        .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
    if let Some(patch) = decoded {
        rendered["response"]["patchDecoded"] = patch;
    }
}

fn crd(write: Option<&Path>) -> anyhow::Result<()> {
    match write {
        None => print!("{}", crate::api::crds_yaml()?),
        Some(dir) => {
            for (name, text) in crate::api::crd_files()? {
                let path = dir.join(name);
                std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}
