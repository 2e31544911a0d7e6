//! signet's benchmark tool (issue 7): the echo floor server, the load client, the image and
//! signature seeder, and the driver that measures everything and prints one table.
//!
//! `bench/run.sh` builds this in release and runs `bench run …` against a real
//! `docker-registry` it started; `bench floor` is the minimal axum + rustls HTTPS server that
//! only echoes an allow AdmissionReview (the physical floor for the warm figure).
//!
//! Nothing here tunes a figure: every number printed is measured in this run.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use clap::{Parser, Subcommand};
use futures::StreamExt as _;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::EncodePublicKey;
use serde_json::{Value, json};
use sha2::Digest as _;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Signature TTL of the RSS instance: long enough that all digests admitted stay cached,
/// so the figure is memory with every entry held, not after some expired.
const RSS_TTL: &str = "3600";

#[derive(Parser)]
#[command(about = "signet benchmark: floor server, load client, seeder and driver")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The echo floor: axum + rustls HTTPS answering every POST with an allow AdmissionReview.
    Floor {
        #[arg(long)]
        listen: SocketAddr,
        /// Where to write the generated CA (PEM).
        #[arg(long)]
        ca_out: PathBuf,
    },
    /// Runs every measurement and prints the results table (Markdown) on stdout.
    Run(RunArgs),
    /// Soak: concurrent load on one signet for a bounded time while its RSS is sampled every
    /// second; prints the time series and a summary (Markdown) on stdout.
    Soak(SoakArgs),
    /// `signet audit` of many pods over fewer distinct images, from a `kubectl get -o json`
    /// file: its wall time and the registry requests it made (Markdown on stdout).
    Audit(AuditArgs),
    /// CUE policy evaluation time per policy of the corpus (`cue-policies/cases.json`), and
    /// the Pod Security Standards checks written in both CUE and Rego side by side (Markdown
    /// on stdout; no registry, no signet process).
    Cue(CueArgs),
}

#[derive(clap::Args, Clone)]
struct CueArgs {
    /// The fixtures directory (holds `cue-policies/cases.json`).
    #[arg(long, env = "SIGNET_FIXTURES")]
    fixtures: PathBuf,
    /// Timed evaluations of each input of each policy.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// Untimed evaluations of each input first.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Timed compiles of each policy.
    #[arg(long, default_value_t = 50)]
    compiles: usize,
}

#[derive(clap::Args, Clone)]
struct AuditArgs {
    /// The `signet` binary.
    #[arg(long)]
    signet: PathBuf,
    /// The registry, `127.0.0.1:PORT` (plain HTTP).
    #[arg(long)]
    registry: String,
    /// The registry's access log.
    #[arg(long)]
    registry_log: PathBuf,
    /// Scratch directory (policy, pods file).
    #[arg(long)]
    work: PathBuf,
    /// Pods in the file.
    #[arg(long, default_value_t = 5_000)]
    pods: usize,
    /// Distinct signed images they run.
    #[arg(long, default_value_t = 200)]
    images: usize,
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// The `signet` binary.
    #[arg(long)]
    signet: PathBuf,
    /// The registry, `127.0.0.1:PORT` (plain HTTP).
    #[arg(long)]
    registry: String,
    /// The registry's access log (its stdout/stderr).
    #[arg(long)]
    registry_log: PathBuf,
    /// Scratch directory (policies, CA files, signet logs).
    #[arg(long)]
    work: PathBuf,
    /// Connections of the warm load.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Upper bound of one warm load run, seconds.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Upper bound of one warm load run, requests.
    #[arg(long, default_value_t = 20_000)]
    max_requests: usize,
    /// Never-seen images admitted one by one for the cold figure.
    #[arg(long, default_value_t = 50)]
    cold: usize,
    /// Concurrent admissions of one never-seen image.
    #[arg(long, default_value_t = 500)]
    burst: usize,
    /// Distinct signed digests admitted for the RSS figure.
    #[arg(long, default_value_t = 10_000)]
    many: usize,
    /// Concurrency of seeding (registry pushes).
    #[arg(long, default_value_t = 32)]
    seed_concurrency: usize,
    /// Concurrency of admitting the many digests.
    #[arg(long, default_value_t = 16)]
    admit_concurrency: usize,
    /// Starts measured for the time to ready.
    #[arg(long, default_value_t = 5)]
    starts: usize,
    /// signet's `--cache-entries` (its default is 10000).
    #[arg(long, default_value_t = 10_000)]
    cache_entries: u64,
    /// A second `signet` binary (e.g. the previous commit's) put under the same 16-connection
    /// warm load in the same run, for a before/after figure.
    #[arg(long)]
    baseline_signet: Option<PathBuf>,
}

#[derive(clap::Args, Clone)]
struct SoakArgs {
    /// The `signet` binary.
    #[arg(long)]
    signet: PathBuf,
    /// The registry, `127.0.0.1:PORT` (plain HTTP).
    #[arg(long)]
    registry: String,
    /// The registry's access log (its stdout/stderr): registry requests during the soak.
    #[arg(long)]
    registry_log: PathBuf,
    /// Scratch directory (policy, CA file, signet's log).
    #[arg(long)]
    work: PathBuf,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Length of the load, warm-up included (seconds; at most 600).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Upper bound of the requests sent.
    #[arg(long, default_value_t = 1_000_000)]
    max_requests: usize,
    /// RSS at this many seconds into the load is the baseline growth is measured against.
    #[arg(long, default_value_t = 10)]
    warmup_seconds: u64,
    /// Distinct signed tags the load rotates over.
    #[arg(long, default_value_t = 8)]
    images: usize,
}

fn main() -> Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Cmd::Floor { listen, ca_out } => runtime.block_on(floor(listen, ca_out)),
        Cmd::Run(args) => runtime.block_on(run(args)),
        Cmd::Soak(args) => runtime.block_on(soak(args)),
        Cmd::Audit(args) => runtime.block_on(audit_bench(args)),
        Cmd::Cue(args) => cue_bench(args),
    }
}

// ---------------------------------------------------------------------------------------------
// The audit

async fn audit_bench(args: AuditArgs) -> Result<()> {
    elapsed_total();
    if args.images == 0 || args.pods < args.images {
        bail!("need --images > 0 and --pods >= --images");
    }
    std::fs::create_dir_all(args.work.join("policies"))?;
    let key = Key::generate();
    std::fs::write(args.work.join("policies/bench.yaml"), key_policy(&args.registry, &key))?;
    say(format!("seeding {} signed images", args.images));
    let pusher = Pusher::new(&args.registry);
    let shared = pusher.shared("bench/audit").await?;
    for n in 0..args.images {
        pusher
            .signed_image("bench/audit", Some(&format!("a{n}")), n, &shared, &key)
            .await?;
    }
    let items: Vec<Value> = (0..args.pods)
        .map(|p| {
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"namespace": format!("ns{}", p % 50), "name": format!("pod-{p}")},
                   "spec": {"containers": [{"name": "main", "image": format!("{}/bench/audit:a{}", args.registry, p % args.images)}]}})
        })
        .collect();
    let pods_file = args.work.join("pods.json");
    std::fs::write(
        &pods_file,
        json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string(),
    )?;
    let before = count_requests(&args.registry_log, &["HEAD", "GET"], "/v2/bench/audit/");
    say(format!(
        "signet audit of {} pods over {} images",
        args.pods, args.images
    ));
    let started = Instant::now();
    let output = std::process::Command::new(&args.signet)
        .args(["--log-level", "warn", "audit", "-o", "json", "--file"])
        .arg(&pods_file)
        .arg("--policy")
        .arg(args.work.join("policies"))
        .args(["--insecure-registry", &args.registry])
        .output()?;
    let seconds = started.elapsed().as_secs_f64();
    let report: Value = serde_json::from_slice(&output.stdout).context("audit output")?;
    let after = settled_count(&args.registry_log, &["HEAD", "GET"], "/v2/bench/audit/", before).await;
    let requests = after - before;
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| audit of {} pods over {} signed images | {seconds:.2} s ({:.0} pods/s) |",
        args.pods,
        args.images,
        args.pods as f64 / seconds
    );
    println!(
        "| registry requests (HEAD + GET) | {requests} ({:.2} per distinct image) |",
        requests as f64 / args.images as f64
    );
    println!("| summary | {} |", report["summary"]);
    println!("| exit code | {} |", output.status.code().unwrap_or(-1));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// CUE evaluation

/// One distinct CUE policy of the corpus and the distinct inputs its cases give it.
struct CorpusCuePolicy {
    /// The file and where in it the policy sits (attestation or `spec.policy`), or the first
    /// case of an inline policy.
    label: String,
    /// What messages call it: the attestation's name, or `ClusterImagePolicy`.
    name: String,
    source: String,
    inputs: Vec<Value>,
}

