//! Images signed the cosign v3 way: Sigstore bundles attached as OCI 1.1 referrers (through
//! the referrers tag schema: the test registry has no referrers API). Keyless bundles come
//! from a real third-party client (sigstore-js `attest()` against the local mock
//! Fulcio/Rekor, attached by `sigstore attach`); keyed bundles from the project's test
//! support. Every decision goes through `/validate` over HTTPS and `signet verify`.

use crate::signet_server;
use crate::support;

use std::path::Path;

use base64::Engine as _;
use serde_json::json;
use signet_server::{Signet, assert_denied, decide, key_policy, policy_dir};
use support::{
    COSIGN_SIGN_PREDICATE, MockSigstore, Registry, SignOptions, TestKey, attach_bundle, attest_and_attach, build_image,
    keyed_bundle, require_tools, sign_image, statement, trusted_root_json,
};

const ISSUER: &str = "https://oidc.test.local";

fn keyless_policy(name: &str, glob: &str, subject: &str, extra: &str) -> String {
    format!(
        "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: {name}\nspec:\n  images:\n  - glob: \"{glob}\"\n  authorities:\n  - name: ci\n    keyless:\n      identities:\n      - subject: \"{subject}\"\n        issuer: \"{ISSUER}\"\n{extra}"
    )
}

/// A Docker config.json granting `creds` on `host`.
fn auth_file(dir: &Path, host: &str, (user, pass): (&str, &str)) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let path = dir.join("config.json");
    std::fs::write(&path, json!({"auths": {host: {"auth": auth}}}).to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test]
async fn keyless_bundles_from_sigstore_js_are_verified_as_referrers() {
    if !require_tools() {
        return;
    }
    let Some(mock) = MockSigstore::start() else { return };
    let registry = Registry::htpasswd("testuser", "testpass");
    let host = registry.host();
    let signed = build_image(&registry, "v3/app", "v1", "signed with a bundle");
    attest_and_attach(&registry, "v3/app", &signed, &mock, COSIGN_SIGN_PREDICATE);
    let attested = build_image(&registry, "v3/attested", "v1", "only an attestation");
    attest_and_attach(
        &registry,
        "v3/attested",
        &attested,
        &mock,
        "https://slsa.dev/provenance/v1",
    );
    build_image(&registry, "v3/unsigned", "v1", "nothing attached");

    let scratch = tempfile::tempdir().unwrap();
    let auth = auth_file(scratch.path(), &host, registry.creds().unwrap());
    let trust_root = mock.trusted_root_path();
    let args = [
        "--insecure-registry",
        &host,
        "--registry-auth-file",
        &auth,
        "--trust-root",
        trust_root.to_str().unwrap(),
    ];
    let policies = policy_dir(&[
        &keyless_policy("alice", &format!("{host}/v3/**"), "alice@example.com", ""),
        &keyless_policy("bob", &format!("{host}/bob/**"), "bob@example.com", ""),
        &keyless_policy(
            "legacy-only",
            &format!("{host}/legacy/**"),
            "alice@example.com",
            "    signatureFormat: simplesigning\n",
        ),
    ]);
    let signet = Signet::start(policies.path(), &args).await;

    // The default (no signatureFormat) falls back from the missing .sig tag to the bundle.
    let allowed = decide(&signet, policies.path(), &format!("{host}/v3/app:v1"), &args).await;
    assert!(allowed.0, "{}", allowed.1);
    let pinned = decide(&signet, policies.path(), &format!("{host}/v3/app@{signed}"), &args).await;
    assert!(pinned.0, "{}", pinned.1);

    assert_denied(
        &decide(&signet, policies.path(), &format!("{host}/v3/attested:v1"), &args).await,
        &["is an attestation (https://slsa.dev/provenance/v1), not a signature"],
    );
    assert_denied(
        &decide(&signet, policies.path(), &format!("{host}/v3/unsigned:v1"), &args).await,
        &["no signatures found", "no Sigstore bundles found"],
    );
    drop(signet);

    // The same bundle under another identity policy, and with bundles switched off.
    let policies = policy_dir(&[&keyless_policy("bob", &format!("{host}/v3/**"), "bob@example.com", "")]);
    let signet = Signet::start(policies.path(), &args).await;
    assert_denied(
        &decide(&signet, policies.path(), &format!("{host}/v3/app:v1"), &args).await,
        &["certificate identity mismatch", "alice@example.com"],
    );
    drop(signet);
    let policies = policy_dir(&[&keyless_policy(
        "legacy-only",
        &format!("{host}/v3/**"),
        "alice@example.com",
        "    signatureFormat: simplesigning\n",
    )]);
    let signet = Signet::start(policies.path(), &args).await;
    let outcome = decide(&signet, policies.path(), &format!("{host}/v3/app:v1"), &args).await;
    assert_denied(&outcome, &["no signatures found"]);
    assert!(
        !outcome.1.contains("bundle"),
        "simplesigning must not look at bundles: {}",
        outcome.1
    );
}

