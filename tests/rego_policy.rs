//! Rego policies: policy-controller's fixture policies load (or are rejected for CUE with a
//! clear reason), and a CIP-level `spec.policy` decides admission end to end over HTTPS.

mod signet_server;
mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use signet::api::{Document, parse_documents};
use signet::policy::snapshot::PolicySnapshot;
use signet_server::{Signet, assert_denied, decide, key_policy, policy_dir, review_for};
use support::{Registry, SignOptions, TestKey, build_image, build_multiarch_index, require_tools, sign_image};

fn fixture_dir() -> Option<PathBuf> {
    let root = std::env::var_os("SIGNET_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"));
    let dir = root.join("policy-controller");
    if dir.is_dir() {
        return Some(dir);
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(!in_ci, "fixtures not found at {} (CI=true)", dir.display());
    eprintln!("skipping: fixtures not found at {}", dir.display());
    None
}

/// The fixtures with attestation, Rego, SBOM or fetched policies.
fn policy_fixtures(dir: &Path) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("read fixtures")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|name| {
            ["attestations", "rego", "sbom", "policy-from"]
                .iter()
                .any(|w| name.contains(w))
        })
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(&name)).expect("read fixture");
            (name, text)
        })
        .collect();
    found.sort();
    found
}

fn snapshot(name: &str, text: &str) -> PolicySnapshot {
    let policies = parse_documents(text)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .into_iter()
        .filter_map(|d| match d {
            Document::Policy(p) => Some(p),
            _ => None,
        });
    PolicySnapshot::build(policies)
}

/// Every fixture policy is CUE: each is rejected at load time naming the CUE policy's field,
/// never half-enforced. The same policies with the CUE replaced by Rego compile, and their
/// predicate types are URIs (short names with a deprecation warning).
#[test]
fn fixture_policies_load_or_are_rejected_for_cue() {
    let Some(dir) = fixture_dir() else { return };
    let fixtures = policy_fixtures(&dir);
    assert!(fixtures.len() >= 8, "{fixtures:?}");
    for (name, text) in &fixtures {
        let loaded = snapshot(name, text);
        assert!(loaded.policies.is_empty(), "{name}: a CUE policy was enforced");
        for rejected in &loaded.rejected {
            assert!(
                rejected.error.contains("policy: CUE policies are not supported"),
                "{name}: {}",
                rejected.error
            );
        }
        let rego = text
            .replace("type: cue", "type: rego")
            .replace("type: \"cue\"", "type: rego");
        let rego = replace_policy_bodies(&rego);
        let loaded = snapshot(name, &rego);
        assert!(loaded.rejected.is_empty(), "{name}: {:?}", loaded.rejected);
        for policy in &loaded.policies {
            for authority in &policy.authorities {
                for attestation in &authority.attestations {
                    assert!(
                        attestation.predicate_type.starts_with("https://"),
                        "{name}: {attestation:?}"
                    );
                    assert!(attestation.program.is_some(), "{name}");
                }
            }
            let short_names = text.contains("predicateType: spdxjson");
            assert_eq!(
                policy.warnings.iter().any(|w| w.contains("deprecated")),
                short_names,
                "{name}"
            );
        }
    }
}

/// Replaces each `data: |` block (the CUE text) by a Rego policy with the same indentation.
fn replace_policy_bodies(text: &str) -> String {
    let mut out = Vec::new();
    let mut skipping: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(body) = skipping {
            if line.trim().is_empty() || indent >= body {
                continue;
            }
            skipping = None;
        }
        out.push(line.to_string());
        if is_policy_data(line, &out) {
            let pad = " ".repeat(indent + 2);
            out.push(format!("{pad}package sigstore"));
            out.push(format!("{pad}isCompliant = true"));
            skipping = Some(indent + 2);
        }
    }
    out.join("\n") + "\n"
}

/// A `data: |` under a `policy:` (not a key's PEM data).
fn is_policy_data(line: &str, previous: &[String]) -> bool {
    line.trim() == "data: |"
        && previous
            .iter()
            .rev()
            .skip(1)
            .find(|l| !l.trim().is_empty())
            .is_some_and(|l| l.trim().starts_with("type:") || l.trim().starts_with("fetchConfigFile"))
}

