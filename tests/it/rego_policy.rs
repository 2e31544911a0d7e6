//! Rego and CUE policies: policy-controller's fixture policies load as written, their CUE
//! attestation policies decide signed attestations end to end, and a CIP-level
//! `spec.policy` decides admission end to end over HTTPS.

use crate::signet_server;
use crate::support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use signet::api::{Document, parse_documents};
use signet::policy::program::Program;
use signet::policy::snapshot::PolicySnapshot;
use signet_server::{
    Signet, assert_allowed, assert_denied, decide, indent, key_policy, pod_review, policy_dir, review_for,
    static_rego_policy,
};
use support::{
    MockSigstore, Registry, SignOptions, TestKey, attest_and_attach_as, attest_legacy, build_image,
    build_multiarch_index, image_with_bundled_attestation, require_tools, sign_image, sign_keyless_with,
    statement_with, trusted_root_json,
};

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

/// Every fixture policy with attestations, Rego, SBOMs or fetched policy text loads as
/// written, CUE included (a text that lives in a ConfigMap or at a URL waits for it, as
/// policy-controller does); predicate types are URIs, short names with a deprecation warning.
#[test]
fn fixture_policies_load_as_written() {
    let Some(dir) = fixture_dir() else { return };
    let fixtures = policy_fixtures(&dir);
    assert!(fixtures.len() >= 8, "{fixtures:?}");
    let mut cue_programs = 0;
    for (name, text) in &fixtures {
        let loaded = snapshot(name, text);
        assert!(loaded.rejected.is_empty(), "{name}: {:?}", loaded.rejected);
        assert!(!loaded.policies.is_empty(), "{name}");
        for policy in &loaded.policies {
            for authority in &policy.authorities {
                for attestation in &authority.attestations {
                    assert!(
                        attestation.predicate_type.starts_with("https://"),
                        "{name}: {attestation:?}"
                    );
                    assert!(attestation.program.is_some(), "{name}");
                    cue_programs += matches!(attestation.program, Some(Program::Cue(_))) as usize;
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
    assert!(cue_programs >= 8, "{cue_programs} CUE attestation policies compiled");
}

/// The fixture with each PEM public key replaced by `pem`, at the same indentation.
fn with_public_key(text: &str, pem: &str) -> String {
    let mut out = Vec::new();
    let mut in_key = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed == "-----BEGIN PUBLIC KEY-----" {
            let pad = &line[..line.len() - line.trim_start().len()];
            out.extend(pem.lines().map(|l| format!("{pad}{l}")));
            in_key = true;
        } else if !in_key {
            out.push(line.to_string());
        }
        if trimmed == "-----END PUBLIC KEY-----" {
            in_key = false;
        }
    }
    out.join("\n") + "\n"
}

fn read_fixture(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
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
    let rego = indent(&rego.join("\n"), 6);
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
    let fields = format!(
        "    fetchConfigFile: true\n    data: |\n{}",
        indent(&rego.join("\n"), 6)
    );
    let policy = static_rego_policy("multi-platform-only", "**", &fields);
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

/// Two of policy-controller's attestation fixtures, with their CUE policies as written; only
/// the key is the test's, and the SBOM example's `**` glob is narrowed to `**sbom**` so the
/// two policies do not both match every image. The key fixture (`.att` layout, with a Rekor
/// SET for its `ctlog`) admits the custom predicate its CUE asks for, denies another one with
/// CUE's conflict naming the field, and denies a signed image without attestations by the
/// attestation's name; the SBOM example (a bundle attached as a referrer, predicate type
/// short name `spdxjson`) admits an SPDX attestation and denies an image that only has
/// provenance.
#[tokio::test]
async fn fixture_attestation_policies_decide_with_their_cue() {
    let Some(fixtures) = fixture_dir() else { return };
    if !require_tools() {
        return;
    }
    const CUSTOM: &str = "https://cosign.sigstore.dev/attestation/v1";
    const SPDX: &str = "https://spdx.dev/Document";
    let registry = Registry::plain();
    let host = registry.host();
    let key = TestKey::generate();
    let rekor = TestKey::generate();
    let custom = |data: &str| json!({"Data": data, "Timestamp": "2026-11-30T10:00:00Z"});

    let good = build_image(&registry, "demo/good", "v1", "good");
    let statement = statement_with("demo/good", &good, CUSTOM, &custom("foobar key e2e test"));
    attest_legacy(&registry, "demo/good", &good, &key, &statement, Some(&rekor)).await;
    let other = build_image(&registry, "demo/other", "v1", "other");
    let statement = statement_with("demo/other", &other, CUSTOM, &custom("something else"));
    attest_legacy(&registry, "demo/other", &other, &key, &statement, Some(&rekor)).await;
    let bare = build_image(&registry, "demo/bare", "v1", "bare");
    sign_image(&registry, "demo/bare", &bare, &key, &SignOptions::default()).await;
    image_with_bundled_attestation(
        &registry,
        "sbom/app",
        &key,
        &rekor,
        SPDX,
        &json!({"spdxVersion": "SPDX-2.3"}),
    )
    .await;
    let provenance = "https://slsa.dev/provenance/v1";
    image_with_bundled_attestation(&registry, "sbom/provenance-only", &key, &rekor, provenance, &json!({})).await;

    let key_fixture = read_fixture(&fixtures, "e2e__cip-key-with-attestations.yaml");
    let key_fixture = with_public_key(&key_fixture, &key.public_pem());
    let sbom_fixture = read_fixture(&fixtures, "examples__custom-key-attestation-sbom-spdxjson.yaml");
    let sbom_fixture = with_public_key(&sbom_fixture, &key.public_pem()).replace("glob: \"**\"", "glob: \"**sbom**\"");
    let dir = policy_dir(&[&key_fixture, &sbom_fixture]);
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("trusted_root.json");
    std::fs::write(&root, trusted_root_json(&rekor)).unwrap();
    let args = ["--insecure-registry", &host, "--trust-root", root.to_str().unwrap()];
    let signet = Signet::start(dir.path(), &args).await;
    let image = |repo: &str| format!("{host}/{repo}:v1");

    assert_allowed(&decide(&signet, dir.path(), &image("demo/good"), &args).await);
    assert_denied(
        &decide(&signet, dir.path(), &image("demo/other"), &args).await,
        &[
            "image-policy-key-with-attestations",
            "attestation \"custom-match-predicate\" failed its policy",
            "failed evaluating cue policy for custom-match-predicate: failed to evaluate the policy with error: \
             predicate.Data: conflicting values \"foobar key e2e test\" and \"something else\"",
        ],
    );
    assert_denied(
        &decide(&signet, dir.path(), &image("demo/bare"), &args).await,
        &[&format!(
            "attestation \"custom-match-predicate\": no verified attestation of type {CUSTOM}"
        )],
    );
    assert_allowed(&decide(&signet, dir.path(), &image("sbom/app"), &args).await);
    assert_denied(
        &decide(&signet, dir.path(), &image("sbom/provenance-only"), &args).await,
        &[
            "custom-key-attestation-sbom-spdxjson",
            &format!("attestation \"must-have-spdxjson\": no verified attestation of type {SPDX}"),
        ],
    );
    let log = std::fs::read_to_string(&signet.log).unwrap_or_default();
    assert!(
        log.contains("the short name \\\"spdxjson\\\" is deprecated")
            || log.contains("the short name \"spdxjson\" is deprecated"),
        "the short name is warned about: {log}"
    );
}

/// policy-controller's fixture with four authorities and CUE everywhere
/// (`e2e__cip-requires-two-signatures-and-two-attestations.yaml`), as written except for the
/// keys (the test's). Keyless signatures and attestations come from the local mock Fulcio
/// and Rekor for the fixture's identity (the `default` ServiceAccount of a cluster), the
/// attestations from sigstore-js as referrer bundles; key ones in cosign's `.sig` and `.att`
/// layouts with a Rekor SET. An image with everything the policy asks for is admitted: both
/// keyless attestations pass their CUE (the vuln scan's times between two `time.Parse`
/// bounds), and the CIP-level CUE counts what each authority matched. The same image with
/// a second key signature is denied by the CIP-level policy's `list.MaxItems(1)`.
#[tokio::test]
async fn four_authority_fixture_runs_its_cue_end_to_end() {
    let Some(fixtures) = fixture_dir() else { return };
    if !require_tools() {
        return;
    }
    let Some(mock) = MockSigstore::start() else { return };
    const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
    const SUBJECT: &str = "https://kubernetes.io/namespaces/default/serviceaccounts/default";
    const CUSTOM: &str = "https://cosign.sigstore.dev/attestation/v1";
    const VULN: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
    let vuln_predicate = fixtures.join("../cue-policies/cosign/attestations__vuln-predicate.json");
    let vuln_predicate: Value = serde_json::from_slice(&std::fs::read(vuln_predicate).unwrap()).unwrap();
    let registry = Registry::htpasswd("testuser", "testpass");
    let host = registry.host();
    let key = TestKey::generate();
    let rekor = TestKey::generate();
    let now = "2026-11-30T10:00:00Z";

    let mut images = Vec::new();
    for (repo, key_signatures) in [("ci/demo-complete", 1), ("ci/demo-two-key-signatures", 2)] {
        let digest = build_image(&registry, repo, "v1", repo);
        for n in 0..key_signatures {
            // Each signature over its own payload (an annotation), so they are two layers.
            let options = SignOptions {
                rekor: Some(&rekor),
                append: n > 0,
                annotations: [("n".to_string(), n.to_string())].into(),
                ..Default::default()
            };
            sign_image(&registry, repo, &digest, &key, &options).await;
        }
        sign_keyless_with(&registry, repo, &digest, &mock, SUBJECT, ISSUER, &["--append"]);
        let custom = |data: &str| json!({"Data": data, "Timestamp": now});
        let statement = statement_with(repo, &digest, CUSTOM, &custom("foobar key e2e test"));
        attest_legacy(&registry, repo, &digest, &key, &statement, Some(&rekor)).await;
        let signer = Some((ISSUER, SUBJECT));
        attest_and_attach_as(
            &registry,
            repo,
            &digest,
            &mock,
            CUSTOM,
            &custom("foobar e2e test"),
            signer,
        );
        attest_and_attach_as(&registry, repo, &digest, &mock, VULN, &vuln_predicate, signer);
        images.push(format!("{host}/{repo}:v1"));
    }

    let scratch = tempfile::tempdir().unwrap();
    let mut root = mock.trusted_root();
    let test_log: Value = serde_json::from_str(&trusted_root_json(&rekor)).unwrap();
    root["tlogs"].as_array_mut().unwrap().push(test_log["tlogs"][0].clone());
    let root_path = scratch.path().join("trusted_root.json");
    std::fs::write(&root_path, root.to_string()).unwrap();
    let (user, pass) = registry.creds().unwrap();
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{user}:{pass}"));
    let auth_file = scratch.path().join("config.json");
    std::fs::write(&auth_file, json!({"auths": {host.clone(): {"auth": auth}}}).to_string()).unwrap();
    let args = [
        "--insecure-registry",
        &host,
        "--registry-auth-file",
        auth_file.to_str().unwrap(),
        "--trust-root",
        root_path.to_str().unwrap(),
    ];
    let fixture = read_fixture(&fixtures, "e2e__cip-requires-two-signatures-and-two-attestations.yaml");
    let dir = policy_dir(&[&with_public_key(&fixture, &key.public_pem())]);
    let signet = Signet::start(dir.path(), &args).await;

    assert_allowed(&decide(&signet, dir.path(), &images[0], &args).await);
    assert_denied(
        &decide(&signet, dir.path(), &images[1], &args).await,
        &[
            "image-policy-requires-two-signatures-two-attestations",
            "failed evaluating cue policy for ClusterImagePolicy: failed to evaluate the policy with error: \
             authorityMatches.keysignature.signatures: invalid value",
            "(does not satisfy list.MaxItems(1)): len(list) > MaxItems(1) (2 > 1)",
        ],
    );
}

/// Pathological `spec.policy` texts, each behind a static authority: a comprehension of a
/// billion elements, a range past the builtin's cap, an `isCompliant` of 100 KB (the cap is
/// 64 KiB) and the longest rule chain a policy may hold. Sent at once with a harmless
/// policy's review: each pathological one is denied naming the limit it hit, the chain is
/// answered within the deadline, the harmless one is admitted, and the server goes on
/// answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pathological_policies_are_denied_and_the_server_keeps_serving() {
    let chain_depth = 4_900;
    let chain: String = (0..chain_depth).map(|i| format!("r{i} = r{} + 1\n", i + 1)).collect();
    let policies = [
        ("slow", "isCompliant { count([x | some i, j, k; numbers.range(1, 1000)[i]; numbers.range(1, 1000)[j]; numbers.range(1, 1000)[k]; x := i]) > 0 }".to_string()),
        ("range", "isCompliant { count(numbers.range(1, 1000000000000)) > 0 }".to_string()),
        ("huge", "isCompliant := {\"result\": false, \"error\": concat(\"\", [\"xxxxxxxxxx\" | numbers.range(1, 10000)[_]])}".to_string()),
        ("chain", format!("isCompliant {{ r0 > 0 }}\n{chain}r{chain_depth} = 1")),
        ("fine", "isCompliant = true".to_string()),
    ];
    let texts: Vec<String> = policies
        .iter()
        .map(|(name, body)| {
            let fields = format!("    data: |\n{}", indent(&format!("package sigstore\n{body}"), 6));
            static_rego_policy(name, &format!("registry.example/{name}/**"), &fields)
        })
        .collect();
    let dir = policy_dir(&texts.iter().map(String::as_str).collect::<Vec<_>>());
    let signet = Signet::start(dir.path(), &[]).await;

    let started = std::time::Instant::now();
    let signet = &signet;
    let answers = futures::future::join_all(policies.iter().map(|(name, _)| async move {
        let review = pod_review(&format!("u-{name}"), &[&format!("registry.example/{name}/app:v1")]);
        let answer = signet.review("validate", &review).await;
        (*name, answer, started.elapsed())
    }))
    .await;
    for (name, answer, took) in &answers {
        eprintln!("{name}: answered after {took:?}: {}", answer["status"]["message"]);
        let message = answer["status"]["message"].as_str().unwrap_or_default();
        match *name {
            "fine" => assert_eq!(answer["allowed"], true, "{answer}"),
            "chain" => assert!(answer["allowed"] == true || message.contains("rego"), "{answer}"),
            "slow" => assert!(message.contains("rego evaluation"), "{answer}"),
            "range" => assert!(
                message.contains("more than signet allows") && !message.contains('\n'),
                "{answer}"
            ),
            _ => assert!(message.contains("rego policy output is too large"), "{answer}"),
        }
        if *name != "fine" && *name != "chain" {
            assert_eq!(answer["allowed"], false, "{answer}");
            assert!(
                message.contains(&format!("policy \"{name}\" failed: spec.policy")),
                "{answer}"
            );
        }
        assert!(*took < std::time::Duration::from_secs(5), "{name} took {took:?}");
    }
    let after = signet
        .review("validate", &pod_review("u-after", &["registry.example/fine/app:v2"]))
        .await;
    assert_eq!(after["allowed"], true, "the server keeps serving: {after}");
}
