//! Azure Key Vault `keys/get` (a JWK). The access token comes from workload identity
//! (`AZURE_FEDERATED_TOKEN_FILE` + `AZURE_CLIENT_ID` + `AZURE_TENANT_ID`, as AKS injects
//! them), a client secret (`AZURE_CLIENT_SECRET`), else the managed identity (IMDS).
//! `AZURE_AUTHORITY_HOST` moves Microsoft Entra ID (sovereign clouds).

use base64::Engine as _;
use serde_json::Value;

use super::http::send_json;
use super::{KmsError, env};
use crate::verify::keys::PublicKey;

const PROVIDER: &str = "Azure Key Vault";
const API_VERSION: &str = "7.4";
/// Key Vault and Managed HSM hosts in Azure's public and sovereign clouds.
const VAULT_SUFFIXES: [&str; 5] = [
    ".vault.azure.net",
    ".vault.azure.cn",
    ".vault.usgovcloudapi.net",
    ".vault.microsoftazure.de",
    ".managedhsm.azure.net",
];

/// The SubjectPublicKeyInfo (DER) of `key` (at `version`, else its current version).
pub async fn public_key(
    client: &reqwest::Client,
    configured: Option<&str>,
    vault: &str,
    key: &str,
    version: Option<&str>,
) -> Result<Vec<u8>, KmsError> {
    let base = match configured {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            // The token is for every vault signet's identity can reach: it goes to Azure's
            // own Key Vault hosts only, never to a host a policy names.
            let host = vault.split(':').next().unwrap_or_default();
            if !VAULT_SUFFIXES.iter().any(|suffix| host.ends_with(suffix)) {
                return Err(KmsError::Malformed(format!(
                    "azurekms://{vault}: not an Azure Key Vault host ({}); set --kms-endpoint azure=URL for another",
                    VAULT_SUFFIXES.join(", ")
                )));
            }
            format!("https://{vault}")
        }
    };
    let token = access_token(client).await?;
    let url = match version {
        Some(version) => format!("{base}/keys/{key}/{version}"),
        None => format!("{base}/keys/{key}"),
    };
    let request = client
        .get(&url)
        .bearer_auth(token)
        .query(&[("api-version", API_VERSION)]);
    let answer = send_json(request, PROVIDER, &url).await?;
    spki_from_jwk(&answer["key"])
}

async fn access_token(client: &reqwest::Client) -> Result<String, KmsError> {
    let scope = "https://vault.azure.net/.default";
    let answer = match (env("AZURE_CLIENT_ID"), env("AZURE_TENANT_ID")) {
        (Some(client_id), Some(tenant)) => {
            let authority =
                env("AZURE_AUTHORITY_HOST").unwrap_or_else(|| "https://login.microsoftonline.com".to_string());
            let url = format!("{}/{tenant}/oauth2/v2.0/token", authority.trim_end_matches('/'));
            let mut form = vec![
                ("client_id", client_id),
                ("scope", scope.to_string()),
                ("grant_type", "client_credentials".to_string()),
            ];
            if let Some(path) = env("AZURE_FEDERATED_TOKEN_FILE") {
                let assertion = std::fs::read_to_string(&path)
                    .map_err(|e| KmsError::Credentials(format!("AZURE_FEDERATED_TOKEN_FILE {path}: {e}")))?;
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
                ));
                form.push(("client_assertion", assertion.trim().to_string()));
            } else if let Some(secret) = env("AZURE_CLIENT_SECRET") {
                form.push(("client_secret", secret));
            } else {
                return Err(KmsError::Credentials(
                    "AZURE_CLIENT_ID and AZURE_TENANT_ID need AZURE_FEDERATED_TOKEN_FILE or AZURE_CLIENT_SECRET"
                        .to_string(),
                ));
            }
            send_json(client.post(&url).form(&form), "Microsoft Entra ID", &url).await?
        }
        _ => {
            let url = "http://169.254.169.254/metadata/identity/oauth2/token";
            let request = client
                .get(url)
                .header("Metadata", "true")
                .query(&[("api-version", "2018-02-01"), ("resource", "https://vault.azure.net")]);
            send_json(request, "Azure instance metadata", url).await.map_err(|e| {
                KmsError::Credentials(format!(
                    "no AZURE_CLIENT_ID + AZURE_TENANT_ID, and the managed identity: {e}"
                ))
            })?
        }
    };
    answer["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| KmsError::Credentials("the token answer has no access_token".to_string()))
}

