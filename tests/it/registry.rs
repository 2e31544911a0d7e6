//! The registry client against real `docker-registry` instances (plain, TLS, htpasswd) and,
//! for failures a real registry will not produce on demand, an in-test HTTP server.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use signet::registry::{Credentials, MANIFEST_ACCEPT, RegistryClient, RegistryConfig, RegistryError, sha256_digest};
use support::{MockReply, MockServer, Registry};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_V2S2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const ANON: Credentials = Credentials::Anonymous;

fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A client that reaches `insecure` over plain HTTP.
fn client_for(insecure: &[String], timeout: Duration) -> RegistryClient {
    init();
    RegistryClient::new(RegistryConfig {
        insecure_hosts: insecure.to_vec(),
        request_timeout: timeout,
        ..RegistryConfig::default()
    })
    .expect("registry client")
}

fn plain_client(host: &str) -> RegistryClient {
    client_for(&[host.to_string()], Duration::from_secs(10))
}

fn basic(user: &str, pass: &str) -> Credentials {
    Credentials::Basic {
        username: user.to_string(),
        password: pass.to_string(),
    }
}

/// A GET without any Accept header, as a naive client would send it.
async fn get_without_accept(url: &str) -> reqwest::Response {
    init();
    reqwest::Client::new().get(url).send().await.expect("plain GET")
}

fn config_digest(manifest: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(manifest).expect("manifest JSON");
    v["config"]["digest"].as_str().expect("config digest").to_string()
}

// ---------- real registry ----------

#[tokio::test]
async fn oci_image_resolves_to_pushed_digest() {
    if !support::require_tools() {
        return;
    }
    let reg = Registry::plain();
    let digest = support::build_image(&reg, "demo/hello", "v1", "hello oci");
    let client = plain_client(&reg.host());

    let resolved = client.resolve_digest(&reg.host(), "demo/hello", "v1", &ANON).await;
    assert_eq!(resolved.expect("resolve"), digest);
    let manifest = client
        .get_manifest(&reg.host(), "demo/hello", "v1", &ANON)
        .await
        .expect("manifest by tag");
    assert_eq!(manifest.digest, digest);
    assert_eq!(sha256_digest(&manifest.bytes), digest);
    assert_eq!(manifest.media_type, OCI_MANIFEST);
    // HEAD is enough when the registry reports the digest: no manifest GET for resolve.
    assert_eq!(reg.settled_count("HEAD", "/v2/demo/hello/manifests/v1", 1), 1);

    // Pitfall 1: without the OCI Accept types distribution answers 404 for OCI manifests.
    let naive = get_without_accept(&format!("{}/v2/demo/hello/manifests/v1", reg.url())).await;
    assert_eq!(
        naive.status(),
        404,
        "distribution should hide OCI manifests from naive GETs"
    );
}

#[tokio::test]
async fn docker_v2s2_image_resolves_to_pushed_digest_not_schema1() {
    if !support::require_tools() {
        return;
    }
    let reg = Registry::plain();
    let digest = support::build_docker_v2s2_image(&reg, "demo/docker", "v1", "hello docker");
    let client = plain_client(&reg.host());

    let resolved = client.resolve_digest(&reg.host(), "demo/docker", "v1", &ANON).await;
    assert_eq!(resolved.expect("resolve"), digest);
    let manifest = client
        .get_manifest(&reg.host(), "demo/docker", "v1", &ANON)
        .await
        .expect("manifest");
    assert_eq!(manifest.media_type, DOCKER_V2S2);
    assert_eq!(sha256_digest(&manifest.bytes), digest);

    // Pitfall 2: without Accept the registry converts to schema1, with another digest.
    let naive = get_without_accept(&format!("{}/v2/demo/docker/manifests/v1", reg.url())).await;
    let naive_digest = naive
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert_ne!(naive_digest.as_deref(), Some(digest.as_str()));
}

#[tokio::test]
async fn multiarch_index_resolves_to_index_digest() {
    if !support::require_tools() || support::shared_tool("mkindex.py").is_none() {
        return;
    }
    let reg = Registry::plain();
    let (index, platforms) = support::build_multiarch_index(&reg, "demo/multi", "v1");
    let client = plain_client(&reg.host());

    let resolved = client.resolve_digest(&reg.host(), "demo/multi", "v1", &ANON).await;
    assert_eq!(resolved.expect("resolve"), index);
    let manifest = client
        .get_manifest(&reg.host(), "demo/multi", &index, &ANON)
        .await
        .expect("index by digest");
    assert_eq!(manifest.media_type, OCI_INDEX);
    let listed = String::from_utf8_lossy(&manifest.bytes).into_owned();
    for platform in &platforms {
        assert!(listed.contains(platform.as_str()), "{platform} not in index");
        let m = client
            .get_manifest(&reg.host(), "demo/multi", platform, &ANON)
            .await
            .expect("platform manifest");
        assert_eq!(&m.digest, platform);
        assert_eq!(m.media_type, OCI_MANIFEST);
    }
}

