//! One provider call: send, read at most [`MAX_BODY`] bytes, and turn a non-2xx answer into
//! the provider's own error message.

use serde_json::Value;

use super::KmsError;

/// Key and token answers are a few KiB; anything far larger is not one.
const MAX_BODY: usize = 256 * 1024;

/// The body of a 2xx answer; a provider error with its message otherwise.
pub async fn send(request: reqwest::RequestBuilder, provider: &'static str, what: &str) -> Result<Vec<u8>, KmsError> {
    let transport = |detail: String| KmsError::Transport {
        what: what.to_string(),
        detail,
    };
    let mut response = request.send().await.map_err(|e| transport(e.to_string()))?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(e.to_string()))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(transport(format!("the answer is larger than {MAX_BODY} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        return Err(KmsError::Provider {
            provider,
            status: status.as_u16(),
            message: error_message(&body),
        });
    }
    Ok(body)
}

/// [`send`], parsed as JSON.
pub async fn send_json(
    request: reqwest::RequestBuilder,
    provider: &'static str,
    what: &str,
) -> Result<Value, KmsError> {
    let body = send(request, provider, what).await?;
    serde_json::from_slice(&body).map_err(|e| KmsError::Transport {
        what: what.to_string(),
        detail: format!("the answer is not JSON: {e}"),
    })
}

/// The message in a provider's error body: AWS (`__type`, `message`), Google and Azure
/// (`error.message`, `error_description`), Vault (`errors`); else the body's start.
fn error_message(body: &[u8]) -> String {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string();
    };
    let text = |pointer: &str| json.pointer(pointer).and_then(Value::as_str).map(str::to_string);
    let aws = match (text("/__type"), text("/message").or_else(|| text("/Message"))) {
        (Some(kind), Some(message)) => Some(format!("{}: {message}", kind.rsplit('#').next().unwrap_or(&kind))),
        (kind, message) => kind.or(message),
    };
    aws.or_else(|| text("/error/message"))
        .or_else(|| text("/error_description"))
        .or_else(|| {
            let errors = json.get("errors")?.as_array()?;
            Some(errors.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "))
        })
        .or_else(|| text("/error"))
        .unwrap_or_else(|| json.to_string().chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::error_message;

    #[test]
    fn provider_messages_are_found() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"__type":"com.amazonaws.kms#NotFoundException","message":"Alias arn:aws:kms:us-east-1:1:alias/x is not found."}"#,
                "NotFoundException: Alias arn:aws:kms:us-east-1:1:alias/x is not found.",
            ),
            (
                r#"{"error":{"code":403,"message":"Permission 'cloudkms.cryptoKeyVersions.viewPublicKey' denied","status":"PERMISSION_DENIED"}}"#,
                "Permission 'cloudkms.cryptoKeyVersions.viewPublicKey' denied",
            ),
            (r#"{"errors":["permission denied"]}"#, "permission denied"),
            (
                r#"{"error":"invalid_grant","error_description":"AADSTS7000215: bad secret"}"#,
                "AADSTS7000215: bad secret",
            ),
            ("<html>gateway</html>", "<html>gateway</html>"),
        ];
        for (body, want) in cases {
            assert_eq!(error_message(body.as_bytes()), *want);
        }
    }
}
