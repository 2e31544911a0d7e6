//! Sigstore bundles on images, the cosign v3 way: a DSSE envelope around an in-toto
//! statement about the image digest, attached as an OCI 1.1 referrer through the referrers
//! tag schema (`sha256-<hex>`, since the test registry has no referrers API).
//!
//! Keyed bundles are made here (a test key signs, a test "Rekor" key signs the SET and the
//! checkpoint of a one-entry tree); keyless ones come from sigstore-js (`attest()`) against
//! the local mock Fulcio/Rekor and are attached by `@sigstore/cli`'s `sigstore attach`.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest;

use super::cosign::{Signs, TestKey, get_manifest, push_blob, put_manifest, sha256};
use super::env::run;
use super::keyless::{Leaf, MockSigstore, pem_to_der, signet_tools_dir};
use super::registry::Registry;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An in-toto statement about `digest` (`sha256:<hex>`).
pub fn statement(name: &str, digest: &str, predicate_type: &str) -> Vec<u8> {
    statement_with(name, digest, predicate_type, &json!({}))
}

/// [`statement`] with this `predicate`.
pub fn statement_with(name: &str, digest: &str, predicate_type: &str, predicate: &Value) -> Vec<u8> {
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": digest.trim_start_matches("sha256:")}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    })
    .to_string()
    .into_bytes()
}

fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// `statement` in a DSSE envelope signed by `key`, and the signature.
pub fn dsse_envelope(key: &dyn Signs, statement: &[u8]) -> (Value, Vec<u8>) {
    let payload_type = "application/vnd.in-toto+json";
    let signature = key.sign(&pae(payload_type, statement));
    let envelope = json!({
        "payload": B64.encode(statement),
        "payloadType": payload_type,
        "signatures": [{"sig": B64.encode(&signature), "keyid": ""}],
    });
    (envelope, signature)
}

/// A v0.3 bundle: `statement` in a DSSE envelope signed by `key`, logged (dsse 0.0.1) in a
/// one-entry log whose SET and checkpoint `rekor` signs. `logged_statement` lets a test log
/// a different payload than the one in the envelope.
pub fn keyed_bundle(key: &dyn Signs, rekor: &TestKey, statement: &[u8], logged_statement: Option<&[u8]>) -> String {
    let (envelope, signature) = dsse_envelope(key, statement);
    let logged = logged_statement.unwrap_or(statement);
    let body = json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": format!("{:x}", sha2::Sha256::digest(envelope.to_string()))},
            "payloadHash": {"algorithm": "sha256", "value": format!("{:x}", sha2::Sha256::digest(logged))},
            "signatures": [{"signature": B64.encode(&signature), "verifier": B64.encode(key.public_pem())}],
        },
    })
    .to_string();
    let body_b64 = B64.encode(&body);
    let integrated_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 60;
    let set_payload =
        json!({"body": body_b64, "integratedTime": integrated_time, "logID": rekor.log_id(), "logIndex": 0});
    let set = rekor.sign(set_payload.to_string().as_bytes());
    // A one-entry tree: its root is the leaf hash and the proof is empty.
    let mut leaf = sha2::Sha256::new();
    leaf.update([0u8]);
    leaf.update(body.as_bytes());
    let root = leaf.finalize();
    let note = format!("rekor.test.local - 1\n1\n{}\n", B64.encode(root));
    let mut note_signature = hex_bytes(&rekor.log_id())[..4].to_vec();
    note_signature.extend_from_slice(&rekor.sign(note.as_bytes()));
    let checkpoint = format!("{note}\n\u{2014} rekor.test.local {}\n", B64.encode(note_signature));
    json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {
            "publicKey": {"hint": ""},
            "tlogEntries": [{
                "logIndex": "0",
                "logId": {"keyId": B64.encode(hex_bytes(&rekor.log_id()))},
                "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                "integratedTime": integrated_time.to_string(),
                "inclusionPromise": {"signedEntryTimestamp": B64.encode(set)},
                "inclusionProof": {"logIndex": "0", "rootHash": B64.encode(root), "treeSize": "1", "hashes": [],
                    "checkpoint": {"envelope": checkpoint}},
                "canonicalizedBody": body_b64,
            }],
        },
        "dsseEnvelope": envelope,
    })
    .to_string()
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// Attaches `bundle_json` to `digest` in `repo` as a referrer, through the referrers tag
/// schema (the index at `sha256-<hex>` gains one entry). Returns the referrer's digest.
pub async fn attach_bundle(reg: &Registry, repo: &str, digest: &str, bundle_json: &str) -> String {
    let empty_config = b"{}";
    let config_digest = push_blob(reg, repo, empty_config).await;
    let layer_digest = push_blob(reg, repo, bundle_json.as_bytes()).await;
    let subject = get_manifest(reg, repo, digest).await.expect("the subject manifest");
    let subject_bytes = subject.to_string();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_V03,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest, "size": 2},
        "layers": [{"mediaType": BUNDLE_V03, "digest": layer_digest, "size": bundle_json.len()}],
        "subject": {"mediaType": subject["mediaType"].as_str().unwrap_or(OCI_MANIFEST), "digest": digest,
            "size": subject_bytes.len()},
    })
    .to_string();
    let manifest_digest = put_manifest(
        reg,
        repo,
        &sha256(manifest.as_bytes()),
        OCI_MANIFEST,
        manifest.as_bytes(),
    )
    .await;
    let tag = digest.replacen(':', "-", 1);
    let mut index = get_manifest(reg, repo, &tag)
        .await
        .unwrap_or_else(|| json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}));
    index["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest.len(), "artifactType": BUNDLE_V03,
    }));
    let index = index.to_string();
    put_manifest(reg, repo, &tag, OCI_INDEX, index.as_bytes()).await;
    manifest_digest
}

