//! Policy text kept outside the ClusterImagePolicy: `remote` (an in-test HTTP server on
//! loopback, pinned by sha256) and `configMapRef` (ConfigMaps from the stand-in API server,
//! because no kube-apiserver can be installed here). Decisions go through `/validate` over
//! HTTPS; texts are read in the background, never on the admission path.

use crate::signet_server;
use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::Digest;
use signet_server::{Signet, assert_allowed, assert_denied, decide, pod_review, policy_dir, static_rego_policy};
use support::FakeApiServer;

const ALLOW: &str = "package sigstore\nisCompliant[r] {\n  input.authorityMatches[\"authority-0\"].static\n  r := {\"result\": true, \"error\": \"\", \"warning\": \"checked by the fetched policy\"}\n}\n";

fn deny(error: &str) -> String {
    format!(
        "package sigstore\nisCompliant[r] {{\n  r := {{\"result\": false, \"error\": \"{error}\", \"warning\": \"\"}}\n}}\n"
    )
}

fn sha256_hex(text: &str) -> String {
    format!("{:x}", sha2::Sha256::digest(text.as_bytes()))
}

/// Serves `files` (path → body) on loopback and counts requests per path.
struct PolicyServer {
    base: String,
    hits: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PolicyServer {
    async fn start(files: Vec<(&'static str, String)>) -> PolicyServer {
        let files: Arc<std::collections::HashMap<&str, String>> = Arc::new(files.into_iter().collect());
        let hits: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>> = Arc::default();
        let counted = hits.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let files = files.clone();
            let counted = counted.clone();
            async move {
                let path = uri.path().to_string();
                *counted.lock().unwrap().entry(path.clone()).or_default() += 1;
                match files.get(path.as_str()) {
                    Some(body) => (axum::http::StatusCode::OK, body.clone()),
                    None => (axum::http::StatusCode::NOT_FOUND, "no such policy".to_string()),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        PolicyServer { base, hits, task }
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn remote(url: &str, sha256: &str) -> String {
    format!("    remote:\n      url: {url}\n      sha256sum: {sha256}\n")
}

/// Remote policies: the text whose digest matches decides (allow with its warning, deny with
/// its own error), a body with another digest or a missing URL denies naming why, the first
/// admission after readiness already has the texts, and admissions never fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_policies_are_fetched_once_checked_by_sha256_and_decide() {
    signet_server::install_crypto();
    let server = PolicyServer::start(vec![
        ("/allow.rego", ALLOW.to_string()),
        ("/deny.rego", deny("the remote policy says no")),
        ("/allow-copy.rego", ALLOW.to_string()),
    ])
    .await;
    let url = |path: &str| format!("{}{path}", server.base);
    let policies = [
        static_rego_policy(
            "fetched-allow",
            "**/allowed/**",
            &remote(&url("/allow.rego"), &sha256_hex(ALLOW)),
        ),
        static_rego_policy(
            "fetched-deny",
            "**/denied/**",
            &remote(&url("/deny.rego"), &sha256_hex(&deny("the remote policy says no"))),
        ),
        static_rego_policy(
            "wrong-digest",
            "**/tampered/**",
            &remote(&url("/allow-copy.rego"), &"0".repeat(64)),
        ),
        static_rego_policy(
            "missing",
            "**/missing/**",
            &remote(&url("/gone.rego"), &sha256_hex(ALLOW)),
        ),
    ];
    let dir = policy_dir(&policies.iter().map(String::as_str).collect::<Vec<_>>());
    let signet = Signet::start(dir.path(), &["--policy-text-refresh-seconds", "1"]).await;

    // Right after readiness: no "not read yet" window.
    let first = signet
        .review("validate", &pod_review("u0", &["registry.example/allowed/app:v1"]))
        .await;
    assert_eq!(first["allowed"], true, "{first}");
    assert!(
        first["warnings"].to_string().contains("checked by the fetched policy"),
        "{first}"
    );

    let allowed = decide(&signet, dir.path(), "registry.example/allowed/app:v1", &[]).await;
    assert_allowed(&allowed);
    let denied = decide(&signet, dir.path(), "registry.example/denied/app:v1", &[]).await;
    assert_denied(
        &denied,
        &[
            "fetched-deny",
            "spec.policy: rego policy is not compliant: the remote policy says no",
        ],
    );
    let tampered = decide(&signet, dir.path(), "registry.example/tampered/app:v1", &[]).await;
    assert_denied(
        &tampered,
        &[
            "wrong-digest",
            "spec.policy.remote",
            &format!("its sha256 is {}", sha256_hex(ALLOW)),
            &format!("the policy's sha256sum is {}", "0".repeat(64)),
        ],
    );
    let missing = decide(&signet, dir.path(), "registry.example/missing/app:v1", &[]).await;
    assert_denied(&missing, &["missing", "spec.policy.remote", "HTTP 404"]);

    // The good texts are kept (their digest pins them); admissions do not fetch.
    let before = server.hits("/allow.rego");
    for i in 0..5 {
        let review = pod_review(&format!("u{i}"), &["registry.example/allowed/app:v1"]);
        assert_eq!(signet.review("validate", &review).await["allowed"], true);
    }
    let failed_before = server.hits("/gone.rego");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(server.hits("/allow.rego"), before, "a good text is not fetched again");
    assert!(server.hits("/gone.rego") > failed_before, "a failed fetch is retried");
}

fn cluster_policy(name: &str, glob: &str, config_map: &Value) -> Value {
    json!({
        "apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": name},
        "spec": {
            "images": [{"glob": glob}],
            "authorities": [{"static": {"action": "pass"}}],
            "policy": {"type": "rego", "configMapRef": config_map}
        }
    })
}

async fn wait_for_message(signet: &Signet, image: &str, fragment: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = signet.review("validate", &pod_review("u", &[image])).await;
        let text = response.to_string();
        if text.contains(fragment) {
            return response;
        }
        assert!(Instant::now() < deadline, "never saw {fragment:?}; last: {response}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// ConfigMap policies: read from signet's namespace (another namespace is refused), an edit
/// takes effect at the next refresh, a deleted ConfigMap or missing key denies naming it.
#[tokio::test]
async fn config_map_policies_follow_their_config_map() {
    let api = FakeApiServer::start().await;
    api.put_config_map("signet-system", "policy-config", Some(&[("policy", ALLOW)]));
    let reference = json!({"name": "policy-config", "key": "policy"});
    api.apply_policy(cluster_policy("from-configmap", "**/app/**", &reference));
    let elsewhere = json!({"name": "policy-config", "namespace": "default", "key": "policy"});
    api.apply_policy(cluster_policy("other-namespace", "**/other/**", &elsewhere));
    let wrong_key = json!({"name": "policy-config", "key": "nope"});
    api.apply_policy(cluster_policy("wrong-key", "**/nokey/**", &wrong_key));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let signet = Signet::spawn(
        &["--policy-text-refresh-seconds", "1"],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    signet.wait_ready().await;

    let first = signet
        .review("validate", &pod_review("u", &["example.com/app/x:1"]))
        .await;
    assert_eq!(
        first["allowed"], true,
        "ready only once the ConfigMap was read: {first}"
    );
    assert!(
        api.requests()
            .contains(&"configmaps/signet-system/policy-config".to_string())
    );
    let other = denial(&signet, "example.com/other/x:1").await;
    assert!(
        other.contains("spec.policy.configMapRef: ConfigMap default/policy-config: signet reads policy ConfigMaps only from its own namespace \"signet-system\""),
        "{other}"
    );
    let nokey = denial(&signet, "example.com/nokey/x:1").await;
    assert!(
        nokey.contains("ConfigMap signet-system/policy-config has no key \"nope\" (keys: policy)"),
        "{nokey}"
    );

    let frozen = deny("deployments are frozen");
    api.put_config_map("signet-system", "policy-config", Some(&[("policy", frozen.as_str())]));
    let edited = wait_for_message(&signet, "example.com/app/x:1", "deployments are frozen").await;
    assert_eq!(edited["allowed"], false, "{edited}");

    api.put_config_map("signet-system", "policy-config", None);
    let gone = wait_for_message(&signet, "example.com/app/x:1", "signet-system/policy-config not found").await;
    assert_eq!(gone["allowed"], false, "{gone}");
    assert_eq!(
        signet.admin_get("/readyz").await.0,
        200,
        "a missing text does not unready signet"
    );
}

async fn denial(signet: &Signet, image: &str) -> String {
    let response = signet.review("validate", &pod_review("u", &[image])).await;
    assert_eq!(response["allowed"], false, "{response}");
    response["status"]["message"].as_str().unwrap_or_default().to_string()
}
