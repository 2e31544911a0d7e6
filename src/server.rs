//! The HTTPS webhook server: `POST /mutate` and `POST /validate`, TLS 1.2+ through rustls,
//! certificate hot reload, graceful shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::HttpBody as _;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use futures::StreamExt as _;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::admission::{Admission, Endpoint};

/// Largest AdmissionReview accepted. The API server caps objects at 3 MiB and a review may
/// carry the old and the new object, so 8 MiB leaves room without inviting abuse.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// An over-limit body is read and dropped up to this many bytes in all, so the client is
/// done sending and sees the 413 (HTTP/2 and chunked HTTP/1.1 clients otherwise see a reset
/// or a broken pipe). Beyond it the connection is simply closed after the 413.
const MAX_DRAINED_BYTES: usize = 4 * MAX_BODY_BYTES;
/// Most memory reserved for a body before its bytes arrive.
const INITIAL_BODY_CAPACITY: usize = 64 * 1024;
/// The API server sends its headers in one go; a client that takes longer is holding a
/// connection open, not sending a review.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The whole body must arrive within this; a trickling body gets a 408.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 connections are pinged this often and closed when a ping goes unanswered for as
/// long, so dead peers do not hold streams.
const HTTP2_KEEP_ALIVE: Duration = Duration::from_secs(20);
/// Concurrent streams on one HTTP/2 connection; the API server uses a handful.
const HTTP2_MAX_STREAMS: u32 = 256;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot read TLS certificate or key ({cert}, {key}): {source}")]
    LoadTls {
        cert: PathBuf,
        key: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate a self-signed certificate: {0}")]
    SelfSigned(#[from] rcgen::Error),
    #[error("cannot write the CA certificate to {path}: {source}")]
    WriteCa { path: PathBuf, source: std::io::Error },
    #[error("webhook server on {addr} failed: {source}")]
    Serve { addr: SocketAddr, source: std::io::Error },
}

/// Where the serving certificate comes from.
pub enum TlsSource {
    /// PEM files, reloaded when they change (cert-manager and Secret volume rotation).
    Files { cert: PathBuf, key: PathBuf },
    /// A certificate generated at start, signed by a fresh CA written to `ca_out`.
    SelfSigned {
        names: Vec<String>,
        ca_out: Option<PathBuf>,
    },
}

pub fn router(admission: Admission) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .with_state(admission)
}

#[derive(serde::Deserialize)]
struct WebhookQuery {
    /// The API server's deadline for this call, e.g. `10s`.
    timeout: Option<String>,
}

async fn mutate(State(admission): State<Admission>, Query(query): Query<WebhookQuery>, body: Body) -> Response {
    review(admission, Endpoint::Mutate, query, body).await
}

async fn validate(State(admission): State<Admission>, Query(query): Query<WebhookQuery>, body: Body) -> Response {
    review(admission, Endpoint::Validate, query, body).await
}

async fn review(admission: Admission, endpoint: Endpoint, query: WebhookQuery, body: Body) -> Response {
    let arrived = std::time::Instant::now();
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(refusal) => return refusal.into_response(),
    };
    // The API server's deadline covers the whole call, reading the body included.
    let timeout = query
        .timeout
        .as_deref()
        .and_then(parse_go_duration)
        .map(|t| t.saturating_sub(arrived.elapsed()));
    match admission.handle(&body, endpoint, timeout).await {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}

/// Why a request body was not read.
#[derive(Debug, thiserror::Error)]
enum BodyRefusal {
    #[error("the request body is over {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("the request body did not arrive within {BODY_READ_TIMEOUT:?}")]
    TooSlow,
    #[error("the request body could not be read: {0}")]
    Broken(axum::Error),
}

impl IntoResponse for BodyRefusal {
    fn into_response(self) -> Response {
        let status = match self {
            BodyRefusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyRefusal::TooSlow => StatusCode::REQUEST_TIMEOUT,
            BodyRefusal::Broken(_) => StatusCode::BAD_REQUEST,
        };
        (status, format!("{self}\n")).into_response()
    }
}

/// Reads the whole body within [`BODY_READ_TIMEOUT`], keeping at most [`MAX_BODY_BYTES`].
/// An over-limit body is read on and dropped (up to [`MAX_DRAINED_BYTES`]) so the client can
/// take the 413 on any protocol.
async fn read_body(body: Body) -> Result<Bytes, BodyRefusal> {
    let declared = body.size_hint().exact().and_then(|n| usize::try_from(n).ok());
    if declared.is_some_and(|n| n > MAX_DRAINED_BYTES) {
        return Err(BodyRefusal::TooLarge);
    }
    let read = async {
        // A declared length is only a claim: reserve little up front, grow with what arrives.
        let mut kept = Vec::with_capacity(declared.unwrap_or(0).min(INITIAL_BODY_CAPACITY));
        let mut seen = 0usize;
        let mut frames = body.into_data_stream();
        while let Some(chunk) = frames.next().await {
            let chunk = chunk.map_err(BodyRefusal::Broken)?;
            seen = seen.saturating_add(chunk.len());
            if seen > MAX_DRAINED_BYTES {
                return Err(BodyRefusal::TooLarge);
            }
            if seen <= MAX_BODY_BYTES {
                kept.extend_from_slice(&chunk);
            } else if !kept.is_empty() {
                kept = Vec::new(); // the 413 is certain; do not hold 8 MiB while draining
            }
        }
        if seen > MAX_BODY_BYTES {
            return Err(BodyRefusal::TooLarge);
        }
        Ok(Bytes::from(kept))
    };
    tokio::time::timeout(BODY_READ_TIMEOUT, read)
        .await
        .unwrap_or(Err(BodyRefusal::TooSlow))
}

