//! Offline Rekor checks of cosign's bundle annotation: the SignedEntryTimestamp (SET) must be
//! signed by a transparency log of the trust root, valid when the entry was integrated, and
//! the logged entry must be about *this* signature, payload and key — a valid SET over an
//! unrelated entry proves nothing (the gap CRATES.md describes in the `sigstore` crate).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use sha2::Digest;
use time::OffsetDateTime;

use super::keys::HashAlgorithm;
use super::trust::{LogKey, TrustRoot};

/// cosign's `dev.sigstore.cosign/bundle` annotation.
#[derive(Debug, Deserialize)]
struct CosignBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    payload: BundlePayload,
}

/// What a Rekor v1 SignedEntryTimestamp signs.
#[derive(Debug, Deserialize)]
pub struct BundlePayload {
    pub body: String,
    #[serde(rename = "integratedTime")]
    pub integrated_time: i64,
    #[serde(rename = "logIndex")]
    pub log_index: i64,
    #[serde(rename = "logID")]
    pub log_id: String,
}

/// Checks a SignedEntryTimestamp: `log`'s signature over the canonical entry summary.
pub fn verify_set(log: &LogKey, payload: &BundlePayload, set: &[u8]) -> Result<(), String> {
    log.key
        .verify(&canonical_payload(payload), set, HashAlgorithm::Sha256)
        .map_err(|_| {
            format!(
                "the Rekor SignedEntryTimestamp does not verify with the key of {}",
                log.base_url
            )
        })
}

/// A verified transparency log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEntry {
    pub integrated_time: OffsetDateTime,
    pub log_index: i64,
    pub log_url: String,
    /// The verification material the entry recorded: a PEM public key or certificate.
    pub public_key_pem: String,
}

/// What a logged entry must be about.
pub struct EntryExpectation<'a> {
    pub payload: &'a [u8],
    pub signature: &'a [u8],
}

/// Verifies a bundle annotation against `trust` and `expected`.
pub fn verify_bundle(bundle_json: &str, trust: &TrustRoot, expected: &EntryExpectation) -> Result<LoggedEntry, String> {
    let bundle: CosignBundle =
        serde_json::from_str(bundle_json).map_err(|e| format!("the Rekor bundle is malformed: {e}"))?;
    let payload = &bundle.payload;
    let log = trust.tlog(&payload.log_id).ok_or_else(|| {
        format!(
            "the Rekor bundle is signed by log {}, which the trust root does not know",
            payload.log_id
        )
    })?;
    let integrated_time = OffsetDateTime::from_unix_timestamp(payload.integrated_time).map_err(|_| {
        format!(
            "the Rekor bundle's integratedTime {} is out of range",
            payload.integrated_time
        )
    })?;
    if !log.valid_at(integrated_time) {
        return Err(format!(
            "the Rekor log {} was not valid at the entry's integratedTime {integrated_time}",
            log.base_url
        ));
    }
    let set = decode_b64(&bundle.signed_entry_timestamp, "SignedEntryTimestamp")?;
    verify_set(log, payload, &set)?;
    let public_key_pem = check_body(&payload.body, expected)?;
    Ok(LoggedEntry {
        integrated_time,
        log_index: payload.log_index,
        log_url: log.base_url.clone(),
        public_key_pem,
    })
}

/// The bytes Rekor signs: the payload as canonical JSON (sorted keys, no spaces).
fn canonical_payload(payload: &BundlePayload) -> Vec<u8> {
    let canonical: BTreeMap<&str, Value> = BTreeMap::from([
        ("body", Value::from(payload.body.clone())),
        ("integratedTime", Value::from(payload.integrated_time)),
        ("logID", Value::from(payload.log_id.clone())),
        ("logIndex", Value::from(payload.log_index)),
    ]);
    serde_json::to_vec(&canonical).unwrap_or_default()
}

/// A `hashedrekord` body must name this payload's hash and this exact signature; returns the
/// verification material it recorded, for the caller to compare with its key or certificate.
fn check_body(body_b64: &str, expected: &EntryExpectation) -> Result<String, String> {
    let body: Value = serde_json::from_slice(&decode_b64(body_b64, "Rekor entry body")?)
        .map_err(|e| format!("the Rekor entry body is not JSON: {e}"))?;
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind != "hashedrekord" {
        return Err(format!(
            "the Rekor entry is of kind {kind:?}; signet checks hashedrekord entries"
        ));
    }
    let spec = &body["spec"];
    let algorithm = spec
        .pointer("/data/hash/algorithm")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let logged_hash = spec
        .pointer("/data/hash/value")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let payload_hash = format!("{:x}", sha2::Sha256::digest(expected.payload));
    if algorithm != "sha256" || !logged_hash.eq_ignore_ascii_case(&payload_hash) {
        return Err(format!(
            "the Rekor entry is about another payload (logged {algorithm}:{logged_hash}, payload sha256:{payload_hash})"
        ));
    }
    let logged_signature = spec
        .pointer("/signature/content")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if decode_b64(logged_signature, "logged signature")? != expected.signature {
        return Err("the Rekor entry records a different signature".to_string());
    }
    let key_b64 = spec
        .pointer("/signature/publicKey/content")
        .and_then(Value::as_str)
        .unwrap_or_default();
    String::from_utf8(decode_b64(key_b64, "logged public key")?)
        .map_err(|_| "the Rekor entry's public key is not PEM text".to_string())
}

fn decode_b64(text: &str, what: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("the {what} is not base64: {e}"))
}
