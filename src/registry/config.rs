//! Image config files, for a `spec.policy` with `fetchConfigFile`: the config blob of an
//! image, or of every platform image of an index, keyed as policy-controller keys them
//! (`os/architecture[/variant]`, e.g. `linux/arm/v7`). Manifests fetched by digest and config
//! blobs are checked against their digests by the client.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Credentials, MAX_MANIFEST_BYTES, RegistryClient, RegistryError};

/// Most platform images of one index whose configs are read.
pub const MAX_PLATFORMS: usize = 64;
/// Largest config blob read; real ones are a few KiB, large histories reach hundreds.
pub const MAX_CONFIG_BYTES: usize = MAX_MANIFEST_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{what} of {image}: {detail}")]
    Malformed {
        what: &'static str,
        image: String,
        detail: String,
    },
    #[error("{image} is an index of {count} platform images; at most {MAX_PLATFORMS} are read")]
    TooManyPlatforms { image: String, count: usize },
}

/// Where an image lives, and with which credentials it is read.
pub struct ImageLocation<'a> {
    pub registry: &'a str,
    pub repository: &'a str,
    pub credentials: &'a Credentials,
}

impl ImageLocation<'_> {
    fn describe(&self, digest: &str) -> String {
        format!("{}/{}@{digest}", self.registry, self.repository)
    }

    fn malformed(&self, what: &'static str, digest: &str, detail: impl Into<String>) -> ConfigFileError {
        ConfigFileError::Malformed {
            what,
            image: self.describe(digest),
            detail: detail.into(),
        }
    }
}

/// The config files of the image (or index) `digest`, by platform.
pub async fn config_files(
    client: &RegistryClient,
    image: &ImageLocation<'_>,
    digest: &str,
) -> Result<BTreeMap<String, Value>, ConfigFileError> {
    let manifest = manifest_json(client, image, digest).await?;
    let Some(children) = manifest.get("manifests") else {
        let (platform, config) = config_of(client, image, digest, &manifest).await?;
        return Ok(BTreeMap::from([(platform, config)]));
    };
    let children: Vec<&str> = children
        .as_array()
        .ok_or_else(|| image.malformed("index", digest, "`manifests` is not a list"))?
        .iter()
        .filter(|child| is_platform_image(child))
        .filter_map(|child| child.get("digest").and_then(Value::as_str))
        .collect();
    if children.len() > MAX_PLATFORMS {
        return Err(ConfigFileError::TooManyPlatforms {
            image: image.describe(digest),
            count: children.len(),
        });
    }
    let configs = futures::future::join_all(children.into_iter().map(|child| async move {
        let manifest = manifest_json(client, image, child).await?;
        config_of(client, image, child, &manifest).await
    }))
    .await;
    configs.into_iter().collect()
}

/// An index entry that is an image of a real platform: not a nested index, and not the
/// `unknown/unknown` entries build tools use for attestation manifests.
fn is_platform_image(child: &Value) -> bool {
    let media_type = child.get("mediaType").and_then(Value::as_str).unwrap_or_default();
    let nested_index = media_type.contains("index") || media_type.contains("manifest.list");
    let os = child.pointer("/platform/os").and_then(Value::as_str);
    !nested_index && os != Some("unknown")
}

async fn manifest_json(
    client: &RegistryClient,
    image: &ImageLocation<'_>,
    digest: &str,
) -> Result<Value, ConfigFileError> {
    let manifest = client
        .get_manifest(image.registry, image.repository, digest, image.credentials)
        .await?;
    serde_json::from_slice(&manifest.bytes).map_err(|e| image.malformed("manifest", digest, e.to_string()))
}

/// The config blob an image manifest names, and the platform it is for.
async fn config_of(
    client: &RegistryClient,
    image: &ImageLocation<'_>,
    digest: &str,
    manifest: &Value,
) -> Result<(String, Value), ConfigFileError> {
    let config_digest = manifest
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .ok_or_else(|| image.malformed("manifest", digest, "no config digest"))?;
    let bytes = client
        .get_blob(
            image.registry,
            image.repository,
            config_digest,
            MAX_CONFIG_BYTES,
            image.credentials,
        )
        .await?;
    let config: Value =
        serde_json::from_slice(&bytes).map_err(|e| image.malformed("config file", digest, e.to_string()))?;
    Ok((platform_key(&config), config))
}

/// `os/architecture[/variant]` of a config file (`unknown` for what it does not say).
fn platform_key(config: &Value) -> String {
    let field = |name: &str| config.get(name).and_then(Value::as_str).filter(|v| !v.is_empty());
    let mut key = format!(
        "{}/{}",
        field("os").unwrap_or("unknown"),
        field("architecture").unwrap_or("unknown")
    );
    if let Some(variant) = field("variant") {
        key.push('/');
        key.push_str(variant);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn platform_keys() {
        let rows = [
            (json!({"os": "linux", "architecture": "amd64"}), "linux/amd64"),
            (
                json!({"os": "linux", "architecture": "arm", "variant": "v7"}),
                "linux/arm/v7",
            ),
            (
                json!({"os": "linux", "architecture": "arm64", "variant": ""}),
                "linux/arm64",
            ),
            (json!({"architecture": "amd64"}), "unknown/amd64"),
            (json!({}), "unknown/unknown"),
        ];
        for (config, want) in rows {
            assert_eq!(platform_key(&config), want, "{config}");
        }
    }

    #[test]
    fn index_entries_that_are_platform_images() {
        let image = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "platform": {"os": "linux", "architecture": "amd64"}});
        let attestation = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "platform": {"os": "unknown", "architecture": "unknown"}});
        let nested = json!({"mediaType": "application/vnd.oci.image.index.v1+json"});
        let docker_list = json!({"mediaType": "application/vnd.docker.distribution.manifest.list.v2+json"});
        let bare = json!({"digest": "sha256:00"});
        assert!(is_platform_image(&image));
        assert!(is_platform_image(&bare));
        assert!(!is_platform_image(&attestation));
        assert!(!is_platform_image(&nested));
        assert!(!is_platform_image(&docker_list));
    }
}