/// The API server allows a webhook at most 30 s (`timeoutSeconds` is validated to 1..=30), so
/// a longer `?timeout=` is not one it sent; it is capped here.
const MAX_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// Parses the API server's `timeout` query value (a Go duration such as `10s` or `1m30s`),
/// capped at [`MAX_WEBHOOK_TIMEOUT`]. The text comes from the caller, so every step is
/// checked: a value that overflows `Duration` is no timeout at all (`None`), never a panic.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let value: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total = total.checked_add(Duration::try_from_secs_f64(value * seconds).ok()?)?;
        rest = &rest[unit_end..];
    }
    (!total.is_zero()).then_some(total.min(MAX_WEBHOOK_TIMEOUT))
}

/// Builds the rustls configuration, and for files, a task that reloads them on change.
pub async fn tls_config(source: &TlsSource) -> Result<RustlsConfig, ServerError> {
    match source {
        TlsSource::Files { cert, key } => {
            RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|source| ServerError::LoadTls {
                    cert: cert.clone(),
                    key: key.clone(),
                    source,
                })
        }
        TlsSource::SelfSigned { names, ca_out } => {
            let generated = crate::tls::self_signed(names)?;
            if let Some(path) = ca_out {
                std::fs::write(path, &generated.ca_pem).map_err(|source| ServerError::WriteCa {
                    path: path.clone(),
                    source,
                })?;
                tracing::info!(path = %path.display(), "self-signed CA certificate written");
            }
            RustlsConfig::from_pem(generated.cert_pem.into_bytes(), generated.key_pem.into_bytes())
                .await
                .map_err(|source| ServerError::LoadTls {
                    cert: PathBuf::from("<generated>"),
                    key: PathBuf::from("<generated>"),
                    source,
                })
        }
    }
}

/// Reloads certificate files when their modification time changes. A failed reload keeps the
/// old certificate: a half-written Secret update must not take the webhook down.
pub async fn reload_on_change(config: RustlsConfig, cert: PathBuf, key: PathBuf, interval: Duration) {
    let mut last = modified(&cert, &key);
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        let now = modified(&cert, &key);
        if now == last {
            continue;
        }
        match config.reload_from_pem_file(&cert, &key).await {
            Ok(()) => {
                last = now;
                tracing::info!(cert = %cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS certificate reload failed; keeping the current one")
            }
        }
    }
}

fn modified(cert: &Path, key: &Path) -> Option<(SystemTime, SystemTime)> {
    let time = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((time(cert)?, time(key)?))
}

/// Serves the webhook until `handle` is told to shut down.
pub async fn serve(
    addr: SocketAddr,
    tls: RustlsConfig,
    app: Router,
    handle: Handle<SocketAddr>,
) -> Result<(), ServerError> {
    let mut server = axum_server::bind_rustls(addr, tls).handle(handle);
    limit_slow_clients(server.http_builder());
    server
        .serve(app.into_make_service())
        .await
        .map_err(|source| ServerError::Serve { addr, source })
}

/// Time limits for clients that send slowly or not at all (hyper has none without a timer).
fn limit_slow_clients(builder: &mut hyper_util::server::conn::auto::Builder<TokioExecutor>) {
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_KEEP_ALIVE)
        .keep_alive_timeout(HTTP2_KEEP_ALIVE)
        .max_concurrent_streams(HTTP2_MAX_STREAMS);
}

#[cfg(test)]
mod tests {
    //! The router in process (`tower::ServiceExt::oneshot`): real AdmissionReview JSON through
    //! axum and the admission handler, with a verifier fed from a table instead of a registry.
    use super::*;
    use crate::policy::evaluate::{AuthorityCheck, RequestContext, Verifier};
    use crate::policy::failure::AuthorityFailure;
    use crate::policy::program::{AuthorityMatch, PolicySignature};
    use crate::policy::reference::ImageRef;
    use axum::http::Request;
    use base64::Engine as _;
    use futures::future::BoxFuture;
    use serde_json::{Value, json};
    use std::sync::Arc;
    use tower::ServiceExt as _;

    const SIGNED: &str = "sha256:5555555555555555555555555555555555555555555555555555555555555555";
    const UNSIGNED: &str = "sha256:6666666666666666666666666666666666666666666666666666666666666666";

    /// Tags `signed` and `unsigned` resolve to two digests; only the first is signed.
    struct Table;

