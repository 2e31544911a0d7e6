//! No way around the policy, and operations that do not drop reviews: moved tags, lying
//! tags, swapped index children, registry-name spellings, SIGTERM during a review, and TLS
//! versions.

use crate::signet_server;
use crate::support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use signet_server::{Signet, decoded_patch, key_policy, pod_review, policy_dir, static_policy};
use support::{
    MockReply, MockServer, Registry, SignOptions, TestKey, build_image, build_multiarch_index, get_manifest,
    put_manifest, require_tools, sign_image,
};

fn retag(registry: &Registry, from: &str, to: &str) {
    support::run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}/{from}", registry.host()),
        &format!("docker://{}/{to}", registry.host()),
    ]));
}

#[tokio::test]
async fn moved_and_lying_tags_and_swapped_index_children_are_denied() {
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    let key = TestKey::generate();
    let host = registry.host();
    let signed = build_image(&registry, "move/app", "v1", "signed");
    sign_image(&registry, "move/app", &signed, &key, &SignOptions::default()).await;
    let unsigned = build_image(&registry, "move/app", "evil", "unsigned");
    let dir = policy_dir(&[&key_policy("guarded", "**", &key.public_pem(), "")]);
    let signet = Signet::start(
        dir.path(),
        &[
            "--insecure-registry",
            &host,
            "--no-match-policy",
            "allow",
            "--digest-ttl-seconds",
            "1",
        ],
    )
    .await;

    // Mutation pins the verified digest.
    let tag = format!("{host}/move/app:v1");
    let mutated = signet.review("mutate", &pod_review("m", &[&tag])).await;
    let pinned = decoded_patch(&mutated)[1]["value"].as_str().unwrap().to_string();
    assert_eq!(pinned, format!("{tag}@{signed}"));

    // The tag moves to the unsigned image before validation: the pinned object still runs
    // what was verified, and the bare tag is now denied.
    retag(&registry, "move/app:evil", "move/app:v1");
    tokio::time::sleep(Duration::from_millis(1500)).await; // past the tag-digest cache
    assert_eq!(
        signet.review("validate", &pod_review("v", &[&pinned])).await["allowed"],
        true
    );
    let bare = signet.review("validate", &pod_review("b", &[&tag])).await;
    assert_eq!(bare["allowed"], false, "{bare}");
    assert!(bare["status"]["message"].as_str().unwrap().contains(&unsigned));

    // A signed tag next to an unsigned digest: the digest is what runs, so it is checked.
    let lying = format!("{host}/move/app:v1@{unsigned}");
    let response = signet.review("validate", &pod_review("l", &[&lying])).await;
    assert_eq!(response["allowed"], false, "{response}");

    // An index re-pushed under the signed tag with one child swapped is a new, unsigned index.
    let (index, _) = build_multiarch_index(&registry, "multi/app", "v1");
    sign_image(&registry, "multi/app", &index, &key, &SignOptions::default()).await;
    let mut swapped = get_manifest(&registry, "multi/app", &index).await.expect("index");
    let other = build_image(&registry, "multi/app", "intruder", "intruder");
    swapped["manifests"][0]["digest"] = json!(other);
    swapped["manifests"][0]["size"] = json!(manifest_size(&registry, "multi/app", &other).await);
    let swapped_digest = put_manifest(
        &registry,
        "multi/app",
        "v1",
        "application/vnd.oci.image.index.v1+json",
        swapped.to_string().as_bytes(),
    )
    .await;
    let response = signet
        .review("validate", &pod_review("i", &[&format!("{host}/multi/app:v1")]))
        .await;
    assert_eq!(response["allowed"], false, "{response}");
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains(&swapped_digest)
    );
}

