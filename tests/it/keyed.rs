//! Key authorities end to end: real images in a real `docker-registry`, signatures from the
//! project's own signer and from `../shared/tools/cosign_sign.py`, decisions through
//! `/validate` and `/mutate` over HTTPS and through `signet verify`.

use crate::signet_server;
use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use signet_server::{Signet, decoded_patch, key_policy, pod_review, policy_dir};
use support::{Registry, SignOptions, TestKey, build_image, build_multiarch_index, require_tools, sign_image};

/// The outcome of one image through /validate, /mutate and `signet verify`.
struct Outcome {
    validate: Value,
    mutate: Value,
    cli_ok: bool,
    cli_output: String,
}

impl Outcome {
    fn assert_allowed(&self) {
        assert_eq!(self.validate["allowed"], true, "validate: {}", self.validate);
        assert_eq!(self.mutate["allowed"], true, "mutate: {}", self.mutate);
        assert!(self.cli_ok, "signet verify must exit 0:\n{}", self.cli_output);
    }

    fn assert_denied(&self, fragments: &[&str]) {
        assert_eq!(self.validate["allowed"], false, "validate: {}", self.validate);
        assert_eq!(self.mutate["allowed"], false, "mutate: {}", self.mutate);
        assert!(!self.cli_ok, "signet verify must fail:\n{}", self.cli_output);
        let message = self.validate["status"]["message"].as_str().unwrap_or_default();
        for fragment in fragments {
            assert!(
                message.contains(fragment),
                "{fragment:?} missing from denial: {message}"
            );
            assert!(
                self.cli_output.contains(fragment),
                "{fragment:?} missing from `signet verify`:\n{}",
                self.cli_output
            );
        }
    }
}