    impl Verifier for Table {
        fn resolve_digest<'a>(
            &'a self,
            image: &'a ImageRef,
            _: &'a RequestContext,
        ) -> BoxFuture<'a, Result<String, String>> {
            let digest = match image.registry_reference() {
                "signed" => Ok(SIGNED.to_string()),
                "unsigned" => Ok(UNSIGNED.to_string()),
                other => Err(format!("manifest unknown: {other}")),
            };
            Box::pin(async move { digest })
        }

        fn verify<'a>(
            &'a self,
            check: AuthorityCheck<'a>,
        ) -> BoxFuture<'a, Result<(String, AuthorityMatch), AuthorityFailure>> {
            let outcome = if check.digest == SIGNED {
                Ok((
                    "signed by the table".to_string(),
                    AuthorityMatch::Signatures(vec![PolicySignature::default()]),
                ))
            } else {
                Err(AuthorityFailure::Unsigned {
                    reasons: vec![format!("no signatures found for {}", check.digest)],
                })
            };
            Box::pin(async move { outcome })
        }
    }

    fn app() -> Router {
        let policy = "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: signed-only\nspec:\n  images:\n  - glob: \"registry.example/**\"\n  authorities:\n  - name: k\n    key:\n      data: |\n        -----BEGIN PUBLIC KEY-----\n        MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZxAfzrQG1EbWyCI8LiSB7YgSFXoI\n        FNGTyQGKHFc6/H8TQumT9VLS78pUwtv3w7EfKoyFZoP32KrO7nzUy2q6Cw==\n        -----END PUBLIC KEY-----\n";
        router(Admission::for_tests(policy, Arc::new(Table)))
    }

    fn pod_review(image: &str) -> Vec<u8> {
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "0c1d6a9e-4b7f-4c4e-9d35-1f2e3a4b5c6d",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "operation": "CREATE",
                "namespace": "default",
                "object": {"spec": {"containers": [{"name": "app", "image": image}]}}
            }
        })
        .to_string()
        .into_bytes()
    }

    async fn send(method: &str, uri: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let response = app().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, bytes.to_vec())
    }

    async fn answer(endpoint: &str, image: &str) -> Value {
        let (status, body) = send("POST", &format!("/{endpoint}?timeout=10s"), pod_review(image)).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let review: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(review["kind"], "AdmissionReview");
        assert_eq!(review["response"]["uid"], "0c1d6a9e-4b7f-4c4e-9d35-1f2e3a4b5c6d");
        review["response"].clone()
    }

    #[tokio::test]
    async fn mutate_pins_a_signed_tag_to_its_digest() {
        let response = answer("mutate", "registry.example/app:signed").await;
        assert_eq!(response["allowed"], true, "{response}");
        assert_eq!(response["patchType"], "JSONPatch");
        let patch = base64::engine::general_purpose::STANDARD
            .decode(response["patch"].as_str().unwrap())
            .unwrap();
        let patch: Value = serde_json::from_slice(&patch).unwrap();
        let replaced = patch
            .as_array()
            .unwrap()
            .iter()
            .find(|op| op["op"] == "replace")
            .unwrap();
        assert_eq!(replaced["path"], "/spec/containers/0/image");
        assert_eq!(replaced["value"], format!("registry.example/app:signed@{SIGNED}"));
    }

    #[tokio::test]
    async fn validate_denies_an_unsigned_image_with_the_reason() {
        let response = answer("validate", "registry.example/app:unsigned").await;
        assert_eq!(response["allowed"], false, "{response}");
        let message = response["status"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("no signatures found for {UNSIGNED}")),
            "{message}"
        );
        assert!(message.contains("signed-only"), "{message}");
        assert!(response.get("patch").is_none(), "validate never patches: {response}");
        let unknown = answer("validate", "registry.example/app:gone").await;
        assert!(
            unknown["status"]["message"]
                .as_str()
                .unwrap()
                .contains("manifest unknown: gone"),
            "{unknown}"
        );
        let unmatched = answer("validate", "elsewhere.example/app:signed").await;
        assert_eq!(
            unmatched["allowed"], false,
            "no policy matches and the default is deny: {unmatched}"
        );
    }

    #[tokio::test]
    async fn requests_that_are_not_reviews_get_http_errors() {
        let (status, body) = send("POST", "/validate", b"not json".to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&body));
        let (status, _) = send("GET", "/validate", Vec::new()).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let (status, _) = send("POST", "/elsewhere", pod_review("registry.example/app:signed")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = send("POST", "/validate", vec![b' '; MAX_BODY_BYTES + 1]).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("0m25s"), Some(Duration::from_secs(25)));
        assert_eq!(parse_go_duration("1m30s"), Some(MAX_WEBHOOK_TIMEOUT));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("2h"), Some(MAX_WEBHOOK_TIMEOUT), "capped");
        // Seen from a hostile caller: the sum overflowed `Duration` and panicked.
        let overflowing = "10000000000000000000s10000000000000000000s";
        for bad in [
            "",
            "10",
            "s",
            "10x",
            "-1s",
            "0s",
            "1e400s",
            overflowing,
            "18446744073709551615h",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }
}