#[tokio::test]
async fn keyed_bundles_and_tampering() {
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    let host = registry.host();
    let key = TestKey::generate();
    let rekor = TestKey::generate();
    let scratch = tempfile::tempdir().unwrap();
    let root_path = scratch.path().join("trusted_root.json");
    std::fs::write(&root_path, trusted_root_json(&rekor)).unwrap();

    let good = build_image(&registry, "keyed/good", "v1", "good");
    let good_statement = statement("keyed/good", &good, COSIGN_SIGN_PREDICATE);
    attach_bundle(
        &registry,
        "keyed/good",
        &good,
        &keyed_bundle(&key, &rekor, &good_statement, None),
    )
    .await;

    // A bundle about another image, attached to this one.
    let copied = build_image(&registry, "keyed/copied", "v1", "copied");
    attach_bundle(
        &registry,
        "keyed/copied",
        &copied,
        &keyed_bundle(&key, &rekor, &good_statement, None),
    )
    .await;

    // The envelope says one thing, the log recorded another.
    let swapped = build_image(&registry, "keyed/swapped", "v1", "swapped");
    let swapped_statement = statement("keyed/swapped", &swapped, COSIGN_SIGN_PREDICATE);
    let other = statement("keyed/swapped", &good, COSIGN_SIGN_PREDICATE);
    attach_bundle(
        &registry,
        "keyed/swapped",
        &swapped,
        &keyed_bundle(&key, &rekor, &swapped_statement, Some(&other)),
    )
    .await;

    // Signed by another key; and logged in a log the trust root does not know.
    let stranger = build_image(&registry, "keyed/stranger", "v1", "stranger");
    let stranger_statement = statement("keyed/stranger", &stranger, COSIGN_SIGN_PREDICATE);
    attach_bundle(
        &registry,
        "keyed/stranger",
        &stranger,
        &keyed_bundle(&TestKey::generate(), &rekor, &stranger_statement, None),
    )
    .await;
    let unlogged = build_image(&registry, "keyed/unlogged", "v1", "unlogged");
    let unlogged_statement = statement("keyed/unlogged", &unlogged, COSIGN_SIGN_PREDICATE);
    attach_bundle(
        &registry,
        "keyed/unlogged",
        &unlogged,
        &keyed_bundle(&key, &TestKey::generate(), &unlogged_statement, None),
    )
    .await;

    let unlogged_ok = build_image(&registry, "keyed/unlogged-ok", "v1", "unlogged, fine without ctlog");
    let statement_ok = statement("keyed/unlogged-ok", &unlogged_ok, COSIGN_SIGN_PREDICATE);
    let bundle_ok = keyed_bundle(&key, &TestKey::generate(), &statement_ok, None);
    attach_bundle(&registry, "keyed/unlogged-ok", &unlogged_ok, &bundle_ok).await;

    // Both formats on one image: a bad bundle does not spoil a good legacy signature.
    let both = build_image(&registry, "keyed/both", "v1", "both");
    sign_image(&registry, "keyed/both", &both, &key, &SignOptions::default()).await;
    let both_statement = statement("keyed/both", &both, COSIGN_SIGN_PREDICATE);
    attach_bundle(
        &registry,
        "keyed/both",
        &both,
        &keyed_bundle(&TestKey::generate(), &rekor, &both_statement, None),
    )
    .await;

    let args = [
        "--insecure-registry",
        &host,
        "--trust-root",
        root_path.to_str().unwrap(),
    ];
    let ctlog = "    ctlog:\n      url: https://rekor.test.local\n";
    let policies = policy_dir(&[
        &key_policy("bundles", &format!("{host}/keyed/**"), &key.public_pem(), ctlog),
        // Without ctlog a key authority does not look at the log, as for `.sig` signatures.
        &key_policy("no-ctlog", &format!("{host}/keyed/unlogged-ok*"), &key.public_pem(), ""),
        &key_policy(
            "bundle-only",
            &format!("{host}/keyed/both*"),
            &key.public_pem(),
            "    signatureFormat: bundle\n",
        ),
    ]);
    let signet = Signet::start(policies.path(), &args).await;
    let image = |repo: &str| format!("{host}/keyed/{repo}:v1");

    let allowed = decide(&signet, policies.path(), &image("good"), &args).await;
    assert!(allowed.0, "{}", allowed.1);
    assert_denied(
        &decide(&signet, policies.path(), &image("copied"), &args).await,
        &["artifact hash does not match any subject"],
    );
    assert_denied(
        &decide(&signet, policies.path(), &image("swapped"), &args).await,
        &["DSSE payload hash mismatch"],
    );
    assert_denied(
        &decide(&signet, policies.path(), &image("stranger"), &args).await,
        &["DSSE signature verification failed"],
    );
    assert_denied(
        &decide(&signet, policies.path(), &image("unlogged"), &args).await,
        &["which the trust root does not know"],
    );
    // keyed/unlogged-ok matches "bundles" (ctlog: its log is unknown) and "no-ctlog".
    assert_denied(
        &decide(&signet, policies.path(), &image("unlogged-ok"), &args).await,
        &["policy \"bundles\"", "which the trust root does not know"],
    );
    assert!(
        !decide(&signet, policies.path(), &image("unlogged-ok"), &args)
            .await
            .1
            .contains("no-ctlog")
    );
    // keyed/both matches both policies: the legacy signature satisfies "bundles", but
    // "bundle-only" looks at the (bad) bundle alone.
    assert_denied(
        &decide(&signet, policies.path(), &image("both"), &args).await,
        &["bundle-only", "the DSSE signature"],
    );
}
