//! AWS KMS `GetPublicKey`, signed with SigV4. Credentials come from the standard chain, in
//! its order: environment (`AWS_ACCESS_KEY_ID`…), web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`
//! with `AWS_ROLE_ARN`: IRSA on EKS), container credentials
//! (`AWS_CONTAINER_CREDENTIALS_FULL_URI`: EKS Pod Identity), then the EC2 instance profile
//! (IMDSv2). Endpoints follow the SDKs' variables: `AWS_ENDPOINT_URL_KMS`,
//! `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_STS`, `AWS_EC2_METADATA_SERVICE_ENDPOINT`.

use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine as _;
use serde_json::{Value, json};

use super::http::{send, send_json};
use super::{KmsError, env};

const PROVIDER: &str = "AWS KMS";

struct Credentials {
    access_key: String,
    secret_key: String,
    session_token: Option<String>,
}

/// The SubjectPublicKeyInfo (DER) of `key_id`.
pub async fn public_key(
    client: &reqwest::Client,
    configured: Option<&str>,
    host: Option<&str>,
    key_id: &str,
) -> Result<Vec<u8>, KmsError> {
    let region = region(key_id)?;
    let operator = configured
        .map(str::to_string)
        .or_else(|| env("AWS_ENDPOINT_URL_KMS"))
        .or_else(|| env("AWS_ENDPOINT_URL"));
    let url = match (operator, host) {
        (Some(url), _) => url,
        // Signed requests carry the session token: only to AWS's own hosts when a policy
        // names the endpoint.
        (None, Some(host)) if is_aws_host(host) => format!("https://{host}"),
        (None, Some(host)) => {
            return Err(KmsError::Malformed(format!(
                "awskms://{host}/…: not an AWS endpoint (*.amazonaws.com); set --kms-endpoint aws=URL for another"
            )));
        }
        (None, None) => format!("https://kms.{region}.amazonaws.com"),
    };
    let url = format!("{}/", url.trim_end_matches('/'));
    let credentials = credentials(client, &region).await?;
    let body = json!({"KeyId": key_id}).to_string();
    let headers = [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", "TrentService.GetPublicKey"),
    ];
    let signed = signed_headers(&credentials, &region, &url, &headers, body.as_bytes())?;
    let mut request = client.post(&url).body(body);
    for (name, value) in headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .chain(signed)
    {
        request = request.header(name, value);
    }
    let answer = send_json(request, PROVIDER, &url).await?;
    let spki = answer["PublicKey"]
        .as_str()
        .ok_or_else(|| KmsError::Key("GetPublicKey answered without PublicKey".to_string()))?;
    base64::engine::general_purpose::STANDARD
        .decode(spki)
        .map_err(|e| KmsError::Key(format!("PublicKey is not base64: {e}")))
}

fn is_aws_host(host: &str) -> bool {
    let name = host.split(':').next().unwrap_or_default();
    name.ends_with(".amazonaws.com") || name.ends_with(".amazonaws.com.cn")
}

/// The key ARN's region, else `AWS_REGION` / `AWS_DEFAULT_REGION`.
fn region(key_id: &str) -> Result<String, KmsError> {
    let from_arn = key_id
        .strip_prefix("arn:")
        .and_then(|arn| arn.split(':').nth(2))
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    from_arn
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .ok_or_else(|| KmsError::Credentials("no AWS region: use a key ARN, or set AWS_REGION".to_string()))
}

/// The SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`) for a request.
fn signed_headers(
    credentials: &Credentials,
    region: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Vec<(String, String)>, KmsError> {
    let identity = aws_credential_types::Credentials::new(
        &credentials.access_key,
        &credentials.secret_key,
        credentials.session_token.clone(),
        None,
        "signet",
    )
    .into();
    let signing_error = |e: &dyn std::fmt::Display| KmsError::Credentials(format!("cannot sign the request: {e}"));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("kms")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| signing_error(&e))?
        .into();
    let request = SignableRequest::new("POST", url, headers.iter().copied(), SignableBody::Bytes(body))
        .map_err(|e| signing_error(&e))?;
    let (instructions, _) = sign(request, &params).map_err(|e| signing_error(&e))?.into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect())
}

async fn credentials(client: &reqwest::Client, region: &str) -> Result<Credentials, KmsError> {
    if let (Some(access_key), Some(secret_key)) = (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Credentials {
            access_key,
            secret_key,
            session_token: env("AWS_SESSION_TOKEN"),
        });
    }
    if let (Some(token_file), Some(role)) = (env("AWS_WEB_IDENTITY_TOKEN_FILE"), env("AWS_ROLE_ARN")) {
        return web_identity(client, region, &token_file, &role).await;
    }
    if let Some(uri) = env("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        return container(client, &uri).await;
    }
    instance_profile(client).await.map_err(|e| {
        KmsError::Credentials(format!(
            "none in the environment (AWS_ACCESS_KEY_ID, AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, \
             AWS_CONTAINER_CREDENTIALS_FULL_URI), and the instance profile: {e}"
        ))
    })
}

