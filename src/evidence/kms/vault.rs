//! HashiCorp Vault (or OpenBao) transit keys: `GET /v1/<transit>/keys/<name>`, the latest
//! version's public key. `VAULT_ADDR` says where; the token is `VAULT_TOKEN`, else a
//! Kubernetes auth login (`VAULT_KUBERNETES_ROLE`, mount `VAULT_KUBERNETES_MOUNT`, default
//! `kubernetes`) with the pod's ServiceAccount token. `VAULT_NAMESPACE` and cosign's
//! `TRANSIT_SECRET_ENGINE_PATH` (default `transit`) are honoured.

use base64::Engine as _;
use serde_json::json;

use super::http::send_json;
use super::{KmsError, env};

const PROVIDER: &str = "Vault";
const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// SubjectPublicKeyInfo prefix of an Ed25519 key (RFC 8410); the raw key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// The SubjectPublicKeyInfo (DER) of transit key `key`'s latest version.
pub async fn public_key(client: &reqwest::Client, key: &str) -> Result<Vec<u8>, KmsError> {
    let address = env("VAULT_ADDR").ok_or_else(|| KmsError::Credentials("VAULT_ADDR is not set".to_string()))?;
    let address = address.trim_end_matches('/');
    let token = token(client, address).await?;
    let transit = env("TRANSIT_SECRET_ENGINE_PATH").unwrap_or_else(|| "transit".to_string());
    let url = format!("{address}/v1/{}/keys/{key}", transit.trim_matches('/'));
    let answer = send_json(
        with_namespace(client.get(&url).header("X-Vault-Token", token)),
        PROVIDER,
        &url,
    )
    .await?;
    let data = &answer["data"];
    let latest = data["latest_version"]
        .as_u64()
        .ok_or_else(|| KmsError::Key("the transit key has no latest_version".to_string()))?;
    let public = data["keys"][latest.to_string()]["public_key"]
        .as_str()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| KmsError::Key(format!("version {latest} has no public key (is the key asymmetric?)")))?;
    if public.contains("-----BEGIN") {
        return pem::parse(public)
            .map(pem::Pem::into_contents)
            .map_err(|e| KmsError::Key(format!("public_key: {e}")));
    }
    // ed25519 keys come as the raw 32 bytes, base64.
    let raw = base64::engine::general_purpose::STANDARD
        .decode(public)
        .map_err(|e| KmsError::Key(format!("public_key: {e}")))?;
    if raw.len() != 32 {
        return Err(KmsError::Key(format!("a {}-byte raw public key", raw.len())));
    }
    Ok([&ED25519_SPKI_PREFIX[..], &raw].concat())
}

fn with_namespace(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match env("VAULT_NAMESPACE") {
        Some(namespace) => request.header("X-Vault-Namespace", namespace),
        None => request,
    }
}

async fn token(client: &reqwest::Client, address: &str) -> Result<String, KmsError> {
    if let Some(token) = env("VAULT_TOKEN") {
        return Ok(token);
    }
    let role = env("VAULT_KUBERNETES_ROLE").ok_or_else(|| {
        KmsError::Credentials("set VAULT_TOKEN, or VAULT_KUBERNETES_ROLE for Kubernetes auth".to_string())
    })?;
    let path = env("VAULT_KUBERNETES_TOKEN_PATH").unwrap_or_else(|| SERVICE_ACCOUNT_TOKEN.to_string());
    let jwt = std::fs::read_to_string(&path)
        .map_err(|e| KmsError::Credentials(format!("the ServiceAccount token {path}: {e}")))?;
    let mount = env("VAULT_KUBERNETES_MOUNT").unwrap_or_else(|| "kubernetes".to_string());
    let url = format!("{address}/v1/auth/{}/login", mount.trim_matches('/'));
    let body = json!({"role": role, "jwt": jwt.trim()});
    let answer = send_json(with_namespace(client.post(&url).json(&body)), PROVIDER, &url).await?;
    answer["auth"]["client_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| KmsError::Credentials("the Kubernetes login answered without auth.client_token".to_string()))
}