#[tokio::test]
async fn tls_registry_needs_the_extra_ca() {
    if !support::require_tools() {
        return;
    }
    let reg = Registry::tls();
    let digest = support::build_image(&reg, "demo/tls", "v1", "hello tls");
    init();

    let trusting = RegistryClient::new(RegistryConfig {
        extra_roots_pem: vec![reg.ca_pem().to_vec()],
        ..RegistryConfig::default()
    })
    .expect("client with CA");
    let resolved = trusting.resolve_digest(&reg.host(), "demo/tls", "v1", &ANON).await;
    assert_eq!(resolved.expect("resolve over TLS"), digest);

    let default = RegistryClient::new(RegistryConfig::default()).expect("client");
    let err = default
        .resolve_digest(&reg.host(), "demo/tls", "v1", &ANON)
        .await
        .expect_err("unknown CA must fail");
    assert!(matches!(err, RegistryError::Tls { .. }), "{err:?}");
    assert!(!err.is_definitive());
}

#[tokio::test]
async fn htpasswd_registry_checks_credentials() {
    if !support::require_tools() {
        return;
    }
    let reg = Registry::htpasswd("alice", "wonderland");
    let digest = support::build_image(&reg, "private/app", "v1", "secret stuff");
    let client = plain_client(&reg.host());

    let good = basic("alice", "wonderland");
    let resolved = client.resolve_digest(&reg.host(), "private/app", "v1", &good).await;
    assert_eq!(resolved.expect("resolve with creds"), digest);
    // The registry is now known to want Basic: the next call sends creds without a 401.
    let before = reg.settled_count("HEAD", "/v2/private/app/manifests/v1", 2);
    client
        .resolve_digest(&reg.host(), "private/app", "v1", &good)
        .await
        .expect("second resolve");
    assert_eq!(
        reg.settled_count("HEAD", "/v2/private/app/manifests/v1", before + 1),
        before + 1
    );

    for creds in [ANON, basic("alice", "wrong"), basic("mallory", "wonderland")] {
        let err = client
            .resolve_digest(&reg.host(), "private/app", "v1", &creds)
            .await
            .expect_err("must be refused");
        assert!(matches!(err, RegistryError::Unauthorized { .. }), "{creds:?}: {err:?}");
        assert!(err.is_definitive());
        assert!(!err.to_string().contains("wonderland"), "password leaked: {err}");
    }
}

#[tokio::test]
async fn unknown_tag_and_repository_are_not_found() {
    if !support::require_tools() {
        return;
    }
    let reg = Registry::plain();
    support::build_image(&reg, "demo/exists", "v1", "x");
    let client = plain_client(&reg.host());

    let err = client
        .resolve_digest(&reg.host(), "demo/exists", "nope", &ANON)
        .await
        .expect_err("unknown tag");
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
    assert!(err.is_definitive());
    assert!(err.to_string().contains("demo/exists:nope"), "{err}");

    let err = client
        .get_manifest(&reg.host(), "demo/missing", "v1", &ANON)
        .await
        .expect_err("unknown repository");
    match err {
        RegistryError::NotFound { detail, .. } => assert!(detail.contains("UNKNOWN"), "{detail}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn manifest_by_digest_and_blobs_are_verified() {
    if !support::require_tools() {
        return;
    }
    let reg = Registry::plain();
    let digest = support::build_image(&reg, "demo/blobs", "v1", "blob content");
    let client = plain_client(&reg.host());

    let manifest = client
        .get_manifest(&reg.host(), "demo/blobs", &digest, &ANON)
        .await
        .expect("manifest by digest");
    assert_eq!(manifest.digest, digest);

    let config = config_digest(&manifest.bytes);
    let blob = client
        .get_blob(&reg.host(), "demo/blobs", &config, 1 << 20, &ANON)
        .await
        .expect("config blob");
    assert_eq!(sha256_digest(&blob), config);
    let v: serde_json::Value = serde_json::from_slice(&blob).expect("config JSON");
    assert_eq!(v["architecture"], "amd64");

    let err = client
        .get_blob(&reg.host(), "demo/blobs", &config, 16, &ANON)
        .await
        .expect_err("limit");
    assert!(matches!(err, RegistryError::TooLarge { limit: 16, .. }), "{err:?}");

    let absent = sha256_digest(b"never pushed");
    let err = client
        .get_blob(&reg.host(), "demo/blobs", &absent, 1 << 20, &ANON)
        .await
        .expect_err("absent blob");
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");

    // distribution 2.8 has no referrers API: callers must fall back to the tag schema.
    let referrers = client
        .get_referrers(&reg.host(), "demo/blobs", &digest, &ANON)
        .await
        .expect("referrers");
    assert!(referrers.is_none());
}

// ---------- in-test server ----------

fn digest_reply(body: &[u8]) -> MockReply {
    MockReply::with_body(200, body.to_vec())
        .header("Content-Type", OCI_MANIFEST)
        .header("Docker-Content-Digest", &sha256_digest(body))
}

const BODY: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;

#[tokio::test]
async fn rate_limit_is_retried_after_retry_after() {
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    let server = MockServer::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            MockReply::status(429).header("Retry-After", "1")
        } else {
            digest_reply(BODY)
        }
    })
    .await;
    let client = plain_client(&server.host());
    let started = Instant::now();
    let digest = client.resolve_digest(&server.host(), "demo/app", "v1", &ANON).await;
    assert_eq!(digest.expect("resolve after 429"), sha256_digest(BODY));
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After not honoured");
    assert_eq!(server.count("/v2/"), 2);
    let accept = server.requests()[0].header("accept").map(str::to_string);
    assert_eq!(accept.as_deref(), Some(MANIFEST_ACCEPT));
}