/// A Key Vault JWK (EC P-256/P-384 or RSA) as SubjectPublicKeyInfo DER.
fn spki_from_jwk(jwk: &Value) -> Result<Vec<u8>, KmsError> {
    let part = |name: &str| {
        let text = jwk[name]
            .as_str()
            .ok_or_else(|| KmsError::Key(format!("the JWK has no {name}")))?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|e| KmsError::Key(format!("the JWK's {name}: {e}")))
    };
    let unusable = |e: &dyn std::fmt::Display| KmsError::Key(e.to_string());
    match (jwk["kty"].as_str(), jwk["crv"].as_str()) {
        (Some("EC" | "EC-HSM"), Some(curve @ ("P-256" | "P-384"))) => {
            let mut point = vec![0x04];
            point.extend(part("x")?);
            point.extend(part("y")?);
            let der = if curve == "P-256" {
                use p256::pkcs8::EncodePublicKey as _;
                p256::PublicKey::from_sec1_bytes(&point)
                    .map_err(|e| unusable(&e))?
                    .to_public_key_der()
                    .map_err(|e| unusable(&e))?
            } else {
                use p384::pkcs8::EncodePublicKey as _;
                p384::PublicKey::from_sec1_bytes(&point)
                    .map_err(|e| unusable(&e))?
                    .to_public_key_der()
                    .map_err(|e| unusable(&e))?
            };
            Ok(der.as_bytes().to_vec())
        }
        (Some("RSA" | "RSA-HSM"), _) => {
            let der = rsa_public_key_der(&part("n")?, &part("e")?);
            Ok(PublicKey::from_pkcs1_rsa_der(&der)
                .map_err(|e| unusable(&e))?
                .spki_der()
                .to_vec())
        }
        (kty, crv) => Err(KmsError::Key(format!(
            "key type {} {} is not supported (EC P-256/P-384, RSA)",
            kty.unwrap_or("?"),
            crv.unwrap_or("")
        ))),
    }
}

/// PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn length(len: usize) -> Vec<u8> {
        match len {
            0..=0x7f => vec![len as u8],
            _ => {
                let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
                std::iter::once(0x80 | bytes.len() as u8).chain(bytes).collect()
            }
        }
    }
    let integer = |value: &[u8]| {
        let value: Vec<u8> = value.iter().copied().skip_while(|b| *b == 0).collect();
        // A leading 1 bit would make the INTEGER negative.
        let padded: Vec<u8> = if value.first().is_none_or(|b| b & 0x80 != 0) {
            std::iter::once(0).chain(value).collect()
        } else {
            value
        };
        [vec![0x02], length(padded.len()), padded].concat()
    };
    let body = [integer(n), integer(e)].concat();
    [vec![0x30], length(body.len()), body].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tokens_go_to_key_vault_hosts_only() {
        let client = reqwest::Client::new();
        let refused = public_key(&client, None, "vault.evil.example", "k", None)
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("not an Azure Key Vault host"), "{refused}");
        let lookalike = public_key(&client, None, "x.vault.azure.net.evil.example:443", "k", None)
            .await
            .unwrap_err();
        assert!(
            lookalike.to_string().contains("not an Azure Key Vault host"),
            "{lookalike}"
        );
    }

    #[test]
    fn jwks_become_spki() {
        let key = p256::SecretKey::from_slice(&[7; 32]).unwrap().public_key();
        use p256::elliptic_curve::sec1::ToSec1Point as _;
        let point = key.to_sec1_point(false);
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwk = serde_json::json!({"kty": "EC", "crv": "P-256", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())});
        use p256::pkcs8::EncodePublicKey as _;
        assert_eq!(
            spki_from_jwk(&jwk).unwrap(),
            key.to_public_key_der().unwrap().as_bytes()
        );
        let unsupported = serde_json::json!({"kty": "oct"});
        assert!(
            spki_from_jwk(&unsupported)
                .unwrap_err()
                .to_string()
                .contains("not supported")
        );
        // 0x80-led modulus gets a zero byte; exponent 65537.
        assert_eq!(
            rsa_public_key_der(&[0x80, 1], &[1, 0, 1]),
            vec![0x30, 0x0a, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x03, 0x01, 0x00, 0x01]
        );
    }
}