/// Builds `repo:v1` and attaches a bundle with an in-toto statement of `predicate_type`
/// about it, signed by `key` and logged by `rekor`. Returns the image digest.
pub async fn image_with_bundled_attestation(
    reg: &Registry,
    repo: &str,
    key: &TestKey,
    rekor: &TestKey,
    predicate_type: &str,
    predicate: &Value,
) -> String {
    let digest = super::images::build_image(reg, repo, "v1", repo);
    let statement = statement_with(repo, &digest, predicate_type, predicate);
    attach_bundle(reg, repo, &digest, &keyed_bundle(key, rekor, &statement, None)).await;
    digest
}

/// cosign's `.att` layout: `statement` in a DSSE envelope signed by `key`, pushed as a layer
/// of the manifest at `sha256-<hex>.att`, with a Rekor bundle annotation (a dsse entry with
/// a SET by `rekor`) when `rekor` is given.
pub async fn attest_legacy(
    reg: &Registry,
    repo: &str,
    digest: &str,
    key: &TestKey,
    statement: &[u8],
    rekor: Option<&TestKey>,
) {
    let (envelope, signature) = dsse_envelope(key, statement);
    let envelope_bytes = envelope.to_string();
    let layer_digest = push_blob(reg, repo, envelope_bytes.as_bytes()).await;
    let config_digest = push_blob(reg, repo, b"{}").await;
    let predicate_type: Value = serde_json::from_slice::<Value>(statement).unwrap()["predicateType"].clone();
    let mut annotations = json!({"dev.cosignproject.cosign/signature": "", "predicateType": predicate_type});
    if let Some(rekor) = rekor {
        let body = json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                // Rekor's dsse 0.0.1 schema requires the envelope hash beside the payload hash.
                "envelopeHash": {"algorithm": "sha256", "value": format!("{:x}", sha2::Sha256::digest(&envelope_bytes))},
                "payloadHash": {"algorithm": "sha256", "value": format!("{:x}", sha2::Sha256::digest(statement))},
                "signatures": [{"signature": B64.encode(&signature), "verifier": B64.encode(key.public_pem())}],
            },
        });
        let body_b64 = B64.encode(body.to_string());
        let integrated_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            - 60;
        let payload =
            json!({"body": body_b64, "integratedTime": integrated_time, "logID": rekor.log_id(), "logIndex": 3});
        let set = rekor.sign(payload.to_string().as_bytes());
        annotations["dev.sigstore.cosign/bundle"] =
            json!({"SignedEntryTimestamp": B64.encode(set), "Payload": payload})
                .to_string()
                .into();
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": 2},
        "layers": [{"mediaType": "application/vnd.dsse.envelope.v1+json", "digest": layer_digest,
            "size": envelope_bytes.len(), "annotations": annotations}],
    })
    .to_string();
    let tag = format!("{}.att", digest.replacen(':', "-", 1));
    put_manifest(reg, repo, &tag, OCI_MANIFEST, manifest.as_bytes()).await;
}

