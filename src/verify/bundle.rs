//! Sigstore bundles (`application/vnd.dev.sigstore.bundle…`, v0.1 to v0.3): what cosign v3
//! and the other Sigstore clients write. A bundle carries the signature (a message signature
//! or a DSSE envelope), the verification material (certificate, chain or key hint), the
//! transparency-log entry (Rekor v1 with SET and inclusion proof, or Rekor v2 with inclusion
//! proof and signed checkpoint) and RFC 3161 timestamps.
//!
//! The `sigstore` crate's bundle verifier skips the Rekor timestamp and inclusion proof and
//! knows neither Rekor v2 nor timestamp authorities, so verification is signet's own, on
//! RustCrypto/x509-parser primitives. The order follows the Sigstore client specification:
//! establish verified times (SET, TSA), check the log entry, then the certificate at every
//! verified time, then the signature, then that the log entry is about *this* signature.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::dsse::Envelope;
use super::keyless::{CertificateIdentity, KeylessRequirements};
use super::keys::{HashAlgorithm, PublicKey};
use super::merkle::{InclusionProof, check_checkpoint_matches, leaf_hash, verify_checkpoint, verify_inclusion};
use super::rekor::{BundlePayload, verify_set};
use super::trust::TrustRoot;
use super::tsa::verify_timestamp;

/// More timestamps than this is an attack on verification time, not a real bundle.
const MAX_TIMESTAMPS: usize = 32;

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

/// A parsed bundle, with every base64 field decoded.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The minor version: 1, 2 or 3 (v0.x).
    pub version: u8,
    pub material: Material,
    /// The transparency log entry; only keyed signatures may go without one, and only when
    /// the verifier allows it (a key authority without `ctlog`).
    pub entry: Option<LogEntry>,
    pub timestamps: Vec<Vec<u8>>,
    pub content: Content,
}

#[derive(Debug, Clone)]
pub enum Material {
    /// The signing certificate (DER) and any intermediates the bundle carries.
    Certificate { leaf: Vec<u8>, chain: Vec<Vec<u8>> },
    /// Signed with a key the verifier must supply; the hint is informational.
    PublicKey { hint: String },
}

#[derive(Debug, Clone)]
pub enum Content {
    Message {
        /// The SHA-256 digest the bundle claims (an unauthenticated hint, checked anyway).
        digest: Option<Vec<u8>>,
        signature: Vec<u8>,
    },
    Dsse(Envelope),
}