#[tokio::test]
async fn rate_limit_gives_up_after_two_retries_or_past_the_deadline() {
    let server = MockServer::start(|_| MockReply::status(429).header("Retry-After", "0")).await;
    let client = plain_client(&server.host());
    let err = client
        .resolve_digest(&server.host(), "demo/app", "v1", &ANON)
        .await
        .expect_err("always 429");
    assert!(
        matches!(err, RegistryError::RateLimited { retry_after: Some(d), .. } if d.is_zero()),
        "{err:?}"
    );
    assert!(!err.is_definitive());
    assert_eq!(server.count("/v2/"), 3, "one try plus two retries");

    let slow = MockServer::start(|_| MockReply::status(429).header("Retry-After", "60")).await;
    let client = client_for(&[slow.host()], Duration::from_secs(5));
    let started = Instant::now();
    let err = client
        .resolve_digest(&slow.host(), "demo/app", "v1", &ANON)
        .await
        .expect_err("wait exceeds deadline");
    assert!(
        matches!(err, RegistryError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(60)),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "must not sleep past the deadline"
    );
    assert_eq!(slow.count("/v2/"), 1);
}

#[tokio::test]
async fn server_error_is_transient() {
    let server = MockServer::start(|_| MockReply::with_body(500, "boom")).await;
    let client = plain_client(&server.host());
    let err = client
        .get_manifest(&server.host(), "demo/app", "v1", &ANON)
        .await
        .expect_err("500");
    assert!(matches!(err, RegistryError::Server { status: 500, .. }), "{err:?}");
    assert!(!err.is_definitive());
    assert!(err.to_string().contains("boom"), "{err}");
}

#[tokio::test]
async fn wrong_content_is_a_digest_mismatch() {
    let evil: &[u8] = br#"{"schemaVersion":2,"evil":true}"#;
    let server = MockServer::start(move |req| {
        if req.path.contains("/manifests/v1") {
            // Claims one digest, sends other bytes.
            MockReply::with_body(200, evil.to_vec()).header("Docker-Content-Digest", &sha256_digest(BODY))
        } else {
            MockReply::with_body(200, evil.to_vec())
        }
    })
    .await;
    let client = plain_client(&server.host());
    let host = server.host();
    let wanted = sha256_digest(BODY);
    let found = sha256_digest(evil);

    let err = client
        .get_manifest(&host, "demo/app", &wanted, &ANON)
        .await
        .expect_err("manifest by digest");
    assert!(
        matches!(&err, RegistryError::DigestMismatch { expected, found: f, .. } if *expected == wanted && *f == found),
        "{err:?}"
    );
    assert!(err.is_definitive());

    let err = client
        .get_blob(&host, "demo/app", &wanted, 1 << 20, &ANON)
        .await
        .expect_err("blob");
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err:?}");

    let err = client
        .get_manifest(&host, "demo/app", "v1", &ANON)
        .await
        .expect_err("tag whose Docker-Content-Digest disagrees with the bytes");
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err:?}");
}

