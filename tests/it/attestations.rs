//! Attestations end to end: in-toto statements signed in cosign's `.att` layout (keyed, from
//! the project's test support) and as Sigstore bundles attached as referrers (keyed from the
//! test support; keyless from sigstore-js `attest()` against the local mock Fulcio/Rekor),
//! judged by Rego policies. Every decision goes through `/validate` over HTTPS and
//! `signet verify`.

use crate::signet_server;
use crate::support;

use base64::Engine as _;
use serde_json::json;
use signet_server::{Signet, assert_allowed, assert_denied, decide, indent, policy_dir};
use support::{
    MockSigstore, Registry, SignOptions, TestKey, attest_and_attach_with, attest_legacy, build_image,
    image_with_bundled_attestation, require_tools, sign_image, statement_with, trusted_root_json,
};

const SLSA1: &str = "https://slsa.dev/provenance/v1";
const TRUSTED_BUILDER: &str = "https://ci.example/builder";

/// A Rego policy (policy-controller's object form) that wants provenance from the trusted
/// builder and says so in its own words otherwise.
fn builder_rego() -> String {
    format!(
        "package sigstore\n\ndefault isCompliant = {{\"result\": false, \"error\": \"provenance is not from {TRUSTED_BUILDER}\"}}\n\nisCompliant = {{\"result\": true}} {{\n  input.predicate.builder.id == \"{TRUSTED_BUILDER}\"\n}}\n"
    )
}

/// A policy whose authority (`authority_yaml`, indented four spaces) requires provenance
/// attestations judged by [`builder_rego`].
fn attestation_policy(name: &str, glob: &str, authority_yaml: &str) -> String {
    let rego = indent(&builder_rego(), 12);
    format!(
        "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: {name}\nspec:\n  images:\n  - glob: \"{glob}\"\n  authorities:\n  - name: builder\n{authority_yaml}    attestations:\n    - name: provenance\n      predicateType: {SLSA1}\n      policy:\n        type: rego\n        data: |\n{rego}"
    )
}

fn key_yaml(key: &TestKey) -> String {
    let pem = indent(&key.public_pem(), 8);
    format!("    key:\n      data: |\n{pem}")
}

#[tokio::test]
async fn keyed_attestations_in_both_layouts_are_judged_by_rego() {
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    let host = registry.host();
    let key = TestKey::generate();
    let rekor = TestKey::generate();
    let trusted = json!({"builder": {"id": TRUSTED_BUILDER}});
    let untrusted = json!({"builder": {"id": "https://evil.example/builder"}});

    let legacy = build_image(&registry, "att/legacy", "v1", "legacy");
    attest_legacy(
        &registry,
        "att/legacy",
        &legacy,
        &key,
        &statement_with("att/legacy", &legacy, SLSA1, &trusted),
        Some(&rekor),
    )
    .await;
    image_with_bundled_attestation(&registry, "att/bundled", &key, &rekor, SLSA1, &trusted).await;
    let evil = build_image(&registry, "att/evil", "v1", "evil");
    attest_legacy(
        &registry,
        "att/evil",
        &evil,
        &key,
        &statement_with("att/evil", &evil, SLSA1, &untrusted),
        None,
    )
    .await;
    // Signed, but with no attestation at all.
    let signed_only = build_image(&registry, "att/signed-only", "v1", "signed only");
    sign_image(
        &registry,
        "att/signed-only",
        &signed_only,
        &key,
        &SignOptions::default(),
    )
    .await;
    // A good attestation by another key; and one about another image, copied here.
    let stranger = build_image(&registry, "att/stranger", "v1", "stranger");
    attest_legacy(
        &registry,
        "att/stranger",
        &stranger,
        &TestKey::generate(),
        &statement_with("att/stranger", &stranger, SLSA1, &trusted),
        None,
    )
    .await;
    let copied = build_image(&registry, "att/copied", "v1", "copied");
    attest_legacy(
        &registry,
        "att/copied",
        &copied,
        &key,
        &statement_with("att/legacy", &legacy, SLSA1, &trusted),
        None,
    )
    .await;

    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("trusted_root.json");
    std::fs::write(&root, trusted_root_json(&rekor)).unwrap();
    let args = ["--insecure-registry", &host, "--trust-root", root.to_str().unwrap()];
    let policies = policy_dir(&[&attestation_policy(
        "provenance",
        &format!("{host}/att/**"),
        &key_yaml(&key),
    )]);
    let signet = Signet::start(policies.path(), &args).await;
    let image = |repo: &str| format!("{host}/att/{repo}:v1");

    assert_allowed(&decide(&signet, policies.path(), &image("legacy"), &args).await);
    assert_allowed(&decide(&signet, policies.path(), &image("bundled"), &args).await);
    assert_denied(
        &decide(&signet, policies.path(), &image("evil"), &args).await,
        &[
            "attestation \"provenance\" failed its policy",
            "provenance is not from https://ci.example/builder",
        ],
    );
    assert_denied(
        &decide(&signet, policies.path(), &image("signed-only"), &args).await,
        &["attestation \"provenance\": no verified attestation of type https://slsa.dev/provenance/v1"],
    );
    assert_denied(
        &decide(&signet, policies.path(), &image("stranger"), &args).await,
        &["no verified attestation", "the DSSE signature"],
    );
    assert_denied(
        &decide(&signet, policies.path(), &image("copied"), &args).await,
        &["no verified attestation", "no subject with digest"],
    );
}

