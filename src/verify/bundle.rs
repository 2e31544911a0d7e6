//! Sigstore bundles (`application/vnd.dev.sigstore.bundle…`, v0.1 to v0.3), and cosign's
//! `.sig` and `.att` layers seen as the v0.1 bundles they amount to.
//!
//! The cryptography is `sigstore-verify`'s: the log entry (Rekor v1 SET, inclusion proof and
//! signed checkpoint, Rekor v2), RFC 3161 timestamps, the certificate chain at every verified
//! time, the embedded SCT, the signature, and that the log entry is about *this* signature.
//! signet keeps only what the crate does not do:
//! - cosign's `.sig`/`.att` annotations → a bundle ([`Bundle::from_signature_layer`],
//!   [`Bundle::from_attestation_layer`]);
//! - policy-controller's identity rules (unanchored regexps, OR over identities, Fulcio's
//!   GitHub extensions): `super::keyless`, matched on the verified certificate;
//! - a key authority without `ctlog` checks the signature alone ([`verify_unlogged`]): the
//!   crate wants a log entry or a timestamp for every bundle;
//! - a trust root with timestamp authorities and no transparency log (GitHub's own
//!   instance) verifies bundles by their timestamps, as `sigstore-go` does.

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sigstore_types::bundle::{SignatureContent, VerificationMaterialContent};
use sigstore_types::{DerPublicKey, Sha256Hash};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy, VerificationResult};

use super::cosign::SignatureLayer;
use super::dsse::Envelope;
use super::keyless::{CertificateIdentity, KeylessRequirements, identity_of_der, pem_certificates};
use super::keys::{HashAlgorithm, PublicKey};
use super::trust::TrustRoot;

const BUNDLE_V01: &str = "application/vnd.dev.sigstore.bundle+json;version=0.1";
/// For a layer with no Rekor entry: v0.1 requires one (its SET); v0.2 lets the timestamps
/// stand in where the trust root or policy allows it.
const BUNDLE_V02: &str = "application/vnd.dev.sigstore.bundle+json;version=0.2";

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the bundle is malformed: {0}")]
    Malformed(String),
    #[error("the bundle does not verify: {0}")]
    Invalid(String),
}

fn malformed(detail: impl Into<String>) -> BundleError {
    BundleError::Malformed(detail.into())
}

fn invalid(detail: impl Into<String>) -> BundleError {
    BundleError::Invalid(detail.into())
}

/// A parsed bundle, with its DSSE envelope (if any) decoded for the statement it carries.
#[derive(Debug, Clone)]
pub struct Bundle {
    raw: sigstore_types::Bundle,
    envelope: Option<Envelope>,
}

/// The bytes of a `sha256:<64 hex>` digest; `None` for anything else.
pub fn sha256_digest_bytes(digest: &str) -> Option<[u8; 32]> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(digest.strip_prefix("sha256:")?, &mut bytes).ok()?;
    Some(bytes)
}

/// What the bundle is about: the artifact itself, or only its SHA-256 digest.
pub enum Artifact<'a> {
    Bytes(&'a [u8]),
    Sha256([u8; 32]),
}

impl Artifact<'_> {
    fn sha256(&self) -> [u8; 32] {
        match self {
            Artifact::Bytes(bytes) => Sha256::digest(bytes).into(),
            Artifact::Sha256(digest) => *digest,
        }
    }

    fn for_crate(&self) -> sigstore_types::Artifact<'_> {
        match self {
            Artifact::Bytes(bytes) => (*bytes).into(),
            Artifact::Sha256(digest) => Sha256Hash::new(*digest).into(),
        }
    }
}

/// Who must have signed.
pub enum Signer<'a> {
    /// A key; `require_log` says whether the signature must be in a transparency log.
    Key {
        key: &'a PublicKey,
        require_log: bool,
    },
    Keyless(KeylessRequirements<'a>),
}

/// Whether the signature must carry an RFC 3161 timestamp from the trust root's timestamp
/// authorities (an authority's `rfc3161timestamp`). Timestamps that are present are verified
/// either way whenever a log or certificate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timestamps {
    Optional,
    Required,
}