/// Signs `digest` keyless with sigstore-js `attest()` against `mock` (identity
/// alice@example.com from https://oidc.test.local) and attaches the bundle with `sigstore
/// attach`. The registry must be plain HTTP with htpasswd (what `sigstore attach` needs).
pub fn attest_and_attach(reg: &Registry, repo: &str, digest: &str, mock: &MockSigstore, predicate_type: &str) -> Value {
    attest_and_attach_with(reg, repo, digest, mock, predicate_type, &json!({}))
}

/// [`attest_and_attach`] with this `predicate` in the statement.
pub fn attest_and_attach_with(
    reg: &Registry,
    repo: &str,
    digest: &str,
    mock: &MockSigstore,
    predicate_type: &str,
    predicate: &Value,
) -> Value {
    attest_and_attach_as(reg, repo, digest, mock, predicate_type, predicate, None)
}

/// [`attest_and_attach_with`] as another signer: the token's issuer and e-mail claim (which
/// the mock writes as the certificate's URI SAN), e.g. a GitHub Actions workflow.
pub fn attest_and_attach_as(
    reg: &Registry,
    repo: &str,
    digest: &str,
    mock: &MockSigstore,
    predicate_type: &str,
    predicate: &Value,
    signer: Option<(&str, &str)>,
) -> Value {
    let (user, pass) = reg.creds().expect("sigstore attach needs registry credentials");
    let script = super::env::shared_tool("attest-image.js").expect("attest-image.js");
    let modules = signet_tools_dir().join("npm/node_modules");
    let work = tempfile::tempdir().unwrap();
    let bundle_path = work.path().join("bundle.json");
    // attest-image.js posts to the mock on its fixed port; point it at this mock instead.
    let script_text = std::fs::read_to_string(&script)
        .unwrap()
        .replace("http://127.0.0.1:8765", &mock.url())
        .replace("predicate: {}", "predicate: JSON.parse(process.env.PREDICATE)");
    let script_text = match signer {
        Some((issuer, subject)) => script_text
            .replace("https://oidc.test.local", issuer)
            .replace("alice@example.com", subject),
        None => script_text,
    };
    let local_script = work.path().join("attest-image.js");
    std::fs::write(&local_script, script_text).unwrap();
    let image = format!("{}/{repo}", reg.host());
    run(Command::new("node")
        .arg(&local_script)
        .arg(&image)
        .arg(digest)
        .arg(&bundle_path)
        .env("NODE_PATH", &modules)
        .env("PRED", predicate_type)
        .env("PREDICATE", predicate.to_string()));
    run(Command::new(modules.join(".bin/sigstore"))
        .args(["attach", "-u", user, "-p", pass, "--attestation"])
        .arg(&bundle_path)
        .arg(format!("{image}@{digest}")));
    serde_json::from_slice(&std::fs::read(Path::new(&bundle_path)).unwrap()).unwrap()
}

/// A bundle as GitHub's own Sigstore instance makes them (v0.3, a DSSE in-toto statement of
/// `predicate_type` about `digest`, the leaf certificate, one RFC 3161 timestamp and no
/// transparency log entry): signed with `leaf`'s key by openssl, timestamped by `mock`'s TSA.
pub async fn github_instance_bundle(leaf: &Leaf, mock: &MockSigstore, digest: &str, predicate_type: &str) -> String {
    let statement = statement("app", digest, predicate_type);
    let payload_type = "application/vnd.in-toto+json";
    let mut pae = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), statement.len()).into_bytes();
    pae.extend_from_slice(&statement);
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("pae"), &pae).unwrap();
    run(Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&leaf.key_path)
        .arg("-out")
        .arg(work.path().join("sig"))
        .arg(work.path().join("pae")));
    let signature = std::fs::read(work.path().join("sig")).unwrap();
    let request = json!({"artifactHash": B64.encode(sha2::Sha256::digest(&signature)), "hashAlgorithm": "sha256"});
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/timestamp", mock.url()))
        .json(&request)
        .send()
        .await
        .expect("the mock TSA answers");
    assert!(response.status().is_success(), "mock TSA: {}", response.status());
    let timestamp = response.bytes().await.unwrap();
    json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {
            "certificate": {"rawBytes": B64.encode(pem_to_der(&leaf.cert_pem))},
            "tlogEntries": [],
            "timestampVerificationData": {"rfc3161Timestamps": [{"signedTimestamp": B64.encode(&timestamp)}]},
        },
        "dsseEnvelope": {
            "payload": B64.encode(&statement),
            "payloadType": payload_type,
            "signatures": [{"sig": B64.encode(&signature)}],
        },
    })
    .to_string()
}
