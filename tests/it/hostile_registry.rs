//! Registries and callers that answer with numbers meant to overflow: a `Retry-After` or a
//! token `expires_in` of u64::MAX, a `?timeout=` past any Duration. Each once dropped the
//! admission connection with a panic (and made `signet verify` exit 101); now each review is
//! answered, denied with the reason, and the server keeps serving.

use crate::signet_server;
use crate::support;

use std::process::Command;

use signet_server::{Signet, key_policy, pod_review, policy_dir, static_policy};
use support::{MockReply, MockRequest, MockServer, TestKey};

const HUGE: &str = "18446744073709551615";
const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;

/// 429 forever, asking for a wait of u64::MAX seconds.
fn endless_rate_limit(_: &MockRequest) -> MockReply {
    MockReply::status(429).header("Retry-After", HUGE)
}

/// A Bearer registry whose tokens claim to live u64::MAX seconds.
fn immortal_tokens(req: &MockRequest) -> MockReply {
    let host = req.header("host").unwrap_or_default();
    if req.path.starts_with("/token") {
        return MockReply::with_body(200, format!(r#"{{"token":"t","expires_in":{HUGE}}}"#));
    }
    match req.header("authorization") {
        Some("Bearer t") if req.path.contains("/manifests/v1") => MockReply::with_body(200, MANIFEST.to_vec())
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .header("Docker-Content-Digest", &support::sha256(MANIFEST)),
        Some("Bearer t") => MockReply::status(404),
        _ => MockReply::status(401).header(
            "WWW-Authenticate",
            &format!(r#"Bearer realm="http://{host}/token",service="mock",scope="repository:demo/app:pull""#),
        ),
    }
}

async fn answered_and_denied(signet: &Signet, image: &str, reason: &str) {
    for endpoint in ["validate", "mutate"] {
        let answer = signet.review(endpoint, &pod_review("hostile", &[image])).await;
        assert_eq!(answer["allowed"], false, "{answer}");
        let message = answer["status"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(reason), "{endpoint}: {message}");
        assert!(
            !message.contains("internal error"),
            "the cause is fixed, not only caught: {message}"
        );
    }
}

#[tokio::test]
async fn a_retry_after_of_u64_max_is_a_rate_limit_denial() {
    let registry = MockServer::start(endless_rate_limit).await;
    let key = TestKey::generate();
    let dir = policy_dir(&[&key_policy("signed", "**", &key.public_pem(), "")]);
    let mut signet = Signet::start(dir.path(), &["--insecure-registry", &registry.host()]).await;
    answered_and_denied(&signet, &format!("{}/demo/app:v1", registry.host()), "rate limited").await;
    assert!(signet.is_running());
    assert!(!signet.logs().contains("panicked"), "{}", signet.logs());
}

#[tokio::test]
async fn a_token_that_never_expires_is_cached_without_overflow() {
    let registry = MockServer::start(immortal_tokens).await;
    let key = TestKey::generate();
    let dir = policy_dir(&[&key_policy("signed", "**", &key.public_pem(), "")]);
    let mut signet = Signet::start(dir.path(), &["--insecure-registry", &registry.host()]).await;
    let image = format!("{}/demo/app:v1", registry.host());
    // The tag resolves with the token; no signature exists, so the denial says so.
    answered_and_denied(&signet, &image, &support::sha256(MANIFEST)).await;
    assert_eq!(registry.count("/token"), 1, "the token is cached and reused");
    assert!(signet.is_running());
    assert!(!signet.logs().contains("panicked"), "{}", signet.logs());
}

#[tokio::test]
async fn signet_verify_exits_1_not_101_against_hostile_registries() {
    let limited = MockServer::start(endless_rate_limit).await;
    let immortal = MockServer::start(immortal_tokens).await;
    let key = TestKey::generate();
    let dir = policy_dir(&[&key_policy("signed", "**", &key.public_pem(), "")]);
    for registry in [&limited, &immortal] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_signet"));
        command
            .args(["verify", &format!("{}/demo/app:v1", registry.host())])
            .arg("--policy")
            .arg(dir.path())
            .args(["--insecure-registry", &registry.host()]);
        // Off the runtime's thread, so the mock registry on it can answer meanwhile.
        let output = tokio::task::spawn_blocking(move || command.output().expect("run signet verify"))
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test]
async fn hostile_timeouts_in_the_query_are_ignored_or_capped() {
    let dir = policy_dir(&[&static_policy("all", "**", "pass", "enforce")]);
    let mut signet = Signet::start(dir.path(), &[]).await;
    let review = pod_review("q", &["ghcr.io/org/app:v1"]).to_string();
    for timeout in [
        "10000000000000000000s10000000000000000000s",
        "18446744073709551615h",
        "99999999999999999999999999999h",
        "1e308s",
        "-5s",
        "0s",
        "",
        "1h",
    ] {
        let (status, answer) = signet
            .post(&format!("validate?timeout={timeout}"), review.clone())
            .await;
        assert_eq!(status, 200, "timeout={timeout}: {answer}");
        assert_eq!(answer["response"]["allowed"], true, "timeout={timeout}: {answer}");
    }
    assert!(signet.is_running());
    assert!(!signet.logs().contains("panicked"), "{}", signet.logs());
}