/// A Sigstore bundle attached to an image, as stored.
#[derive(Debug, Clone)]
pub struct AttachedBundle {
    /// The referrer manifest that carries it.
    pub manifest_digest: String,
    pub json: Vec<u8>,
}

/// What a verified bundle showed.
#[derive(Debug)]
pub struct Verified {
    /// For certificates: the OIDC issuer and subjects.
    pub identity: Option<CertificateIdentity>,
    /// Where the signature is proven to exist: the log entry, or the timestamps.
    pub log: String,
}

impl Verified {
    pub fn describe(&self) -> String {
        let who = match &self.identity {
            Some(identity) => identity.describe(),
            None => "key".to_string(),
        };
        format!("{who}, {}", self.log)
    }
}

// ---- reading -----------------------------------------------------------------------------

impl Bundle {
    pub fn from_json(bytes: &[u8]) -> Result<Self, BundleError> {
        let text = std::str::from_utf8(bytes).map_err(|_| malformed("the bundle is not UTF-8 text"))?;
        let raw = sigstore_types::Bundle::from_json(text).map_err(|e| malformed(e.to_string()))?;
        Ok(Self::from_raw(raw))
    }

    fn from_raw(raw: sigstore_types::Bundle) -> Self {
        let envelope = match &raw.content {
            SignatureContent::DsseEnvelope(envelope) => Some(Envelope {
                payload_type: envelope.payload_type.clone(),
                payload: envelope.payload.as_bytes().to_vec(),
                signatures: vec![envelope.signature.sig.as_bytes().to_vec()],
            }),
            _ => None,
        };
        Bundle { raw, envelope }
    }

    /// The DSSE envelope, for bundles that carry one (attestations, cosign v3 signatures).
    pub fn envelope(&self) -> Option<&Envelope> {
        self.envelope.as_ref()
    }

