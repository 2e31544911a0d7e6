//! Registry credentials from Docker config files and Kubernetes pull secrets
//! (`kubernetes.io/dockerconfigjson` and the legacy `kubernetes.io/dockercfg`), matched to a
//! registry host the way the kubelet does: by host (and port), ignoring scheme and path, with
//! every spelling of Docker Hub treated as one.

use crate::policy::reference::canonical_registry;
use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

use super::Credentials;

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{source_name}: not a Docker config: {detail}")]
    Malformed { source_name: String, detail: String },
}

#[derive(Deserialize, Default)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Credentials per registry host, in the order they were given.
#[derive(Clone, Default)]
pub struct Keychain {
    entries: Vec<(String, Credentials)>,
}

impl std::fmt::Debug for Keychain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosts: Vec<&str> = self.entries.iter().map(|(h, _)| h.as_str()).collect();
        f.debug_struct("Keychain").field("hosts", &hosts).finish()
    }
}

impl Keychain {
    /// Parses a `config.json` / `.dockerconfigjson` document (`{"auths": {...}}`).
    pub fn from_docker_config(json: &[u8], source_name: &str) -> Result<Self, CredentialsError> {
        let config: DockerConfig = parse_object(json, source_name)?;
        Self::from_entries(config.auths, source_name)
    }

    /// Parses a legacy `.dockercfg` document (the `auths` map without the wrapper).
    pub fn from_dockercfg(json: &[u8], source_name: &str) -> Result<Self, CredentialsError> {
        let auths: BTreeMap<String, AuthEntry> = parse_object(json, source_name)?;
        Self::from_entries(auths, source_name)
    }

    fn from_entries(auths: BTreeMap<String, AuthEntry>, source_name: &str) -> Result<Self, CredentialsError> {
        let mut entries = Vec::new();
        for (server, entry) in auths {
            let credentials = entry_credentials(&entry).map_err(|detail| CredentialsError::Malformed {
                source_name: source_name.to_string(),
                detail: format!("entry {server:?}: {detail}"),
            })?;
            if let Some(credentials) = credentials {
                entries.push((normalise_host(&server), credentials));
            }
        }
        Ok(Keychain { entries })
    }

    /// Appends another keychain's entries (later ones are tried after earlier ones).
    pub fn extend(&mut self, other: Keychain) {
        self.entries.extend(other.entries);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first credentials for `registry` (a normalised host[:port]), else anonymous.
    pub fn for_registry(&self, registry: &str) -> Credentials {
        let wanted = normalise_host(registry);
        self.entries
            .iter()
            .find(|(host, _)| *host == wanted)
            .map(|(_, credentials)| credentials.clone())
            .unwrap_or_default()
    }
}

/// Decodes a JSON object (serde would also accept an array for a struct, which no Docker
/// config is).
fn parse_object<T: serde::de::DeserializeOwned>(json: &[u8], source_name: &str) -> Result<T, CredentialsError> {
    let malformed = |detail: String| CredentialsError::Malformed {
        source_name: source_name.to_string(),
        detail,
    };
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| malformed(e.to_string()))?;
    if !value.is_object() {
        return Err(malformed("expected a JSON object".to_string()));
    }
    serde_json::from_value(value).map_err(|e| malformed(e.to_string()))
}

fn entry_credentials(entry: &AuthEntry) -> Result<Option<Credentials>, String> {
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| format!("auth is not base64: {e}"))?;
        let text = String::from_utf8(decoded).map_err(|_| "auth is not UTF-8".to_string())?;
        let (username, password) = text.split_once(':').ok_or("auth is not user:password")?;
        return Ok(Some(Credentials::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(username), Some(password)) if !username.is_empty() => Ok(Some(Credentials::Basic {
            username: username.clone(),
            password: password.clone(),
        })),
        _ => Ok(None),
    }
}

/// `https://index.docker.io/v1/` → `index.docker.io`; `Registry.Example:5000/x` →
/// `registry.example:5000`.
fn normalise_host(server: &str) -> String {
    let without_scheme = server.split_once("://").map_or(server, |(_, rest)| rest);
    let host = without_scheme
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    // Image names drop HTTPS's default port; a pull secret written for `host:443` is for
    // the same registry.
    let host = canonical_registry(&host);
    match host.as_str() {
        "docker.io" | "registry-1.docker.io" | "index.docker.io" => "index.docker.io".to_string(),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pass: &str) -> Credentials {
        Credentials::Basic {
            username: user.into(),
            password: pass.into(),
        }
    }

    fn same(a: &Credentials, b: &Credentials) -> bool {
        format!("{a:?}") == format!("{b:?}")
            && match (a, b) {
                (Credentials::Basic { password: x, .. }, Credentials::Basic { password: y, .. }) => x == y,
                (Credentials::Anonymous, Credentials::Anonymous) => true,
                _ => false,
            }
    }

    #[test]
    fn docker_config_entries_match_hosts() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let json = format!(
            r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{auth}"}}, "Registry.Example:5000": {{"username": "bob", "password": "pw"}}, "empty.example": {{}}}}}}"#
        );
        let keychain = Keychain::from_docker_config(json.as_bytes(), "test").unwrap();
        assert!(same(
            &keychain.for_registry("index.docker.io"),
            &basic("alice", "s3cret")
        ));
        assert!(same(
            &keychain.for_registry("registry.example:5000"),
            &basic("bob", "pw")
        ));
        assert!(same(
            &keychain.for_registry("registry.example"),
            &Credentials::Anonymous
        ));
        assert!(same(&keychain.for_registry("empty.example"), &Credentials::Anonymous));
        let port_443 = br#"{"auths": {"https://private.example:443": {"username": "carol", "password": "pw"}}}"#;
        let keychain_443 = Keychain::from_docker_config(port_443, "test").unwrap();
        assert!(same(
            &keychain_443.for_registry("private.example"),
            &basic("carol", "pw")
        ));
        assert!(!format!("{keychain:?}").contains("s3cret"));
    }

    #[test]
    fn legacy_dockercfg() {
        let keychain = Keychain::from_dockercfg(br#"{"ghcr.io": {"username": "u", "password": "p"}}"#, "x").unwrap();
        assert!(same(&keychain.for_registry("ghcr.io"), &basic("u", "p")));
    }

    #[test]
    fn malformed_configs_are_errors_without_secrets() {
        assert!(Keychain::from_docker_config(b"[]", "s").is_err());
        let bad = br#"{"auths": {"x": {"auth": "!!!"}}}"#;
        let err = Keychain::from_docker_config(bad, "secret ns/pull")
            .unwrap_err()
            .to_string();
        assert!(err.contains("secret ns/pull") && err.contains("\"x\""), "{err}");
        let no_colon = base64::engine::general_purpose::STANDARD.encode("justuser");
        let json = format!(r#"{{"auths": {{"x": {{"auth": "{no_colon}"}}}}}}"#);
        assert!(Keychain::from_docker_config(json.as_bytes(), "s").is_err());
    }
}
