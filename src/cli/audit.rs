//! `signet audit`: the workloads of the cluster or of files judged against the policies, as
//! admission would judge them, without changing anything.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde_json::Value;

use super::common::{DecisionArgs, RegistryArgs, load_policies, trust_root, verifier};
use crate::audit::{AuditSettings, Verdict, audit, render_json, render_table, summary, workloads_in};
use crate::policy::evaluate::DEFAULT_IMAGES_AT_ONCE;

#[derive(Args, Debug)]
pub(super) struct AuditArgs {
    /// Workloads from a file instead of the cluster: manifests, `kubectl get -o json|yaml`
    /// output, Helm-rendered YAML; `-` reads standard input; repeatable.
    #[arg(long = "file", short = 'f')]
    files: Vec<PathBuf>,
    /// Policy file or folder (to preview a policy before applying it); repeatable. Without
    /// it, the cluster's ClusterImagePolicies and TrustRoots.
    #[arg(long)]
    policy: Vec<PathBuf>,
    /// Only these namespaces of the cluster; repeatable. Default: all.
    #[arg(long, short = 'n')]
    namespace: Vec<String>,
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: Output,
    /// Workloads evaluated at once; with the registry limits (`--registry-concurrency`) this
    /// bounds what an audit asks of registries.
    #[arg(long, default_value = "8", value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    #[command(flatten)]
    decision: DecisionArgs,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Table,
    Json,
}

/// Exit 0 when every row passes (or only warns), 1 when one fails or could not be decided.
pub(super) async fn audit_command(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let client = if args.files.is_empty() || args.policy.is_empty() {
        Some(
            kube::Client::try_default()
                .await
                .context("no cluster to read (give --file for workloads and --policy for policies, or a kubeconfig)")?,
        )
    } else {
        None
    };
    let documents = match &client {
        Some(client) if args.files.is_empty() => crate::cluster::workloads::list_workloads(client, &args.namespace)
            .await
            .context("cannot list the cluster's workloads")?,
        _ => read_documents(&args.files)?,
    };
    let workloads = workloads_in(&documents).map_err(anyhow::Error::msg)?;
    let snapshot = match &client {
        Some(client) if args.policy.is_empty() => crate::cluster::workloads::policies(client)
            .await
            .context("cannot list the cluster's ClusterImagePolicies and TrustRoots")?,
        _ => load_policies(&args.policy).await?,
    };
    let verifier = verifier(&args.registry, trust_root(&args.registry)?, None)?.fetching_kms_inline();
    let settings = AuditSettings {
        no_match: args.decision.no_match_policy,
        concurrency: usize::from(args.concurrency),
        images_at_once: DEFAULT_IMAGES_AT_ONCE,
    };
    let total = workloads.len();
    let progress = move |done: usize| {
        if total >= 100 && (done.is_multiple_of(100) || done == total) {
            eprintln!("audited {done} of {total} workloads");
        }
    };
    let rows = audit(&snapshot, &workloads, &verifier, &settings, &progress).await;
    match args.output {
        Output::Table => print!("{}", render_table(&rows)),
        Output::Json => print!("{}", render_json(&rows)),
    }
    let counts = summary(&rows);
    let bad = counts.get(&Verdict::Fail).copied().unwrap_or(0) + counts.get(&Verdict::Error).copied().unwrap_or(0);
    Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Every YAML or JSON document of the files (`-`: standard input).
fn read_documents(files: &[PathBuf]) -> anyhow::Result<Vec<Value>> {
    let mut documents = Vec::new();
    for path in files {
        let text = if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read standard input")?;
            text
        } else {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
        };
        let parsed: Vec<Value> =
            serde_saphyr::from_multiple(&text).with_context(|| format!("{} is not YAML or JSON", path.display()))?;
        documents.extend(parsed.into_iter().filter(|d| !d.is_null()));
    }
    Ok(documents)
}