    /// A `cosign sign` layer in the `.sig` layout as a v0.1 bundle: a message signature over
    /// the simple-signing payload, with the certificate and chain annotations and the Rekor
    /// bundle annotation as a log entry with its SET.
    pub fn from_signature_layer(layer: &SignatureLayer) -> Result<Self, BundleError> {
        let payload_digest = Sha256::digest(&layer.payload);
        let content = json!({"messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": b64(&payload_digest)},
            "signature": layer.signature_b64.trim(),
        }});
        Self::from_layer(layer, content)
    }

    /// A `cosign attest` layer in the `.att` layout (its payload is a DSSE envelope) as a
    /// v0.1 bundle, like [`Bundle::from_signature_layer`].
    pub fn from_attestation_layer(layer: &SignatureLayer) -> Result<Self, BundleError> {
        let envelope: Value = serde_json::from_slice(&layer.payload)
            .map_err(|e| malformed(format!("the attestation layer is not a DSSE envelope: {e}")))?;
        Self::from_layer(layer, json!({"dsseEnvelope": envelope}))
    }

    fn from_layer(layer: &SignatureLayer, content: Value) -> Result<Self, BundleError> {
        let mut material = match &layer.certificate_pem {
            Some(leaf_pem) => {
                json!({"x509CertificateChain": {"certificates": layer_chain(leaf_pem, layer.chain_pem.as_deref())?}})
            }
            None => json!({"publicKey": {"hint": ""}}),
        };
        material["tlogEntries"] = match &layer.bundle_json {
            Some(text) => json!([entry_from_rekor_annotation(text)?]),
            None => json!([]),
        };
        if let Some(text) = &layer.timestamp_json {
            material["timestampVerificationData"] = json!({"rfc3161Timestamps": [timestamp_from_annotation(text)?]});
        }
        let media_type = if layer.bundle_json.is_some() {
            BUNDLE_V01
        } else {
            BUNDLE_V02
        };
        let mut bundle = json!({"mediaType": media_type, "verificationMaterial": material});
        if let (Some(bundle), Value::Object(content)) = (bundle.as_object_mut(), content) {
            bundle.extend(content);
        }
        Self::from_json(bundle.to_string().as_bytes())
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The leaf and the chain annotation's intermediates; roots come from the trust root only.
fn layer_chain(leaf_pem: &str, chain_pem: Option<&str>) -> Result<Vec<Value>, BundleError> {
    let leaf = pem_certificates(leaf_pem)
        .map_err(malformed)?
        .into_iter()
        .next()
        .ok_or_else(|| malformed("the certificate annotation holds no certificate"))?;
    let intermediates = match chain_pem {
        Some(text) => pem_certificates(text).map_err(malformed)?,
        None => Vec::new(),
    };
    Ok(std::iter::once(leaf)
        .chain(
            intermediates
                .into_iter()
                .filter(|der| !super::keyless::is_self_signed(der)),
        )
        .map(|der| json!({"rawBytes": b64(&der)}))
        .collect())
}

/// cosign's `dev.sigstore.cosign/bundle` annotation (Rekor's SET and the entry it signs) as
/// a bundle's log entry.
fn entry_from_rekor_annotation(text: &str) -> Result<Value, BundleError> {
    let annotation: Value =
        serde_json::from_str(text).map_err(|e| malformed(format!("the Rekor bundle annotation: {e}")))?;
    let payload = &annotation["Payload"];
    let body_b64 = payload["body"]
        .as_str()
        .ok_or_else(|| malformed("the Rekor bundle annotation has no Payload.body"))?;
    let body = base64::engine::general_purpose::STANDARD
        .decode(body_b64)
        .map_err(|e| malformed(format!("the Rekor entry body is not base64: {e}")))?;
    let body: Value = serde_json::from_slice(&body).map_err(|e| malformed(format!("the Rekor entry body: {e}")))?;
    let log_id = payload["logID"].as_str().unwrap_or_default();
    let log_id = hex::decode(log_id).map_err(|_| malformed(format!("the Rekor logID {log_id:?} is not hex")))?;
    let number = |field: &str| {
        payload[field]
            .as_i64()
            .ok_or_else(|| malformed(format!("the Rekor bundle annotation has no Payload.{field}")))
    };
    Ok(json!({
        "logIndex": number("logIndex")?.to_string(),
        "logId": {"keyId": b64(&log_id)},
        "kindVersion": {"kind": body["kind"], "version": body["apiVersion"]},
        "integratedTime": number("integratedTime")?.to_string(),
        "inclusionPromise": {"signedEntryTimestamp": annotation["SignedEntryTimestamp"]},
        "canonicalizedBody": body_b64,
    }))
}

/// cosign's `dev.sigstore.cosign/rfc3161timestamp` annotation as a bundle's signed timestamp.
fn timestamp_from_annotation(text: &str) -> Result<Value, BundleError> {
    let annotation: Value =
        serde_json::from_str(text).map_err(|e| malformed(format!("the RFC 3161 timestamp annotation: {e}")))?;
    let signed = annotation["SignedRFC3161Timestamp"]
        .as_str()
        .ok_or_else(|| malformed("the RFC 3161 timestamp annotation has no SignedRFC3161Timestamp"))?;
    Ok(json!({"signedTimestamp": signed}))
}

// ---- verification -----------------------------------------------------------------------

/// Verifies `bundle` for `artifact`, signed as `signer` requires, against `trust`.
pub fn verify(
    bundle: &Bundle,
    artifact: &Artifact,
    signer: &Signer,
    trust: &TrustRoot,
    timestamps: Timestamps,
) -> Result<Verified, BundleError> {
    let timestamped = !bundle
        .raw
        .verification_material
        .timestamp_verification_data
        .rfc3161_timestamps
        .is_empty();
    if timestamps == Timestamps::Required && !timestamped {
        return Err(invalid(
            "the policy requires an RFC 3161 timestamp (rfc3161timestamp) and the signature has none",
        ));
    }
    let verifier = trust.verifier().map_err(invalid)?;
    let run = |policy: &dyn sigstore_verify::Policy| {
        verifier
            .verify(artifact.for_crate(), &bundle.raw, policy)
            .map_err(|e| invalid(e.to_string()))
    };
    match signer {
        Signer::Key {
            key,
            require_log: false,
        } if timestamps == Timestamps::Optional => verify_unlogged(bundle, artifact, key),
        Signer::Key { key, require_log } => {
            let mut policy = PublicKeyVerificationPolicy::new(DerPublicKey::from_bytes(key.spki_der()));
            if *require_log {
                check_logs_known(bundle, trust)?;
            } else {
                // Without ctlog only the required timestamps are checked, not the log.
                policy = policy.skip_tlog_unsafe();
            }
            let result = run(&policy)?;
            Ok(Verified {
                identity: None,
                log: evidence(bundle, &result, trust),
            })
        }
        Signer::Keyless(requirements) => {
            let result = run(&keyless_policy(bundle, requirements, trust)?)?;
            let leaf = bundle
                .raw
                .signing_certificate()
                .ok_or_else(|| invalid("the bundle has no signing certificate"))?;
            let identity = identity_of_der(leaf.as_bytes()).map_err(invalid)?;
            requirements.match_identity(&identity).map_err(invalid)?;
            Ok(Verified {
                identity: Some(identity),
                log: evidence(bundle, &result, trust),
            })
        }
    }
}

/// What a keyless bundle must carry follows from the trust root, as in sigstore-go: a root
/// with timestamp authorities and no transparency log (GitHub's own instance) dates the
/// certificate by its timestamps, and without CT logs it asks for no SCT. Identities are
/// matched by signet afterwards (the crate has no OR and no regexps over issuers).
fn keyless_policy(
    bundle: &Bundle,
    requirements: &KeylessRequirements,
    trust: &TrustRoot,
) -> Result<VerificationPolicy, BundleError> {
    let timestamps_only = trust.tlogs.is_empty() && !trust.timestamp_authorities.is_empty();
    let mut policy = VerificationPolicy::any_identity();
    if requirements.ignore_sct || (timestamps_only && trust.ctlogs.is_empty()) {
        policy = policy.skip_sct();
    }
    if timestamps_only {
        policy = policy.skip_tlog_unsafe();
    } else {
        check_logs_known(bundle, trust)?;
    }
    Ok(policy)
}

/// Says which log an entry names when the trust root does not know it: the crate's own
/// answer ("no log key valid at …" with a base64 key ID) does not tell an operator that.
fn check_logs_known(bundle: &Bundle, trust: &TrustRoot) -> Result<(), BundleError> {
    for entry in &bundle.raw.verification_material.tlog_entries {
        let log_id = hex::encode(entry.log_id.key_id.as_bytes());
        if trust.tlog(&log_id).is_none() {
            return Err(invalid(format!(
                "the log entry is signed by log {log_id}, which the trust root does not know"
            )));
        }
    }
    Ok(())
}

/// What proves the signature existed: the log entry, or the timestamps.
fn evidence(bundle: &Bundle, result: &VerificationResult, trust: &TrustRoot) -> String {
    let entry = bundle.raw.verification_material.tlog_entries.first();
    match entry.filter(|_| result.tlog_verified()) {
        Some(entry) => {
            let log_id = hex::encode(entry.log_id.key_id.as_bytes());
            let url = trust.tlog(&log_id).map_or(log_id.as_str(), |log| log.base_url.as_str());
            let when = match result.integrated_time() {
                Some(time) => format!(" ({time})"),
                None => String::new(),
            };
            format!("logged in {url} at index {}{when}", entry.log_index.get())
        }
        None => {
            let times: Vec<String> = result.verified_timestamps().iter().map(|t| t.to_string()).collect();
            format!("timestamped at {}", times.join(", "))
        }
    }
}

/// A key authority without `ctlog` looks at the signature alone, as cosign does with
/// `--insecure-ignore-tlog`: the log entry (if any) is not consulted.
fn verify_unlogged(bundle: &Bundle, artifact: &Artifact, key: &PublicKey) -> Result<Verified, BundleError> {
    if !matches!(
        bundle.raw.verification_material.content,
        VerificationMaterialContent::PublicKey(_)
    ) {
        return Err(invalid(
            "the bundle was signed with a certificate; verify it with an identity, not a key",
        ));
    }
    let digest = artifact.sha256();
    match (&bundle.raw.content, &bundle.envelope) {
        (_, Some(envelope)) => {
            key.verify(&envelope.pae(), &envelope.signatures[0], HashAlgorithm::Sha256)
                .map_err(|e| invalid(format!("the DSSE signature: {e}")))?;
            let statement = envelope.statement().map_err(|e| invalid(e.to_string()))?;
            if !statement.has_subject_sha256(&hex::encode(digest)) {
                return Err(invalid(format!(
                    "the in-toto statement has no subject with digest sha256:{}",
                    hex::encode(digest)
                )));
            }
        }
        (SignatureContent::MessageSignature(message), None) => {
            if message
                .message_digest
                .as_ref()
                .is_some_and(|d| d.digest.as_bytes() != digest)
            {
                return Err(invalid("the bundle's messageDigest is not the artifact's digest"));
            }
            let signature = message.signature.as_bytes();
            match artifact {
                Artifact::Bytes(bytes) => key.verify(bytes, signature, HashAlgorithm::Sha256),
                Artifact::Sha256(digest) => key.verify_digest(digest, signature),
            }
            .map_err(|e| invalid(format!("the signature over the artifact: {e}")))?;
        }
        _ => {
            return Err(invalid(
                "the bundle carries neither a message signature nor a DSSE envelope",
            ));
        }
    }
    Ok(Verified {
        identity: None,
        log: "not checked against a transparency log (no ctlog)".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigstore_types::MediaType;

    fn layer(bundle_json: Option<&str>, timestamp_json: Option<&str>) -> SignatureLayer {
        SignatureLayer {
            layer_digest: "sha256:aa".into(),
            payload: b"{}".to_vec(),
            signature: Some(vec![1, 2, 3]),
            signature_b64: "AQID".into(),
            certificate_pem: None,
            chain_pem: None,
            bundle_json: bundle_json.map(str::to_string),
            timestamp_json: timestamp_json.map(str::to_string),
        }
    }

    #[test]
    fn sig_layers_become_bundles_of_the_version_their_evidence_needs() {
        // Only a timestamp: v0.2, whose structure does not ask for a SET.
        let timestamped =
            Bundle::from_signature_layer(&layer(None, Some(r#"{"SignedRFC3161Timestamp":"MAA="}"#))).unwrap();
        assert_eq!(timestamped.raw.media_type, MediaType::Bundle0_2);
        let timestamps = &timestamped
            .raw
            .verification_material
            .timestamp_verification_data
            .rfc3161_timestamps;
        assert_eq!(timestamps.len(), 1);
        assert!(timestamped.raw.verification_material.tlog_entries.is_empty());
        // A Rekor bundle annotation: v0.1 with the entry and its SET.
        let body = base64::engine::general_purpose::STANDARD.encode(r#"{"kind":"hashedrekord","apiVersion":"0.0.1"}"#);
        let rekor = format!(
            r#"{{"SignedEntryTimestamp":"AQID","Payload":{{"body":"{body}","integratedTime":1700000000,"logIndex":7,"logID":"{}"}}}}"#,
            "ab".repeat(32)
        );
        let logged = Bundle::from_signature_layer(&layer(Some(&rekor), None)).unwrap();
        assert_eq!(logged.raw.media_type, MediaType::Bundle0_1);
        assert_eq!(logged.raw.verification_material.tlog_entries.len(), 1);
        // Malformed annotations are errors, never ignored.
        assert!(Bundle::from_signature_layer(&layer(None, Some("{}"))).is_err());
        assert!(Bundle::from_signature_layer(&layer(Some(r#"{"Payload":{}}"#), None)).is_err());
    }
}
