//! Google Cloud KMS `cryptoKeyVersions.getPublicKey`. The access token comes from
//! `GOOGLE_APPLICATION_CREDENTIALS` (a service-account key, or an `authorized_user` file), else
//! the metadata server (GKE Workload Identity, GCE; `GCE_METADATA_HOST` moves it).

use base64::Engine as _;
use serde_json::{Value, json};

use super::http::send_json;
use super::{KmsError, env};

const PROVIDER: &str = "Google Cloud KMS";
const SCOPE: &str = "https://www.googleapis.com/auth/cloudkms";

/// The SubjectPublicKeyInfo (DER) of `name` (a key version, or the newest enabled version
/// of a key).
pub async fn public_key(client: &reqwest::Client, configured: Option<&str>, name: &str) -> Result<Vec<u8>, KmsError> {
    let base = configured
        .unwrap_or("https://cloudkms.googleapis.com")
        .trim_end_matches('/');
    let token = access_token(client).await?;
    let version = if name.contains("/cryptoKeyVersions/") {
        name.to_string()
    } else {
        newest_enabled_version(client, base, &token, name).await?
    };
    let url = format!("{base}/v1/{version}/publicKey");
    let answer = send_json(client.get(&url).bearer_auth(&token), PROVIDER, &url).await?;
    let pem_text = answer["pem"]
        .as_str()
        .ok_or_else(|| KmsError::Key("getPublicKey answered without pem".to_string()))?;
    pem::parse(pem_text)
        .map(pem::Pem::into_contents)
        .map_err(|e| KmsError::Key(format!("pem: {e}")))
}

/// Rotation makes a new version the primary; the newest enabled one is the one to trust.
async fn newest_enabled_version(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    key: &str,
) -> Result<String, KmsError> {
    let url = format!("{base}/v1/{key}/cryptoKeyVersions");
    let number = |name: &str| name.rsplit('/').next().and_then(|n| n.parse::<u64>().ok());
    let mut newest: Option<(u64, String)> = None;
    let mut page_token: Option<String> = None;
    // Pages are followed to the end (a key rotated often has many versions), at most
    // MAX_PAGES of them.
    for _ in 0..MAX_PAGES {
        let mut query = vec![("filter", "state=ENABLED".to_string())];
        if let Some(token) = &page_token {
            query.push(("pageToken", token.clone()));
        }
        let request = client.get(&url).bearer_auth(token).query(&query);
        let answer = send_json(request, PROVIDER, &url).await?;
        let versions = answer["cryptoKeyVersions"].as_array().into_iter().flatten();
        for name in versions.filter_map(|v| v["name"].as_str()) {
            if let Some(n) = number(name)
                && newest.as_ref().is_none_or(|(best, _)| n > *best)
            {
                newest = Some((n, name.to_string()));
            }
        }
        page_token = answer["nextPageToken"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        if page_token.is_none() {
            break;
        }
    }
    newest
        .map(|(_, name)| name)
        .ok_or_else(|| KmsError::Key(format!("{key} has no enabled version")))
}

/// Most pages of key versions read (100 versions each by default).
const MAX_PAGES: usize = 50;

async fn access_token(client: &reqwest::Client) -> Result<String, KmsError> {
    let answer = match env("GOOGLE_APPLICATION_CREDENTIALS") {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| KmsError::Credentials(format!("GOOGLE_APPLICATION_CREDENTIALS {path}: {e}")))?;
            let file: Value = serde_json::from_str(&text)
                .map_err(|e| KmsError::Credentials(format!("GOOGLE_APPLICATION_CREDENTIALS {path}: {e}")))?;
            token_from_file(client, &file).await?
        }
        None => {
            let host = env("GCE_METADATA_HOST").unwrap_or_else(|| "metadata.google.internal".to_string());
            let url = format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/token");
            let request = client.get(&url).header("Metadata-Flavor", "Google");
            send_json(request, "the GCP metadata server", &url).await.map_err(|e| {
                KmsError::Credentials(format!(
                    "no GOOGLE_APPLICATION_CREDENTIALS, and the metadata server: {e}"
                ))
            })?
        }
    };
    answer["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| KmsError::Credentials("the token answer has no access_token".to_string()))
}

async fn token_from_file(client: &reqwest::Client, file: &Value) -> Result<Value, KmsError> {
    let field = |name: &str| {
        file[name]
            .as_str()
            .ok_or_else(|| KmsError::Credentials(format!("the credentials file has no {name}")))
    };
    match field("type")? {
        "service_account" => {
            let token_uri = field("token_uri")?;
            let assertion = service_account_jwt(field("client_email")?, field("private_key")?, token_uri)?;
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ];
            send_json(client.post(token_uri).form(&form), "Google OAuth", token_uri).await
        }
        "authorized_user" => {
            let form = [
                ("grant_type", "refresh_token"),
                ("client_id", field("client_id")?),
                ("client_secret", field("client_secret")?),
                ("refresh_token", field("refresh_token")?),
            ];
            let uri = "https://oauth2.googleapis.com/token";
            send_json(client.post(uri).form(&form), "Google OAuth", uri).await
        }
        other => Err(KmsError::Credentials(format!(
            "credentials of type {other:?} are not supported (service_account, authorized_user, or the metadata server)"
        ))),
    }
}

/// The OAuth 2.0 JWT bearer assertion of a service account (RS256, one hour).
fn service_account_jwt(email: &str, private_key_pem: &str, audience: &str) -> Result<String, KmsError> {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let header = json!({"alg": "RS256", "typ": "JWT"});
    let claims = json!({"iss": email, "scope": SCOPE, "aud": audience, "iat": now, "exp": now + 3600});
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let der = pem::parse(private_key_pem)
        .map_err(|e| KmsError::Credentials(format!("the service account's private_key: {e}")))?;
    let key = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(der.contents())
        .map_err(|e| KmsError::Credentials(format!("the service account's private_key: {e}")))?;
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|e| KmsError::Credentials(format!("cannot sign the token request: {e}")))?;
    Ok(format!("{signing_input}.{}", b64(&signature)))
}
