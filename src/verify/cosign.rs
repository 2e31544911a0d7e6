//! cosign's tag-based signature layout: `<repo>:sha256-<hex>.sig` is an OCI manifest whose
//! layers are simple-signing payloads, each with its signature (and, for keyless signing,
//! certificate, chain and Rekor bundle) in the layer's annotations.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

pub const SIMPLESIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// `cosign attest` layers: a DSSE envelope (JSON) each.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
pub const TIMESTAMP_ANNOTATION: &str = "dev.sigstore.cosign/rfc3161timestamp";

/// One signature layer, with the payload bytes exactly as stored (signatures are over them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLayer {
    pub layer_digest: String,
    pub payload: Vec<u8>,
    /// Decoded `dev.cosignproject.cosign/signature`; `None` when absent or not base64.
    pub signature: Option<Vec<u8>>,
    /// The annotation as written (base64), which Rekor entries quote.
    pub signature_b64: String,
    pub certificate_pem: Option<String>,
    pub chain_pem: Option<String>,
    pub bundle_json: Option<String>,
    /// `dev.sigstore.cosign/rfc3161timestamp`: a TSA's signed timestamp over the signature.
    pub timestamp_json: Option<String>,
}

impl SignatureLayer {
    /// A layer of a `.sig` or `.att` manifest, read from its descriptor's annotations.
    pub fn from_annotations(layer_digest: String, annotations: &BTreeMap<String, String>, payload: Vec<u8>) -> Self {
        let annotation = |name: &str| annotations.get(name).cloned().filter(|v| !v.is_empty());
        let signature_b64 = annotation(SIGNATURE_ANNOTATION).unwrap_or_default();
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature_b64.trim())
            .ok()
            .filter(|s| !s.is_empty());
        SignatureLayer {
            layer_digest,
            payload,
            signature,
            signature_b64,
            certificate_pem: annotation(CERTIFICATE_ANNOTATION),
            chain_pem: annotation(CHAIN_ANNOTATION),
            bundle_json: annotation(BUNDLE_ANNOTATION),
            timestamp_json: annotation(TIMESTAMP_ANNOTATION),
        }
    }
}

/// The claims of a simple-signing payload that signet checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleSigningClaims {
    pub docker_manifest_digest: String,
    pub docker_reference: String,
    /// `optional`: the annotations given with `cosign sign -a key=value`.
    pub annotations: BTreeMap<String, String>,
}

/// Parses a simple-signing payload; its `critical.type` must be cosign's.
pub fn parse_payload(payload: &[u8]) -> Result<SimpleSigningClaims, String> {
    let value: Value = serde_json::from_slice(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
    let critical = value.get("critical").ok_or("payload has no \"critical\" section")?;
    let kind = critical.get("type").and_then(Value::as_str).unwrap_or_default();
    if !kind.eq_ignore_ascii_case("cosign container image signature") {
        return Err(format!(
            "payload type is {kind:?}, not a cosign container image signature"
        ));
    }
    let docker_manifest_digest = critical
        .pointer("/image/docker-manifest-digest")
        .and_then(Value::as_str)
        .ok_or("payload has no critical.image.docker-manifest-digest")?
        .to_string();
    let docker_reference = critical
        .pointer("/identity/docker-reference")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let annotations = value
        .get("optional")
        .and_then(Value::as_object)
        .map(|optional| {
            optional
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                .collect()
        })
        .unwrap_or_default();
    Ok(SimpleSigningClaims {
        docker_manifest_digest,
        docker_reference,
        annotations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_claims() {
        let payload = br#"{"critical":{"identity":{"docker-reference":"r/a"},"image":{"docker-manifest-digest":"sha256:1"},"type":"cosign container image signature"},"optional":{"env":"prod","n":3}}"#;
        let claims = parse_payload(payload).unwrap();
        assert_eq!(claims.docker_manifest_digest, "sha256:1");
        assert_eq!(claims.docker_reference, "r/a");
        assert_eq!(claims.annotations["env"], "prod");
        assert_eq!(claims.annotations["n"], "3");
        assert!(parse_payload(b"{}").is_err());
        assert!(
            parse_payload(br#"{"critical":{"type":"something else","image":{"docker-manifest-digest":"x"}}}"#).is_err()
        );
        assert!(parse_payload(br#"{"critical":{"type":"cosign container image signature"}}"#).is_err());
        assert!(parse_payload(b"\xff").is_err());
    }
}
