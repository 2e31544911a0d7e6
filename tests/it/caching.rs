//! Caches that stay correct: concurrent admissions of one image share one registry fetch, a
//! policy edit changes the decision at once, and a removed signature stops counting after
//! the TTL.

use crate::signet_server;
use crate::support;

use std::time::{Duration, Instant};

use futures::future::join_all;
use signet_server::{Signet, key_policy, pod_review, policy_dir};
use support::{Registry, SignOptions, TestKey, build_image, delete_manifest, get_manifest, require_tools, sign_image};

#[tokio::test]
async fn a_burst_of_admissions_of_one_image_costs_one_fetch() {
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    let key = TestKey::generate();
    let digest = build_image(&registry, "burst/app", "v1", "b");
    sign_image(&registry, "burst/app", &digest, &key, &SignOptions::default()).await;
    let dir = policy_dir(&[
        &key_policy("first", "**", &key.public_pem(), ""),
        &key_policy("second", "**", &key.public_pem(), ""),
    ]);
    let signet = Signet::start(dir.path(), &["--insecure-registry", &registry.host()]).await;
    let image = format!("{}/burst/app:v1", registry.host());
    let before_tag = registry.count_requests("HEAD", "/v2/burst/app/manifests/v1");
    let sig_path = format!("/v2/burst/app/manifests/{}.sig", digest.replacen(':', "-", 1));
    let before_sig = registry.count_requests("GET", &sig_path);

    let reviews: Vec<_> = (0..50).map(|i| pod_review(&format!("u{i}"), &[&image])).collect();
    let responses = join_all(reviews.iter().map(|r| signet.review("mutate", r))).await;
    assert!(
        responses.iter().all(|r| r["allowed"] == true),
        "{:?}",
        responses.first()
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let tag_requests = registry.count_requests("HEAD", "/v2/burst/app/manifests/v1") - before_tag;
    let sig_requests = registry.count_requests("GET", &sig_path) - before_sig;
    assert_eq!(tag_requests, 1, "one tag resolution for 50 admissions");
    assert_eq!(
        sig_requests, 1,
        "one signature fetch for 50 admissions and two policies"
    );

    let (_, metrics) = signet.admin_get("/metrics").await;
    for line in [
        "signet_cache_lookups_total{cache=\"digests\",result=\"miss\"} 1",
        "signet_cache_lookups_total{cache=\"signatures\",result=\"miss\"} 1",
        "signet_cache_lookups_total{cache=\"verified\",result=\"miss\"} 1",
        "signet_admissions_in_flight 0",
        "signet_verification_duration_seconds_count{kind=\"key\",outcome=\"passed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    let registry_line = format!(
        "signet_registry_requests_total{{registry=\"{}\",status=\"200\"}}",
        registry.host()
    );
    assert!(metrics.contains(&registry_line), "{metrics}");
}

#[tokio::test]
async fn an_edited_policy_decides_at_once() {
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    let (key, other) = (TestKey::generate(), TestKey::generate());
    let digest = build_image(&registry, "edit/app", "v1", "e");
    sign_image(&registry, "edit/app", &digest, &key, &SignOptions::default()).await;
    let dir = policy_dir(&[&key_policy("gate", "**", &key.public_pem(), "")]);
    let signet = Signet::start(dir.path(), &["--insecure-registry", &registry.host()]).await;
    let review = pod_review("u", &[&format!("{}/edit/app:v1", registry.host())]);
    assert_eq!(signet.review("validate", &review).await["allowed"], true);

    std::fs::write(
        dir.path().join("policy-0.yaml"),
        key_policy("gate", "**", &other.public_pem(), ""),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while signet.review("validate", &review).await["allowed"] == true {
        assert!(Instant::now() < deadline, "the cached success outlived the policy edit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_removed_signature_stops_admitting_after_the_ttl() {
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    let key = TestKey::generate();
    let digest = build_image(&registry, "ttl/app", "v1", "t");
    sign_image(&registry, "ttl/app", &digest, &key, &SignOptions::default()).await;
    let dir = policy_dir(&[&key_policy("gate", "**", &key.public_pem(), "")]);
    let args = ["--insecure-registry", &registry.host(), "--signature-ttl-seconds", "2"];
    let signet = Signet::start(dir.path(), &args).await;
    let review = pod_review("u", &[&format!("{}/ttl/app@{digest}", registry.host())]);
    assert_eq!(signet.review("validate", &review).await["allowed"], true);

    let sig_tag = format!("{}.sig", digest.replacen(':', "-", 1));
    let manifest = get_manifest(&registry, "ttl/app", &sig_tag)
        .await
        .expect("signature manifest");
    let manifest_digest = support::sha256(manifest.to_string().as_bytes());
    // The registry deletes by the digest of the stored bytes; look it up rather than guess.
    let stored = registry_digest(&registry, "ttl/app", &sig_tag)
        .await
        .unwrap_or(manifest_digest);
    delete_manifest(&registry, "ttl/app", &stored).await;
    assert_eq!(
        signet.review("validate", &review).await["allowed"],
        true,
        "still cached"
    );

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let response = signet.review("validate", &review).await;
    assert_eq!(response["allowed"], false, "{response}");
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("no signatures found")
    );
}

async fn registry_digest(registry: &Registry, repo: &str, reference: &str) -> Option<String> {
    let response = reqwest::Client::new()
        .head(format!("{}/v2/{repo}/manifests/{reference}", registry.url()))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .ok()?;
    response
        .headers()
        .get("docker-content-digest")?
        .to_str()
        .ok()
        .map(str::to_string)
}

#[tokio::test]
async fn repeated_denials_of_an_unsigned_image_cost_one_lookup_of_each_kind() {
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    let key = TestKey::generate();
    let digest = build_image(&registry, "unsigned/app", "v1", "u");
    let dir = policy_dir(&[&key_policy("signed", "**", &key.public_pem(), "")]);
    let signet = Signet::start(dir.path(), &["--insecure-registry", &registry.host()]).await;
    let image = format!("{}/unsigned/app:v1", registry.host());
    let hex_tag = digest.replacen(':', "-", 1);
    let paths = [
        ("GET", format!("/v2/unsigned/app/manifests/{hex_tag}.sig")),
        ("GET", format!("/v2/unsigned/app/referrers/{digest}")),
        // The trailing space ends the path in the access log ("GET /v2/... HTTP/1.1").
        ("GET", format!("/v2/unsigned/app/manifests/{hex_tag} ")),
    ];

    for i in 0..20 {
        let response = signet
            .review("validate", &pod_review(&format!("u{i}"), &[&image]))
            .await;
        assert_eq!(response["allowed"], false, "{response}");
    }
    for (method, path) in &paths {
        let count = registry.settled_count(method, path, 1);
        assert_eq!(
            count, 1,
            "{method} {path}: 20 denials must share one lookup (the miss is cached)"
        );
    }
}

/// `signet_authority_failures_total{kind="key",reason}` as a number (0 when absent).
fn authority_failures(metrics: &str, reason: &str) -> u64 {
    let prefix = format!("signet_authority_failures_total{{kind=\"key\",reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn definitive_failures_are_reused_for_the_failure_ttl_and_registry_trouble_never() {
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    let key = TestKey::generate();
    build_image(&registry, "judged/app", "v1", "j");
    let image = format!("{}/judged/app:v1", registry.host());
    // Nothing listens there: every fetch is refused, which may pass, so it is never cached.
    let down = format!("127.0.0.1:{}", signet_server::free_port());
    let unreachable = format!("{down}/gone/app@sha256:{}", "a".repeat(64));
    let dir = policy_dir(&[&key_policy("signed", "**", &key.public_pem(), "")]);
    let insecure = ["--insecure-registry", &registry.host(), "--insecure-registry", &down];

    let with_ttl: Vec<&str> = insecure
        .iter()
        .copied()
        .chain(["--failure-ttl-seconds", "30"])
        .collect();
    let signet = Signet::start(dir.path(), &with_ttl).await;
    for i in 0..5 {
        let unsigned = signet
            .review("validate", &pod_review(&format!("u{i}"), &[&image]))
            .await;
        assert_eq!(unsigned["allowed"], false, "{unsigned}");
        assert!(
            unsigned["status"]["message"]
                .as_str()
                .unwrap()
                .contains("no signatures found"),
            "{unsigned}"
        );
        let refused = signet
            .review("validate", &pod_review(&format!("r{i}"), &[&unreachable]))
            .await;
        assert_eq!(refused["allowed"], false, "{refused}");
    }
    let (_, metrics) = signet.admin_get("/metrics").await;
    assert_eq!(
        authority_failures(&metrics, "unsigned"),
        1,
        "judged once, reused 4 times:\n{metrics}"
    );
    assert_eq!(
        authority_failures(&metrics, "registry"),
        5,
        "refused fetches are retried:\n{metrics}"
    );
    for line in [
        "signet_policy_failures_total{mode=\"enforce\",reason=\"unsigned\"} 5",
        "signet_policy_failures_total{mode=\"enforce\",reason=\"registry\"} 5",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }

    let without: Vec<&str> = insecure.iter().copied().chain(["--failure-ttl-seconds", "0"]).collect();
    let signet = Signet::start(dir.path(), &without).await;
    for i in 0..3 {
        let unsigned = signet
            .review("validate", &pod_review(&format!("v{i}"), &[&image]))
            .await;
        assert_eq!(unsigned["allowed"], false, "{unsigned}");
    }
    let (_, metrics) = signet.admin_get("/metrics").await;
    assert_eq!(
        authority_failures(&metrics, "unsigned"),
        3,
        "no failure TTL, judged every time:\n{metrics}"
    );
}