#[tokio::test]
async fn redirects_are_followed_but_loops_are_protocol_errors() {
    let blob: &[u8] = b"layer bytes";
    let server = MockServer::start(move |req| {
        if req.path.starts_with("/storage/") {
            MockReply::with_body(200, blob.to_vec()).header("Content-Type", "application/octet-stream")
        } else if req.path.starts_with("/v2/demo/loop/") {
            MockReply::status(302).header("Location", &req.path)
        } else {
            MockReply::status(307).header("Location", "/storage/blob")
        }
    })
    .await;
    let client = plain_client(&server.host());
    let host = server.host();
    let digest = sha256_digest(blob);

    let got = client.get_blob(&host, "demo/app", &digest, 1024, &ANON).await;
    assert_eq!(got.expect("redirected blob"), blob);

    let err = client
        .get_blob(&host, "demo/loop", &digest, 1024, &ANON)
        .await
        .expect_err("loop");
    assert!(matches!(err, RegistryError::Protocol { .. }), "{err:?}");
    assert!(server.count("/v2/demo/loop/") <= 7, "redirects not bounded");
}

#[tokio::test]
async fn silent_registry_times_out_within_the_deadline() {
    let server = MockServer::start(|_| MockReply::Hang).await;
    let timeout = Duration::from_millis(800);
    let client = client_for(&[server.host()], timeout);
    let started = Instant::now();
    let err = client
        .resolve_digest(&server.host(), "demo/app", "v1", &ANON)
        .await
        .expect_err("hang");
    let elapsed = started.elapsed();
    assert!(matches!(err, RegistryError::Timeout { .. }), "{err:?}");
    assert!(elapsed < timeout + Duration::from_millis(700), "took {elapsed:?}");
    assert!(!err.is_definitive());
}

#[tokio::test]
async fn head_without_digest_falls_back_to_get() {
    let server = MockServer::start(|req| {
        if req.method == "HEAD" {
            MockReply::status(200).header("Content-Type", OCI_MANIFEST)
        } else {
            MockReply::with_body(200, BODY.to_vec()).header("Content-Type", OCI_MANIFEST)
        }
    })
    .await;
    let client = plain_client(&server.host());
    let digest = client.resolve_digest(&server.host(), "demo/app", "v1", &ANON).await;
    assert_eq!(digest.expect("resolve"), sha256_digest(BODY));
    let methods: Vec<String> = server.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["HEAD", "GET"]);
}

#[tokio::test]
async fn transport_failures_are_classified() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let host = format!("127.0.0.1:{port}");
    let client = plain_client(&host);
    let err = client
        .resolve_digest(&host, "demo/app", "v1", &ANON)
        .await
        .expect_err("refused");
    assert!(matches!(err, RegistryError::Connect { .. }), "{err:?}");

    // HTTPS spoken to a plain-HTTP server is a TLS failure, not a vague connect error.
    let server = MockServer::start(|_| digest_reply(BODY)).await;
    let https = client_for(&[], Duration::from_secs(5));
    let err = https
        .resolve_digest(&server.host(), "demo/app", "v1", &ANON)
        .await
        .expect_err("TLS to plain server");
    assert!(matches!(err, RegistryError::Tls { .. }), "{err:?}");

    let err = https
        .resolve_digest(&server.host(), "../etc", "v1", &ANON)
        .await
        .expect_err("bad repository");
    assert!(matches!(err, RegistryError::InvalidReference { .. }), "{err:?}");
}

