//! `signet policy test`: a ClusterImagePolicy's Rego policy evaluated against an input
//! without a registry, as policy-controller's `policy-tester` does: an attestation policy
//! against an in-toto statement (`--attestation NAME --input FILE`), or the CIP-level
//! `spec.policy` against a resource (`--resource FILE`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::Value;

use super::common::load_policies;
use crate::policy::program::{AuthorityMatch, cip_policy_input};
use crate::policy::rego::Verdict;
use crate::policy::snapshot::{AuthorityKind, Mode};

#[derive(Subcommand, Debug)]
pub(super) enum PolicyCommand {
    /// Evaluate a ClusterImagePolicy's policy against an input; exit 0 when it passes, 1 when
    /// it does not (in `mode: warn` too: shown as a warning), 2 on an error.
    Test(PolicyTestArgs),
}

#[derive(Args, Debug)]
pub(super) struct PolicyTestArgs {
    /// The ClusterImagePolicy file.
    policy: PathBuf,
    /// The attestation whose policy to evaluate (`authorities[].attestations[].name`).
    #[arg(long, requires = "input", conflicts_with = "resource")]
    attestation: Option<String>,
    /// The in-toto statement (JSON or YAML) an attestation policy reads.
    #[arg(long)]
    input: Option<PathBuf>,
    /// The Kubernetes resource (YAML or JSON) the CIP-level `spec.policy` reads (its `spec`,
    /// `metadata` and type, as the policy's include flags say).
    #[arg(long)]
    resource: Option<PathBuf>,
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

async fn test(args: PolicyTestArgs) -> anyhow::Result<ExitCode> {
    let snapshot = load_policies(std::slice::from_ref(&args.policy)).await?;
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
        (None, None) => anyhow::bail!("give --attestation NAME with --input, or --resource"),
    };
    let mode = if policy.mode == Mode::Warn { "warn" } else { "enforce" };
    Ok(match verdict {
        Verdict::Allow { warning } => {
            if let Some(warning) = warning {
                println!("WARNING: {warning}");
            }
            println!("PASS: policy {:?} ({mode})", policy.name);
            ExitCode::SUCCESS
        }
        Verdict::Deny { error, warning } => {
            let label = if policy.mode == Mode::Warn { "WARNING" } else { "ERROR" };
            if let Some(warning) = warning {
                println!("WARNING: {warning}");
            }
            println!("{label}: {error}");
            println!("FAIL: policy {:?} ({mode})", policy.name);
            ExitCode::from(1)
        }
    })
}