async fn manifest_size(registry: &Registry, repo: &str, digest: &str) -> u64 {
    let response = reqwest::Client::new()
        .head(format!("{}/v2/{repo}/manifests/{digest}", registry.url()))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    response.headers()["content-length"].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn registry_name_spellings_cannot_dodge_a_policy() {
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    let key = TestKey::generate();
    let port = registry.port();
    build_image(&registry, "guarded/app", "v1", "unsigned");
    let dir = policy_dir(&[&key_policy(
        "guarded",
        &format!("localhost:{port}/guarded/**"),
        &key.public_pem(),
        "",
    )]);
    let host = format!("localhost:{port}");
    let signet = Signet::start(
        dir.path(),
        &["--insecure-registry", &host, "--no-match-policy", "allow"],
    )
    .await;
    for spelling in [
        format!("localhost:{port}/guarded/app:v1"),
        format!("LOCALHOST:{port}/guarded/app:v1"),
        format!("LocalHost:{port}/guarded/app"),
    ] {
        let response = signet.review("validate", &pod_review("u", &[&spelling])).await;
        assert_eq!(
            response["allowed"], false,
            "{spelling} must be checked by the policy: {response}"
        );
        assert!(
            response["status"]["message"].as_str().unwrap().contains("\"guarded\""),
            "{response}"
        );
    }
}

#[tokio::test]
async fn sigterm_lets_in_flight_reviews_finish() {
    let silent = MockServer::start(|_| MockReply::Hang).await;
    let key = TestKey::generate();
    let dir = policy_dir(&[&key_policy("guarded", "**", &key.public_pem(), "")]);
    let mut signet = Signet::start(
        dir.path(),
        &["--insecure-registry", &silent.host(), "--registry-timeout-seconds", "2"],
    )
    .await;
    let review = pod_review("in-flight", &[&format!("{}/slow/app:v1", silent.host())]);
    let client = signet_server::https_client(&signet.ca_pem);
    let url = format!("{}/validate", signet.webhook);
    let request = tokio::spawn(async move { client.post(url).body(review.to_string()).send().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let _ = Command::new("kill").args(["-TERM", &signet.pid().to_string()]).status();
    let response = request.await.unwrap().expect("the in-flight review is answered");
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["response"]["uid"], "in-flight");
    assert_eq!(answer["response"]["allowed"], false);
    let status = signet.terminate();
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn only_tls_1_2_and_1_3_with_modern_ciphers() {
    if !support::have_tool("openssl") {
        support::skip_or_fail("openssl is not installed");
        return;
    }
    let dir = policy_dir(&[&static_policy("all", "**", "pass", "enforce")]);
    let signet = Signet::start(dir.path(), &[]).await;
    let address = signet
        .webhook
        .trim_start_matches("https://")
        .replace("localhost", "127.0.0.1");
    let handshake = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(["s_client", "-connect", &address])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl s_client");
        output.status.success()
            && String::from_utf8_lossy(&output.stdout).contains("Cipher is")
            && !String::from_utf8_lossy(&output.stdout).contains("Cipher is (NONE)")
    };
    assert!(handshake(&["-tls1_3"]), "TLS 1.3 works");
    assert!(handshake(&["-tls1_2"]), "TLS 1.2 works");
    assert!(!handshake(&["-tls1_1"]), "TLS 1.1 is refused");
    assert!(!handshake(&["-tls1"]), "TLS 1.0 is refused");
    assert!(
        !handshake(&["-tls1_2", "-cipher", "AES128-SHA"]),
        "non-forward-secret CBC suites are refused"
    );
}

#[tokio::test]
async fn the_default_https_port_is_the_same_registry() {
    let dir = policy_dir(&[&static_policy("guarded", "localhost/demo/**", "fail", "enforce")]);
    let signet = Signet::start(dir.path(), &["--no-match-policy", "allow"]).await;
    for spelling in [
        "localhost/demo/app:v1",
        "localhost:443/demo/app",
        "LOCALHOST:0443/demo/app:v1",
    ] {
        let response = signet.review("validate", &pod_review("p", &[spelling])).await;
        assert_eq!(response["allowed"], false, "{spelling} must be checked: {response}");
        assert!(
            response["status"]["message"].as_str().unwrap().contains("\"guarded\""),
            "{response}"
        );
    }
    // Another port is another registry, which no policy names here.
    let other = signet
        .review("validate", &pod_review("o", &["localhost:8443/demo/app:v1"]))
        .await;
    assert_eq!(other["allowed"], true, "{other}");
}

/// A Pod (or a Deployment template) running `container` and mounting `volume` as an image
/// volume (KEP-4639).
fn with_image_volume(uid: &str, kind: &str, container: &str, volume: &str) -> serde_json::Value {
    let spec = json!({
        "containers": [{"name": "app", "image": container, "volumeMounts": [{"name": "models", "mountPath": "/models"}]}],
        "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "models", "image": {"reference": volume, "pullPolicy": "IfNotPresent"}}
        ]
    });
    let (resource, object) = match kind {
        "Pod" => (
            ("", "v1", "pods", "Pod"),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec}),
        ),
        _ => (
            ("apps", "v1", "deployments", "Deployment"),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
                   "spec": {"template": {"spec": spec}}}),
        ),
    };
    signet_server::review_for(uid, resource, "CREATE", object)
}

#[tokio::test]
async fn image_volumes_are_verified_and_pinned_like_containers() {
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    let key = TestKey::generate();
    let host = registry.host();
    let app = build_image(&registry, "vol/app", "v1", "app");
    sign_image(&registry, "vol/app", &app, &key, &SignOptions::default()).await;
    let models = build_image(&registry, "vol/models", "v1", "models");
    sign_image(&registry, "vol/models", &models, &key, &SignOptions::default()).await;
    build_image(&registry, "vol/models", "evil", "evil models");
    let dir = policy_dir(&[&key_policy("guarded", "**", &key.public_pem(), "")]);
    let signet = Signet::start(dir.path(), &["--insecure-registry", &host]).await;
    let app_tag = format!("{host}/vol/app:v1");
    let signed_volume = format!("{host}/vol/models:v1");
    let unsigned_volume = format!("{host}/vol/models:evil");

    for (kind, prefix) in [("Pod", "/spec"), ("Deployment", "/spec/template/spec")] {
        // An unsigned image volume is denied by name, next to a signed container.
        let denied = signet
            .review("validate", &with_image_volume("u", kind, &app_tag, &unsigned_volume))
            .await;
        assert_eq!(denied["allowed"], false, "{kind}: {denied}");
        let message = denied["status"]["message"].as_str().unwrap();
        assert!(message.contains("volume \"models\""), "{kind}: {message}");
        assert!(message.contains(&unsigned_volume), "{kind}: {message}");

        // Signed: both the container and the volume are pinned to what was verified.
        let mutated = signet
            .review("mutate", &with_image_volume("s", kind, &app_tag, &signed_volume))
            .await;
        assert_eq!(mutated["allowed"], true, "{kind}: {mutated}");
        let patch = decoded_patch(&mutated);
        let pinned: Vec<(&str, &str)> = patch
            .iter()
            .filter(|op| op["op"] == "replace")
            .map(|op| (op["path"].as_str().unwrap(), op["value"].as_str().unwrap()))
            .collect();
        let volume_path = format!("{prefix}/volumes/1/image/reference");
        let container_path = format!("{prefix}/containers/0/image");
        assert!(
            pinned.contains(&(volume_path.as_str(), format!("{signed_volume}@{models}").as_str())),
            "{kind}: {pinned:?}"
        );
        assert!(
            pinned.contains(&(container_path.as_str(), format!("{app_tag}@{app}").as_str())),
            "{kind}: {pinned:?}"
        );
    }
}
