//! Keyless authorities end to end. Real certificates with SCTs and real Rekor entries come
//! from a local Fulcio/Rekor built on `@sigstore/mock`; chains the mock cannot make (wrong
//! root, expiry, EKU, issuer extensions, CA leaves) come from a private openssl CA. Every
//! decision goes through `/validate` over HTTPS and `signet verify`.

use crate::signet_server;
use crate::support;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use signet_server::{Signet, assert_denied, decide, indent, policy_dir};
use support::{
    LeafOptions, MockSigstore, PrivateCa, Registry, SignOptions, TestKey, build_image, get_manifest, put_manifest,
    require_tools, sign_image, sign_keyless, sign_with_cert,
};

const ISSUER: &str = "https://oidc.test.local";

fn keyless_policy(name: &str, identity: &str, extra: &str) -> String {
    format!(
        "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: {name}\nspec:\n  images:\n  - glob: \"**\"\n  authorities:\n  - name: ci\n    keyless:\n      identities:\n      - {identity}\n{extra}"
    )
}

fn exact(subject: &str, issuer: &str) -> String {
    format!("subject: \"{subject}\"\n        issuer: \"{issuer}\"")
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A trusted_root.json like `original` with its transparency/CT logs replaced.
fn with_logs(original: &Value, tlogs: Option<Value>, ctlogs: Option<Value>) -> String {
    let mut root = original.clone();
    if let Some(tlogs) = tlogs {
        root["tlogs"] = tlogs;
    }
    if let Some(ctlogs) = ctlogs {
        root["ctlogs"] = ctlogs;
    }
    root.to_string()
}

#[tokio::test]
async fn mock_fulcio_identities_sct_and_rekor() {
    if !require_tools() {
        return;
    }
    let Some(mock) = MockSigstore::start() else { return };
    let registry = Registry::plain();
    let host = registry.host();
    build_image(&registry, "keyless/app", "v1", "k");
    sign_keyless(&registry, "keyless/app", "v1", &mock, "alice@example.com", ISSUER);
    let image = format!("{host}/keyless/app:v1");
    let trust_root = mock.trusted_root_path();
    let args = [
        "--insecure-registry",
        &host,
        "--trust-root",
        trust_root.to_str().unwrap(),
    ];

    let cases: [(&str, String, &str, Option<&[&str]>); 6] = [
        ("exact", exact("alice@example.com", ISSUER), "", None),
        (
            "regexp",
            "subjectRegExp: \"^.*@example\\\\.com$\"\n        issuerRegExp: \"^https://oidc\\\\.test\\\\..*$\""
                .to_string(),
            "",
            None,
        ),
        (
            "wrong-subject",
            exact("bob@example.com", ISSUER),
            "",
            Some(&[
                "certificate identity mismatch",
                "expected issuer \"https://oidc.test.local\" subject \"bob@example.com\"",
                "found issuer \"https://oidc.test.local\", subject \"alice@example.com\"",
            ]),
        ),
        (
            "wrong-issuer",
            exact("alice@example.com", "https://accounts.google.com"),
            "",
            Some(&[
                "certificate identity mismatch",
                "found issuer \"https://oidc.test.local\"",
            ]),
        ),
        (
            "subject-regexp-miss",
            format!("subjectRegExp: \"^.*@other\\\\.org$\"\n        issuer: \"{ISSUER}\""),
            "",
            Some(&["/^.*@other\\.org$/"]),
        ),
        (
            "ignore-sct",
            exact("alice@example.com", ISSUER),
            "      insecureIgnoreSCT: true\n",
            None,
        ),
    ];
    for (name, identity, extra, denial) in cases {
        let dir = policy_dir(&[&keyless_policy(name, &identity, extra)]);
        let signet = Signet::start(dir.path(), &args).await;
        let outcome = decide(&signet, dir.path(), &image, &args).await;
        match denial {
            None => assert!(outcome.0, "{name}: {}", outcome.1),
            Some(fragments) => assert_denied(&outcome, fragments),
        }
    }

    // The same signature against trust roots that do not vouch for it.
    let original = mock.trusted_root();
    let stranger = TestKey::generate();
    let foreign_log = serde_json::json!([{
        "baseUrl": "https://elsewhere", "hashAlgorithm": "SHA2_256",
        "publicKey": {"rawBytes": base64_encode(&stranger.spki_der()), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": {"start": "2020-01-01T00:00:00Z"}},
        "logId": {"keyId": base64_encode(&[0; 32])}
    }]);
    let scratch = tempfile::tempdir().unwrap();
    let variants = [
        (
            "no-ctlog",
            with_logs(&original, None, Some(Value::Array(vec![]))),
            "",
            vec!["no CT log keys in trusted root"],
        ),
        (
            "no-ctlog-ignored",
            with_logs(&original, None, Some(Value::Array(vec![]))),
            "      insecureIgnoreSCT: true\n",
            vec![],
        ),
        (
            "wrong-ctlog",
            with_logs(&original, None, Some(foreign_log.clone())),
            "",
            vec!["SCT signature verification failed"],
        ),
        (
            "unknown-rekor",
            with_logs(&original, Some(foreign_log), None),
            "",
            vec!["which the trust root does not know"],
        ),
    ];
    for (name, root, extra, fragments) in variants {
        let path = scratch.path().join(format!("{name}.json"));
        std::fs::write(&path, root).unwrap();
        let args = ["--insecure-registry", &host, "--trust-root", path.to_str().unwrap()];
        let dir = policy_dir(&[&keyless_policy(name, &exact("alice@example.com", ISSUER), extra)]);
        let signet = Signet::start(dir.path(), &args).await;
        let outcome = decide(&signet, dir.path(), &image, &args).await;
        if fragments.is_empty() {
            assert!(outcome.0, "{name}: {}", outcome.1);
        } else {
            assert_denied(&outcome, &fragments);
        }
    }

    // The embedded public-good root does not know the mock's CA: no --trust-root, no pass.
    let plain_args = ["--insecure-registry", &host];
    let dir = policy_dir(&[&keyless_policy("public-good", &exact("alice@example.com", ISSUER), "")]);
    let signet = Signet::start(dir.path(), &plain_args).await;
    assert_denied(
        &decide(&signet, dir.path(), &image, &plain_args).await,
        &["which the trust root does not know"],
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A private CA, a Rekor key signet trusts, and a registry.
struct Private {
    ca: PrivateCa,
    rekor: TestKey,
    rekor_pem: std::path::PathBuf,
    trust_root: std::path::PathBuf,
    registry: Registry,
    _dir: tempfile::TempDir,
}

fn private_setup() -> Option<Private> {
    if !require_tools() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = PrivateCa::new(dir.path());
    let rekor = TestKey::generate();
    let rekor_pem = dir.path().join("rekor-signer.pem");
    std::fs::write(&rekor_pem, rekor.pkcs8_pem()).unwrap();
    let trust_root = dir.path().join("trusted_root.json");
    std::fs::write(&trust_root, ca.trusted_root_json(&rekor.spki_der(), None)).unwrap();
    Some(Private {
        ca,
        rekor,
        rekor_pem,
        trust_root,
        registry: Registry::plain(),
        _dir: dir,
    })
}

impl Private {
    fn args(&self) -> [String; 4] {
        [
            "--insecure-registry".into(),
            self.registry.host(),
            "--trust-root".into(),
            self.trust_root.to_str().unwrap().to_string(),
        ]
    }

    fn sign(&self, repo: &str, tag: &str, options: LeafOptions) {
        build_image(&self.registry, repo, tag, &format!("{repo}:{tag}"));
        let leaf = self.ca.issue(options);
        sign_with_cert(
            &self.registry,
            repo,
            tag,
            &leaf,
            Some(&leaf.chain_path),
            Some(&self.rekor_pem),
        );
    }
}

#[tokio::test]
async fn private_ca_chains_expiry_eku_issuer_and_ca_leaves() {
    let Some(setup) = private_setup() else { return };
    let alice = || LeafOptions::email("alice@example.com", ISSUER);
    setup.sign("private/good", "v1", alice());
    setup.sign(
        "private/uri",
        "v1",
        LeafOptions::uri(
            "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main",
            ISSUER,
        ),
    );
    setup.sign("private/expired-before", "v1", alice().valid(now() - 3600, now() - 60));
    setup.sign(
        "private/no-eku",
        "v1",
        LeafOptions {
            code_signing_eku: false,
            ..alice()
        },
    );
    setup.sign("private/ca-leaf", "v1", LeafOptions { ca: true, ..alice() });
    setup.sign(
        "private/v1-issuer",
        "v1",
        LeafOptions {
            issuer_v2: None,
            ..alice()
        },
    );
    setup.sign(
        "private/other-issuer",
        "v1",
        LeafOptions::email("alice@example.com", "https://evil.example"),
    );
    // Valid for three more seconds: logged inside its validity, admitted after it expired.
    setup.sign("private/short", "v1", alice().valid(now() - 60, now() + 3));

    let identities = format!(
        "{}\n      - subjectRegExp: \"^https://github\\\\.com/org/repo/\"\n        issuer: \"{ISSUER}\"",
        exact("alice@example.com", ISSUER)
    );
    let dir = policy_dir(&[&keyless_policy(
        "private",
        &identities,
        "      insecureIgnoreSCT: true\n",
    )]);
    let args = setup.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let signet = Signet::start(dir.path(), &args).await;
    let host = setup.registry.host();
    let image = |repo: &str| format!("{host}/{repo}:v1");

    assert!(decide(&signet, dir.path(), &image("private/good"), &args).await.0);
    assert!(
        decide(&signet, dir.path(), &image("private/uri"), &args).await.0,
        "URI SAN with a regexp"
    );
    assert!(
        decide(&signet, dir.path(), &image("private/v1-issuer"), &args).await.0,
        "issuer from .1.1"
    );
    assert_denied(
        &decide(&signet, dir.path(), &image("private/expired-before"), &args).await,
        &["CertExpired"],
    );
    assert_denied(
        &decide(&signet, dir.path(), &image("private/no-eku"), &args).await,
        &["RequiredEkuNotFound"],
    );
    assert_denied(
        &decide(&signet, dir.path(), &image("private/ca-leaf"), &args).await,
        &["CaUsedAsEndEntity"],
    );
    assert_denied(
        &decide(&signet, dir.path(), &image("private/other-issuer"), &args).await,
        &["found issuer \"https://evil.example\""],
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let short = decide(&signet, dir.path(), &image("private/short"), &args).await;
    assert!(short.0, "expired now, but logged while valid: {}", short.1);

    // Without insecureIgnoreSCT the private CA's certificates (no SCT) are refused.
    let strict = policy_dir(&[&keyless_policy("strict", &exact("alice@example.com", ISSUER), "")]);
    let signet = Signet::start(strict.path(), &args).await;
    assert_denied(
        &decide(&signet, strict.path(), &image("private/good"), &args).await,
        &["missing SCT extension"],
    );
}

/// A `spec.policy` sees the GitHub workflow extensions of the signing certificate under
/// policy-controller's names (`githubWorkflowRepo`, `githubWorkflowTrigger`, ...): a release
/// signed from the right repository on a tag push passes, one from a fork is denied with the
/// policy's own error naming what the certificate said.
#[tokio::test]
async fn spec_policy_sees_the_github_workflow_extensions() {
    let Some(setup) = private_setup() else { return };
    let workflow = |repo: &str, trigger: &str| {
        LeafOptions::uri(
            &format!("https://github.com/{repo}/.github/workflows/release.yml@refs/tags/v1"),
            ISSUER,
        )
        .raw_extension("1.3.6.1.4.1.57264.1.2", trigger)
        .raw_extension("1.3.6.1.4.1.57264.1.3", "a94a8fe5ccb19ba61c4c0873d391e987982fbbd3")
        .raw_extension("1.3.6.1.4.1.57264.1.4", "release")
        .raw_extension("1.3.6.1.4.1.57264.1.5", repo)
        .raw_extension("1.3.6.1.4.1.57264.1.6", "refs/tags/v1")
    };
    setup.sign("gh/release", "v1", workflow("org/repo", "push"));
    setup.sign("gh/fork", "v1", workflow("fork/repo", "pull_request"));

    let rego = [
        "package sigstore",
        "isCompliant[r] {",
        "  s := input.authorityMatches.ci.signatures[0]",
        "  expected := {\"githubWorkflowRepo\": \"org/repo\", \"githubWorkflowTrigger\": \"push\", \"githubWorkflowRef\": \"refs/tags/v1\", \"githubWorkflowName\": \"release\", \"githubWorkflowSha\": \"a94a8fe5ccb19ba61c4c0873d391e987982fbbd3\"}",
        "  wrong := [k | expected[k] != object.get(s, k, \"\")]",
        "  r := {\"result\": count(wrong) == 0, \"error\": sprintf(\"built by %s on %s\", [s.githubWorkflowRepo, s.githubWorkflowTrigger]), \"warning\": \"\"}",
        "}",
    ];
    let rego = indent(&rego.join("\n"), 6);
    let extra = format!("      insecureIgnoreSCT: true\n  policy:\n    type: rego\n    data: |\n{rego}");
    let identity = format!("subjectRegExp: \"^https://github\\\\.com/\"\n        issuer: \"{ISSUER}\"");
    let dir = policy_dir(&[&keyless_policy("from-org-repo", &identity, &extra)]);
    let args = setup.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let signet = Signet::start(dir.path(), &args).await;
    let host = setup.registry.host();

    let release = decide(&signet, dir.path(), &format!("{host}/gh/release:v1"), &args).await;
    assert!(release.0, "{}", release.1);
    assert_denied(
        &decide(&signet, dir.path(), &format!("{host}/gh/fork:v1"), &args).await,
        &["from-org-repo", "built by fork/repo on pull_request"],
    );
}

#[tokio::test]
async fn another_root_ca_cert_and_trust_root_resources() {
    let Some(setup) = private_setup() else { return };
    setup.sign("roots/app", "v1", LeafOptions::email("alice@example.com", ISSUER));
    let host = setup.registry.host();
    let image = format!("{host}/roots/app:v1");
    let identity = exact("alice@example.com", ISSUER);
    let ignore = "      insecureIgnoreSCT: true\n";

    // A trust root with another CA: the chain leads nowhere.
    let other = tempfile::tempdir().unwrap();
    let other_ca = PrivateCa::new(other.path());
    let swapped = other.path().join("swapped.json");
    std::fs::write(&swapped, other_ca.trusted_root_json(&setup.rekor.spki_der(), None)).unwrap();
    let args = ["--insecure-registry", &host, "--trust-root", swapped.to_str().unwrap()];
    let dir = policy_dir(&[&keyless_policy("swapped", &identity, ignore)]);
    let signet = Signet::start(dir.path(), &args).await;
    assert_denied(
        &decide(&signet, dir.path(), &image, &args).await,
        &["certificate chain is invalid"],
    );
    drop(signet);

    // keyless.ca-cert names the right CA inside the policy (the Rekor key still comes from
    // the trust root).
    let chain = indent(&setup.ca.chain_pem(), 10);
    let with_ca = format!("{ignore}      ca-cert:\n        data: |\n{chain}");
    let dir = policy_dir(&[&keyless_policy("ca-cert", &identity, &with_ca)]);
    let signet = Signet::start(dir.path(), &args).await;
    let outcome = decide(&signet, dir.path(), &image, &args).await;
    assert!(outcome.0, "ca-cert: {}", outcome.1);
    drop(signet);

    // A TrustRoot resource with sigstoreKeys, named by trustRootRef.
    use base64::Engine as _;
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let trust_root = format!(
        "apiVersion: policy.sigstore.dev/v1alpha1\nkind: TrustRoot\nmetadata:\n  name: corp\nspec:\n  sigstoreKeys:\n    certificateAuthorities:\n    - subject:\n        organization: corp\n        commonName: corp\n      uri: https://fulcio.corp\n      certChain: {}\n    tLogs:\n    - baseURL: https://rekor.corp\n      hashAlgorithm: sha-256\n      publicKey: {}\n",
        b64(&setup.ca.chain_pem()),
        b64(&setup.rekor.public_pem())
    );
    let with_ref = format!("{ignore}      trustRootRef: corp\n");
    let dir = policy_dir(&[&keyless_policy("by-ref", &identity, &with_ref), &trust_root]);
    let signet = Signet::start(dir.path(), &args).await;
    let outcome = decide(&signet, dir.path(), &image, &args).await;
    assert!(outcome.0, "trustRootRef: {}", outcome.1);
    let missing = policy_dir(&[&keyless_policy(
        "bad-ref",
        &identity,
        &format!("{ignore}      trustRootRef: nope\n"),
    )]);
    let signet = Signet::start(missing.path(), &args).await;
    assert_denied(
        &decide(&signet, missing.path(), &image, &args).await,
        &["trustRootRef \"nope\" names no TrustRoot"],
    );
}

/// The forgeries the `sigstore` crate lets through on the `.sig` path: a valid certificate
/// next to a signature made by another key, and a valid signature next to a Rekor entry about
/// something else.
#[tokio::test]
async fn forged_layers_are_denied() {
    let Some(setup) = private_setup() else { return };
    let host = setup.registry.host();
    let identity = exact("alice@example.com", ISSUER);
    let leaf = setup.ca.issue(LeafOptions::email("alice@example.com", ISSUER));

    // 1. A certificate of alice, a signature by an unrelated key, a well-formed Rekor entry
    //    recording exactly that pair.
    let forged = build_image(&setup.registry, "forged/key", "v1", "f1");
    let intruder = TestKey::generate();
    let options = SignOptions {
        certificate_pem: Some(leaf.cert_pem.clone()),
        chain_pem: Some(leaf.chain_pem.clone()),
        rekor: Some(&setup.rekor),
        rekor_records_pem: Some(leaf.cert_pem.clone()),
        ..SignOptions::default()
    };
    sign_image(&setup.registry, "forged/key", &forged, &intruder, &options).await;

    // 2. A genuine signature of image A, carrying the Rekor bundle of image B.
    build_image(&setup.registry, "forged/entry", "a", "fa");
    let b = build_image(&setup.registry, "forged/entry", "b", "fb");
    sign_with_cert(
        &setup.registry,
        "forged/entry",
        "a",
        &leaf,
        Some(&leaf.chain_path),
        Some(&setup.rekor_pem),
    );
    sign_with_cert(
        &setup.registry,
        "forged/entry",
        "b",
        &leaf,
        Some(&leaf.chain_path),
        Some(&setup.rekor_pem),
    );
    let a = support::run(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &format!("docker://{host}/forged/entry:a"),
    ]));
    let sig_tag = |digest: &str| format!("{}.sig", digest.trim().replacen(':', "-", 1));
    let mut manifest_a = get_manifest(&setup.registry, "forged/entry", &sig_tag(&a))
        .await
        .unwrap();
    let manifest_b = get_manifest(&setup.registry, "forged/entry", &sig_tag(&b))
        .await
        .unwrap();
    manifest_a["layers"][0]["annotations"]["dev.sigstore.cosign/bundle"] =
        manifest_b["layers"][0]["annotations"]["dev.sigstore.cosign/bundle"].clone();
    put_manifest(
        &setup.registry,
        "forged/entry",
        &sig_tag(&a),
        "application/vnd.oci.image.manifest.v1+json",
        manifest_a.to_string().as_bytes(),
    )
    .await;

    let dir = policy_dir(&[&keyless_policy("forgery", &identity, "      insecureIgnoreSCT: true\n")]);
    let args = setup.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let signet = Signet::start(dir.path(), &args).await;
    assert_denied(
        &decide(&signet, dir.path(), &format!("{host}/forged/key:v1"), &args).await,
        &["invalid signature"],
    );
    assert_denied(
        &decide(&signet, dir.path(), &format!("{host}/forged/entry:a"), &args).await,
        &["artifact hash mismatch for hashedrekord entry"],
    );
    let genuine = decide(&signet, dir.path(), &format!("{host}/forged/entry:b"), &args).await;
    assert!(genuine.0, "the untouched signature still verifies: {}", genuine.1);
}
