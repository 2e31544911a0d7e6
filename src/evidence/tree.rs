//! `signet tree IMAGE`: what is attached to an image, like `cosign tree` — cosign's
//! signature, attestation and SBOM tags, and OCI 1.1 referrers (the API, or the
//! `sha256-<hex>` tag schema for registries without it).

use std::fmt::Write as _;

use serde_json::Value;

use crate::policy::reference::ImageRef;
use crate::registry::{Credentials, RegistryClient, RegistryError};

/// One kind of attachment and what was found for it.
struct Attachment {
    title: &'static str,
    tag: String,
    found: Result<Option<Vec<String>>, RegistryError>,
}

/// Renders the attachment tree of `image`.
pub async fn attachment_tree(
    registry: &RegistryClient,
    image: &ImageRef,
    credentials: &Credentials,
) -> Result<String, String> {
    let digest = match image.digest() {
        Some(digest) => digest.to_string(),
        None => registry
            .resolve_digest(
                image.endpoint(),
                image.repository(),
                image.registry_reference(),
                credentials,
            )
            .await
            .map_err(|e| e.to_string())?,
    };
    let base = digest.replacen(':', "-", 1);
    let mut attachments = Vec::new();
    for (title, suffix) in [("signatures", ".sig"), ("attestations", ".att"), ("SBOMs", ".sbom")] {
        let tag = format!("{base}{suffix}");
        let found = layers_of(registry, image, &tag, credentials).await;
        attachments.push(Attachment { title, tag, found });
    }
    let referrers = referrers(registry, image, &digest, credentials).await;

    let mut out = String::new();
    let _ = writeln!(out, "📦 {}@{digest}", image.name());
    for attachment in &attachments {
        match &attachment.found {
            Ok(None) => {
                let _ = writeln!(out, "└── {}: none ({})", attachment.title, attachment.tag);
            }
            Ok(Some(layers)) => {
                let _ = writeln!(out, "└── {} ({}:{})", attachment.title, image.name(), attachment.tag);
                for layer in layers {
                    let _ = writeln!(out, "    └── {layer}");
                }
            }
            Err(e) => {
                let _ = writeln!(out, "└── {}: cannot read: {e}", attachment.title);
            }
        }
    }
    match referrers {
        Ok((how, entries)) if entries.is_empty() => {
            let _ = writeln!(out, "└── referrers: none ({how})");
        }
        Ok((how, entries)) => {
            let _ = writeln!(out, "└── referrers ({how})");
            for entry in entries {
                let _ = writeln!(out, "    └── {entry}");
            }
        }
        Err(e) => {
            let _ = writeln!(out, "└── referrers: cannot read: {e}");
        }
    }
    Ok(out)
}

/// The layers of the manifest at `tag` (digest, media type, predicate type), or `None` when
/// the tag does not exist.
async fn layers_of(
    registry: &RegistryClient,
    image: &ImageRef,
    tag: &str,
    credentials: &Credentials,
) -> Result<Option<Vec<String>>, RegistryError> {
    let manifest = match registry
        .get_manifest(image.endpoint(), image.repository(), tag, credentials)
        .await
    {
        Ok(manifest) => manifest,
        Err(RegistryError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let parsed: Value = serde_json::from_slice(&manifest.bytes).unwrap_or(Value::Null);
    let layers = parsed["layers"].as_array().cloned().unwrap_or_default();
    Ok(Some(layers.iter().map(describe_descriptor).collect()))
}

fn describe_descriptor(descriptor: &Value) -> String {
    let digest = descriptor["digest"].as_str().unwrap_or("?");
    let media_type = descriptor["artifactType"]
        .as_str()
        .or_else(|| descriptor["mediaType"].as_str())
        .unwrap_or("?");
    match descriptor["annotations"]["predicateType"].as_str() {
        Some(predicate) => format!("{digest} {media_type} (predicate {predicate})"),
        None => format!("{digest} {media_type}"),
    }
}

/// Referrers from the API, else from the tag schema; says which it used.
async fn referrers(
    registry: &RegistryClient,
    image: &ImageRef,
    digest: &str,
    credentials: &Credentials,
) -> Result<(&'static str, Vec<String>), RegistryError> {
    let found =
        super::referrers::referrers_index(registry, image.endpoint(), image.repository(), digest, credentials).await?;
    let Some((how, index)) = found else {
        return Ok(("no referrers API, no referrers tag", Vec::new()));
    };
    let parsed: Value = serde_json::from_slice(&index).unwrap_or(Value::Null);
    let entries = parsed["manifests"].as_array().cloned().unwrap_or_default();
    Ok((how, entries.iter().map(describe_descriptor).collect()))
}
