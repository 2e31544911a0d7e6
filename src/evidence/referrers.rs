//! OCI 1.1 referrers: what cosign v3 and other Sigstore clients attach to an image. The
//! registry's referrers API is asked first; registries without it (such as distribution 2.8)
//! get the referrers tag schema, an index at the tag `sha256-<hex>`.

use serde::Deserialize;

use super::layers::{FetchError, SignatureLocation};
use crate::registry::{Credentials, RegistryClient, RegistryError};
use crate::verify::bundle::AttachedBundle;

/// `artifactType` (and layer media type) of Sigstore bundles, any version.
pub const BUNDLE_MEDIA_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// More bundles than this on one image is abuse, not signing.
const MAX_BUNDLES: usize = 32;
/// Bundles are a few kilobytes; certificates and proofs included.
const MAX_BUNDLE_BYTES: usize = 1024 * 1024;

/// The referrers index of `digest` in `repository`, and how it was found; `None` when the
/// registry has neither the API nor the tag.
pub async fn referrers_index(
    registry: &RegistryClient,
    registry_host: &str,
    repository: &str,
    digest: &str,
    credentials: &Credentials,
) -> Result<Option<(&'static str, Vec<u8>)>, RegistryError> {
    if let Some(bytes) = registry
        .get_referrers(registry_host, repository, digest, credentials)
        .await?
    {
        return Ok(Some(("referrers API", bytes)));
    }
    let schema_tag = digest.replacen(':', "-", 1);
    match registry
        .get_manifest(registry_host, repository, &schema_tag, credentials)
        .await
    {
        Ok(manifest) => Ok(Some(("referrers tag schema", manifest.bytes))),
        Err(RegistryError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    artifact_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    subject: Option<Descriptor>,
}

/// Every Sigstore bundle referring to `digest` at `location`; none found is `Ok(vec![])`,
/// which callers must treat as failure.
pub async fn fetch_bundles(
    registry: &RegistryClient,
    location: &SignatureLocation,
    digest: &str,
    credentials: &Credentials,
) -> Result<Vec<AttachedBundle>, FetchError> {
    let malformed = |detail: String| FetchError::Malformed {
        location: format!("{}/{} referrers of {digest}", location.registry, location.repository),
        detail,
    };
    let Some((_, index)) =
        referrers_index(registry, &location.registry, &location.repository, digest, credentials).await?
    else {
        return Ok(Vec::new());
    };
    let index: Index = serde_json::from_slice(&index).map_err(|e| malformed(e.to_string()))?;
    let referrers: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| d.artifact_type.starts_with(BUNDLE_MEDIA_PREFIX))
        .collect();
    if referrers.len() > MAX_BUNDLES {
        return Err(malformed(format!(
            "{} bundles (at most {MAX_BUNDLES})",
            referrers.len()
        )));
    }
    let mut bundles = Vec::with_capacity(referrers.len());
    for referrer in referrers {
        let manifest = registry
            .get_manifest(&location.registry, &location.repository, &referrer.digest, credentials)
            .await?;
        let parsed: Manifest = serde_json::from_slice(&manifest.bytes).map_err(|e| malformed(e.to_string()))?;
        // The tag schema is writable by anyone who can push; a referrer must name this image.
        if parsed.subject.as_ref().is_none_or(|s| s.digest != digest) {
            continue;
        }
        let Some(layer) = parsed
            .layers
            .iter()
            .find(|l| l.media_type.starts_with(BUNDLE_MEDIA_PREFIX))
        else {
            continue;
        };
        if layer.size > MAX_BUNDLE_BYTES as u64 {
            return Err(malformed(format!("bundle {} is {} bytes", layer.digest, layer.size)));
        }
        let json = registry
            .get_blob(
                &location.registry,
                &location.repository,
                &layer.digest,
                MAX_BUNDLE_BYTES,
                credentials,
            )
            .await?;
        bundles.push(AttachedBundle {
            manifest_digest: referrer.digest.clone(),
            json,
        });
    }
    Ok(bundles)
}
