//! Fetching cosign's tag-based signatures: `<repo>:sha256-<hex>.sig` (and `.att`) is an OCI
//! manifest whose layers are the signed payloads, each with its signature material in the
//! layer's annotations (read by [`SignatureLayer::from_annotations`]).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::registry::{Credentials, RegistryClient, RegistryError};
use crate::verify::cosign::{DSSE_MEDIA_TYPE, SIMPLESIGNING_MEDIA_TYPE, SignatureLayer};

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
        signatures.push(SignatureLayer::from_annotations(
            layer.digest,
            &layer.annotations,
            payload,
        ));
    }
    Ok(signatures)
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
}
