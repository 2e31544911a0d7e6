//! The command line. Every `serve` flag has a `SIGNET_*` twin. One file per command:
//!
//! - `serve`: run the admission webhook.
//! - `verify`: verify one image against policies and show every check.
//! - `review`: answer an AdmissionReview file offline, as the webhook would.
//! - `blob`: `verify-blob` and `verify-bundle`, cosign-style checks of a file's signature.
//! - `tree`: show what is attached to an image.
//! - `crd`: print or write the CustomResourceDefinitions.
//! - `common`: the argument groups several commands share, and what is built from them.

mod audit;
mod blob;
mod common;
mod crd;
mod policy;
mod review;
mod serve;
mod tree;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use audit::AuditArgs;
use blob::{VerifyBlobArgs, VerifyBundleArgs, verify_blob, verify_bundle};
use common::RegistryArgs;
use crd::crd;
use review::{ReviewArgs, review};
use serve::{ServeArgs, serve};
use tree::tree;
use verify::{VerifyArgs, verify};

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
    /// Judge what runs in the cluster (or what files describe) against the policies, as
    /// admission would, without changing anything: a row per container image and policy.
    Audit(AuditArgs),
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
    /// Work with ClusterImagePolicy files: `policy test` evaluates one's Rego policy against
    /// an input, without a registry.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Print the CustomResourceDefinitions (or write them to a folder).
    Crd {
        /// Write one file per CRD into this folder instead of printing.
        #[arg(long)]
        write: Option<PathBuf>,
    },
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
        Command::Audit(args) => audit::audit_command(args).await,
        Command::Review(args) => review(args).await,
        Command::VerifyBlob(args) => verify_blob(&args),
        Command::VerifyBundle(args) => verify_bundle(&args),
        Command::Tree { image, registry } => tree(&image, &registry).await,
        Command::Policy { command } => policy::policy(command).await,
        Command::Crd { write } => crd(write.as_deref()).map(|()| ExitCode::SUCCESS),
    }
}
