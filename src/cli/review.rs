//! `signet review`: answers an AdmissionReview file offline, exactly as the webhook would.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use base64::Engine as _;
use clap::{Args, ValueEnum};

use super::common::{DecisionArgs, RegistryArgs, load_policies};
use super::serve::admission;
use crate::admission::Endpoint;
use crate::policy::handle::SnapshotHandle;

#[derive(Args, Debug)]
pub(super) struct ReviewArgs {
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

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EndpointArg {
    Mutate,
    Validate,
}

pub(super) async fn review(args: ReviewArgs) -> anyhow::Result<ExitCode> {
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
