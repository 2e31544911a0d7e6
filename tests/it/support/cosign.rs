//! The project's own cosign-format signer for tests: ECDSA P-256 keys, simple-signing
//! payloads, `.sig` manifests pushed over the registry API, and Rekor bundles (SETs) signed
//! by a test transparency-log key. `../shared/tools/cosign_sign.py` is the independent
//! second signer ([`python_sign`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::EncodePublicKey;
use serde_json::{Value, json};
use sha2::Digest;

use super::env::{python, run, shared_tool};
use super::registry::Registry;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Anything that signs the way a cosign key does: a local P-256 key, or a key in a KMS.
pub trait Signs {
    /// The signature over `message` (DER ECDSA, or PKCS#1 v1.5 for RSA), hashed with SHA-256.
    fn sign(&self, message: &[u8]) -> Vec<u8>;
    fn public_pem(&self) -> String;
}

impl Signs for TestKey {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        TestKey::sign(self, message)
    }

    fn public_pem(&self) -> String {
        TestKey::public_pem(self)
    }
}

/// An ECDSA P-256 key pair.
pub struct TestKey {
    signing: p256::ecdsa::SigningKey,
}

impl TestKey {
    pub fn generate() -> TestKey {
        loop {
            let mut secret = [0u8; 32];
            aws_lc_rs::rand::fill(&mut secret).expect("random bytes");
            if let Ok(signing) = p256::ecdsa::SigningKey::from_slice(&secret) {
                return TestKey { signing };
            }
        }
    }

    pub fn spki_der(&self) -> Vec<u8> {
        self.signing
            .verifying_key()
            .to_public_key_der()
            .expect("spki")
            .as_bytes()
            .to_vec()
    }

    pub fn public_pem(&self) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", self.spki_der()))
    }

    /// DER ECDSA signature over sha256(message), as cosign makes them.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let digest = sha2::Sha256::digest(message);
        let signature: p256::ecdsa::Signature = self.signing.sign_prehash(&digest).expect("sign");
        signature.to_der().as_bytes().to_vec()
    }

    /// A P-256 key from PKCS#8 PEM (what openssl writes for the private CA's leaves).
    pub fn from_pkcs8_pem(text: &str) -> TestKey {
        use p256::pkcs8::DecodePrivateKey;
        let block = pem::parse(text).expect("PEM private key");
        TestKey {
            signing: p256::ecdsa::SigningKey::from_pkcs8_der(block.contents()).expect("P-256 PKCS#8 key"),
        }
    }

    /// The private key as PKCS#8 PEM (what `cosign_sign.py --rekor-key` reads).
    pub fn pkcs8_pem(&self) -> String {
        use p256::pkcs8::EncodePrivateKey;
        let der = self.signing.to_pkcs8_der().expect("pkcs8");
        pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_bytes().to_vec()))
    }

    /// Rekor's log id for this key: hex(sha256(SPKI DER)).
    pub fn log_id(&self) -> String {
        format!("{:x}", sha2::Sha256::digest(self.spki_der()))
    }
}

/// How to sign: everything a test may want to get wrong on purpose.
#[derive(Default)]
pub struct SignOptions<'a> {
    /// `cosign sign -a key=value`.
    pub annotations: BTreeMap<String, String>,
    /// Put this digest in the payload instead of the signed image's.
    pub payload_digest: Option<String>,
    /// Change the payload after signing it.
    pub tamper: bool,
    /// Add to the existing `.sig` manifest instead of replacing it.
    pub append: bool,
    /// Sign a Rekor bundle (SET) with this transparency-log key.
    pub rekor: Option<&'a TestKey>,
    /// Make the logged entry record this key instead of the signer's.
    pub rekor_records_key: Option<&'a TestKey>,
    /// Make the logged entry record a signature over other bytes.
    pub rekor_other_signature: bool,
    /// Make the logged entry record this PEM (e.g. a certificate) as its verification material.
    pub rekor_records_pem: Option<String>,
    /// `source[].tagPrefix`.
    pub tag_prefix: String,
    /// Keyless annotations: the signing certificate and its chain (PEM).
    pub certificate_pem: Option<String>,
    pub chain_pem: Option<String>,
    /// A Sigstore TSA (`POST /api/v1/timestamp`, the mock's) to timestamp the signature:
    /// cosign's `dev.sigstore.cosign/rfc3161timestamp` annotation.
    pub timestamp_url: Option<String>,
}

fn client(reg: &Registry) -> reqwest::Client {
    let mut builder = reqwest::Client::builder();
    if reg.is_tls() {
        builder = builder.tls_certs_only([reqwest::Certificate::from_pem(reg.ca_pem()).expect("CA")]);
    }
    builder.build().expect("client")
}

