//! In-cluster mode against a stand-in API server (no kube-apiserver can be installed here):
//! policies from a watch, readiness gated on the first sync, bad objects skipped, keys from
//! Secrets, and registry credentials from pull secrets.

use crate::signet_server;
use crate::support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use signet_server::{Signet, eventually, free_port, pod_review};
use support::{FakeApiServer, Registry, SignOptions, TestKey, build_image, kubeconfig_for, require_tools, sign_image};

fn static_policy(name: &str, glob: &str, action: &str) -> Value {
    json!({
        "apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": name},
        "spec": {"images": [{"glob": glob}], "authorities": [{"static": {"action": action}}]}
    })
}

fn secret_key_policy(name: &str, glob: &str, secret: &str) -> Value {
    json!({
        "apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": name},
        "spec": {"images": [{"glob": glob}], "authorities": [{"key": {"secretRef": {"name": secret}}}]}
    })
}

async fn start_in_cluster(api: &FakeApiServer, dir: &std::path::Path, extra: &[&str]) -> Signet {
    let kubeconfig = api.kubeconfig(dir);
    let signet = Signet::spawn(extra, &[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    signet.wait_ready().await;
    signet
}

#[tokio::test]
async fn policies_come_from_the_watch_and_undecodable_ones_are_skipped() {
    let api = FakeApiServer::start().await;
    api.apply_policy(static_policy("block-evil", "evil.example.com/**", "fail"));
    api.apply_policy(static_policy("allow-rest", "**", "pass"));
    api.apply_policy(json!({
        "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "garbled"}, "spec": {"images": "not-a-list"}
    }));
    api.apply_policy(json!({
        "apiVersion": "policy.sigstore.dev/v1beta1", "kind": "ClusterImagePolicy",
        "metadata": {"name": "invalid-mode"},
        "spec": {"mode": "garbage", "images": [{"glob": "**"}], "authorities": [{"static": {"action": "pass"}}]}
    }));
    let dir = tempfile::tempdir().unwrap();
    let signet = start_in_cluster(&api, dir.path(), &[]).await;

    let denied = signet
        .review("validate", &pod_review("u1", &["evil.example.com/x"]))
        .await;
    assert_eq!(denied["allowed"], false, "{denied}");
    assert!(denied["status"]["message"].as_str().unwrap().contains("block-evil"));
    assert_eq!(
        signet.review("validate", &pod_review("u2", &["nginx"])).await["allowed"],
        true
    );
    assert!(
        signet.logs().contains("garbled"),
        "the skipped object is logged: {}",
        signet.logs()
    );

    // A change arrives through the watch and applies at once.
    api.apply_policy(static_policy("allow-rest", "**", "fail"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while signet.review("validate", &pod_review("u3", &["nginx"])).await["allowed"] == true {
        assert!(Instant::now() < deadline, "the watched edit never applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let block_evil_writes = api.status_patches().iter().filter(|(n, _)| n == "block-evil").count();
    assert_eq!(
        block_evil_writes, 1,
        "another policy's edit does not rewrite block-evil's status"
    );
}

#[tokio::test]
async fn readiness_waits_for_the_api_server_and_the_last_snapshot_survives_it() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig_for(dir.path(), &format!("http://127.0.0.1:{port}"));
    let signet = Signet::spawn(&[], &[("KUBECONFIG", kubeconfig.to_str().unwrap())]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        signet.admin_get("/healthz").await.0,
        200,
        "alive without the API server"
    );
    assert_eq!(
        signet.admin_get("/readyz").await.0,
        503,
        "not ready before the first sync"
    );

    let api = FakeApiServer::start_on(format!("127.0.0.1:{port}").parse().unwrap()).await;
    api.apply_policy(static_policy("allow", "**", "pass"));
    tokio::time::timeout(Duration::from_secs(30), signet.wait_ready())
        .await
        .expect("ready after the API server came up");
    assert_eq!(
        signet.review("validate", &pod_review("u", &["nginx"])).await["allowed"],
        true
    );

    drop(api);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(signet.admin_get("/readyz").await.0, 200);
    let response = signet.review("validate", &pod_review("u", &["nginx"])).await;
    assert_eq!(
        response["allowed"], true,
        "the last good snapshot keeps serving: {response}"
    );
}

#[tokio::test]
async fn keys_come_from_secrets_in_signets_namespace() {
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    let key = TestKey::generate();
    let digest = build_image(&registry, "demo/app", "v1", "app");
    sign_image(&registry, "demo/app", &digest, &key, &SignOptions::default()).await;
    let api = FakeApiServer::start().await;
    api.add_secret(
        "signet-system",
        "release-key",
        &[("cosign.pub", key.public_pem().as_bytes())],
        "Opaque",
    );
    api.add_secret(
        "signet-system",
        "two-keys",
        &[
            ("a.pub", key.public_pem().as_bytes()),
            ("b.pub", key.public_pem().as_bytes()),
        ],
        "Opaque",
    );
    let host = registry.host();
    api.apply_policy(secret_key_policy(
        "from-secret",
        &format!("{host}/demo/**"),
        "release-key",
    ));
    api.apply_policy(secret_key_policy("ambiguous", &format!("{host}/other/**"), "two-keys"));
    api.apply_policy(secret_key_policy("absent", &format!("{host}/absent/**"), "nope"));
    let dir = tempfile::tempdir().unwrap();
    let signet = start_in_cluster(&api, dir.path(), &["--insecure-registry", &host]).await;

    let allowed = signet
        .review("validate", &pod_review("u", &[&format!("{host}/demo/app:v1")]))
        .await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
    let other = build_image(&registry, "other/app", "v1", "o");
    sign_image(&registry, "other/app", &other, &key, &SignOptions::default()).await;
    let ambiguous = signet
        .review("validate", &pod_review("u", &[&format!("{host}/other/app:v1")]))
        .await;
    let message = ambiguous["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("several entries (a.pub, b.pub)"), "{ambiguous}");
    build_image(&registry, "absent/app", "v1", "x");
    let absent = signet
        .review("validate", &pod_review("u", &[&format!("{host}/absent/app:v1")]))
        .await;
    let message = absent["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("signet-system/nope"), "{absent}");
}

#[tokio::test]
async fn pull_secrets_of_the_pod_and_its_service_account_open_private_registries() {
    if !require_tools() {
        return;
    }
    use base64::Engine as _;
    let registry = Registry::htpasswd("puller", "pullpass");
    let key = TestKey::generate();
    let digest = build_image(&registry, "private/app", "v1", "p");
    sign_image(&registry, "private/app", &digest, &key, &SignOptions::default()).await;
    let host = registry.host();
    let auth = base64::engine::general_purpose::STANDARD.encode("puller:pullpass");
    let docker_config = json!({"auths": {host.clone(): {"auth": auth}}}).to_string();
    let api = FakeApiServer::start().await;
    api.add_secret(
        "team",
        "regcred",
        &[(".dockerconfigjson", docker_config.as_bytes())],
        "kubernetes.io/dockerconfigjson",
    );
    api.add_service_account("team", "builder", &["regcred"]);
    api.add_secret(
        "signet-system",
        "release-key",
        &[("cosign.pub", key.public_pem().as_bytes())],
        "Opaque",
    );
    api.apply_policy(secret_key_policy(
        "private",
        &format!("{host}/private/**"),
        "release-key",
    ));
    let dir = tempfile::tempdir().unwrap();
    let signet = start_in_cluster(&api, dir.path(), &["--insecure-registry", &host]).await;
    let image = format!("{host}/private/app:v1");

    let mut with_secret = pod_review("a", &[&image]);
    with_secret["request"]["namespace"] = json!("team");
    with_secret["request"]["object"]["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
    let response = signet.review("mutate", &with_secret).await;
    assert_eq!(response["allowed"], true, "pod pull secret: {response}");

    let mut via_account = pod_review("b", &[&image]);
    via_account["request"]["namespace"] = json!("team");
    via_account["request"]["object"]["spec"]["serviceAccountName"] = json!("builder");
    let response = signet.review("mutate", &via_account).await;
    assert_eq!(response["allowed"], true, "ServiceAccount pull secret: {response}");

    let mut without = pod_review("c", &[&image]);
    without["request"]["namespace"] = json!("elsewhere");
    let response = signet.review("mutate", &without).await;
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("unauthorized (401)"), "no credentials: {response}");
    assert!(
        !message.contains("pullpass") && !signet.logs().contains("pullpass"),
        "no secrets in messages or logs"
    );
}

#[tokio::test]
async fn denials_and_warnings_become_events_on_the_workload() {
    let api = FakeApiServer::start().await;
    api.apply_policy(static_policy("block-evil", "evil.example.com/**", "fail"));
    let mut warn = static_policy("audit", "audited.example.com/**", "fail");
    warn["spec"]["mode"] = json!("warn");
    api.apply_policy(warn);
    let dir = tempfile::tempdir().unwrap();
    let signet = start_in_cluster(&api, dir.path(), &["--no-match-policy", "allow"]).await;

    let mut denied = pod_review("d", &["evil.example.com/x"]);
    denied["request"]["name"] = json!("web-1");
    assert_eq!(signet.review("mutate", &denied).await["allowed"], false);
    let mut dry = pod_review("dry", &["evil.example.com/x"]);
    dry["request"]["dryRun"] = json!(true);
    assert_eq!(signet.review("validate", &dry).await["allowed"], false);
    let mut warned = pod_review("w", &["audited.example.com/x"]);
    warned["request"]["name"] = json!("web-2");
    assert_eq!(signet.review("mutate", &warned).await["allowed"], true);
    assert_eq!(signet.review("validate", &warned).await["allowed"], true);

    let deadline = Instant::now() + Duration::from_secs(10);
    while api.events().len() < 2 {
        assert!(Instant::now() < deadline, "events: {:?}", api.events());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = api.events();
    assert_eq!(
        events.len(),
        2,
        "one per denial, one per warned validation, none for dry runs: {events:?}"
    );
    let denial = events
        .iter()
        .find(|e| e["reason"] == "ImageDenied")
        .expect("a denial event");
    assert_eq!(denial["involvedObject"]["kind"], "Pod");
    assert_eq!(denial["involvedObject"]["name"], "web-1");
    assert_eq!(denial["type"], "Warning");
    assert!(denial["message"].as_str().unwrap().contains("block-evil"), "{denial}");
    let warning = events
        .iter()
        .find(|e| e["reason"] == "ImagePolicyWarning")
        .expect("a warning event");
    assert_eq!(warning["involvedObject"]["name"], "web-2");
    assert!(
        signet.logs().contains("\"policy\":\"block-evil\"") && signet.logs().contains("\"outcome\":\"failed\""),
        "structured decision logs"
    );
}

/// Polls `check` every 100 ms for up to `seconds`.

#[tokio::test]
async fn only_the_lease_holder_writes_status_and_another_replica_takes_over() {
    let api = FakeApiServer::start().await;
    api.apply_policy(static_policy("first", "first.example/**", "pass"));
    let dir = tempfile::tempdir().unwrap();
    let lease = ["--status-lease-seconds", "2"];
    let mut replicas = [
        start_in_cluster(&api, dir.path(), &lease).await,
        start_in_cluster(&api, dir.path(), &lease).await,
    ];
    let holder = || {
        api.lease("signet-system", "signet-status-writer")
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    };
    assert!(eventually(10, || holder().is_some()).await, "no replica took the lease");
    let writes_of = |name: &str| api.status_patches().iter().filter(|(n, _)| n == name).count();
    assert!(
        eventually(10, || writes_of("first") > 0).await,
        "nobody wrote the status"
    );
    // Both replicas saw the policy; had both written, there would be two writes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(writes_of("first"), 1, "{:?}", api.status_patches());

    // The holder stops; once its lease runs out the other replica writes what comes next.
    let first_holder = holder().unwrap();
    let holder_index = replicas
        .iter()
        .position(|r| r.logs().contains("\"leading\":true"))
        .expect("the holder logged that it leads");
    replicas[holder_index].terminate();
    api.apply_policy(static_policy("second", "second.example/**", "pass"));
    assert!(
        eventually(15, || writes_of("second") == 1).await,
        "the remaining replica never wrote the new policy's status: {:?}",
        api.status_patches()
    );
    let lease = api.lease("signet-system", "signet-status-writer").unwrap();
    assert_ne!(lease["spec"]["holderIdentity"].as_str().unwrap(), first_holder);
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "{lease}");
}
