//! Tag → digest resolution through the webhook: the digest pinned is exactly the one pushed
//! (OCI, Docker v2s2, multi-arch index), images no verifying policy names cost no registry
//! call, and every way a registry can fail is a denial that says why.

use crate::signet_server;
use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use signet_server::{Signet, decoded_patch, key_policy, pod_review, policy_dir, static_policy};
use support::{
    MockReply, MockServer, Registry, SignOptions, TestKey, build_docker_v2s2_image, build_image, build_multiarch_index,
    require_tools, sign_image,
};

fn denial(response: &Value) -> String {
    assert_eq!(response["allowed"], false, "{response}");
    response["status"]["message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn tags_are_pinned_to_exactly_the_pushed_digest() {
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    let key = TestKey::generate();
    let oci = build_image(&registry, "kinds/oci", "v1", "oci");
    let docker = build_docker_v2s2_image(&registry, "kinds/docker", "v1", "docker");
    let (index, _) = build_multiarch_index(&registry, "kinds/index", "v1");
    for (repo, digest) in [("kinds/oci", &oci), ("kinds/docker", &docker), ("kinds/index", &index)] {
        sign_image(&registry, repo, digest, &key, &SignOptions::default()).await;
    }
    let host = registry.host();
    let dir = policy_dir(&[&key_policy("kinds", &format!("{host}/kinds/**"), &key.public_pem(), "")]);
    let signet = Signet::start(dir.path(), &["--insecure-registry", &host]).await;
    for (repo, digest) in [("kinds/oci", &oci), ("kinds/docker", &docker), ("kinds/index", &index)] {
        let image = format!("{host}/{repo}:v1");
        let response = signet.review("mutate", &pod_review("u", &[&image])).await;
        assert_eq!(response["allowed"], true, "{repo}: {response}");
        let patch = decoded_patch(&response);
        assert_eq!(patch[1]["value"], format!("{image}@{digest}"), "{repo}");
    }
}

#[tokio::test]
async fn images_without_a_verifying_policy_cost_no_registry_call() {
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    let key = TestKey::generate();
    let host = registry.host();
    build_image(&registry, "static/app", "v1", "s");
    let dir = policy_dir(&[
        &key_policy("signed", &format!("{host}/signed/**"), &key.public_pem(), ""),
        &static_policy("static", &format!("{host}/static/**"), "pass", "enforce"),
    ]);
    let signet = Signet::start(
        dir.path(),
        &["--insecure-registry", &host, "--no-match-policy", "allow"],
    )
    .await;
    let before = registry.access_log().len();
    let images = [format!("{host}/static/app:v1"), format!("{host}/unmatched/app:v1")];
    let response = signet
        .review("mutate", &pod_review("u", &[&images[0], &images[1]]))
        .await;
    assert_eq!(response["allowed"], true, "{response}");
    assert!(decoded_patch(&response).is_empty(), "nothing verified, nothing pinned");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        registry.access_log().len(),
        before,
        "no registry request: {:?}",
        registry.access_log()
    );
}

#[tokio::test]
async fn resolution_failures_are_denied_with_the_reason() {
    if !require_tools() {
        return;
    }
    let key = TestKey::generate();
    let plain = Registry::plain();
    let private = Registry::htpasswd("testuser", "testpass");
    let tls = Registry::tls();
    let tls_digest = build_image(&tls, "secure/app", "v1", "t");
    sign_image(&tls, "secure/app", &tls_digest, &key, &SignOptions::default()).await;
    let limited = MockServer::start(|_| MockReply::status(429).header("Retry-After", "60")).await;
    let broken = MockServer::start(|_| MockReply::with_body(500, "boom")).await;
    let silent = MockServer::start(|_| MockReply::Hang).await;

    let dir = policy_dir(&[&key_policy("everything", "**", &key.public_pem(), "")]);
    let insecure = [
        plain.host(),
        private.host(),
        limited.host(),
        broken.host(),
        silent.host(),
    ]
    .join(",");
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), tls.ca_pem()).unwrap();
    let without_ca = Signet::start(
        dir.path(),
        &["--insecure-registry", &insecure, "--registry-timeout-seconds", "1"],
    )
    .await;

    let cases = [
        (format!("{}/missing/app:v1", plain.host()), "not found (404)"),
        (format!("{}/private/app:v1", private.host()), "unauthorized (401)"),
        (format!("{}/busy/app:v1", limited.host()), "rate limited (429)"),
        (
            format!("{}/broken/app:v1", broken.host()),
            "registry server error (500)",
        ),
        (format!("{}/slow/app:v1", silent.host()), "timed out"),
        (format!("{}/secure/app:v1", tls.host()), "TLS error"),
    ];
    for (image, reason) in &cases {
        let started = Instant::now();
        let message = denial(&without_ca.review("validate", &pod_review("u", &[image])).await);
        assert!(message.contains(reason), "{image}: expected {reason:?} in {message}");
        assert!(
            message.contains(image) && message.contains("\"everything\""),
            "{message}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{image} took {:?}",
            started.elapsed()
        );
    }
    // A definitive failure (no such tag) is reused for the failure TTL; a server error, which
    // may pass, is asked again.
    let missing_path = "/v2/missing/app/manifests/v1";
    let asked = |registry: &Registry| {
        registry.settled_count("HEAD", missing_path, 1) + registry.count_requests("GET", missing_path)
    };
    let (missing_before, broken_before) = (asked(&plain), broken.requests().len());
    for image in [&cases[0].0, &cases[3].0] {
        let again = denial(&without_ca.review("validate", &pod_review("u2", &[image])).await);
        assert!(again.contains(image), "{again}");
    }
    assert_eq!(asked(&plain), missing_before, "the 404 was not reused");
    assert!(
        broken.requests().len() > broken_before,
        "the 500 was reused instead of asked again"
    );
    drop(without_ca);

    let with_ca = Signet::start(dir.path(), &["--registry-ca", ca.path().to_str().unwrap()]).await;
    let response = with_ca.review("mutate", &pod_review("u", &[&cases[5].0])).await;
    assert_eq!(
        response["allowed"], true,
        "--registry-ca makes the TLS registry work: {response}"
    );
}

#[tokio::test]
async fn signet_answers_before_the_api_server_gives_up() {
    let key = TestKey::generate();
    let silent = MockServer::start(|_| MockReply::Hang).await;
    let dir = policy_dir(&[&key_policy("everything", "**", &key.public_pem(), "")]);
    let signet = Signet::start(
        dir.path(),
        &[
            "--insecure-registry",
            &silent.host(),
            "--registry-timeout-seconds",
            "30",
        ],
    )
    .await;
    let client = signet_server::https_client(&signet.ca_pem);
    let started = Instant::now();
    let answer: Value = client
        .post(format!("{}/validate?timeout=2s", signet.webhook))
        .body(pod_review("u", &[&format!("{}/slow/app:v1", silent.host())]).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let message = denial(&answer["response"]);
    assert!(
        message.contains("could not finish verifying the images within 1.6s"),
        "{message}"
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "answered after {elapsed:?}, past the API server's 2s"
    );
}
