//! DSSE envelopes (how Sigstore bundles and `cosign attest` carry in-toto statements) and
//! the in-toto statements inside them.

use base64::Engine as _;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum DsseError {
    #[error("the DSSE envelope is malformed: {0}")]
    Malformed(String),
    #[error("the in-toto statement is malformed: {0}")]
    BadStatement(String),
}

/// A DSSE envelope with its payload and signatures decoded.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub payload_type: String,
    pub payload: Vec<u8>,
    pub signatures: Vec<Vec<u8>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeJson {
    payload: String,
    payload_type: String,
    #[serde(default)]
    signatures: Vec<SignatureJson>,
}

#[derive(Deserialize)]
struct SignatureJson {
    sig: String,
}

impl Envelope {
    pub fn from_json(value: &serde_json::Value) -> Result<Self, DsseError> {
        let json: EnvelopeJson =
            serde_json::from_value(value.clone()).map_err(|e| DsseError::Malformed(e.to_string()))?;
        let decode = |text: &str, what: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| DsseError::Malformed(format!("{what} is not base64: {e}")))
        };
        let signatures = json
            .signatures
            .iter()
            .map(|s| decode(&s.sig, "a signature"))
            .collect::<Result<Vec<_>, _>>()?;
        if signatures.is_empty() {
            return Err(DsseError::Malformed("it has no signatures".into()));
        }
        Ok(Envelope {
            payload: decode(&json.payload, "the payload")?,
            payload_type: json.payload_type,
            signatures,
        })
    }

    /// The bytes each signature covers: DSSE's pre-authentication encoding.
    pub fn pae(&self) -> Vec<u8> {
        let mut out = format!(
            "DSSEv1 {} {} {} ",
            self.payload_type.len(),
            self.payload_type,
            self.payload.len()
        )
        .into_bytes();
        out.extend_from_slice(&self.payload);
        out
    }

    /// The in-toto statement the envelope carries.
    pub fn statement(&self) -> Result<Statement, DsseError> {
        if self.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(DsseError::BadStatement(format!(
                "payloadType is {:?}, not {IN_TOTO_PAYLOAD_TYPE:?}",
                self.payload_type
            )));
        }
        serde_json::from_slice(&self.payload).map_err(|e| DsseError::BadStatement(e.to_string()))
    }
}

pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// An in-toto statement (v0.1 or v1: the fields signet reads are the same).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statement {
    #[serde(default)]
    pub subject: Vec<Subject>,
    #[serde(default)]
    pub predicate_type: String,
    #[serde(default)]
    pub predicate: serde_json::Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Subject {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub digest: std::collections::BTreeMap<String, String>,
}

impl Statement {
    /// Whether one of the subjects is the artifact with this SHA-256 digest (hex).
    pub fn has_subject_sha256(&self, hex_digest: &str) -> bool {
        self.subject.iter().any(|s| {
            s.digest
                .get("sha256")
                .is_some_and(|d| d.eq_ignore_ascii_case(hex_digest))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // The example from the DSSE protocol document.
        let envelope = Envelope {
            payload_type: "http://example.com/HelloWorld".into(),
            payload: b"hello world".to_vec(),
            signatures: vec![vec![1]],
        };
        assert_eq!(
            envelope.pae(),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn statements_and_subjects() {
        let statement = json!({"_type": "https://in-toto.io/Statement/v1", "predicateType": "p",
            "subject": [{"name": "a", "digest": {"sha256": "ABCD"}}], "predicate": {}});
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let value = json!({"payloadType": IN_TOTO_PAYLOAD_TYPE,
            "payload": b64(statement.to_string().as_bytes()), "signatures": [{"sig": b64(b"s")}]});
        let envelope = Envelope::from_json(&value).unwrap();
        let parsed = envelope.statement().unwrap();
        assert!(parsed.has_subject_sha256("abcd"));
        assert!(!parsed.has_subject_sha256("abce"));
        let unsigned = json!({"payloadType": "x", "payload": "", "signatures": []});
        assert!(Envelope::from_json(&unsigned).is_err());
    }
}