#[tokio::test]
async fn keyless_attestations_from_sigstore_js() {
    if !require_tools() {
        return;
    }
    let Some(mock) = MockSigstore::start() else { return };
    let registry = Registry::htpasswd("testuser", "testpass");
    let host = registry.host();
    let good = build_image(&registry, "ci/good", "v1", "good");
    attest_and_attach_with(
        &registry,
        "ci/good",
        &good,
        &mock,
        SLSA1,
        &json!({"builder": {"id": TRUSTED_BUILDER}}),
    );
    let bad = build_image(&registry, "ci/bad", "v1", "bad");
    attest_and_attach_with(
        &registry,
        "ci/bad",
        &bad,
        &mock,
        SLSA1,
        &json!({"builder": {"id": "https://evil.example"}}),
    );

    let scratch = tempfile::tempdir().unwrap();
    let (user, pass) = registry.creds().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let auth_file = scratch.path().join("config.json");
    std::fs::write(&auth_file, json!({"auths": {host.clone(): {"auth": auth}}}).to_string()).unwrap();
    let trust_root = mock.trusted_root_path();
    let args = [
        "--insecure-registry",
        &host,
        "--registry-auth-file",
        auth_file.to_str().unwrap(),
        "--trust-root",
        trust_root.to_str().unwrap(),
    ];
    let keyless = |subject: &str| {
        format!(
            "    keyless:\n      identities:\n      - subject: \"{subject}\"\n        issuer: \"https://oidc.test.local\"\n"
        )
    };
    let policies = policy_dir(&[&attestation_policy(
        "alice",
        &format!("{host}/ci/**"),
        &keyless("alice@example.com"),
    )]);
    let signet = Signet::start(policies.path(), &args).await;
    assert_allowed(&decide(&signet, policies.path(), &format!("{host}/ci/good:v1"), &args).await);
    assert_denied(
        &decide(&signet, policies.path(), &format!("{host}/ci/bad:v1"), &args).await,
        &["provenance is not from https://ci.example/builder"],
    );
    drop(signet);

    let policies = policy_dir(&[&attestation_policy(
        "bob",
        &format!("{host}/ci/**"),
        &keyless("bob@example.com"),
    )]);
    let signet = Signet::start(policies.path(), &args).await;
    assert_denied(
        &decide(&signet, policies.path(), &format!("{host}/ci/good:v1"), &args).await,
        &["no verified attestation", "certificate identity mismatch"],
    );
}

/// A CIP-level `spec.policy` sees what the authority verified: its attestations by name,
/// each with its predicate type, the signature's id and the signed statement (`payload`,
/// base64, as policy-controller passes it).
#[tokio::test]
async fn spec_policy_reads_the_verified_attestations() {
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    let host = registry.host();
    let key = TestKey::generate();
    let digest = build_image(&registry, "cip/app", "v1", "cip");
    let provenance = statement_with("cip/app", &digest, SLSA1, &json!({}));
    attest_legacy(&registry, "cip/app", &digest, &key, &provenance, None).await;
    let digest_hex = digest.trim_start_matches("sha256:");
    let args = ["--insecure-registry", &host];
    let policy = |name: &str, predicate_type: &str| {
        format!(
            "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: {name}\nspec:\n  images:\n  - glob: \"{host}/cip/**\"\n  authorities:\n  - name: builder\n{}    attestations:\n    - name: provenance\n      predicateType: {SLSA1}\n  policy:\n    type: rego\n    data: |\n      package sigstore\n      default isCompliant = false\n      isCompliant {{\n        att := input.authorityMatches.builder.attestations.provenance[0]\n        att.predicateType == \"{predicate_type}\"\n        count(att.id) == 64\n        statement := json.unmarshal(base64.decode(att.payload))\n        statement.subject[0].digest.sha256 == \"{digest_hex}\"\n      }}\n",
            key_yaml(&key)
        )
    };
    let dir = policy_dir(&[&policy("reads-attestations", SLSA1)]);
    let signet = Signet::start(dir.path(), &args).await;
    assert_allowed(&decide(&signet, dir.path(), &format!("{host}/cip/app:v1"), &args).await);
    drop(signet);

    let dir = policy_dir(&[&policy("wants-another-type", "https://spdx.dev/Document")]);
    let signet = Signet::start(dir.path(), &args).await;
    assert_denied(
        &decide(&signet, dir.path(), &format!("{host}/cip/app:v1"), &args).await,
        &["wants-another-type"],
    );
}