/// A keyed authority and a Rego `spec.policy` over the pod's metadata: a signed image in a
/// pod that carries the required label is admitted; in a pod without it, denied with the
/// policy's own error text; an unsigned image never reaches the policy.
#[tokio::test]
async fn rego_spec_policy_decides_over_https() {
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    let key = TestKey::generate();
    let digest = build_image(&registry, "demo/app", "v1", "app v1");
    sign_image(&registry, "demo/app", &digest, &key, &SignOptions::default()).await;
    build_image(&registry, "demo/unsigned", "v1", "unsigned");
    let rego = [
        "package sigstore",
        "isCompliant[r] {",
        "  count(input.authorityMatches[\"release-key\"].signatures) > 0",
        "  approved := object.get(input.metadata.labels, \"approved\", \"no\")",
        "  r := {\"result\": approved == \"true\", \"error\": sprintf(\"pod %s lacks the label approved=true\", [input.metadata.name]), \"warning\": \"audited\"}",
        "}",
    ];
    let rego: String = rego.iter().map(|l| format!("      {l}\n")).collect();
    let mut policy = key_policy("approved-only", "**", &key.public_pem(), "");
    policy.push_str(&format!(
        "  policy:\n    type: rego\n    includeObjectMeta: true\n    data: |\n{rego}"
    ));
    let dir = policy_dir(&[&policy]);
    let signet = Signet::start(dir.path(), &["--insecure-registry", &registry.host()]).await;
    let image = format!("{}/demo/app:v1", registry.host());

    let approved = signet
        .review("validate", &pod("approved-pod", &image, json!({"approved": "true"})))
        .await;
    assert_eq!(approved["allowed"], true, "{approved}");
    let warnings = approved["warnings"].to_string();
    assert!(warnings.contains("spec.policy: audited"), "{approved}");

    let unapproved = signet.review("validate", &pod("plain-pod", &image, json!({}))).await;
    assert_eq!(unapproved["allowed"], false, "{unapproved}");
    let message = unapproved["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("pod plain-pod lacks the label approved=true"),
        "{message}"
    );
    assert!(
        message.contains("policy \"approved-only\" failed: spec.policy:"),
        "{message}"
    );

    let unsigned = format!("{}/demo/unsigned:v1", registry.host());
    let unsigned = signet
        .review("validate", &pod("approved-pod", &unsigned, json!({"approved": "true"})))
        .await;
    assert_eq!(unsigned["allowed"], false, "{unsigned}");
    let message = unsigned["status"]["message"].as_str().unwrap_or_default();
    assert!(
        !message.contains("spec.policy"),
        "the policy needs a passing authority: {message}"
    );
}

fn pod(name: &str, image: &str, labels: Value) -> Value {
    review_for(
        "uid-rego",
        ("", "v1", "pods", "Pod"),
        "CREATE",
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"containers": [{"name": "c0", "image": image}]}
        }),
    )
}

/// `fetchConfigFile`, as in policy-controller's config-file fixture (a static authority and a
/// `spec.policy`): the policy sees each platform's OCI config under `input.config`, keyed
/// `os/architecture`; a multi-platform index passes, a single-platform image is denied with
/// the policy's error naming its platform, and config files are cached per digest.
#[tokio::test]
async fn fetch_config_file_gives_the_policy_every_platforms_config() {
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    build_multiarch_index(&registry, "demo/multi", "v1");
    build_image(&registry, "demo/single", "v1", "single");
    let rego = [
        "package sigstore",
        "isCompliant[r] {",
        "  platforms := sort([p | input.config[p]])",
        "  commands := {c | c := input.config[_].config.Cmd[0]}",
        "  r := {\"result\": count(platforms) > 1, \"error\": sprintf(\"only %v; commands %v\", [platforms, commands]), \"warning\": sprintf(\"platforms %v\", [platforms])}",
        "}",
    ];
    let rego: String = rego.iter().map(|l| format!("      {l}\n")).collect();
    let policy = format!(
        "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: multi-platform-only\nspec:\n  images:\n  - glob: \"**\"\n  authorities:\n  - static:\n      action: pass\n  policy:\n    type: rego\n    fetchConfigFile: true\n    data: |\n{rego}"
    );
    let dir = policy_dir(&[&policy]);
    let args = ["--insecure-registry", &registry.host()];
    let signet = Signet::start(dir.path(), &args).await;

    let multi = format!("{}/demo/multi:v1", registry.host());
    let allowed = signet.review("validate", &pod("p", &multi, json!({}))).await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
    let warnings = allowed["warnings"].to_string();
    assert!(
        warnings.contains("linux/amd64") && warnings.contains("linux/arm64"),
        "{allowed}"
    );

    let single = format!("{}/demo/single:v1", registry.host());
    let denied = decide(&signet, dir.path(), &single, &args).await;
    assert_denied(
        &denied,
        &[
            "multi-platform-only",
            "spec.policy: rego policy is not compliant: only",
            "linux/amd64",
            "/hello",
        ],
    );
    assert!(!denied.1.contains("linux/arm64"), "{}", denied.1);

    let blobs = registry.count_requests("GET", "/blobs/");
    let again = signet.review("validate", &pod("p", &multi, json!({}))).await;
    assert_eq!(again["allowed"], true, "{again}");
    assert_eq!(
        registry.count_requests("GET", "/blobs/"),
        blobs,
        "config files are cached per digest"
    );
}
