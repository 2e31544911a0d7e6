//! `signet serve`: the admission webhook, its admin server, and the policy sources behind it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::common::{DecisionArgs, RegistryArgs, trust_root, verifier};
use crate::admission::Admission;
use crate::cluster::ClusterAccess;
use crate::cluster::events::EventRecorder;
use crate::metrics::Metrics;
use crate::policy::handle::SnapshotHandle;
use crate::server::TlsSource;
use crate::sources::folder;
use crate::sources::policy_text::{self, PolicyTextReader, TextsReceiver};
use crate::verify::trust::TrustRoot;

#[derive(Args, Debug)]
pub(super) struct ServeArgs {
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
    /// How long the status-writer Lease lasts without renewal (seconds): with several
    /// replicas, only the holder writes ClusterImagePolicy status, and another takes over
    /// this long after it stops.
    #[arg(long, env = "SIGNET_STATUS_LEASE_SECONDS", default_value = "15",
          value_parser = clap::value_parser!(u64).range(2..=300))]
    status_lease_seconds: u64,
    /// Re-verify the images of running workloads this often (seconds) and when the policies
    /// change, and publish PolicyReports, metrics and Events (the Lease holder only; in a
    /// cluster). 0: off.
    #[arg(long, env = "SIGNET_BACKGROUND_SCAN_SECONDS", default_value = "0",
          value_parser = clap::value_parser!(u64).range(0..=604800))]
    background_scan_seconds: u64,
    #[command(flatten)]
    decision: DecisionArgs,
    #[command(flatten)]
    registry: RegistryArgs,
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

pub(super) fn admission(
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
    tokio::spawn(crate::evidence::kms::keep_synced(snapshot.clone(), verifier.kms_keys()));
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

pub(super) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let snapshot = SnapshotHandle::default();
    let (texts, texts_receiver) = policy_text::texts_channel();
    let (cluster, leadership) = match start_policy_source(&args, snapshot.clone(), texts_receiver).await? {
        Some((cluster, leadership)) => (Some(cluster), Some(leadership)),
        None => (None, None),
    };
    let reader = PolicyTextReader::new(cluster.clone())?;
    let refresh = Duration::from_secs(args.policy_text_refresh_seconds.max(1));
    tokio::spawn(policy_text::keep_read(snapshot.clone(), reader, texts, refresh));
    let client = cluster.as_ref().map(ClusterAccess::client);
    let admission = admission(snapshot.clone(), &args.decision, &args.registry, cluster)?;
    let metrics = admission.metrics.clone();
    match (args.background_scan_seconds, client, leadership) {
        (0, _, _) => {}
        (seconds, Some(client), Some(leadership)) => {
            let settings = crate::audit::background::ScanSettings {
                interval: Duration::from_secs(seconds),
                audit: crate::audit::AuditSettings {
                    no_match: args.decision.no_match_policy,
                    concurrency: 4,
                    images_at_once: usize::from(args.decision.review_concurrency),
                },
            };
            tokio::spawn(crate::audit::background::keep_scanning(
                client,
                snapshot.clone(),
                admission.verifier.clone(),
                leadership,
                settings,
                metrics.clone(),
            ));
        }
        _ => tracing::warn!("--background-scan-seconds needs a cluster (it is ignored with --policy-dir)"),
    }

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
) -> anyhow::Result<Option<(ClusterAccess, crate::cluster::lease::Leadership)>> {
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
    tokio::spawn(crate::sources::kube::watch_policies(
        client.clone(),
        snapshot.clone(),
        texts,
    ));
    let lease = Duration::from_secs(args.status_lease_seconds);
    let leadership = crate::cluster::lease::start(
        client.clone(),
        &args.namespace,
        crate::cluster::lease::identity(),
        lease,
    );
    tokio::spawn(crate::cluster::status::keep_written(
        client.clone(),
        crate::sources::kube::policy_resource(),
        snapshot,
        leadership.clone(),
    ));
    Ok(Some((ClusterAccess::new(client, args.namespace.clone()), leadership)))
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