fn authorised(reg: &Registry, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match reg.creds() {
        Some((user, pass)) => request.basic_auth(user, Some(pass)),
        None => request,
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// Uploads a blob (monolithic) and returns its digest.
pub async fn push_blob(reg: &Registry, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let http = client(reg);
    let start = authorised(reg, http.post(format!("{}/v2/{repo}/blobs/uploads/", reg.url())))
        .send()
        .await
        .expect("start upload");
    assert_eq!(start.status().as_u16(), 202, "start upload: {:?}", start.text().await);
    let location = start.headers()["location"].to_str().expect("location").to_string();
    let location = if location.starts_with("http") {
        location
    } else {
        format!("{}{location}", reg.url())
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    let put = authorised(reg, http.put(format!("{location}{separator}digest={digest}")))
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("upload");
    assert_eq!(put.status().as_u16(), 201, "upload: {:?}", put.text().await);
    digest
}

/// Pushes a manifest under `reference` and returns its digest.
pub async fn put_manifest(reg: &Registry, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> String {
    let response = authorised(
        reg,
        client(reg).put(format!("{}/v2/{repo}/manifests/{reference}", reg.url())),
    )
    .header("content-type", media_type)
    .body(bytes.to_vec())
    .send()
    .await
    .expect("put manifest");
    assert_eq!(
        response.status().as_u16(),
        201,
        "put manifest: {:?}",
        response.text().await
    );
    sha256(bytes)
}

pub async fn get_manifest(reg: &Registry, repo: &str, reference: &str) -> Option<Value> {
    let response = authorised(
        reg,
        client(reg).get(format!("{}/v2/{repo}/manifests/{reference}", reg.url())),
    )
    .header("accept", signet::registry::MANIFEST_ACCEPT)
    .send()
    .await
    .expect("get manifest");
    if response.status().as_u16() == 404 {
        return None;
    }
    Some(response.json().await.expect("manifest json"))
}

pub async fn delete_manifest(reg: &Registry, repo: &str, digest: &str) {
    let response = authorised(
        reg,
        client(reg).delete(format!("{}/v2/{repo}/manifests/{digest}", reg.url())),
    )
    .send()
    .await
    .expect("delete manifest");
    assert_eq!(response.status().as_u16(), 202, "delete: {:?}", response.text().await);
}

/// The simple-signing payload cosign writes for `digest`.
pub fn payload(docker_reference: &str, digest: &str, annotations: &BTreeMap<String, String>) -> Vec<u8> {
    let optional = if annotations.is_empty() {
        Value::Null
    } else {
        json!(annotations)
    };
    json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": optional
    })
    .to_string()
    .into_bytes()
}

/// Signs `digest` and stores the signature in `sig_repo` (cosign's tag layout).
pub async fn sign_image(reg: &Registry, sig_repo: &str, digest: &str, key: &dyn Signs, options: &SignOptions<'_>) {
    let claimed = options.payload_digest.as_deref().unwrap_or(digest);
    let mut body = payload(&format!("{}/{sig_repo}", reg.host()), claimed, &options.annotations);
    let signature = key.sign(&body);
    if options.tamper {
        body = payload(
            &format!("{}/{sig_repo}", reg.host()),
            claimed,
            &BTreeMap::from([("x".into(), "y".into())]),
        );
    }
    let signature_b64 = base64::engine::general_purpose::STANDARD.encode(&signature);
    let mut annotations = BTreeMap::from([("dev.cosignproject.cosign/signature".to_string(), signature_b64.clone())]);
    if let Some(rekor) = options.rekor {
        let recorded_pem = match (&options.rekor_records_pem, options.rekor_records_key) {
            (Some(pem_text), _) => pem_text.clone(),
            (None, Some(other)) => other.public_pem(),
            (None, None) => key.public_pem(),
        };
        let recorded_signature = if options.rekor_other_signature {
            base64::engine::general_purpose::STANDARD.encode(key.sign(b"something else"))
        } else {
            signature_b64.clone()
        };
        annotations.insert(
            "dev.sigstore.cosign/bundle".to_string(),
            rekor_bundle(rekor, &body, &recorded_signature, &recorded_pem),
        );
    }
    if let Some(certificate) = &options.certificate_pem {
        annotations.insert("dev.sigstore.cosign/certificate".to_string(), certificate.clone());
    }
    if let Some(chain) = &options.chain_pem {
        annotations.insert("dev.sigstore.cosign/chain".to_string(), chain.clone());
    }
    if let Some(url) = &options.timestamp_url {
        let request = json!({
            "artifactHash": base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&signature)),
            "hashAlgorithm": "sha256",
        });
        let response = reqwest::Client::new()
            .post(format!("{url}/api/v1/timestamp"))
            .json(&request)
            .send()
            .await
            .expect("the TSA answers");
        assert!(response.status().is_success(), "TSA: {}", response.status());
        let token = response.bytes().await.expect("the timestamp");
        let annotation = json!({"SignedRFC3161Timestamp": base64::engine::general_purpose::STANDARD.encode(&token)});
        annotations.insert(
            "dev.sigstore.cosign/rfc3161timestamp".to_string(),
            annotation.to_string(),
        );
    }
    let layer_digest = push_blob(reg, sig_repo, &body).await;
    let layer = json!({
        "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
        "size": body.len(),
        "digest": layer_digest,
        "annotations": annotations,
    });
    let tag = format!("{}{}.sig", options.tag_prefix, digest.replacen(':', "-", 1));
    let existing = match options.append {
        true => get_manifest(reg, sig_repo, &tag).await,
        false => None,
    };
    let mut layers = existing
        .and_then(|m| m["layers"].as_array().cloned())
        .unwrap_or_default();
    layers.push(layer);
    let config = json!({"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}})
        .to_string()
        .into_bytes();
    let config_digest = push_blob(reg, sig_repo, &config).await;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest},
        "layers": layers,
    })
    .to_string()
    .into_bytes();
    put_manifest(reg, sig_repo, &tag, OCI_MANIFEST, &manifest).await;
}