impl Content {
    /// The signature bytes a timestamp authority stamps and the log records.
    fn signature(&self) -> &[u8] {
        match self {
            Content::Message { signature, .. } => signature,
            Content::Dsse(envelope) => envelope.signatures.first().map(Vec::as_slice).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LogEntry {
    pub log_index: i64,
    pub log_id: String,
    pub kind: String,
    pub kind_version: String,
    pub integrated_time: i64,
    pub set: Option<Vec<u8>>,
    pub proof: Option<Proof>,
    pub body_b64: String,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Proof {
    pub log_index: i64,
    pub tree_size: i64,
    pub root_hash: Vec<u8>,
    pub hashes: Vec<Vec<u8>>,
    pub checkpoint: Option<String>,
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
    /// The times the signature is proven to have existed at (log and timestamp authorities).
    pub times: Vec<OffsetDateTime>,
    /// For certificates: the OIDC issuer and subjects.
    pub identity: Option<CertificateIdentity>,
    /// For DSSE bundles: the envelope, whose statement the caller may judge.
    pub envelope: Option<Envelope>,
    pub log: String,
}

impl Verified {
    pub fn describe(&self) -> String {
        let who = match &self.identity {
            Some(identity) => identity.describe(),
            None => "key".to_string(),
        };
        format!("{who}, logged in {}", self.log)
    }
}

// ---- parsing ----------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleJson {
    media_type: String,
    verification_material: MaterialJson,
    #[serde(default)]
    message_signature: Option<MessageSignatureJson>,
    #[serde(default)]
    dsse_envelope: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MaterialJson {
    #[serde(default)]
    certificate: Option<RawBytes>,
    #[serde(default)]
    x509_certificate_chain: Option<ChainJson>,
    #[serde(default)]
    public_key: Option<KeyHintJson>,
    #[serde(default)]
    tlog_entries: Vec<EntryJson>,
    #[serde(default)]
    timestamp_verification_data: Option<TimestampDataJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct ChainJson {
    #[serde(default)]
    certificates: Vec<RawBytes>,
}

#[derive(Deserialize)]
struct KeyHintJson {
    #[serde(default)]
    hint: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimestampDataJson {
    #[serde(default)]
    rfc3161_timestamps: Vec<SignedTimestampJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignedTimestampJson {
    signed_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageSignatureJson {
    #[serde(default)]
    message_digest: Option<MessageDigestJson>,
    signature: String,
}

#[derive(Deserialize)]
struct MessageDigestJson {
    algorithm: String,
    digest: String,
}

/// protobuf-JSON writes 64-bit integers as strings, and leaves out zeros (proto3 defaults).
#[derive(Deserialize)]
#[serde(untagged)]
enum Int64 {
    Text(String),
    Number(i64),
}

impl Default for Int64 {
    fn default() -> Self {
        Int64::Number(0)
    }
}

impl Int64 {
    fn value(&self, what: &str) -> Result<i64, BundleError> {
        match self {
            Int64::Number(n) => Ok(*n),
            Int64::Text(t) => t
                .parse()
                .map_err(|_| malformed(format!("{what} {t:?} is not an integer"))),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryJson {
    #[serde(default)]
    log_index: Int64,
    log_id: KeyIdJson,
    kind_version: KindVersionJson,
    #[serde(default)]
    integrated_time: Option<Int64>,
    #[serde(default)]
    inclusion_promise: Option<PromiseJson>,
    #[serde(default)]
    inclusion_proof: Option<ProofJson>,
    canonicalized_body: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyIdJson {
    key_id: String,
}

#[derive(Deserialize)]
struct KindVersionJson {
    kind: String,
    version: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromiseJson {
    signed_entry_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProofJson {
    #[serde(default)]
    log_index: Int64,
    root_hash: String,
    #[serde(default)]
    tree_size: Int64,
    #[serde(default)]
    hashes: Vec<String>,
    #[serde(default)]
    checkpoint: Option<CheckpointJson>,
}

#[derive(Deserialize)]
struct CheckpointJson {
    envelope: String,
}

/// Standard base64; line breaks are skipped as Go's decoder (which wrote many bundles) does.
fn b64(text: &str, what: &str) -> Result<Vec<u8>, BundleError> {
    let compact: String = text.chars().filter(|c| !matches!(c, '\n' | '\r')).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.trim())
        .map_err(|e| malformed(format!("{what} is not base64: {e}")))
}

/// The bundle format version a media type names.
fn version_of(media_type: &str) -> Result<u8, BundleError> {
    match media_type {
        "application/vnd.dev.sigstore.bundle+json;version=0.1" => Ok(1),
        "application/vnd.dev.sigstore.bundle+json;version=0.2" => Ok(2),
        "application/vnd.dev.sigstore.bundle+json;version=0.3" | "application/vnd.dev.sigstore.bundle.v0.3+json" => {
            Ok(3)
        }
        other => Err(malformed(format!("unsupported bundle media type {other:?}"))),
    }
}

impl Bundle {
    pub fn from_json(bytes: &[u8]) -> Result<Self, BundleError> {
        let json: BundleJson = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        let version = version_of(&json.media_type)?;
        let material = parse_material(&json.verification_material, version)?;
        let entry = match json.verification_material.tlog_entries.as_slice() {
            [] => None,
            [entry] => Some(parse_entry(entry)?),
            more => {
                return Err(malformed(format!(
                    "expected one transparency log entry, found {}",
                    more.len()
                )));
            }
        };
        let timestamps = json
            .verification_material
            .timestamp_verification_data
            .iter()
            .flat_map(|data| &data.rfc3161_timestamps)
            .map(|t| b64(&t.signed_timestamp, "a signed timestamp"))
            .collect::<Result<Vec<_>, _>>()?;
        let content = match (&json.message_signature, &json.dsse_envelope) {
            (Some(message), None) => Content::Message {
                digest: message
                    .message_digest
                    .as_ref()
                    .map(|d| match d.algorithm.as_str() {
                        "SHA2_256" => b64(&d.digest, "messageDigest"),
                        other => Err(malformed(format!("messageDigest algorithm {other:?}"))),
                    })
                    .transpose()?,
                signature: b64(&message.signature, "the signature")?,
            },
            (None, Some(envelope)) => {
                Content::Dsse(Envelope::from_json(envelope).map_err(|e| malformed(e.to_string()))?)
            }
            _ => return Err(malformed("expected exactly one of messageSignature and dsseEnvelope")),
        };
        Ok(Bundle {
            version,
            material,
            entry,
            timestamps,
            content,
        })
    }
}

impl Bundle {
    /// A `cosign attest` layer in the `.att` layout, seen as the v0.1 bundle it amounts to:
    /// the DSSE envelope, the certificate and chain annotations (roots dropped: they come
    /// from the trust root), and the Rekor bundle annotation as a log entry with a SET.
    pub fn from_cosign_layer(layer: &super::cosign::SignatureLayer) -> Result<Self, BundleError> {
        let envelope: Value = serde_json::from_slice(&layer.payload)
            .map_err(|e| malformed(format!("the attestation layer is not a DSSE envelope: {e}")))?;
        let envelope = Envelope::from_json(&envelope).map_err(|e| malformed(e.to_string()))?;
        let material = match &layer.certificate_pem {
            Some(pem_text) => {
                let pem_certs = |text: &str| super::keyless::pem_certificates(text).map_err(malformed);
                let leaf = pem_certs(pem_text)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| malformed("the certificate annotation holds no certificate"))?;
                let chain = match &layer.chain_pem {
                    Some(chain) => pem_certs(chain)?
                        .into_iter()
                        .filter(|der| !is_self_signed(der))
                        .collect(),
                    None => Vec::new(),
                };
                Material::Certificate { leaf, chain }
            }
            None => Material::PublicKey { hint: String::new() },
        };
        let entry = layer.bundle_json.as_deref().map(entry_from_cosign_bundle).transpose()?;
        Ok(Bundle {
            version: 1,
            material,
            entry,
            timestamps: Vec::new(),
            content: Content::Dsse(envelope),
        })
    }
}

fn is_self_signed(der: &[u8]) -> bool {
    X509Certificate::from_der(der).is_ok_and(|(_, c)| c.subject() == c.issuer())
}

/// cosign's `dev.sigstore.cosign/bundle` annotation as a log entry.
fn entry_from_cosign_bundle(text: &str) -> Result<LogEntry, BundleError> {
    #[derive(Deserialize)]
    struct CosignBundle {
        #[serde(rename = "SignedEntryTimestamp")]
        signed_entry_timestamp: String,
        #[serde(rename = "Payload")]
        payload: BundlePayload,
    }
    let bundle: CosignBundle =
        serde_json::from_str(text).map_err(|e| malformed(format!("the Rekor bundle annotation: {e}")))?;
    let body = b64(&bundle.payload.body, "the Rekor entry body")?;
    let kind: Value = serde_json::from_slice(&body).map_err(|e| malformed(format!("the Rekor entry body: {e}")))?;
    Ok(LogEntry {
        log_index: bundle.payload.log_index,
        log_id: bundle.payload.log_id.to_ascii_lowercase(),
        kind: kind["kind"].as_str().unwrap_or_default().to_string(),
        kind_version: kind["apiVersion"].as_str().unwrap_or_default().to_string(),
        integrated_time: bundle.payload.integrated_time,
        set: Some(b64(&bundle.signed_entry_timestamp, "SignedEntryTimestamp")?),
        proof: None,
        body_b64: bundle.payload.body,
        body,
    })
}

fn parse_material(json: &MaterialJson, version: u8) -> Result<Material, BundleError> {
    match (&json.certificate, &json.x509_certificate_chain, &json.public_key) {
        (Some(cert), None, None) if version >= 3 => Ok(Material::Certificate {
            leaf: b64(&cert.raw_bytes, "the certificate")?,
            chain: Vec::new(),
        }),
        (None, Some(chain), None) if version < 3 => {
            let mut certificates = chain
                .certificates
                .iter()
                .map(|c| b64(&c.raw_bytes, "a chain certificate"))
                .collect::<Result<Vec<_>, _>>()?;
            if certificates.is_empty() {
                return Err(malformed("the certificate chain is empty"));
            }
            let leaf = certificates.remove(0);
            Ok(Material::Certificate {
                leaf,
                chain: certificates,
            })
        }
        (None, None, Some(key)) => Ok(Material::PublicKey { hint: key.hint.clone() }),
        _ => Err(malformed(format!(
            "v0.{version} bundles carry one of {}, or publicKey",
            if version >= 3 {
                "certificate"
            } else {
                "x509CertificateChain"
            }
        ))),
    }
}

fn parse_entry(json: &EntryJson) -> Result<LogEntry, BundleError> {
    let log_index = json.log_index.value("logIndex")?;
    if log_index < 0 {
        return Err(malformed(format!("logIndex {log_index} is negative")));
    }
    let proof = json
        .inclusion_proof
        .as_ref()
        .map(|p| -> Result<Proof, BundleError> {
            Ok(Proof {
                log_index: p.log_index.value("inclusionProof.logIndex")?,
                tree_size: p.tree_size.value("inclusionProof.treeSize")?,
                root_hash: b64(&p.root_hash, "inclusionProof.rootHash")?,
                hashes: p
                    .hashes
                    .iter()
                    .map(|h| b64(h, "an inclusion proof hash"))
                    .collect::<Result<_, _>>()?,
                checkpoint: p.checkpoint.as_ref().map(|c| c.envelope.clone()),
            })
        })
        .transpose()?;
    Ok(LogEntry {
        log_index,
        log_id: hex::encode(&b64(&json.log_id.key_id, "logId.keyId")?),
        kind: json.kind_version.kind.clone(),
        kind_version: json.kind_version.version.clone(),
        integrated_time: json
            .integrated_time
            .as_ref()
            .map(|t| t.value("integratedTime"))
            .transpose()?
            .unwrap_or(0),
        set: json
            .inclusion_promise
            .as_ref()
            .map(|p| b64(&p.signed_entry_timestamp, "signedEntryTimestamp"))
            .transpose()?,
        proof,
        body_b64: json.canonicalized_body.clone(),
        body: b64(&json.canonicalized_body, "canonicalizedBody")?,
    })
}

// ---- verification -----------------------------------------------------------------------

/// Verifies `bundle` for `artifact`, signed as `signer` requires, against `trust`.
pub fn verify(
    bundle: &Bundle,
    artifact: &Artifact,
    signer: &Signer,
    trust: &TrustRoot,
) -> Result<Verified, BundleError> {
    // A key authority without `ctlog` does not look at the log, as for `.sig` signatures.
    let log_optional = matches!(signer, Signer::Key { require_log: false, .. });
    let entry = bundle.entry.as_ref().filter(|_| !log_optional);
    let times = verified_times(bundle, entry, trust)?;
    let log = match entry {
        Some(entry) => verify_log_entry(bundle, entry, trust, &times)?,
        None if log_optional => "not checked against a transparency log (no ctlog)".to_string(),
        None => return Err(invalid("the bundle has no transparency log entry")),
    };
    let (key, leaf_der, identity) = signing_key(bundle, signer, &times)?;
    let digest = artifact.sha256();
    verify_signature(bundle, artifact, &digest, &key)?;
    let material = match &leaf_der {
        Some(der) => LoggedMaterial::Certificate(der),
        None => LoggedMaterial::Key(&key),
    };
    if let Some(entry) = entry {
        check_entry_body(bundle, entry, &digest, &material)?;
    }
    Ok(Verified {
        times,
        identity,
        envelope: match &bundle.content {
            Content::Dsse(envelope) => Some(envelope.clone()),
            Content::Message { .. } => None,
        },
        log,
    })
}

/// The times the signature provably existed: the log's integrated time when a SET vouches
/// for it, and every RFC 3161 timestamp (all of which must verify).
fn verified_times(
    bundle: &Bundle,
    entry: Option<&LogEntry>,
    trust: &TrustRoot,
) -> Result<Vec<OffsetDateTime>, BundleError> {
    if bundle.timestamps.len() > MAX_TIMESTAMPS {
        return Err(invalid(format!(
            "{} signed timestamps; at most {MAX_TIMESTAMPS}",
            bundle.timestamps.len()
        )));
    }
    let mut times = Vec::new();
    for (i, timestamp) in bundle.timestamps.iter().enumerate() {
        if bundle.timestamps[..i].contains(timestamp) {
            return Err(invalid("a signed timestamp appears twice"));
        }
        let time =
            verify_timestamp(timestamp, bundle.content.signature(), trust).map_err(|e| invalid(e.to_string()))?;
        times.push(time);
    }
    if let Some(entry) = entry.filter(|e| e.set.is_some()) {
        let time = OffsetDateTime::from_unix_timestamp(entry.integrated_time)
            .map_err(|_| malformed("integratedTime is out of range"))?;
        if time > OffsetDateTime::now_utc() + time::Duration::minutes(5) {
            return Err(invalid(format!(
                "the log entry's integrated time {time} is in the future"
            )));
        }
        times.push(time);
    }
    if times.is_empty() && entry.is_some() {
        return Err(invalid(
            "no verified time: the entry has no signed entry timestamp and the bundle no RFC 3161 timestamp",
        ));
    }
    Ok(times)
}

/// The entry must be in a log of the trust root: its SET (v0.1) or inclusion proof with a
/// signed checkpoint (v0.2 and later, and every Rekor v2 entry). Returns the log's URL.
fn verify_log_entry(
    bundle: &Bundle,
    entry: &LogEntry,
    trust: &TrustRoot,
    times: &[OffsetDateTime],
) -> Result<String, BundleError> {
    let log = trust.tlog(&entry.log_id).ok_or_else(|| {
        invalid(format!(
            "the entry is from log {}, which the trust root does not know",
            entry.log_id
        ))
    })?;
    if let Some(at) = times.iter().find(|at| !log.valid_at(**at)) {
        return Err(invalid(format!("the log {} was not trusted at {at}", log.base_url)));
    }
    match (&entry.set, bundle.version) {
        (Some(set), _) => {
            let payload = BundlePayload {
                body: entry.body_b64.clone(),
                integrated_time: entry.integrated_time,
                log_index: entry.log_index,
                log_id: entry.log_id.clone(),
            };
            verify_set(log, &payload, set).map_err(invalid)?;
        }
        (None, 1) => return Err(invalid("v0.1 bundles need a signed entry timestamp (inclusionPromise)")),
        (None, _) => {}
    }
    match &entry.proof {
        Some(proof) => verify_proof(entry, proof, log, bundle.version)?,
        None if bundle.version >= 2 => return Err(invalid("the log entry has no inclusion proof")),
        None => {}
    }
    Ok(log.base_url.clone())
}

fn verify_proof(entry: &LogEntry, proof: &Proof, log: &super::trust::LogKey, version: u8) -> Result<(), BundleError> {
    let (Ok(log_index), Ok(tree_size)) = (u64::try_from(proof.log_index), u64::try_from(proof.tree_size)) else {
        return Err(malformed("the inclusion proof has a negative index or size"));
    };
    let inclusion = InclusionProof {
        log_index,
        tree_size,
        root_hash: &proof.root_hash,
        hashes: &proof.hashes,
    };
    verify_inclusion(leaf_hash(&entry.body), &inclusion).map_err(|e| invalid(e.to_string()))?;
    match &proof.checkpoint {
        Some(envelope) => {
            let checkpoint = verify_checkpoint(envelope, log).map_err(|e| invalid(e.to_string()))?;
            check_checkpoint_matches(&checkpoint, &inclusion).map_err(|e| invalid(e.to_string()))
        }
        // A v0.1 proof without a checkpoint proves nothing on its own; its SET carries it.
        None if version == 1 => Ok(()),
        None => Err(invalid("the inclusion proof has no signed checkpoint")),
    }
}

/// The key that must have made the signature: the verifier's own key, or a certificate's
/// key once the certificate passes every keyless check at every verified time.
type SigningKey = (PublicKey, Option<Vec<u8>>, Option<CertificateIdentity>);

fn signing_key(bundle: &Bundle, signer: &Signer, times: &[OffsetDateTime]) -> Result<SigningKey, BundleError> {
    match (&bundle.material, signer) {
        (Material::PublicKey { .. }, Signer::Key { key, .. }) => Ok(((*key).clone(), None, None)),
        (Material::Certificate { leaf, chain }, Signer::Keyless(requirements)) => {
            reject_roots_in_chain(chain)?;
            let (_, certificate) = X509Certificate::from_der(leaf)
                .map_err(|e| malformed(format!("the certificate does not parse: {e}")))?;
            let identity = requirements
                .check_certificate(&certificate, chain, times)
                .map_err(invalid)?;
            let key = PublicKey::from_spki_der(certificate.public_key().raw)
                .map_err(|e| invalid(format!("the certificate's key: {e}")))?;
            Ok((key, Some(leaf.clone()), Some(identity)))
        }
        (Material::PublicKey { .. }, Signer::Keyless(_)) => Err(invalid(
            "the bundle was signed with a key, not a certificate; verify it with that key",
        )),
        (Material::Certificate { .. }, Signer::Key { .. }) => Err(invalid(
            "the bundle was signed with a certificate; verify it with an identity, not a key",
        )),
    }
}

/// Roots come from the trust root only; a bundle that ships one is trying to supply its own.
fn reject_roots_in_chain(chain: &[Vec<u8>]) -> Result<(), BundleError> {
    for der in chain {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| malformed(format!("chain certificate: {e}")))?;
        if cert.subject() == cert.issuer() {
            return Err(invalid("the bundle's certificate chain contains a root certificate"));
        }
    }
    Ok(())
}

fn verify_signature(
    bundle: &Bundle,
    artifact: &Artifact,
    digest: &[u8; 32],
    key: &PublicKey,
) -> Result<(), BundleError> {
    match &bundle.content {
        Content::Message {
            digest: claimed,
            signature,
        } => {
            if claimed.as_deref().is_some_and(|c| c != digest) {
                return Err(invalid("the bundle's messageDigest is not the artifact's digest"));
            }
            let checked = match artifact {
                Artifact::Bytes(bytes) => key.verify(bytes, signature, HashAlgorithm::Sha256),
                Artifact::Sha256(digest) => key.verify_digest(digest, signature),
            };
            checked.map_err(|e| invalid(format!("the signature over the artifact: {e}")))
        }
        Content::Dsse(envelope) => {
            let [signature] = envelope.signatures.as_slice() else {
                return Err(invalid("DSSE envelopes with more than one signature are not supported"));
            };
            key.verify(&envelope.pae(), signature, HashAlgorithm::Sha256)
                .map_err(|e| invalid(format!("the DSSE signature: {e}")))?;
            let statement = envelope.statement().map_err(|e| invalid(e.to_string()))?;
            if !statement.has_subject_sha256(&hex::encode(digest)) {
                return Err(invalid(format!(
                    "the in-toto statement has no subject with digest sha256:{}",
                    hex::encode(digest)
                )));
            }
            Ok(())
        }
    }
}

/// How the logged entry names the signer.
enum LoggedMaterial<'a> {
    Certificate(&'a [u8]),
    Key(&'a PublicKey),
}

impl LoggedMaterial<'_> {
    /// Whether a PEM (certificate or public key) recorded in a v1 entry is this signer.
    fn matches_pem(&self, pem_text: &[u8]) -> bool {
        let Ok(block) = pem::parse(pem_text) else { return false };
        match self {
            LoggedMaterial::Certificate(der) => block.tag() == "CERTIFICATE" && block.contents() == *der,
            LoggedMaterial::Key(key) => block.tag() == "PUBLIC KEY" && block.contents() == key.spki_der(),
        }
    }

    /// Whether a Rekor v2 verifier (`x509Certificate` or `publicKey` raw bytes) is this signer.
    fn matches_v2(&self, verifier: &Value) -> bool {
        let raw = |pointer: &str| {
            verifier
                .pointer(pointer)
                .and_then(Value::as_str)
                .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
        };
        match self {
            LoggedMaterial::Certificate(der) => raw("/x509Certificate/rawBytes").as_deref() == Some(*der),
            LoggedMaterial::Key(key) => raw("/publicKey/rawBytes").as_deref() == Some(key.spki_der()),
        }
    }
}

/// The log entry must record this signature by this signer over this content; a valid
/// entry about something else proves nothing.
fn check_entry_body(
    bundle: &Bundle,
    entry: &LogEntry,
    artifact_digest: &[u8; 32],
    signer: &LoggedMaterial,
) -> Result<(), BundleError> {
    let body: Value =
        serde_json::from_slice(&entry.body).map_err(|e| malformed(format!("the log entry body is not JSON: {e}")))?;
    let mismatch = |what: &str| invalid(format!("the log entry ({} {}) {what}", entry.kind, entry.kind_version));
    let text = |pointer: &str| body.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
    let decode = |pointer: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(text(pointer))
            .unwrap_or_default()
    };
    let signature = bundle.content.signature();
    match (entry.kind.as_str(), entry.kind_version.as_str(), &bundle.content) {
        ("hashedrekord", "0.0.1", Content::Message { .. }) => {
            if text("/spec/data/hash/algorithm") != "sha256"
                || text("/spec/data/hash/value") != hex::encode(artifact_digest)
            {
                return Err(mismatch("is about another artifact"));
            }
            if decode("/spec/signature/content") != signature {
                return Err(mismatch("records another signature"));
            }
            if !signer.matches_pem(&decode("/spec/signature/publicKey/content")) {
                return Err(mismatch("records another certificate or key"));
            }
        }
        ("hashedrekord", "0.0.2", content) => {
            let spec = body
                .pointer("/spec/hashedRekordV002")
                .ok_or_else(|| mismatch("has no hashedRekordV002"))?;
            let digest = match content {
                Content::Message { .. } => artifact_digest.to_vec(),
                // Rekor v2 logs DSSE as a hashedrekord over the pre-authentication encoding.
                Content::Dsse(envelope) => Sha256::digest(envelope.pae()).to_vec(),
            };
            let field = |pointer: &str| spec.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
            let logged_digest = base64::engine::general_purpose::STANDARD
                .decode(field("/data/digest"))
                .unwrap_or_default();
            if field("/data/algorithm") != "SHA2_256" || logged_digest != digest {
                return Err(mismatch("is about other content"));
            }
            let logged_signature = base64::engine::general_purpose::STANDARD
                .decode(field("/signature/content"))
                .unwrap_or_default();
            if logged_signature != signature {
                return Err(mismatch("records another signature"));
            }
            if !signer.matches_v2(spec.pointer("/signature/verifier").unwrap_or(&Value::Null)) {
                return Err(mismatch("records another certificate or key"));
            }
        }
        ("dsse", "0.0.1", Content::Dsse(envelope)) => {
            let payload_hash = hex::encode(Sha256::digest(&envelope.payload));
            if text("/spec/payloadHash/algorithm") != "sha256" || text("/spec/payloadHash/value") != payload_hash {
                return Err(mismatch("is about another payload"));
            }
            let logged = body
                .pointer("/spec/signatures")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let recorded = logged.iter().any(|s| {
                let field = |name: &str| {
                    base64::engine::general_purpose::STANDARD
                        .decode(s.get(name).and_then(Value::as_str).unwrap_or_default())
                        .unwrap_or_default()
                };
                field("signature") == signature && signer.matches_pem(&field("verifier"))
            });
            if logged.len() != envelope.signatures.len() || !recorded {
                return Err(mismatch("records other signatures"));
            }
        }
        ("intoto", "0.0.1", Content::Dsse(envelope)) => {
            // intoto 0.0.1 records the payload hash and the key, not the signature.
            let payload_hash = hex::encode(Sha256::digest(&envelope.payload));
            if text("/spec/content/payloadHash/algorithm") != "sha256"
                || text("/spec/content/payloadHash/value") != payload_hash
            {
                return Err(mismatch("is about another payload"));
            }
            if !signer.matches_pem(&decode("/spec/publicKey")) {
                return Err(mismatch("records another certificate or key"));
            }
        }
        ("intoto", "0.0.2", Content::Dsse(envelope)) => {
            let payload_hash = hex::encode(Sha256::digest(&envelope.payload));
            if text("/spec/content/payloadHash/algorithm") != "sha256"
                || text("/spec/content/payloadHash/value") != payload_hash
            {
                return Err(mismatch("is about another payload"));
            }
            let logged = body
                .pointer("/spec/content/envelope/signatures")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let once = |value: Option<&Value>| {
                base64::engine::general_purpose::STANDARD
                    .decode(value.and_then(Value::as_str).unwrap_or_default())
                    .unwrap_or_default()
            };
            // intoto v0.0.2 stores each signature base64-encoded once more.
            let twice = |value: Option<&Value>| {
                base64::engine::general_purpose::STANDARD
                    .decode(once(value))
                    .unwrap_or_default()
            };
            let recorded = logged
                .iter()
                .any(|s| twice(s.get("sig")) == signature && signer.matches_pem(&once(s.get("publicKey"))));
            if logged.len() != envelope.signatures.len() || !recorded {
                return Err(mismatch("records other signatures"));
            }
        }
        (kind, version, _) => {
            return Err(invalid(format!(
                "log entries of kind {kind} {version} are not supported for this bundle content"
            )));
        }
    }
    Ok(())
}