async fn check(signet: &Signet, policies: &Path, image: &str, extra_args: &[&str]) -> Outcome {
    let review = pod_review("uid-1", &[image]);
    let validate = signet.review("validate", &review).await;
    let mutate = signet.review("mutate", &review).await;
    let output = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["--log-level", "warn", "verify", image, "--policy"])
        .arg(policies)
        .args(extra_args)
        .output()
        .expect("run signet verify");
    Outcome {
        validate,
        mutate,
        cli_ok: output.status.success(),
        cli_output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

struct Setup {
    registry: Registry,
    key: TestKey,
}

fn setup() -> Option<Setup> {
    if !require_tools() {
        return None;
    }
    Some(Setup {
        registry: Registry::plain(),
        key: TestKey::generate(),
    })
}

#[tokio::test]
async fn good_signature_is_admitted_and_the_tag_pinned_to_the_verified_digest() {
    let Some(Setup { registry, key }) = setup() else {
        return;
    };
    let digest = build_image(&registry, "demo/app", "v1", "app v1");
    sign_image(&registry, "demo/app", &digest, &key, &SignOptions::default()).await;
    let dir = policy_dir(&[&key_policy("signed-demo", "**", &key.public_pem(), "")]);
    let insecure = ["--insecure-registry", &registry.host()];
    let signet = Signet::start(dir.path(), &insecure).await;
    let image = format!("{}/demo/app:v1", registry.host());

    let outcome = check(&signet, dir.path(), &image, &insecure).await;
    outcome.assert_allowed();
    let patch = decoded_patch(&outcome.mutate);
    assert_eq!(
        patch,
        vec![
            json!({"op": "test", "path": "/spec/containers/0/image", "value": image}),
            json!({"op": "replace", "path": "/spec/containers/0/image", "value": format!("{image}@{digest}")}),
        ]
    );
    assert!(outcome.validate.get("patch").is_none(), "validate never patches");
    assert!(outcome.cli_output.contains(&digest), "{}", outcome.cli_output);
    assert!(outcome.cli_output.contains("release-key"), "{}", outcome.cli_output);

    // The pinned image is admitted as is, without a new patch.
    let pinned = check(&signet, dir.path(), &format!("{image}@{digest}"), &insecure).await;
    pinned.assert_allowed();
    assert!(decoded_patch(&pinned.mutate).is_empty());
}

#[tokio::test]
async fn wrong_key_other_digest_and_tampered_payload_are_denied() {
    let Some(Setup { registry, key }) = setup() else {
        return;
    };
    let other_key = TestKey::generate();
    let signed_by_other = build_image(&registry, "demo/other-key", "v1", "a");
    sign_image(
        &registry,
        "demo/other-key",
        &signed_by_other,
        &other_key,
        &SignOptions::default(),
    )
    .await;
    let other_digest = build_image(&registry, "demo/other-digest", "v1", "b");
    let unrelated = build_image(&registry, "demo/other-digest", "v0", "c");
    let options = SignOptions {
        payload_digest: Some(unrelated.clone()),
        ..SignOptions::default()
    };
    sign_image(&registry, "demo/other-digest", &other_digest, &key, &options).await;
    let tampered = build_image(&registry, "demo/tampered", "v1", "d");
    sign_image(
        &registry,
        "demo/tampered",
        &tampered,
        &key,
        &SignOptions {
            tamper: true,
            ..SignOptions::default()
        },
    )
    .await;
    let unsigned = build_image(&registry, "demo/unsigned", "v1", "e");

    let dir = policy_dir(&[&key_policy("signed-demo", "**", &key.public_pem(), "")]);
    let insecure = ["--insecure-registry", &registry.host()];
    let signet = Signet::start(dir.path(), &insecure).await;
    let host = registry.host();

    let fingerprint = support::sha256(&key.spki_der());
    check(&signet, dir.path(), &format!("{host}/demo/other-key:v1"), &insecure)
        .await
        .assert_denied(&[
            "\"signed-demo\"",
            "\"release-key\"",
            &signed_by_other,
            "not signed by key",
            &fingerprint,
        ]);
    check(&signet, dir.path(), &format!("{host}/demo/other-digest:v1"), &insecure)
        .await
        .assert_denied(&[&format!("the signed payload is for {unrelated}, not {other_digest}")]);
    check(&signet, dir.path(), &format!("{host}/demo/tampered:v1"), &insecure)
        .await
        .assert_denied(&[&tampered, "not signed by key"]);
    check(&signet, dir.path(), &format!("{host}/demo/unsigned:v1"), &insecure)
        .await
        .assert_denied(&[
            &unsigned,
            &format!("no signatures found at {host}/demo/unsigned:sha256-"),
        ]);
}

#[tokio::test]
async fn one_good_signature_among_several_is_enough() {
    let Some(Setup { registry, key }) = setup() else {
        return;
    };
    let digest = build_image(&registry, "demo/multi", "v1", "m");
    sign_image(
        &registry,
        "demo/multi",
        &digest,
        &TestKey::generate(),
        &SignOptions::default(),
    )
    .await;
    sign_image(
        &registry,
        "demo/multi",
        &digest,
        &key,
        &SignOptions {
            append: true,
            ..SignOptions::default()
        },
    )
    .await;
    let dir = policy_dir(&[&key_policy("signed-demo", "**", &key.public_pem(), "")]);
    let insecure = ["--insecure-registry", &registry.host()];
    let signet = Signet::start(dir.path(), &insecure).await;
    check(
        &signet,
        dir.path(),
        &format!("{}/demo/multi:v1", registry.host()),
        &insecure,
    )
    .await
    .assert_allowed();
}

#[tokio::test]
async fn required_annotations_are_checked_by_name_and_value() {
    let Some(Setup { registry, key }) = setup() else {
        return;
    };
    let prod = build_image(&registry, "demo/ann", "prod", "p");
    let annotated = SignOptions {
        annotations: BTreeMap::from([("env".to_string(), "prod".to_string())]),
        ..SignOptions::default()
    };
    sign_image(&registry, "demo/ann", &prod, &key, &annotated).await;
    let dev = build_image(&registry, "demo/ann", "dev", "d");
    let dev_annotated = SignOptions {
        annotations: BTreeMap::from([("env".to_string(), "dev".to_string())]),
        ..SignOptions::default()
    };
    sign_image(&registry, "demo/ann", &dev, &key, &dev_annotated).await;
    let bare = build_image(&registry, "demo/ann", "bare", "b");
    sign_image(&registry, "demo/ann", &bare, &key, &SignOptions::default()).await;

    let require = "    requireAnnotations:\n      env: prod\n";
    let dir = policy_dir(&[&key_policy("prod-only", "**", &key.public_pem(), require)]);
    let insecure = ["--insecure-registry", &registry.host()];
    let signet = Signet::start(dir.path(), &insecure).await;
    let host = registry.host();
    check(&signet, dir.path(), &format!("{host}/demo/ann:prod"), &insecure)
        .await
        .assert_allowed();
    check(&signet, dir.path(), &format!("{host}/demo/ann:dev"), &insecure)
        .await
        .assert_denied(&["annotation \"env\" is \"dev\", the policy requires \"prod\""]);
    check(&signet, dir.path(), &format!("{host}/demo/ann:bare"), &insecure)
        .await
        .assert_denied(&["annotation \"env\" is missing"]);
}

#[tokio::test]
async fn signatures_in_another_repository_are_found_through_source_oci() {
    let Some(Setup { registry, key }) = setup() else {
        return;
    };
    let digest = build_image(&registry, "demo/moved", "v1", "x");
    sign_image(&registry, "signatures/moved", &digest, &key, &SignOptions::default()).await;
    let prefixed = SignOptions {
        tag_prefix: "sigprefix".into(),
        ..SignOptions::default()
    };
    sign_image(&registry, "signatures/prefixed", &digest, &key, &prefixed).await;
    let host = registry.host();
    let with_source = format!("    source:\n    - oci: {host}/signatures/moved\n");
    let with_prefix = format!("    source:\n    - oci: {host}/signatures/prefixed\n      tagPrefix: sigprefix\n");
    let insecure = ["--insecure-registry", &host];
    let image = format!("{host}/demo/moved:v1");

    let dir = policy_dir(&[&key_policy("elsewhere", "**", &key.public_pem(), &with_source)]);
    let signet = Signet::start(dir.path(), &insecure).await;
    check(&signet, dir.path(), &image, &insecure).await.assert_allowed();
    drop(signet);

    let dir = policy_dir(&[&key_policy("prefixed", "**", &key.public_pem(), &with_prefix)]);
    let signet = Signet::start(dir.path(), &insecure).await;
    check(&signet, dir.path(), &image, &insecure).await.assert_allowed();
    drop(signet);

    let dir = policy_dir(&[&key_policy("own-repo", "**", &key.public_pem(), "")]);
    let signet = Signet::start(dir.path(), &insecure).await;
    check(&signet, dir.path(), &image, &insecure)
        .await
        .assert_denied(&[&format!("no signatures found at {host}/demo/moved:sha256-")]);
}

#[tokio::test]
async fn a_signed_index_is_pinned_by_its_own_digest() {
    let Some(Setup { registry, key }) = setup() else {
        return;
    };
    let (index, platforms) = build_multiarch_index(&registry, "demo/multiarch", "v1");
    sign_image(&registry, "demo/multiarch", &index, &key, &SignOptions::default()).await;
    let dir = policy_dir(&[&key_policy("signed-demo", "**", &key.public_pem(), "")]);
    let insecure = ["--insecure-registry", &registry.host()];
    let signet = Signet::start(dir.path(), &insecure).await;
    let image = format!("{}/demo/multiarch:v1", registry.host());

    let outcome = check(&signet, dir.path(), &image, &insecure).await;
    outcome.assert_allowed();
    assert_eq!(decoded_patch(&outcome.mutate)[1]["value"], format!("{image}@{index}"));

    // A platform manifest named by digest alone carries no signature of its own.
    let platform = format!("{}/demo/multiarch@{}", registry.host(), platforms[0]);
    check(&signet, dir.path(), &platform, &insecure)
        .await
        .assert_denied(&[&platforms[0], "no signatures found"]);
}

#[tokio::test]
async fn rekor_bundles_are_checked_offline_when_the_policy_has_ctlog() {
    let Some(Setup { registry, key }) = setup() else {
        return;
    };
    let rekor = TestKey::generate();
    let stranger = TestKey::generate();
    let cases = [
        (
            "logged",
            SignOptions {
                rekor: Some(&rekor),
                ..SignOptions::default()
            },
        ),
        ("unlogged", SignOptions::default()),
        (
            "unknown-log",
            SignOptions {
                rekor: Some(&stranger),
                ..SignOptions::default()
            },
        ),
        (
            "other-key",
            SignOptions {
                rekor: Some(&rekor),
                rekor_records_key: Some(&stranger),
                ..SignOptions::default()
            },
        ),
        (
            "other-signature",
            SignOptions {
                rekor: Some(&rekor),
                rekor_other_signature: true,
                ..SignOptions::default()
            },
        ),
    ];
    for (tag, options) in &cases {
        let digest = build_image(&registry, "demo/tlog", tag, tag);
        sign_image(&registry, "demo/tlog", &digest, &key, options).await;
    }
    let scratch = tempfile::tempdir().unwrap();
    let trust_root = scratch.path().join("trusted_root.json");
    std::fs::write(&trust_root, support::trusted_root_json(&rekor)).unwrap();
    let ctlog = "    ctlog:\n      url: https://rekor.test.local\n";
    let dir = policy_dir(&[&key_policy("logged", "**", &key.public_pem(), ctlog)]);
    let host = registry.host();
    let args = [
        "--insecure-registry",
        &host,
        "--trust-root",
        trust_root.to_str().unwrap(),
    ];
    let signet = Signet::start(dir.path(), &args).await;

    let outcome = check(&signet, dir.path(), &format!("{host}/demo/tlog:logged"), &args).await;
    outcome.assert_allowed();
    assert!(
        outcome
            .cli_output
            .contains("logged in https://rekor.test.local at index 7"),
        "{}",
        outcome.cli_output
    );
    check(&signet, dir.path(), &format!("{host}/demo/tlog:unlogged"), &args)
        .await
        .assert_denied(&["has no Rekor bundle"]);
    check(&signet, dir.path(), &format!("{host}/demo/tlog:unknown-log"), &args)
        .await
        .assert_denied(&[&format!(
            "signed by log {}, which the trust root does not know",
            stranger.log_id()
        )]);
    check(&signet, dir.path(), &format!("{host}/demo/tlog:other-key"), &args)
        .await
        .assert_denied(&["public key in Rekor entry does not match managed key"]);
    check(&signet, dir.path(), &format!("{host}/demo/tlog:other-signature"), &args)
        .await
        .assert_denied(&["signature in bundle does not match signature in Rekor entry"]);

    // Without ctlog the same unlogged signature is enough, as in policy-controller.
    let no_tlog = policy_dir(&[&key_policy("unlogged-ok", "**", &key.public_pem(), "")]);
    let plain = Signet::start(no_tlog.path(), &args).await;
    check(&plain, no_tlog.path(), &format!("{host}/demo/tlog:unlogged"), &args)
        .await
        .assert_allowed();
}

#[tokio::test]
async fn signatures_from_the_independent_python_signer_verify() {
    let Some(Setup { registry, .. }) = setup() else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let Some((key_path, public_pem)) = support::python_keypair(keys.path(), "cosign") else {
        return;
    };
    let Some((other_key_path, _)) = support::python_keypair(keys.path(), "other") else {
        return;
    };
    let rekor_key = keys.path().join("rekor.key");
    support::run(Command::new("sh").arg("-c").arg(format!(
        "openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out {}",
        rekor_key.display()
    )));
    let rekor_pub_der = support::run(Command::new("sh").arg("-c").arg(format!(
        "openssl pkey -in {} -pubout -outform DER | base64 -w0",
        rekor_key.display()
    )));
    let host = registry.host();
    build_image(&registry, "py/good", "v1", "g");
    support::python_sign(
        &registry,
        "py/good",
        "v1",
        &key_path,
        &["-a", "env=prod", "--rekor-key", rekor_key.to_str().unwrap()],
    );
    let wrong = build_image(&registry, "py/wrong", "v1", "w");
    support::python_sign(&registry, "py/wrong", "v1", &other_key_path, &[]);

    let trust_root = keys.path().join("trusted_root.json");
    let root =
        json!({"tlogs": [{"baseUrl": "https://rekor.py.local", "publicKey": {"rawBytes": rekor_pub_der.trim()}}]});
    std::fs::write(&trust_root, root.to_string()).unwrap();
    let extra = "    requireAnnotations:\n      env: prod\n    ctlog:\n      url: https://rekor.py.local\n";
    let dir = policy_dir(&[&key_policy("python-signed", "**", &public_pem, extra)]);
    let args = [
        "--insecure-registry",
        &host,
        "--trust-root",
        trust_root.to_str().unwrap(),
    ];
    let signet = Signet::start(dir.path(), &args).await;
    check(&signet, dir.path(), &format!("{host}/py/good:v1"), &args)
        .await
        .assert_allowed();
    check(&signet, dir.path(), &format!("{host}/py/wrong:v1"), &args)
        .await
        .assert_denied(&[&wrong, "not signed by key"]);
}

#[tokio::test]
async fn unmet_or_unsupported_requirements_fail_instead_of_passing() {
    let Some(Setup { registry, key }) = setup() else { return };
    let digest = build_image(&registry, "demo/att", "v1", "att");
    sign_image(&registry, "demo/att", &digest, &key, &SignOptions::default()).await;
    let host = registry.host();
    let insecure = ["--insecure-registry", &host];
    let image = format!("{host}/demo/att:v1");
    let cases = [
        // Signed, but not attested: an authority that wants attestations finds none.
        (
            "    attestations:\n    - name: provenance\n      predicateType: slsaprovenance\n",
            "attestation \"provenance\": no verified attestation of type https://slsa.dev/provenance/v0.2",
        ),
        // Signed the legacy way only: an authority that asks for bundles finds none.
        ("    signatureFormat: bundle\n", "no Sigstore bundles found"),
        // No credentials for the KMS here: denied, naming the key.
        ("", "KMS key awskms:///arn:aws:kms:us-east-1:111122223333:key/1234abcd"),
    ];
    for (extra, reason) in cases {
        let policy = if reason.starts_with("KMS") {
            "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: kms\nspec:\n  images:\n  - glob: \"**\"\n  authorities:\n  - key:\n      kms: awskms:///arn:aws:kms:us-east-1:111122223333:key/1234abcd\n".to_string()
        } else {
            key_policy("unsupported", "**", &key.public_pem(), extra)
        };
        let dir = policy_dir(&[&policy]);
        let signet = Signet::start(dir.path(), &insecure).await;
        check(&signet, dir.path(), &image, &insecure)
            .await
            .assert_denied(&[reason]);
    }
}

/// `rfc3161timestamp` on cosign's `.sig` layout: the signature must carry a timestamp from a
/// timestamp authority of the trust root (the mock's, with `--trust-root`), in cosign's
/// `dev.sigstore.cosign/rfc3161timestamp` annotation; no log is asked for without `ctlog`.
#[tokio::test]
async fn rfc3161_timestamps_on_sig_layers() {
    let Some(Setup { registry, key }) = setup() else { return };
    let Some(tsa) = support::MockSigstore::start_with_env(&[("TSA_WHOLE_SECONDS", "1")]) else {
        return;
    };
    let Some(stranger) = support::MockSigstore::start_with_env(&[("TSA_WHOLE_SECONDS", "1")]) else {
        return;
    };
    let timestamped = |url: &str| SignOptions {
        timestamp_url: Some(url.to_string()),
        ..SignOptions::default()
    };
    let good = build_image(&registry, "ts/good", "v1", "good");
    sign_image(&registry, "ts/good", &good, &key, &timestamped(&tsa.url())).await;
    let none = build_image(&registry, "ts/none", "v1", "none");
    sign_image(&registry, "ts/none", &none, &key, &SignOptions::default()).await;
    let other = build_image(&registry, "ts/other", "v1", "other");
    sign_image(&registry, "ts/other", &other, &key, &timestamped(&stranger.url())).await;

    let host = registry.host();
    let dir = policy_dir(&[&key_policy(
        "timestamped",
        &format!("{host}/ts/**"),
        &key.public_pem(),
        "    rfc3161timestamp: {}\n",
    )]);
    let root = tsa.trusted_root_path();
    let args = ["--insecure-registry", &host, "--trust-root", root.to_str().unwrap()];
    let signet = Signet::start(dir.path(), &args).await;
    check(&signet, dir.path(), &format!("{host}/ts/good:v1"), &args)
        .await
        .assert_allowed();
    check(&signet, dir.path(), &format!("{host}/ts/none:v1"), &args)
        .await
        .assert_denied(&["requires an RFC 3161 timestamp"]);
    check(&signet, dir.path(), &format!("{host}/ts/other:v1"), &args)
        .await
        .assert_denied(&["RFC 3161 timestamp"]);
}