/// A registry that wants Bearer tokens from its own `/token` endpoint.
fn bearer_registry(req: &support::MockRequest) -> MockReply {
    let host = req.header("host").unwrap_or_default().to_string();
    if req.path.starts_with("/token") {
        let token = match req.header("authorization") {
            Some(_) => "user-token",
            None => "anon-token",
        };
        return MockReply::with_body(200, format!(r#"{{"token":"{token}","expires_in":300}}"#));
    }
    match req.header("authorization") {
        Some("Bearer user-token") | Some("Bearer anon-token") => digest_reply(BODY),
        _ => MockReply::status(401).header(
            "WWW-Authenticate",
            &format!(r#"Bearer realm="http://{host}/token",service="mock-registry",scope="repository:demo/app:pull""#),
        ),
    }
}

#[tokio::test]
async fn bearer_token_is_fetched_once_and_reused() {
    let server = MockServer::start(bearer_registry).await;
    let client = plain_client(&server.host());
    let host = server.host();
    let creds = basic("bob", "hunter2");

    let first = client.resolve_digest(&host, "demo/app", "v1", &creds).await;
    assert_eq!(first.expect("first resolve"), sha256_digest(BODY));
    assert_eq!(server.count("/v2/"), 2, "challenge, then retry with the token");
    assert_eq!(server.count("/token"), 1);

    let token_req = server
        .requests()
        .into_iter()
        .find(|r| r.path.starts_with("/token"))
        .expect("token request");
    assert!(token_req.path.contains("service=mock-registry"), "{}", token_req.path);
    assert!(
        token_req.path.contains("scope=repository%3Ademo%2Fapp%3Apull"),
        "{}",
        token_req.path
    );
    assert_eq!(token_req.header("authorization"), Some("Basic Ym9iOmh1bnRlcjI="));

    let second = client.get_manifest(&host, "demo/app", "v1", &creds).await;
    assert_eq!(second.expect("second call").digest, sha256_digest(BODY));
    assert_eq!(server.count("/token"), 1, "token must be reused");
    assert_eq!(server.count("/v2/"), 3, "no second challenge");

    // Other credentials never share that token.
    client
        .resolve_digest(&host, "demo/app", "v1", &ANON)
        .await
        .expect("anonymous resolve");
    assert_eq!(server.count("/token"), 2);
    let last_token_req = server
        .requests()
        .into_iter()
        .rfind(|r| r.path.starts_with("/token"))
        .expect("second token request");
    assert_eq!(last_token_req.header("authorization"), None);
}

#[tokio::test]
async fn bearer_rejection_is_unauthorized() {
    let server = MockServer::start(|req| {
        if req.path.starts_with("/token") {
            return MockReply::status(401);
        }
        let host = req.header("host").unwrap_or_default();
        MockReply::status(401).header("WWW-Authenticate", &format!(r#"Bearer realm="http://{host}/token""#))
    })
    .await;
    let client = plain_client(&server.host());
    let err = client
        .resolve_digest(&server.host(), "demo/app", "v1", &basic("bob", "pw-xyzzy"))
        .await
        .expect_err("token refused");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert!(err.to_string().contains("bob"), "{err}");
    assert!(!err.to_string().contains("xyzzy"), "{err}");
}

/// A registry that never answers holds at most a quarter of the process-wide places, so a
/// healthy registry is still served at once while it stalls.
#[tokio::test]
async fn a_stalled_registry_cannot_take_every_place() {
    init();
    let stalled = MockServer::start(|_| MockReply::Hang).await;
    let healthy = MockServer::start(|_| digest_reply(BODY)).await;
    let client = RegistryClient::new(RegistryConfig {
        insecure_hosts: vec![stalled.host(), healthy.host()],
        request_timeout: Duration::from_secs(5),
        max_concurrent_operations: 8,
        ..RegistryConfig::default()
    })
    .expect("registry client");
    let stuck: Vec<_> = (0..20)
        .map(|i| {
            let (client, host) = (client.clone(), stalled.host());
            tokio::spawn(async move { client.resolve_digest(&host, "demo/app", &format!("v{i}"), &ANON).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let digest = client.resolve_digest(&healthy.host(), "demo/app", "v1", &ANON).await;
    let took = started.elapsed();
    assert_eq!(digest.expect("the healthy registry answers"), sha256_digest(BODY));
    assert!(
        took < Duration::from_secs(2),
        "the healthy registry waited {took:?} behind the stalled one"
    );
    assert!(
        stalled.requests().len() <= 2,
        "{} requests reached the stalled registry at once (a quarter of 8 is 2)",
        stalled.requests().len()
    );
    for task in stuck {
        task.abort();
    }
}

/// An endpoint whose operation just timed out is answered at once for a while, so a registry
/// that never answers does not hold registry places review after review.
#[tokio::test]
async fn a_registry_that_just_timed_out_is_answered_at_once() {
    init();
    let silent = MockServer::start(|_| MockReply::Hang).await;
    let healthy = MockServer::start(|_| digest_reply(BODY)).await;
    let client = client_for(&[silent.host(), healthy.host()], Duration::from_secs(1));
    let first = client.resolve_digest(&silent.host(), "demo/app", "v1", &ANON).await;
    assert!(matches!(first, Err(RegistryError::Timeout { .. })), "{first:?}");
    let started = Instant::now();
    let second = client.resolve_digest(&silent.host(), "demo/app", "v2", &ANON).await;
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
    let err = second.expect_err("still stalled");
    assert!(matches!(err, RegistryError::Stalled { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out moments ago"), "{err}");
    assert_eq!(silent.requests().len(), 1, "the second call never reached the registry");
    // Other registries are not affected.
    let digest = client.resolve_digest(&healthy.host(), "demo/app", "v1", &ANON).await;
    assert_eq!(digest.expect("healthy"), sha256_digest(BODY));
}