fn micros(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1e6
}

/// Wall time of one call, µs (the result is dropped inside the timed span).
fn time_us<T>(work: impl FnOnce() -> T) -> f64 {
    let started = Instant::now();
    std::hint::black_box(work());
    micros(started.elapsed())
}

fn denies(verdict: &signet::policy::rego::Verdict) -> bool {
    matches!(verdict, signet::policy::rego::Verdict::Deny { .. })
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// The ClusterImagePolicy specs of a YAML file.
fn cip_specs(path: &Path) -> Result<Vec<signet::api::cip::ClusterImagePolicySpec>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let documents = signet::api::parse_documents(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(documents
        .into_iter()
        .filter_map(|d| match d {
            signet::api::Document::Policy(cip) => Some(cip.spec),
            _ => None,
        })
        .collect())
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// A case's CUE policy, as `tests/it/cue_oracle.rs` reads it: label, name, text, and the
/// `spec.policy` of a CIP-level policy (which shapes a resource input).
fn case_cue_policy(dir: &Path, case: &Value) -> Result<(String, String, String, Option<signet::api::cip::Policy>)> {
    let id = case["id"].as_str().unwrap_or("?");
    if let Some(text) = case["policy_inline"].as_str() {
        return Ok((format!("inline ({id})"), "policy".into(), text.into(), None));
    }
    let file = case["policy"].as_str().context("no policy and no policy_inline")?;
    let path = dir.join(file);
    let location = case["policy_location"].as_str().unwrap_or_default();
    let cip_level = location.contains("spec.policy");
    if path.extension().is_some_and(|e| e == "cue") {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let (label, name) = match cip_level {
            true => (format!("{} spec.policy", file_name(file)), "ClusterImagePolicy"),
            false => (file_name(file).to_string(), "policy"),
        };
        return Ok((label, name.into(), text, None));
    }
    let spec = cip_specs(&path)?
        .into_iter()
        .next()
        .with_context(|| format!("no ClusterImagePolicy in {file}"))?;
    if location.contains("attestations") {
        // The attestation the case's note names, else the first CUE one.
        let named = case["note"]
            .as_str()
            .and_then(|n| n.split("attestation '").nth(1))
            .and_then(|rest| rest.split('\'').next());
        let attestation = spec
            .authorities
            .iter()
            .flat_map(|a| &a.attestations)
            .filter(|a| a.policy.as_ref().is_some_and(|p| p.type_ == "cue"))
            .find(|a| named.is_none_or(|n| n == a.name))
            .with_context(|| format!("no CUE attestation policy {named:?} in {file}"))?;
        let text = attestation
            .policy
            .as_ref()
            .and_then(|p| p.data.clone())
            .with_context(|| format!("attestation {} in {file} has no inline data", attestation.name))?;
        let label = format!("{} attestation {}", file_name(file), attestation.name);
        return Ok((label, attestation.name.clone(), text, None));
    }
    let policy = spec.policy.with_context(|| format!("{file} has no spec.policy"))?;
    let text = policy
        .data
        .clone()
        .with_context(|| format!("spec.policy of {file} has no inline data"))?;
    let label = format!("{} spec.policy", file_name(file));
    Ok((label, "ClusterImagePolicy".into(), text, Some(policy)))
}

/// The JSON a case's CUE engine sees: a statement or input file, a `#bodies.` vector, or a
/// Kubernetes resource turned into the CIP-level input.
fn case_cue_input(dir: &Path, case: &Value, spec_policy: Option<&signet::api::cip::Policy>) -> Result<Value> {
    let input = case["input"].as_str().context("no input")?;
    if let Some((file, body)) = input.split_once("#bodies.") {
        let text = std::fs::read(dir.join(file)).with_context(|| format!("reading {file}"))?;
        let vectors: Value = serde_json::from_slice(&text).with_context(|| format!("parsing {file}"))?;
        let body = vectors["bodies"]
            .get(body)
            .with_context(|| format!("no body {body:?} in {file}"))?;
        return Ok(body.clone());
    }
    let text = std::fs::read_to_string(dir.join(input)).with_context(|| format!("reading {input}"))?;
    if input.ends_with(".json") {
        return serde_json::from_str(&text).with_context(|| format!("parsing {input}"));
    }
    let object: Value = serde_saphyr::from_str(&text).with_context(|| format!("parsing {input}"))?;
    let policy = spec_policy.with_context(|| format!("the resource {input} goes with a CIP-level policy"))?;
    Ok(signet::policy::program::cip_policy_input(
        policy,
        &Default::default(),
        Some(&object),
        None,
    ))
}

/// Every distinct CUE policy of the offline CUE cases, with its distinct inputs, in the
/// order of the cases.
fn corpus_cue_policies(dir: &Path) -> Result<(Vec<CorpusCuePolicy>, usize)> {
    let path = dir.join("cases.json");
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let all: Value = serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
    let cases = all["cases"].as_array().context("cases.json has no `cases` array")?;
    let mut policies: Vec<CorpusCuePolicy> = Vec::new();
    let mut count = 0;
    for case in cases
        .iter()
        .filter(|c| c["offline"] == true && c["policy_type"] == "cue")
    {
        count += 1;
        let id = case["id"].as_str().unwrap_or("?");
        let (label, name, source, spec_policy) = case_cue_policy(dir, case).with_context(|| format!("case {id}"))?;
        let input = case_cue_input(dir, case, spec_policy.as_ref()).with_context(|| format!("case {id}"))?;
        match policies.iter_mut().find(|p| p.source == source && p.name == name) {
            Some(known) if known.inputs.contains(&input) => {}
            Some(known) => known.inputs.push(input),
            None => policies.push(CorpusCuePolicy {
                label,
                name,
                source,
                inputs: vec![input],
            }),
        }
    }
    Ok((policies, count))
}

/// The Pod Security Standards checks the catalog writes both in CUE and in Rego:
/// `(stem, CUE spec.policy, Rego spec.policy)` for each `STEM-cue.yaml` / `STEM-rego.yaml`.
fn pss_pairs(dir: &Path) -> Result<Vec<(String, signet::api::cip::Policy, signet::api::cip::Policy)>> {
    let spec_policy = |path: &Path| -> Result<signet::api::cip::Policy> {
        cip_specs(path)?
            .into_iter()
            .find_map(|spec| spec.policy)
            .with_context(|| format!("no spec.policy in {}", path.display()))
    };
    let mut stems: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix("-rego.yaml").map(String::from)
        })
        .filter(|stem| dir.join(format!("{stem}-cue.yaml")).is_file())
        .collect();
    stems.sort();
    stems
        .into_iter()
        .map(|stem| {
            let cue = spec_policy(&dir.join(format!("{stem}-cue.yaml")))?;
            let rego = spec_policy(&dir.join(format!("{stem}-rego.yaml")))?;
            Ok((stem, cue, rego))
        })
        .collect()
}

/// The Pods of a `testdata` folder, by file name.
fn testdata_pods(dir: &Path) -> Result<Vec<Value>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    let mut pods = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let object: Value = serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if object["kind"] == "Pod" {
            pods.push(object);
        }
    }
    Ok(pods)
}

