//! `signet policy test`: a ClusterImagePolicy's Rego or CUE policy evaluated against an input
//! without a registry, as policy-controller's `policy-tester` does: an attestation policy
//! against an in-toto statement (`--attestation NAME --input FILE`), or the CIP-level
//! `spec.policy` against a resource (`--resource FILE`) or a whole input (`--input FILE`).
//! A bare `.cue` or `.rego` file is evaluated against `--input` as it stands, as
//! `cosign verify-attestation --policy` evaluates one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::Value;

use super::common::load_policies;
use crate::api::cip::Policy;
use crate::policy::program::{AuthorityMatch, PolicyTexts, Program, cip_policy_input};
use crate::policy::rego::Verdict;
use crate::policy::snapshot::PolicySnapshot;
use crate::policy::snapshot::{AuthorityKind, Mode};
use crate::sources::folder;

#[derive(Subcommand, Debug)]
pub(super) enum PolicyCommand {
    /// Evaluate a ClusterImagePolicy's policy against an input; exit 0 when it passes, 1 when
    /// it does not (in `mode: warn` too: shown as a warning), 2 on an error.
    Test(PolicyTestArgs),
}

#[derive(Args, Debug)]
pub(super) struct PolicyTestArgs {
    /// The ClusterImagePolicy file, or a bare policy file (`.cue` or `.rego`).
    policy: PathBuf,
    /// The attestation whose policy to evaluate (`authorities[].attestations[].name`).
    #[arg(long, requires = "input", conflicts_with = "resource")]
    attestation: Option<String>,
    /// The input (JSON or YAML): the in-toto statement an attestation policy reads, or the
    /// whole input of a CIP-level policy or of a bare policy file.
    #[arg(long, conflicts_with = "resource")]
    input: Option<PathBuf>,
    /// The Kubernetes resource (YAML or JSON) the CIP-level `spec.policy` reads (its `spec`,
    /// `metadata` and type, as the policy's include flags say).
    #[arg(long)]
    resource: Option<PathBuf>,
    /// The policy text to use for every policy the ClusterImagePolicy reads from a
    /// `configMapRef` or a `remote` URL (offline, no cluster or network needed).
    #[arg(long)]
    policy_text: Option<PathBuf>,
    /// `authorityMatches` for the CIP-level policy (JSON, by authority name), for
    /// authorities that would need a registry; static authorities that pass are added.
    #[arg(long)]
    authority_matches: Option<PathBuf>,
}

pub(super) async fn policy(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Test(args) => test(args).await,
    }
}

fn read_document(path: &PathBuf) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_saphyr::from_str(&text).with_context(|| format!("{} is not YAML or JSON", path.display()))
}

/// The policy files, with `file`'s text standing in for every policy text they read from a
/// ConfigMap or a URL.
fn load_with_policy_text(paths: &[PathBuf], file: &PathBuf) -> anyhow::Result<PolicySnapshot> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let first = folder::load_paths(paths, &PolicyTexts::new())?;
    let texts: PolicyTexts = first
        .policy_sources
        .iter()
        .map(|source| (source.clone(), Ok(text.clone())))
        .collect();
    Ok(folder::load_paths(paths, &texts)?)
}

/// The language of a bare policy file, by its extension.
fn bare_policy_type(path: &std::path::Path) -> Option<&'static str> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("cue") => Some("cue"),
        Some("rego") => Some("rego"),
        _ => None,
    }
}

/// A bare policy file against `--input`.
async fn test_bare(args: &PolicyTestArgs, type_: &str) -> anyhow::Result<ExitCode> {
    let path = &args.policy;
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let policy = Policy {
        type_: type_.to_string(),
        data: Some(text),
        ..Default::default()
    };
    let program = Program::compile(&name, "policy", &name, &policy, &Default::default())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let input = read_document(args.input.as_ref().context("a bare policy file needs --input")?)?;
    Ok(report(&name, Mode::Enforce, program.evaluate(input).await))
}

async fn test(args: PolicyTestArgs) -> anyhow::Result<ExitCode> {
    if let Some(type_) = bare_policy_type(&args.policy) {
        return test_bare(&args, type_).await;
    }
    let paths = std::slice::from_ref(&args.policy);
    let snapshot = match &args.policy_text {
        Some(file) => load_with_policy_text(paths, file)?,
        None => load_policies(paths).await?,
    };
    if let Some(rejected) = snapshot.rejected.first() {
        anyhow::bail!("{}: {}", rejected.name, rejected.error);
    }
    let policy = snapshot
        .policies
        .first()
        .with_context(|| format!("{} holds no ClusterImagePolicy", args.policy.display()))?;
    let verdict = match (&args.attestation, &args.resource) {
        (Some(name), _) => {
            let attestation = policy
                .authorities
                .iter()
                .flat_map(|a| a.attestations.iter())
                .find(|a| &a.name == name)
                .with_context(|| format!("policy {:?} has no attestation named {name:?}", policy.name))?;
            let input = read_document(args.input.as_ref().context("--attestation needs --input")?)?;
            attestation.evaluate(input).await
        }
        (None, None) if args.input.is_some() => {
            let program = policy
                .program
                .as_ref()
                .with_context(|| format!("policy {:?} has no spec.policy", policy.name))?;
            let input = read_document(args.input.as_ref().context("--input")?)?;
            program.evaluate(input).await
        }
        (None, Some(resource)) => {
            let program = policy
                .program
                .as_ref()
                .with_context(|| format!("policy {:?} has no spec.policy", policy.name))?;
            let spec_policy = policy.spec.policy.as_ref().context("spec.policy")?;
            let object = read_document(resource)?;
            let matches: BTreeMap<String, AuthorityMatch> = policy
                .authorities
                .iter()
                .filter(|a| matches!(a.kind, AuthorityKind::Static { pass: true, .. }))
                .map(|a| (a.name.clone(), AuthorityMatch::Static))
                .collect();
            let mut input = cip_policy_input(spec_policy, &matches, Some(&object), None);
            if let Some(path) = &args.authority_matches {
                let given = read_document(path)?;
                let given = given
                    .as_object()
                    .with_context(|| format!("{}: expected an object by authority name", path.display()))?;
                for (name, matched) in given {
                    input["authorityMatches"][name] = matched.clone();
                }
            }
            program.evaluate(input).await
        }
        (None, None) => anyhow::bail!("give --attestation NAME with --input, --resource, or --input"),
    };
    Ok(report(&policy.name, policy.mode, verdict))
}

/// Prints the verdict as policy-tester does (a failure under `mode: warn` is a warning) and
/// gives the exit code.
fn report(name: &str, mode: Mode, verdict: Verdict) -> ExitCode {
    let mode_name = if mode == Mode::Warn { "warn" } else { "enforce" };
    match verdict {
        Verdict::Allow { warning } => {
            if let Some(warning) = warning {
                println!("WARNING: {warning}");
            }
            println!("PASS: policy {name:?} ({mode_name})");
            ExitCode::SUCCESS
        }
        Verdict::Deny { error, warning } => {
            let label = if mode == Mode::Warn { "WARNING" } else { "ERROR" };
            if let Some(warning) = warning {
                println!("WARNING: {warning}");
            }
            println!("{label}: {error}");
            println!("FAIL: policy {name:?} ({mode_name})");
            ExitCode::from(1)
        }
    }
}