/// A cosign bundle annotation: a hashedrekord entry for (payload, signature, key) with a SET
/// signed by `rekor`.
pub fn rekor_bundle(rekor: &TestKey, payload: &[u8], signature_b64: &str, public_pem: &str) -> String {
    let entry = json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": format!("{:x}", sha2::Sha256::digest(payload))}},
            "signature": {"content": signature_b64, "publicKey": {"content": base64::engine::general_purpose::STANDARD.encode(public_pem)}}
        }
    });
    let body = base64::engine::general_purpose::STANDARD.encode(entry.to_string());
    let integrated_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    // serde_json's map is sorted, so this is the canonical form Rekor signs.
    let bundle_payload =
        json!({"body": body, "integratedTime": integrated_time, "logID": rekor.log_id(), "logIndex": 7});
    let set = rekor.sign(bundle_payload.to_string().as_bytes());
    json!({
        "SignedEntryTimestamp": base64::engine::general_purpose::STANDARD.encode(set),
        "Payload": bundle_payload,
    })
    .to_string()
}

/// A `trusted_root.json` whose only transparency log is `rekor`.
pub fn trusted_root_json(rekor: &TestKey) -> String {
    let key_id = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(rekor.spki_der()));
    json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [{
            "baseUrl": "https://rekor.test.local",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": base64::engine::general_purpose::STANDARD.encode(rekor.spki_der()),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": "2020-01-01T00:00:00Z"}
            },
            "logId": {"keyId": key_id}
        }],
        "certificateAuthorities": [],
        "ctlogs": [],
        "timestampAuthorities": []
    })
    .to_string()
}

/// A cosign key pair made by `../shared/tools/gen_cosign_key.py` (encrypted private key, PEM
/// public key), with password `testpw`. Returns (key path, public key PEM).
pub fn python_keypair(dir: &Path, name: &str) -> Option<(std::path::PathBuf, String)> {
    let tool = shared_tool("gen_cosign_key.py")?;
    let prefix = dir.join(name);
    run(Command::new(python())
        .arg(tool)
        .arg(&prefix)
        .env("COSIGN_PASSWORD", "testpw"));
    let public = std::fs::read_to_string(prefix.with_extension("pub")).expect("cosign .pub written");
    Some((prefix.with_extension("key"), public))
}

/// Signs `repo:tag` (or `--digest`) with `../shared/tools/cosign_sign.py`.
pub fn python_sign(reg: &Registry, repo: &str, target: &str, key: &Path, extra: &[&str]) -> Option<Value> {
    let tool = shared_tool("cosign_sign.py")?;
    let mut command = Command::new(python());
    command
        .arg(tool)
        .args(["--registry", &reg.url(), "--repo", repo, "--key"])
        .arg(key)
        .args(["--password", "testpw"]);
    if target.starts_with("sha256:") {
        command.args(["--digest", target]);
    } else {
        command.args(["--tag", target]);
    }
    if let Some((user, pass)) = reg.creds() {
        command.args(["--user", user, "--pass", pass]);
    }
    let output = run(command.args(extra));
    Some(serde_json::from_str(output.trim().lines().last().unwrap_or("{}")).expect("cosign_sign.py prints JSON"))
}