fn cue_bench(args: CueArgs) -> Result<()> {
    use signet::policy::cue::CuePolicy;
    use signet::policy::rego::RegoPolicy;
    use std::hint::black_box;

    elapsed_total();
    if args.iterations == 0 || args.compiles == 0 {
        bail!("need --iterations > 0 and --compiles > 0");
    }
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let dir = args.fixtures.join("cue-policies");
    let (policies, case_count) = corpus_cue_policies(&dir)?;
    say(format!(
        "{} distinct CUE policies in {case_count} offline CUE cases; {} timed evaluations of each input",
        policies.len(),
        args.iterations
    ));

    // --- Every corpus policy.
    println!("### CUE evaluation per policy (offline CUE cases of `cue-policies/cases.json`)");
    println!();
    println!("| policy | inputs (denied) | compile median µs | eval median µs | eval p99 µs | eval max µs |");
    println!("|---|---|---|---|---|---|");
    let mut all = Vec::new();
    let mut compile_medians = Vec::new();
    let mut input_count = 0;
    let mut refused = Vec::new();
    for policy in &policies {
        let compiled = match CuePolicy::compile(&policy.name, &policy.source) {
            Ok(compiled) => compiled,
            Err(e) => {
                refused.push(format!("`{}` ({e})", policy.label));
                continue;
            }
        };
        let compile_us: Vec<f64> = (0..args.compiles)
            .map(|_| time_us(|| CuePolicy::compile(&policy.name, black_box(&policy.source))))
            .collect();
        let mut times = Vec::with_capacity(policy.inputs.len() * args.iterations);
        let mut denied = 0;
        for input in &policy.inputs {
            if denies(&compiled.evaluate_blocking(input)) {
                denied += 1;
            }
            for _ in 0..args.warmup {
                black_box(compiled.evaluate_blocking(black_box(input)));
            }
            times.extend((0..args.iterations).map(|_| time_us(|| compiled.evaluate_blocking(black_box(input)))));
        }
        let times = sorted(times);
        let compile_median = median(&compile_us);
        println!(
            "| `{}` | {} ({denied}) | {compile_median:.1} | {:.1} | {:.1} | {:.1} |",
            policy.label,
            policy.inputs.len(),
            percentile(&times, 50.0),
            percentile(&times, 99.0),
            times.last().copied().unwrap_or(f64::NAN),
        );
        compile_medians.push(compile_median);
        input_count += policy.inputs.len();
        all.extend(times);
    }
    let all = sorted(all);
    println!(
        "| **all {} policies, {} evaluations** | {} | {:.1} (median of the medians) | **{:.1}** | **{:.1}** | {:.1} |",
        compile_medians.len(),
        all.len(),
        input_count,
        median(&compile_medians),
        percentile(&all, 50.0),
        percentile(&all, 99.0),
        all.last().copied().unwrap_or(f64::NAN),
    );
    if !refused.is_empty() {
        println!();
        println!("Not compiled, so not timed: {}.", refused.join("; "));
    }

    // --- The same checks in CUE and in Rego, on the same Pods.
    let pss = dir.join("policy-catalog/policies/benchmarks/pod-security-standards");
    let pairs = pss_pairs(&pss)?;
    let pods = testdata_pods(&pss.join("testdata"))?;
    if pairs.is_empty() || pods.is_empty() {
        bail!("no CUE/Rego pairs or no Pods under {}", pss.display());
    }
    say(format!(
        "{} checks in both CUE and Rego, on {} Pods",
        pairs.len(),
        pods.len()
    ));
    println!();
    println!(
        "### The same Pod Security Standards check in CUE and in Rego ({} Pods of `testdata/`)",
        pods.len()
    );
    println!();
    println!(
        "| check | CUE median µs | CUE p99 µs | Rego median µs | Rego p99 µs | CUE / Rego, median | CUE / Rego, p99 | denied, CUE / Rego |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let (mut all_cue, mut all_rego) = (Vec::new(), Vec::new());
    for (stem, cue_policy, rego_policy) in &pairs {
        let cue_text = cue_policy
            .data
            .as_deref()
            .with_context(|| format!("{stem}-cue.yaml: no inline data"))?;
        let rego_text = rego_policy
            .data
            .as_deref()
            .with_context(|| format!("{stem}-rego.yaml: no inline data"))?;
        let cue = CuePolicy::compile("ClusterImagePolicy", cue_text).with_context(|| format!("{stem}-cue.yaml"))?;
        let rego = RegoPolicy::compile(stem, rego_text).with_context(|| format!("{stem}-rego.yaml"))?;
        let (mut cue_us, mut rego_us) = (Vec::new(), Vec::new());
        let (mut cue_denied, mut rego_denied) = (0, 0);
        for pod in &pods {
            let none = BTreeMap::new();
            let cue_input = signet::policy::program::cip_policy_input(cue_policy, &none, Some(pod), None);
            let rego_input = signet::policy::program::cip_policy_input(rego_policy, &none, Some(pod), None);
            cue_denied += usize::from(denies(&cue.evaluate_blocking(&cue_input)));
            rego_denied += usize::from(denies(&rego.evaluate_blocking(&rego_input)));
            for _ in 0..args.warmup {
                black_box(cue.evaluate_blocking(black_box(&cue_input)));
                black_box(rego.evaluate_blocking(black_box(&rego_input)));
            }
            // Alternating, so drift in the machine's load hits both alike.
            for _ in 0..args.iterations {
                cue_us.push(time_us(|| cue.evaluate_blocking(black_box(&cue_input))));
                rego_us.push(time_us(|| rego.evaluate_blocking(black_box(&rego_input))));
            }
        }
        let (cue_us, rego_us) = (sorted(cue_us), sorted(rego_us));
        print_pair_row(
            &format!("`{stem}`"),
            &cue_us,
            &rego_us,
            &format!("{cue_denied} / {rego_denied}"),
        );
        all_cue.extend(cue_us);
        all_rego.extend(rego_us);
    }
    print_pair_row(
        &format!("**all {} checks**", pairs.len()),
        &sorted(all_cue),
        &sorted(all_rego),
        "",
    );
    println!();
    println!(
        "Each evaluation timed alone (`Instant` around `evaluate_blocking`, the call an admission makes on its evaluation thread: input size check, evaluation, verdict and message), {} times per input after {} untimed; compile = `CuePolicy::compile`, {} times per policy. Inputs as the cases give them: statements, `#bodies.` vectors, or Kubernetes resources turned into the CIP-level input (`cip_policy_input`, no authority matches). p99 by nearest rank; µs. Pairs: each Pod gets each policy's own CIP-level input, CUE and Rego alternate. nproc {}; load average before: {}, after: {}.",
        args.iterations,
        args.warmup,
        args.compiles,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    say("done");
    Ok(())
}

fn print_pair_row(label: &str, cue: &[f64], rego: &[f64], denied: &str) {
    let (cue_median, cue_p99) = (percentile(cue, 50.0), percentile(cue, 99.0));
    let (rego_median, rego_p99) = (percentile(rego, 50.0), percentile(rego, 99.0));
    println!(
        "| {label} | {cue_median:.1} | {cue_p99:.1} | {rego_median:.1} | {rego_p99:.1} | {:.2}× | {:.2}× | {denied} |",
        cue_median / rego_median,
        cue_p99 / rego_p99,
    );
}

// ---------------------------------------------------------------------------------------------
// The echo floor

#[derive(serde::Deserialize)]
struct FloorReview {
    #[serde(rename = "apiVersion")]
    api_version: String,
    request: FloorRequest,
}

#[derive(serde::Deserialize)]
struct FloorRequest {
    uid: String,
}

async fn floor(listen: SocketAddr, ca_out: PathBuf) -> Result<()> {
    use axum::routing::post;
    let generated = signet::tls::self_signed(&["localhost".to_string(), "127.0.0.1".to_string()])?;
    std::fs::write(&ca_out, &generated.ca_pem)?;
    let config = axum_server::tls_rustls::RustlsConfig::from_pem(
        generated.cert_pem.into_bytes(),
        generated.key_pem.into_bytes(),
    )
    .await?;
    let app = axum::Router::new()
        .route("/validate", post(echo))
        .route("/mutate", post(echo));
    axum_server::bind_rustls(listen, config)
        .serve(app.into_make_service())
        .await?;
    Ok(())
}

async fn echo(body: axum::body::Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    match serde_json::from_slice::<FloorReview>(&body) {
        Ok(review) => {
            let answer = json!({
                "apiVersion": review.api_version,
                "kind": "AdmissionReview",
                "response": {"uid": review.request.uid, "allowed": true},
            });
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                serde_json::to_vec(&answer).unwrap_or_default(),
            )
                .into_response()
        }
        Err(e) => (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Keys and the registry API

struct Key {
    signing: p256::ecdsa::SigningKey,
}

impl Key {
    fn generate() -> Key {
        loop {
            let mut secret = [0u8; 32];
            aws_lc_rs::rand::fill(&mut secret).expect("random bytes");
            if let Ok(signing) = p256::ecdsa::SigningKey::from_slice(&secret) {
                return Key { signing };
            }
        }
    }

    fn public_pem(&self) -> String {
        let der = self.signing.verifying_key().to_public_key_der().expect("spki");
        pem::encode(&pem::Pem::new("PUBLIC KEY", der.as_bytes().to_vec()))
    }

    /// DER ECDSA over sha256(message), as cosign signs.
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let digest = sha2::Sha256::digest(message);
        let signature: p256::ecdsa::Signature = self.signing.sign_prehash(&digest).expect("sign");
        signature.to_der().as_bytes().to_vec()
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// Pushes images and cosign signatures over the distribution API.
#[derive(Clone)]
struct Pusher {
    http: reqwest::Client,
    base: String,
    host: String,
}

/// Blobs every image of one repository shares.
struct Shared {
    config: (String, usize),
    layer: (String, usize),
    cosign_config: (String, usize),
}

impl Pusher {
    fn new(host: &str) -> Pusher {
        Pusher {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            base: format!("http://{host}"),
            host: host.to_string(),
        }
    }

    async fn push_blob(&self, repo: &str, bytes: &[u8]) -> Result<String> {
        let digest = sha256(bytes);
        let start = self
            .http
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
            .send()
            .await?;
        if start.status().as_u16() != 202 {
            bail!("start upload: {}", start.status());
        }
        let location = start
            .headers()
            .get("location")
            .context("upload without location")?
            .to_str()?
            .to_string();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.base)
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = self
            .http
            .put(format!("{location}{separator}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await?;
        if put.status().as_u16() != 201 {
            bail!("upload blob: {}", put.status());
        }
        Ok(digest)
    }

    async fn put_manifest(&self, repo: &str, reference: &str, bytes: Vec<u8>) -> Result<()> {
        let response = self
            .http
            .put(format!("{}/v2/{repo}/manifests/{reference}", self.base))
            .header("content-type", OCI_MANIFEST)
            .body(bytes)
            .send()
            .await?;
        if response.status().as_u16() != 201 {
            bail!("put manifest {repo}:{reference}: {}", response.status());
        }
        Ok(())
    }

    async fn shared(&self, repo: &str) -> Result<Shared> {
        let config = br#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let layer = b"signet bench layer: not a real tarball, never pulled";
        let cosign_config = br#"{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        Ok(Shared {
            config: (self.push_blob(repo, config).await?, config.len()),
            layer: (self.push_blob(repo, layer).await?, layer.len()),
            cosign_config: (self.push_blob(repo, cosign_config).await?, cosign_config.len()),
        })
    }

    /// One tiny image, distinct by an annotation, pushed under `tag` (or by digest), and
    /// signed in cosign's layout. Returns its digest.
    async fn signed_image(
        &self,
        repo: &str,
        tag: Option<&str>,
        n: usize,
        shared: &Shared,
        key: &Key,
    ) -> Result<String> {
        let digest = self.image(repo, tag, n, shared).await?;
        self.sign(repo, &digest, shared, key).await?;
        Ok(digest)
    }

    /// The same image without a signature. Returns its digest.
    async fn image(&self, repo: &str, tag: Option<&str>, n: usize, shared: &Shared) -> Result<String> {
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": shared.config.1, "digest": shared.config.0},
            "layers": [{"mediaType": OCI_LAYER, "size": shared.layer.1, "digest": shared.layer.0}],
            "annotations": {"dev.signet.bench/n": n.to_string()},
        })
        .to_string()
        .into_bytes();
        let digest = sha256(&manifest);
        self.put_manifest(repo, tag.unwrap_or(&digest), manifest).await?;
        Ok(digest)
    }

    async fn sign(&self, repo: &str, digest: &str, shared: &Shared, key: &Key) -> Result<()> {
        let payload = json!({
            "critical": {
                "identity": {"docker-reference": format!("{}/{repo}", self.host)},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature"
            },
            "optional": null
        })
        .to_string()
        .into_bytes();
        let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&payload));
        let payload_digest = self.push_blob(repo, &payload).await?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": shared.cosign_config.1, "digest": shared.cosign_config.0},
            "layers": [{
                "mediaType": SIMPLESIGNING,
                "size": payload.len(),
                "digest": payload_digest,
                "annotations": {"dev.cosignproject.cosign/signature": signature},
            }],
        })
        .to_string()
        .into_bytes();
        let tag = format!("{}.sig", digest.replacen(':', "-", 1));
        self.put_manifest(repo, &tag, manifest).await
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