/// IRSA: the pod's projected ServiceAccount token exchanged at STS for role credentials.
async fn web_identity(
    client: &reqwest::Client,
    region: &str,
    token_file: &str,
    role: &str,
) -> Result<Credentials, KmsError> {
    let token = std::fs::read_to_string(token_file)
        .map_err(|e| KmsError::Credentials(format!("AWS_WEB_IDENTITY_TOKEN_FILE {token_file}: {e}")))?;
    let url = env("AWS_ENDPOINT_URL_STS")
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
    let session = env("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "signet".to_string());
    let form = [
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", role),
        ("RoleSessionName", session.as_str()),
        ("WebIdentityToken", token.trim()),
    ];
    let request = client.post(format!("{}/", url.trim_end_matches('/'))).form(&form);
    let body = send(request, "AWS STS", &url).await?;
    let xml = String::from_utf8_lossy(&body);
    let field =
        |tag: &str| xml_text(&xml, tag).ok_or_else(|| KmsError::Credentials(format!("STS answered without {tag}")));
    Ok(Credentials {
        access_key: field("AccessKeyId")?,
        secret_key: field("SecretAccessKey")?,
        session_token: Some(field("SessionToken")?),
    })
}

/// The text of the first `<tag>…</tag>` of an STS answer. Its credential values are plain
/// base64-like text; a value with markup in it would not be a credential.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..end].trim().to_string()).filter(|v| !v.is_empty() && !v.contains('<'))
}

/// EKS Pod Identity (and ECS): a local endpoint that hands out the role's credentials.
async fn container(client: &reqwest::Client, uri: &str) -> Result<Credentials, KmsError> {
    let mut request = client.get(uri);
    let token = match env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        Some(path) => Some(
            std::fs::read_to_string(&path)
                .map_err(|e| KmsError::Credentials(format!("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {path}: {e}")))?,
        ),
        None => env("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
    };
    if let Some(token) = token {
        request = request.header("authorization", token.trim());
    }
    credentials_json(&send_json(request, "AWS container credentials", uri).await?)
}

/// IMDSv2: a session token, the instance role's name, then its credentials.
async fn instance_profile(client: &reqwest::Client) -> Result<Credentials, KmsError> {
    let base = env("AWS_EC2_METADATA_SERVICE_ENDPOINT").unwrap_or_else(|| "http://169.254.169.254".to_string());
    let base = base.trim_end_matches('/');
    let quick = std::time::Duration::from_secs(2);
    let token = send(
        client
            .put(format!("{base}/latest/api/token"))
            .header("x-aws-ec2-metadata-token-ttl-seconds", "300")
            .timeout(quick),
        "EC2 instance metadata",
        base,
    )
    .await?;
    let token = String::from_utf8_lossy(&token).trim().to_string();
    let roles_url = format!("{base}/latest/meta-data/iam/security-credentials/");
    let get = |url: String| {
        client
            .get(url)
            .header("x-aws-ec2-metadata-token", token.clone())
            .timeout(quick)
    };
    let roles = send(get(roles_url.clone()), "EC2 instance metadata", &roles_url).await?;
    let role = String::from_utf8_lossy(&roles)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    if role.is_empty() {
        return Err(KmsError::Credentials("the instance has no IAM role".to_string()));
    }
    let url = format!("{roles_url}{role}");
    credentials_json(&send_json(get(url.clone()), "EC2 instance metadata", &url).await?)
}

fn credentials_json(json: &Value) -> Result<Credentials, KmsError> {
    let field = |name: &str| {
        json[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| KmsError::Credentials(format!("the credentials answer has no {name}")))
    };
    Ok(Credentials {
        access_key: field("AccessKeyId")?,
        secret_key: field("SecretAccessKey")?,
        session_token: json["Token"].as_str().map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_come_from_the_arn_first() {
        assert_eq!(region("arn:aws:kms:eu-west-3:111122223333:key/k").unwrap(), "eu-west-3");
        assert!(is_aws_host("kms.eu-west-3.amazonaws.com"));
        assert!(is_aws_host("vpce-1.kms.eu-west-1.vpce.amazonaws.com:443"));
        assert!(!is_aws_host("kms.amazonaws.com.evil.example"));
        assert!(!is_aws_host("localhost:4566"));
        assert_eq!(
            xml_text(
                "<R><AccessKeyId>AKIA1</AccessKeyId><SessionToken>a+b/c=</SessionToken></R>",
                "SessionToken"
            ),
            Some("a+b/c=".to_string())
        );
        assert_eq!(xml_text("<AccessKeyId></AccessKeyId>", "AccessKeyId"), None);
    }
}
