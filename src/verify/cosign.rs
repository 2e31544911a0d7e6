//! cosign's tag-based signature layout: `<repo>:sha256-<hex>.sig` is an OCI manifest whose
//! layers are simple-signing payloads, each with its signature (and, for keyless signing,
//! certificate, chain and Rekor bundle) in the layer's annotations.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use crate::registry::{Credentials, RegistryClient, RegistryError};

pub const SIMPLESIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// `cosign attest` layers: a DSSE envelope (JSON) each.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// A payload is a few hundred bytes; anything near this is not a cosign payload.
const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
/// More layers than this in one `.sig` manifest is abuse, not signing.
const MAX_SIGNATURES: usize = 64;

/// Where an image's signatures live: its own repository, or `source[].oci`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SignatureLocation {
    pub registry: String,
    pub repository: String,
    /// `source[].tagPrefix`, prepended to `sha256-<hex>.sig`.
    pub tag_prefix: String,
}

impl SignatureLocation {
    pub fn signature_tag(&self, digest: &str) -> String {
        format!("{}{}.sig", self.tag_prefix, digest.replacen(':', "-", 1))
    }

    /// Where `cosign attest` puts attestations: `sha256-<hex>.att`.
    pub fn attestation_tag(&self, digest: &str) -> String {
        format!("{}{}.att", self.tag_prefix, digest.replacen(':', "-", 1))
    }

    pub fn describe(&self, digest: &str) -> String {
        format!("{}/{}:{}", self.registry, self.repository, self.signature_tag(digest))
    }
}

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
}

#[derive(Deserialize)]
struct OciManifest {
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("signature manifest {location} is malformed: {detail}")]
    Malformed { location: String, detail: String },
}

impl FetchError {
    pub fn is_definitive(&self) -> bool {
        match self {
            FetchError::Registry(e) => e.is_definitive(),
            FetchError::Malformed { .. } => true,
        }
    }
}

/// Fetches every simple-signing layer attached to `digest`; no `.sig` tag means no
/// signatures (`Ok(vec![])`), which callers must treat as failure, never as success.
pub async fn fetch_signatures(
    registry: &RegistryClient,
    location: &SignatureLocation,
    digest: &str,
    credentials: &Credentials,
) -> Result<Vec<SignatureLayer>, FetchError> {
    let tag = location.signature_tag(digest);
    fetch_layers(registry, location, &tag, SIMPLESIGNING_MEDIA_TYPE, credentials).await
}

/// Fetches every `cosign attest` layer attached to `digest` (payload: the DSSE envelope);
/// no `.att` tag means none (`Ok(vec![])`).
pub async fn fetch_attestations(
    registry: &RegistryClient,
    location: &SignatureLocation,
    digest: &str,
    credentials: &Credentials,
) -> Result<Vec<SignatureLayer>, FetchError> {
    let tag = location.attestation_tag(digest);
    fetch_layers(registry, location, &tag, DSSE_MEDIA_TYPE, credentials).await
}

/// The layers of `media_type` in the manifest at `tag`, with their annotations.
async fn fetch_layers(
    registry: &RegistryClient,
    location: &SignatureLocation,
    tag: &str,
    media_type: &str,
    credentials: &Credentials,
) -> Result<Vec<SignatureLayer>, FetchError> {
    let manifest = match registry
        .get_manifest(&location.registry, &location.repository, tag, credentials)
        .await
    {
        Ok(manifest) => manifest,
        Err(RegistryError::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let malformed = |detail: String| FetchError::Malformed {
        location: format!("{}/{}:{tag}", location.registry, location.repository),
        detail,
    };
    let parsed: OciManifest = serde_json::from_slice(&manifest.bytes).map_err(|e| malformed(e.to_string()))?;
    let layers: Vec<Descriptor> = parsed
        .layers
        .into_iter()
        .filter(|l| l.media_type == media_type)
        .collect();
    if layers.len() > MAX_SIGNATURES {
        return Err(malformed(format!(
            "{} signature layers (at most {MAX_SIGNATURES})",
            layers.len()
        )));
    }
    let mut signatures = Vec::with_capacity(layers.len());
    for layer in layers {
        if layer.size > MAX_PAYLOAD_BYTES as u64 {
            return Err(malformed(format!("layer {} is {} bytes", layer.digest, layer.size)));
        }
        let payload = registry
            .get_blob(
                &location.registry,
                &location.repository,
                &layer.digest,
                MAX_PAYLOAD_BYTES,
                credentials,
            )
            .await?;
        signatures.push(signature_layer(layer, payload));
    }
    Ok(signatures)
}

fn signature_layer(layer: Descriptor, payload: Vec<u8>) -> SignatureLayer {
    let annotation = |name: &str| layer.annotations.get(name).cloned().filter(|v| !v.is_empty());
    let signature_b64 = annotation(SIGNATURE_ANNOTATION).unwrap_or_default();
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature_b64.trim())
        .ok()
        .filter(|s| !s.is_empty());
    SignatureLayer {
        layer_digest: layer.digest,
        payload,
        signature,
        signature_b64,
        certificate_pem: annotation(CERTIFICATE_ANNOTATION),
        chain_pem: annotation(CHAIN_ANNOTATION),
        bundle_json: annotation(BUNDLE_ANNOTATION),
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
    fn signature_tags() {
        let location = SignatureLocation {
            registry: "r".into(),
            repository: "a/b".into(),
            tag_prefix: String::new(),
        };
        assert_eq!(location.signature_tag("sha256:abc"), "sha256-abc.sig");
        let prefixed = SignatureLocation {
            tag_prefix: "sigprefix".into(),
            ..location
        };
        assert_eq!(prefixed.signature_tag("sha256:abc"), "sigprefixsha256-abc.sig");
    }

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