fn https_client(ca_pem: &[u8], http1: bool) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem).expect("CA PEM");
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(30));
    if http1 {
        builder = builder.http1_only();
    }
    builder.build().expect("https client")
}

async fn wait_file(path: &Path, deadline: Duration) -> Result<Vec<u8>> {
    let until = Instant::now() + deadline;
    loop {
        match std::fs::read(path) {
            Ok(bytes) if !bytes.is_empty() => return Ok(bytes),
            _ if Instant::now() > until => bail!("{} was not written", path.display()),
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// A running `signet serve` on free loopback ports; killed when dropped.
struct SignetProc {
    child: Child,
    webhook: String,
    admin: String,
    ca_pem: Vec<u8>,
    log: PathBuf,
}

impl SignetProc {
    fn spawn(args: &RunArgs, tag: &str, extra: &[&str]) -> Result<(Child, String, String, PathBuf, PathBuf)> {
        let (webhook_port, admin_port) = (free_port(), free_port());
        let ca_path = args.work.join(format!("signet-{tag}-ca.pem"));
        let log = args.work.join(format!("signet-{tag}.log"));
        let _ = std::fs::remove_file(&ca_path);
        let child = Command::new(&args.signet)
            .arg("serve")
            .arg("--policy-dir")
            .arg(args.work.join("policies"))
            .args(["--listen", &format!("127.0.0.1:{webhook_port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .arg("--tls-ca-out")
            .arg(&ca_path)
            .args(["--insecure-registry", &args.registry])
            .args(["--cache-entries", &args.cache_entries.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("spawn {}", args.signet.display()))?;
        Ok((
            child,
            format!("https://127.0.0.1:{webhook_port}"),
            format!("http://127.0.0.1:{admin_port}"),
            ca_path,
            log,
        ))
    }

    async fn start(args: &RunArgs, tag: &str, extra: &[&str]) -> Result<SignetProc> {
        let (child, webhook, admin, ca_path, log) = SignetProc::spawn(args, tag, extra)?;
        let mut proc = SignetProc {
            child,
            webhook,
            admin,
            ca_pem: Vec::new(),
            log,
        };
        proc.ca_pem = wait_file(&ca_path, Duration::from_secs(20)).await?;
        wait_ready(&reqwest::Client::new(), &proc.admin, Duration::from_secs(20)).await?;
        Ok(proc)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SignetProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_ready(http: &reqwest::Client, admin: &str, deadline: Duration) -> Result<()> {
    let until = Instant::now() + deadline;
    let url = format!("{admin}/readyz");
    loop {
        if let Ok(response) = http.get(&url).send().await
            && response.status().as_u16() == 200
        {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("{url} never answered 200");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A `/proc/PID/status` field in KiB (0 when absent).
fn status_kib(pid: u32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// (VmRSS, VmHWM) in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    (status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---------------------------------------------------------------------------------------------
// Admission requests and load

/// A Pod AdmissionReview for `image`, split around its uid so each request gets its own.
struct ReviewTemplate {
    before: String,
    after: String,
}

impl ReviewTemplate {
    fn pod(image: &str) -> ReviewTemplate {
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "@UID@",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "name": "bench",
                "namespace": "default",
                "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "bench", "namespace": "default", "labels": {"app": "bench"}},
                    "spec": {"containers": [{"name": "app", "image": image}]}
                },
                "oldObject": null,
                "dryRun": false,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
            }
        })
        .to_string();
        let (before, after) = review.split_once("@UID@").expect("uid placeholder");
        ReviewTemplate {
            before: before.to_string(),
            after: after.to_string(),
        }
    }

    fn body(&self, uid: &str) -> String {
        format!("{}{uid}{}", self.before, self.after)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// POSTs one review; Ok(allowed) when signet answered 200 with this uid.
async fn admit(http: &reqwest::Client, url: &str, template: &ReviewTemplate, uid: &str) -> Result<bool> {
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .body(template.body(uid))
        .send()
        .await?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    if status != 200 || !contains(&bytes, uid.as_bytes()) {
        bail!("status {status}: {}", String::from_utf8_lossy(&bytes));
    }
    Ok(contains(&bytes, b"\"allowed\":true"))
}

struct LoadResult {
    requests: usize,
    failures: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl LoadResult {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

fn percentile(sorted: &[f64], pct: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * pct / 100.0).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile(&sorted, 50.0)
}

/// `connections` keep-alive HTTP/1.1 connections, each sending one request after another,
/// until `seconds` or `max_requests`. Each connection first sends 20 untimed requests.
#[derive(Clone, Copy)]
struct Bounds {
    connections: usize,
    seconds: u64,
    max_requests: usize,
}

async fn load(url: &str, ca_pem: &[u8], template: Arc<ReviewTemplate>, bounds: Bounds, label: &str) -> LoadResult {
    let issued = Arc::new(AtomicUsize::new(0));
    let clients: Vec<reqwest::Client> = (0..bounds.connections).map(|_| https_client(ca_pem, true)).collect();
    for (c, client) in clients.iter().enumerate() {
        for i in 0..20 {
            let _ = admit(client, url, &template, &format!("{label}-warm-{c}-{i}")).await;
        }
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(bounds.seconds);
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(c, client)| {
            let (url, template, issued) = (url.to_string(), template.clone(), issued.clone());
            let max = bounds.max_requests;
            let label = label.to_string();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failures = 0;
                while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < max {
                    let uid = format!("{label}-{c}-{}", latencies.len() + failures);
                    let sent = Instant::now();
                    match admit(&client, &url, &template, &uid).await {
                        Ok(true) => latencies.push(sent.elapsed().as_secs_f64() * 1000.0),
                        _ => failures += 1,
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (l, f) = task.await.expect("load task");
        latencies.extend(l);
        failures += f;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    LoadResult {
        requests: latencies.len(),
        failures,
        seconds,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
    }
}

// ---------------------------------------------------------------------------------------------
// The registry's access log

/// Access-log lines (`… "GET /v2/… HTTP/1.1" 200 …`) with `method` and a path containing
/// `path_part`.
fn count_requests(log: &Path, methods: &[&str], path_part: &str) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with("time=") && l.contains(" HTTP/"))
        .filter(|l| methods.iter().any(|m| l.contains(&format!("\"{m} "))))
        .filter(|l| l.contains(path_part))
        .count()
}

/// Counts after the registry has written its lines (it logs after answering): waits until
/// at least `at_least` lines are there (up to 3 s), then a little more for stragglers.
async fn settled_count(log: &Path, methods: &[&str], path_part: &str, at_least: usize) -> usize {
    let until = Instant::now() + Duration::from_secs(3);
    while count_requests(log, methods, path_part) < at_least && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    count_requests(log, methods, path_part)
}

// ---------------------------------------------------------------------------------------------
// Registry round trips measured directly

/// One request's time, the body read included.
async fn timed(request: reqwest::RequestBuilder) -> Result<(f64, reqwest::header::HeaderMap, Vec<u8>)> {
    let started = Instant::now();
    let response = request.send().await?;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await?.to_vec();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if !status.is_success() {
        bail!("registry answered {status}");
    }
    Ok((ms, headers, bytes))
}

/// The three round trips a cold admission of `repo:tag` needs: HEAD the manifest by tag,
/// GET the `.sig` manifest, GET the signature payload blob. Returns their summed time (ms).
async fn registry_round_trips(http: &reqwest::Client, base: &str, repo: &str, tag: &str) -> Result<f64> {
    let accept = signet::registry::MANIFEST_ACCEPT;
    let (head_ms, headers, _) = timed(
        http.head(format!("{base}/v2/{repo}/manifests/{tag}"))
            .header("accept", accept),
    )
    .await?;
    let digest = headers
        .get("docker-content-digest")
        .context("no Docker-Content-Digest")?
        .to_str()?
        .to_string();
    let sig_tag = format!("{}.sig", digest.replacen(':', "-", 1));
    let (sig_ms, _, manifest) = timed(
        http.get(format!("{base}/v2/{repo}/manifests/{sig_tag}"))
            .header("accept", accept),
    )
    .await?;
    let manifest: Value = serde_json::from_slice(&manifest)?;
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .context("no signature layer")?
        .to_string();
    let (blob_ms, _, _) = timed(http.get(format!("{base}/v2/{repo}/blobs/{layer}"))).await?;
    Ok(head_ms + sig_ms + blob_ms)
}

// ---------------------------------------------------------------------------------------------
// Before / after

/// Rounds of the before/after comparison; alternating cancels drift in the machine's load.
const BEFORE_AFTER_ROUNDS: usize = 3;

/// Requests/s of `bounds` warm load on a `baseline` signet and on the running one (`current`:
/// its URL and CA), alternating rounds.
async fn before_after(
    args: &RunArgs,
    baseline: &Path,
    current: (&str, &[u8]),
    template: &Arc<ReviewTemplate>,
    bounds: Bounds,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut other = args.clone();
    other.signet = baseline.to_path_buf();
    let old = SignetProc::start(&other, "baseline", &[]).await?;
    let old_url = format!("{}/validate?timeout=10s", old.webhook);
    if !admit(&https_client(&old.ca_pem, true), &old_url, template, "first").await? {
        bail!("the baseline signet denied the warm image");
    }
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for round in 0..BEFORE_AFTER_ROUNDS {
        let label = format!("baseline-{round}");
        before.push(
            load(&old_url, &old.ca_pem, template.clone(), bounds, &label)
                .await
                .rps(),
        );
        let label = format!("current-{round}");
        after.push(load(current.0, current.1, template.clone(), bounds, &label).await.rps());
    }
    Ok((before, after))
}

fn rates(values: &[f64]) -> String {
    values.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------------------------
// The run

fn key_policy(registry: &str, key: &Key) -> String {
    let indented: String = key.public_pem().lines().map(|l| format!("        {l}\n")).collect();
    format!(
        "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: bench-key\nspec:\n  images:\n  - glob: \"{registry}/bench/**\"\n  authorities:\n  - name: bench-key\n    key:\n      data: |\n{indented}"
    )
}

fn say(message: impl AsRef<str>) {
    eprintln!("[bench {:>7.1}s] {}", elapsed_total(), message.as_ref());
}

fn elapsed_total() -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

async fn run(args: RunArgs) -> Result<()> {
    elapsed_total();
    std::fs::create_dir_all(args.work.join("policies"))?;
    let key = Key::generate();
    std::fs::write(args.work.join("policies/bench.yaml"), key_policy(&args.registry, &key))?;
    let pusher = Pusher::new(&args.registry);
    let base = format!("http://{}", args.registry);
    let host = args.registry.clone();
    let key = Arc::new(key);

    // --- Seeding: warm, cold, burst images, then the many digests.
    say("seeding images and signatures");
    let warm_shared = pusher.shared("bench/warm").await?;
    pusher
        .signed_image("bench/warm", Some("v1"), 0, &warm_shared, &key)
        .await?;
    let cold_shared = pusher.shared("bench/cold").await?;
    for i in 0..args.cold {
        pusher
            .signed_image("bench/cold", Some(&format!("c{i}")), i, &cold_shared, &key)
            .await?;
    }
    let burst_shared = pusher.shared("bench/burst").await?;
    let burst_digest = pusher
        .signed_image("bench/burst", Some("v1"), 0, &burst_shared, &key)
        .await?;
    let many_shared = Arc::new(pusher.shared("bench/many").await?);
    let seed_started = Instant::now();
    let seeded: Vec<Result<String>> = futures::stream::iter(0..args.many)
        .map(|i| {
            let (pusher, shared, key) = (pusher.clone(), many_shared.clone(), key.clone());
            async move { pusher.signed_image("bench/many", None, i, &shared, &key).await }
        })
        .buffer_unordered(args.seed_concurrency)
        .collect()
        .await;
    let many_digests: Vec<String> = seeded.into_iter().collect::<Result<_>>()?;
    let seed_seconds = seed_started.elapsed().as_secs_f64();
    say(format!(
        "seeded {} signed images in {seed_seconds:.1} s ({:.0} images/s, 4 registry requests each)",
        args.many,
        args.many as f64 / seed_seconds
    ));

    // --- Warm: signet and the floor under the same load.
    let signet = SignetProc::start(&args, "main", &[]).await?;
    let warm_image = format!("{host}/bench/warm:v1");
    let warm_template = Arc::new(ReviewTemplate::pod(&warm_image));
    let client = https_client(&signet.ca_pem, true);
    let validate = format!("{}/validate?timeout=10s", signet.webhook);
    if !admit(&client, &validate, &warm_template, "first").await? {
        bail!(
            "the warm image was denied; signet log:\n{}",
            std::fs::read_to_string(&signet.log).unwrap_or_default()
        );
    }

    let floor_port = free_port();
    let floor_ca = args.work.join("floor-ca.pem");
    let _ = std::fs::remove_file(&floor_ca);
    let mut floor_child = Command::new(std::env::current_exe()?)
        .args(["floor", "--listen", &format!("127.0.0.1:{floor_port}"), "--ca-out"])
        .arg(&floor_ca)
        .stdin(Stdio::null())
        .spawn()?;
    let floor_ca_pem = wait_file(&floor_ca, Duration::from_secs(10)).await?;
    let floor_url = format!("https://127.0.0.1:{floor_port}/validate?timeout=10s");
    let many = Bounds {
        connections: args.connections,
        seconds: args.seconds,
        max_requests: args.max_requests,
    };
    let one = Bounds {
        connections: 1,
        seconds: 2,
        max_requests: 5_000,
    };
    say("warm load: floor");
    let floor_load = load(&floor_url, &floor_ca_pem, warm_template.clone(), many, "floor").await;
    let floor_one = load(&floor_url, &floor_ca_pem, warm_template.clone(), one, "floor1").await;
    let _ = floor_child.kill();
    let _ = floor_child.wait();
    say("warm load: signet");
    let warm_heads_before = count_requests(&args.registry_log, &["HEAD"], "/v2/bench/warm/");
    let signet_load = load(&validate, &signet.ca_pem, warm_template.clone(), many, "signet").await;
    let signet_one = load(&validate, &signet.ca_pem, warm_template.clone(), one, "signet1").await;
    let warm_heads = count_requests(&args.registry_log, &["HEAD"], "/v2/bench/warm/") - warm_heads_before;
    let before_after = match &args.baseline_signet {
        Some(binary) => {
            say("warm load: baseline and this signet, alternating");
            let target = (validate.as_str(), signet.ca_pem.as_slice());
            Some(before_after(&args, binary, target, &warm_template, many).await?)
        }
        None => None,
    };

    // --- Cold: never-seen tags, one at a time, next to the registry round trips.
    say("cold admissions");
    let direct = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    direct.get(format!("{base}/v2/")).send().await?;
    let cold_before = count_requests(&args.registry_log, &["HEAD", "GET"], "/v2/bench/cold/");
    let mut cold_ms = Vec::new();
    let mut round_trip_ms = Vec::new();
    let mut cold_denied = 0;
    for i in 0..args.cold {
        let template = ReviewTemplate::pod(&format!("{host}/bench/cold:c{i}"));
        let mut signet_once = async || -> Result<()> {
            let started = Instant::now();
            let allowed = admit(&client, &validate, &template, &format!("cold-{i}")).await?;
            cold_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            if !allowed {
                cold_denied += 1;
            }
            Ok(())
        };
        // Alternate who goes first, so neither always meets the registry's warmer caches.
        if i % 2 == 0 {
            signet_once().await?;
            round_trip_ms.push(registry_round_trips(&direct, &base, "bench/cold", &format!("c{i}")).await?);
        } else {
            round_trip_ms.push(registry_round_trips(&direct, &base, "bench/cold", &format!("c{i}")).await?);
            signet_once().await?;
        }
    }
    let cold_after = settled_count(
        &args.registry_log,
        &["HEAD", "GET"],
        "/v2/bench/cold/",
        cold_before + 6 * args.cold,
    )
    .await;
    let signet_cold_requests = (cold_after - cold_before).saturating_sub(3 * args.cold) as f64 / args.cold as f64;

    // --- Burst: concurrent admissions of one never-seen image.
    say(format!("burst of {} admissions", args.burst));
    let burst_path = "/v2/bench/burst/";
    let burst_before = count_requests(&args.registry_log, &["HEAD", "GET"], burst_path);
    let burst_template = Arc::new(ReviewTemplate::pod(&format!("{host}/bench/burst:v1")));
    let burst_client = https_client(&signet.ca_pem, true);
    let burst_started = Instant::now();
    let burst_results: Vec<Result<bool>> = futures::future::join_all((0..args.burst).map(|i| {
        let (client, template, url) = (burst_client.clone(), burst_template.clone(), validate.clone());
        async move { admit(&client, &url, &template, &format!("burst-{i}")).await }
    }))
    .await;
    let burst_seconds = burst_started.elapsed().as_secs_f64();
    let burst_allowed = burst_results.iter().filter(|r| matches!(r, Ok(true))).count();
    let burst_after = settled_count(&args.registry_log, &["HEAD", "GET"], burst_path, burst_before + 1).await;
    let burst_requests = burst_after - burst_before;
    let (main_rss, main_hwm) = rss_kib(signet.pid());
    drop(signet);

    // --- The same warm load on a signet that logs only warnings: logging's share.
    say("warm load: signet --log-level warn");
    let quiet = SignetProc::start(&args, "quiet", &["--log-level", "warn"]).await?;
    let quiet_url = format!("{}/validate?timeout=10s", quiet.webhook);
    admit(&https_client(&quiet.ca_pem, true), &quiet_url, &warm_template, "first").await?;
    let quiet_load = load(&quiet_url, &quiet.ca_pem, warm_template.clone(), many, "quiet").await;
    drop(quiet);

    // --- Time to ready.
    say("time to ready");
    let mut ready_ms = Vec::new();
    let poll = reqwest::Client::new();
    for n in 0..args.starts {
        let started = Instant::now();
        let (mut child, _, admin, _, _) = SignetProc::spawn(&args, &format!("ready-{n}"), &[])?;
        let ready = wait_ready(&poll, &admin, Duration::from_secs(20)).await;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        let _ = child.kill();
        let _ = child.wait();
        ready?;
        ready_ms.push(elapsed);
    }

    // --- RSS: idle, then after admitting every seeded digest once.
    say("RSS idle, then admitting the many digests");
    let signet = SignetProc::start(&args, "rss", &["--signature-ttl-seconds", RSS_TTL]).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_rss, _) = rss_kib(signet.pid());
    // Most of an idle RSS is the binary's own pages (file-backed, shared with the page cache
    // and reclaimable); the private heap is RssAnon.
    let (idle_anon, idle_file) = (
        status_kib(signet.pid(), "RssAnon:"),
        status_kib(signet.pid(), "RssFile:"),
    );
    let many_client = https_client(&signet.ca_pem, true);
    let many_url = format!("{}/validate?timeout=10s", signet.webhook);
    let many_before = count_requests(&args.registry_log, &["HEAD"], "/v2/bench/many/");
    let admit_started = Instant::now();
    let admitted: Vec<Result<bool>> = futures::stream::iter(many_digests.iter().enumerate())
        .map(|(i, digest)| {
            let (client, url) = (many_client.clone(), many_url.clone());
            let template = ReviewTemplate::pod(&format!("{host}/bench/many@{digest}"));
            async move { admit(&client, &url, &template, &format!("many-{i}")).await }
        })
        .buffer_unordered(args.admit_concurrency)
        .collect()
        .await;
    let admit_seconds = admit_started.elapsed().as_secs_f64();
    let many_allowed = admitted.iter().filter(|r| matches!(r, Ok(true))).count();
    let many_heads = count_requests(&args.registry_log, &["HEAD"], "/v2/bench/many/") - many_before;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (after_rss, after_hwm) = rss_kib(signet.pid());
    drop(signet);

    // --- The table.
    let ratio_warm = signet_load.rps() / floor_load.rps();
    let cold_median = median(&cold_ms);
    let rt_median = median(&round_trip_ms);
    let cold_ratio = cold_median / rt_median;
    let mut cold_sorted = cold_ms.clone();
    cold_sorted.sort_by(f64::total_cmp);
    let mut rt_sorted = round_trip_ms.clone();
    rt_sorted.sort_by(f64::total_cmp);
    let ready_median = median(&ready_ms);
    let idle_mib = mib(idle_rss);
    let after_mib = mib(after_rss);

    let mut rows: Vec<[String; 6]> = Vec::new();
    rows.push([
        format!("warm throughput, {} conns", args.connections),
        format!("{:.0} req/s", signet_load.rps()),
        format!("floor {:.0} req/s", floor_load.rps()),
        format!("{ratio_warm:.2}×"),
        "≥ 0.80× floor".into(),
        verdict(ratio_warm >= 0.8).into(),
    ]);
    rows.push([
        format!("warm latency p50 / p99, {} conns", args.connections),
        format!("{:.2} / {:.2} ms", signet_load.p50_ms, signet_load.p99_ms),
        format!("floor {:.2} / {:.2} ms", floor_load.p50_ms, floor_load.p99_ms),
        format!("{:.2}× (p99)", signet_load.p99_ms / floor_load.p99_ms),
        "p99 < 2 ms".into(),
        verdict(signet_load.p99_ms < 2.0).into(),
    ]);
    rows.push([
        "warm latency p50 / p99, 1 conn (no queueing)".into(),
        format!("{:.2} / {:.2} ms", signet_one.p50_ms, signet_one.p99_ms),
        format!("floor {:.2} / {:.2} ms", floor_one.p50_ms, floor_one.p99_ms),
        format!("{:.2}× (p99)", signet_one.p99_ms / floor_one.p99_ms),
        "p99 < 2 ms".into(),
        verdict(signet_one.p99_ms < 2.0).into(),
    ]);
    rows.push([
        format!("cold admission by tag, median of {}", args.cold),
        format!("{cold_median:.2} ms"),
        format!("registry round trips {rt_median:.2} ms"),
        format!("{cold_ratio:.2}×"),
        "≤ 1.30×".into(),
        verdict(cold_ratio <= 1.3).into(),
    ]);
    rows.push([
        format!("burst: {} concurrent admissions of one new image", args.burst),
        format!("{burst_requests} registry requests"),
        String::new(),
        String::new(),
        "≤ 5".into(),
        verdict(burst_requests <= 5 && burst_allowed == args.burst).into(),
    ]);
    rows.push([
        "RSS idle (1 s after ready)".into(),
        format!(
            "{idle_mib:.1} MiB (private {:.1}, binary and libraries {:.1})",
            mib(idle_anon),
            mib(idle_file)
        ),
        String::new(),
        String::new(),
        "< 20 MiB".into(),
        verdict(idle_mib < 20.0).into(),
    ]);
    rows.push([
        format!("RSS after {} distinct digests", args.many),
        format!("{after_mib:.1} MiB"),
        String::new(),
        String::new(),
        "< 100 MiB".into(),
        verdict(after_mib < 100.0 && many_allowed == args.many).into(),
    ]);
    rows.push([
        format!("time to ready, median of {}", args.starts),
        format!("{:.0} ms", ready_median),
        String::new(),
        String::new(),
        "< 500 ms".into(),
        verdict(ready_median < 500.0).into(),
    ]);

    println!("| figure | signet | reference | ratio | target | result |");
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        println!("| {} |", row.join(" | "));
    }
    println!();
    println!("Details:");
    println!();
    let details = BTreeMap::from([
        (
            "1 warm",
            format!(
                "`POST /validate?timeout=10s`, Pod with `{warm_image}` (key policy, verified once before), {} keep-alive HTTP/1.1 connections over TLS, each sending back to back after 20 untimed requests; bounded by {} s or {} requests. signet: {} requests in {:.2} s, {} failed; floor: {} requests in {:.2} s, {} failed. The 1-connection rows: one connection for 2 s or 5000 requests (signet {} requests, {:.0} req/s; floor {}, {:.0} req/s). The tag's digest is cached for 10 s, so signet re-resolved it {warm_heads} time(s) (HEADs in the access log) during its runs; those admissions are included. Same 16-connection load on a signet started with `--log-level warn` (no per-admission log line): {:.0} req/s ({:.2}× floor), p50 / p99 {:.2} / {:.2} ms.",
                args.connections,
                args.seconds,
                args.max_requests,
                signet_load.requests,
                signet_load.seconds,
                signet_load.failures,
                floor_load.requests,
                floor_load.seconds,
                floor_load.failures,
                signet_one.requests,
                signet_one.rps(),
                floor_one.requests,
                floor_one.rps(),
                quiet_load.rps(),
                quiet_load.rps() / floor_load.rps(),
                quiet_load.p50_ms,
                quiet_load.p99_ms,
            ),
        ),
        (
            "2 cold",
            format!(
                "{} never-seen tags `{host}/bench/cold:cN`, admitted one at a time on a keep-alive connection. signet p90 {:.2} ms, max {:.2} ms; registry round trips (HEAD manifest by tag + GET `.sig` manifest + GET payload blob, timed by this tool on a keep-alive connection) p90 {:.2} ms, max {:.2} ms. Registry requests per cold admission counted in the access log: {signet_cold_requests:.2}. Denied: {cold_denied}. Cold median minus the warm 1-connection p50 (what a cold admission adds to a cached one): {:.2} ms, {:.2}× the round-trip sum.",
                args.cold,
                percentile(&cold_sorted, 90.0),
                cold_sorted.last().copied().unwrap_or(f64::NAN),
                percentile(&rt_sorted, 90.0),
                rt_sorted.last().copied().unwrap_or(f64::NAN),
                cold_median - signet_one.p50_ms,
                (cold_median - signet_one.p50_ms) / rt_median,
            ),
        ),
        (
            "3 burst",
            format!(
                "`{host}/bench/burst:v1` (digest {burst_digest}), {} admissions sent at once (HTTP/1.1, one connection each); {burst_allowed} allowed, answered in {burst_seconds:.2} s; registry requests = access-log lines with `\"HEAD ` or `\"GET ` on `/v2/bench/burst/` after minus before. signet RSS after warm, cold and burst: {:.1} MiB (peak {:.1} MiB).",
                args.burst,
                mib(main_rss),
                mib(main_hwm)
            ),
        ),
        (
            "4 rss",
            format!(
                "VmRSS from `/proc/PID/status` of a fresh `signet serve` with `--cache-entries {}` and `--signature-ttl-seconds {RSS_TTL}` (instead of the 60 s default, so that every admitted digest is still cached when RSS is read). {} images seeded (shared config and layer, distinct manifest by annotation, each cosign-signed) in {seed_seconds:.1} s; admitted once each by digest (`{host}/bench/many@sha256:…`) with {} concurrent requests in {admit_seconds:.1} s ({:.0} admissions/s), {many_allowed} allowed, {many_heads} tag lookups. After: VmRSS {after_mib:.1} MiB, peak (VmHWM) {:.1} MiB.",
                args.cache_entries,
                args.many,
                args.admit_concurrency,
                args.many as f64 / admit_seconds,
                mib(after_hwm)
            ),
        ),
        (
            "5 ready",
            format!(
                "spawn of `signet serve --policy-dir …` to the first 200 of `GET /readyz` (polled every 2 ms), {} starts: {}.",
                args.starts,
                ready_ms
                    .iter()
                    .map(|ms| format!("{ms:.0} ms"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    ]);
    for (name, text) in details {
        println!("- **{}**: {text}", &name[2..]);
    }
    if let (Some(binary), Some((baseline, current))) = (&args.baseline_signet, before_after) {
        println!(
            "- **before / after**: the same {}-connection warm load, alternating {BEFORE_AFTER_ROUNDS} rounds between `{}` (baseline) and this signet, both running at once: baseline {} req/s (median {:.0}), this signet {} req/s (median {:.0}).",
            args.connections,
            binary.display(),
            rates(&baseline),
            median(&baseline),
            rates(&current),
            median(&current),
        );
    }
    say("done");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The soak

/// Samples of the soak's RSS series.
struct Sample {
    seconds: f64,
    rss_kib: u64,
    served: usize,
}

#[derive(Default)]
struct SoakCounters {
    issued: AtomicUsize,
    served: AtomicUsize,
    denied: AtomicUsize,
    errors: AtomicUsize,
}

/// Where the soak sends its requests and what it sends.
struct SoakTarget {
    validate: String,
    mutate: String,
    ca_pem: Vec<u8>,
    signed: Vec<ReviewTemplate>,
    unsigned: ReviewTemplate,
}

impl SoakTarget {
    /// A connection's `i`-th request and whether it must be allowed: validations spread over
    /// the signed tags, every other one a mutation (the patch path), one in 16 an unsigned
    /// image (the denial path).
    fn request(&self, connection: usize, i: usize) -> (&str, &ReviewTemplate, bool) {
        if i % 16 == 15 {
            return (&self.validate, &self.unsigned, false);
        }
        let template = &self.signed[(connection + i) % self.signed.len()];
        if i % 2 == 1 {
            (&self.mutate, template, true)
        } else {
            (&self.validate, template, true)
        }
    }
}

/// One keep-alive connection sending back to back until `deadline` or the shared request
/// bound. Returns the first error it saw, if any.
async fn soak_connection(
    target: Arc<SoakTarget>,
    counters: Arc<SoakCounters>,
    connection: usize,
    deadline: Instant,
    max_requests: usize,
) -> Option<String> {
    let client = https_client(&target.ca_pem, true);
    let mut first_error = None;
    let mut i = 0;
    while Instant::now() < deadline && counters.issued.fetch_add(1, Ordering::Relaxed) < max_requests {
        let uid = format!("soak-{connection}-{i}");
        let (url, template, expected) = target.request(connection, i);
        let outcome = match admit(&client, url, template, &uid).await {
            Ok(allowed) if allowed == expected => Ok(allowed),
            Ok(allowed) => Err(format!("{uid}: allowed {allowed}, expected {expected}")),
            Err(e) => Err(format!("{uid}: {e:#}")),
        };
        match outcome {
            Ok(allowed) => {
                counters.served.fetch_add(1, Ordering::Relaxed);
                if !allowed {
                    counters.denied.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                first_error.get_or_insert(e);
            }
        }
        i += 1;
    }
    first_error
}

/// VmRSS of `pid` once a second until `done`, then once more.
async fn sample_rss(
    pid: u32,
    counters: Arc<SoakCounters>,
    started: Instant,
    done: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let finished = done.load(Ordering::Relaxed);
        samples.push(Sample {
            seconds: started.elapsed().as_secs_f64(),
            rss_kib: rss_kib(pid).0,
            served: counters.served.load(Ordering::Relaxed),
        });
        if finished {
            return samples;
        }
        let rss = samples.last().map_or(0, |s| s.rss_kib);
        say(format!(
            "soak {:>5.1} s: VmRSS {:.1} MiB",
            started.elapsed().as_secs_f64(),
            mib(rss)
        ));
    }
}

/// Least-squares slope of RSS over time, MiB per minute.
fn trend_mib_per_minute(samples: &[&Sample]) -> f64 {
    let n = samples.len() as f64;
    let mean_t = samples.iter().map(|s| s.seconds).sum::<f64>() / n;
    let mean_r = samples.iter().map(|s| mib(s.rss_kib)).sum::<f64>() / n;
    let covariance: f64 = samples
        .iter()
        .map(|s| (s.seconds - mean_t) * (mib(s.rss_kib) - mean_r))
        .sum();
    let variance: f64 = samples.iter().map(|s| (s.seconds - mean_t).powi(2)).sum();
    covariance / variance * 60.0
}

/// Seeds `images` signed tags and one unsigned tag in `bench/soak`; writes the policy.
async fn seed_soak(args: &SoakArgs) -> Result<SoakTarget> {
    std::fs::create_dir_all(args.work.join("policies"))?;
    let key = Key::generate();
    std::fs::write(args.work.join("policies/bench.yaml"), key_policy(&args.registry, &key))?;
    let pusher = Pusher::new(&args.registry);
    let shared = pusher.shared("bench/soak").await?;
    let mut signed = Vec::new();
    for n in 0..args.images {
        let tag = format!("s{n}");
        pusher.signed_image("bench/soak", Some(&tag), n, &shared, &key).await?;
        signed.push(ReviewTemplate::pod(&format!("{}/bench/soak:{tag}", args.registry)));
    }
    pusher
        .image("bench/soak", Some("unsigned"), args.images, &shared)
        .await?;
    Ok(SoakTarget {
        validate: String::new(),
        mutate: String::new(),
        ca_pem: Vec::new(),
        signed,
        unsigned: ReviewTemplate::pod(&format!("{}/bench/soak:unsigned", args.registry)),
    })
}

impl SoakArgs {
    /// The `run` arguments `SignetProc` starts signet with (the measurement counts unused).
    fn as_run_args(&self) -> RunArgs {
        RunArgs {
            signet: self.signet.clone(),
            registry: self.registry.clone(),
            registry_log: self.registry_log.clone(),
            work: self.work.clone(),
            connections: self.connections,
            seconds: self.seconds,
            max_requests: self.max_requests,
            cold: 0,
            burst: 0,
            many: 0,
            seed_concurrency: 1,
            admit_concurrency: 1,
            starts: 0,
            cache_entries: 10_000,
            baseline_signet: None,
        }
    }
}

async fn soak(args: SoakArgs) -> Result<()> {
    elapsed_total();
    let seconds = args.seconds.min(600);
    if args.warmup_seconds >= seconds || args.images == 0 || args.connections == 0 {
        bail!("need --warmup-seconds < --seconds (at most 600), --images > 0 and --connections > 0");
    }
    say("seeding the soak images");
    let mut target = seed_soak(&args).await?;
    let signet = SignetProc::start(&args.as_run_args(), "soak", &[]).await?;
    target.validate = format!("{}/validate?timeout=10s", signet.webhook);
    target.mutate = format!("{}/mutate?timeout=10s", signet.webhook);
    target.ca_pem = signet.ca_pem.clone();
    let target = Arc::new(target);
    let (url, template, _) = target.request(0, 0);
    if !admit(&https_client(&target.ca_pem, true), url, template, "first").await? {
        bail!(
            "the soak image was denied; signet log:\n{}",
            std::fs::read_to_string(&signet.log).unwrap_or_default()
        );
    }
    let registry_before = count_requests(&args.registry_log, &["HEAD", "GET"], "/v2/bench/soak/");
    say(format!(
        "soak: {} connections for {seconds} s or {} requests",
        args.connections, args.max_requests
    ));
    let counters = Arc::new(SoakCounters::default());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let sampler = tokio::spawn(sample_rss(signet.pid(), counters.clone(), started, done.clone()));
    let connections: Vec<_> = (0..args.connections)
        .map(|c| {
            let (target, counters) = (target.clone(), counters.clone());
            tokio::spawn(soak_connection(target, counters, c, deadline, args.max_requests))
        })
        .collect();
    let mut first_error = None;
    for connection in connections {
        if let Some(e) = connection.await? {
            first_error.get_or_insert(e);
        }
    }
    let load_seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let samples = sampler.await?;
    let (_, hwm) = rss_kib(signet.pid());
    let registry_requests = count_requests(&args.registry_log, &["HEAD", "GET"], "/v2/bench/soak/") - registry_before;
    drop(signet);
    let report = SoakReport {
        samples,
        warmup_seconds: args.warmup_seconds as f64,
        load_seconds,
        hwm_kib: hwm,
        served: counters.served.load(Ordering::Relaxed),
        denied: counters.denied.load(Ordering::Relaxed),
        errors: counters.errors.load(Ordering::Relaxed),
        first_error,
        registry_requests,
    };
    report.print(&args, seconds)?;
    say("done");
    Ok(())
}

struct SoakReport {
    samples: Vec<Sample>,
    warmup_seconds: f64,
    load_seconds: f64,
    hwm_kib: u64,
    served: usize,
    denied: usize,
    errors: usize,
    first_error: Option<String>,
    registry_requests: usize,
}

impl SoakReport {
    fn print(&self, args: &SoakArgs, seconds: u64) -> Result<()> {
        let after: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.seconds >= self.warmup_seconds)
            .collect();
        let (Some(warm), Some(end)) = (after.first(), self.samples.last()) else {
            bail!("the load ended before the warm-up did: no RSS sample after it");
        };
        let peak = after.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        let growth = end.rss_kib as f64 / warm.rss_kib as f64;
        let trend = trend_mib_per_minute(&after);
        println!("| figure | value | target | result |");
        println!("|---|---|---|---|");
        println!(
            "| VmRSS after warm-up (t = {:.1} s) | {:.1} MiB | | |",
            warm.seconds,
            mib(warm.rss_kib)
        );
        println!(
            "| VmRSS at the end (t = {:.1} s) | {:.1} MiB | | |",
            end.seconds,
            mib(end.rss_kib)
        );
        println!(
            "| growth, end / after warm-up | {growth:.3}× | ≤ 2× | {} |",
            verdict(growth <= 2.0)
        );
        println!(
            "| highest VmRSS after warm-up | {:.1} MiB ({:.3}×); VmHWM {:.1} MiB | | |",
            mib(peak),
            peak as f64 / warm.rss_kib as f64,
            mib(self.hwm_kib)
        );
        println!("| trend after warm-up (least squares) | {trend:+.2} MiB/min | | |");
        println!(
            "| requests answered as expected | {} in {:.1} s ({:.0} req/s), {} of them denials | | |",
            self.served,
            self.load_seconds,
            self.served as f64 / self.load_seconds,
            self.denied
        );
        println!(
            "| errors (failed, or the wrong verdict) | {} | 0 | {} |",
            self.errors,
            verdict(self.errors == 0)
        );
        println!();
        println!(
            "Load: {} keep-alive HTTP/1.1 connections over TLS to one `signet serve` (defaults: `--cache-entries 10000`, signature TTL 60 s, tag digest TTL 10 s), each sending back to back for {seconds} s or until {} requests in all: Pod AdmissionReviews over {} signed tags `{}/bench/soak:sN` (key policy), every other request to `/mutate` (JSON patch) instead of `/validate`, one in 16 an unsigned tag that must be denied; fresh uid per request. VmRSS from `/proc/PID/status` once a second; growth is measured from the first sample at or after {:.0} s. Registry requests during the load (access log): {}.{}",
            args.connections,
            args.max_requests,
            args.images,
            args.registry,
            self.warmup_seconds,
            self.registry_requests,
            self.first_error
                .as_ref()
                .map(|e| format!(" First error: `{e}`."))
                .unwrap_or_default()
        );
        println!();
        println!("<details><summary>VmRSS every second</summary>");
        println!();
        println!("| t (s) | VmRSS (MiB) | requests answered |");
        println!("|---|---|---|");
        for s in &self.samples {
            println!("| {:.1} | {:.1} | {} |", s.seconds, mib(s.rss_kib), s.served);
        }
        println!();
        println!("</details>");
        Ok(())
    }
}
