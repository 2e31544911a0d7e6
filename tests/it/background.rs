//! Background re-verification (`serve --background-scan-seconds`) against the in-test API
//! server (there is no kube-apiserver here) and a real registry: PolicyReports created per
//! namespace, updated when a policy changes, deleted with a namespace's last workload;
//! written by the Lease holder only; one signature fetch per digest however many pods run
//! it; a Warning Event on a workload whose image stopped passing.

use crate::signet_server::{Signet, eventually};
use crate::support::{FakeApiServer, Registry, SignOptions, TestKey, build_image, require_tools, sign_image};

use std::time::Duration;

use serde_json::{Value, json};

fn key_policy(host: &str, key: &TestKey) -> Value {
    json!({
        "apiVersion": "policy.sigstore.dev/v1beta1",
        "kind": "ClusterImagePolicy",
        "metadata": {"name": "release"},
        "spec": {"images": [{"glob": format!("{host}/app/**")}], "authorities": [{"key": {"data": key.public_pem()}}]}
    })
}

fn pod(namespace: &str, name: &str, image: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": namespace, "name": name},
           "spec": {"containers": [{"name": "main", "image": image}]}})
}

fn report<'a>(reports: &'a [Value], namespace: &str) -> Option<&'a Value> {
    reports.iter().find(|r| r["metadata"]["namespace"] == namespace)
}

#[tokio::test]
async fn background_scans_publish_policy_reports() {
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    let host = registry.host();
    let key = TestKey::generate();
    let signed = build_image(&registry, "app/signed", "v1", "signed");
    sign_image(&registry, "app/signed", &signed, &key, &SignOptions::default()).await;
    build_image(&registry, "app/unsigned", "v1", "unsigned");

    let api = FakeApiServer::start().await;
    api.apply_policy(key_policy(&host, &key));
    for i in 0..10 {
        api.add_workload(pod("shop", &format!("web-{i}"), &format!("{host}/app/signed:v1")));
    }
    api.add_workload(pod("blog", "draft", &format!("{host}/app/unsigned:v1")));

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let args = [
        "--background-scan-seconds",
        "2",
        "--status-lease-seconds",
        "2",
        "--insecure-registry",
        &host,
    ];
    let replicas = [Signet::spawn(&args, &env), Signet::spawn(&args, &env)];
    for replica in &replicas {
        replica.wait_ready().await;
    }

    assert!(
        eventually(30, || api.policy_reports().len() == 2).await,
        "reports: {:?}\n{}",
        api.policy_reports(),
        replicas[0].logs()
    );
    let reports = api.policy_reports();
    let shop = report(&reports, "shop").unwrap();
    assert_eq!(shop["summary"]["pass"], 10, "{shop}");
    assert_eq!(shop["metadata"]["labels"]["app.kubernetes.io/managed-by"], "signet");
    let first = &shop["results"][0];
    assert_eq!(first["policy"], "release");
    assert_eq!(first["result"], "pass");
    assert_eq!(first["resources"][0]["kind"], "Pod");
    assert_eq!(first["properties"]["digest"], signed.as_str());
    let blog = report(&reports, "blog").unwrap();
    assert_eq!(blog["summary"]["fail"], 1, "{blog}");
    assert!(
        blog["results"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no signatures found"),
        "{blog}"
    );

    // Ten pods of one digest, scanned again and again: one signature fetch.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sig_tag = format!("/v2/app/signed/manifests/{}.sig", signed.replacen(':', "-", 1));
    let fetches = registry
        .access_log()
        .iter()
        .filter(|l| l.contains("\"GET ") && l.contains(&sig_tag))
        .count();
    assert_eq!(fetches, 1, "{:?}", registry.access_log());

    // Only the Lease holder scans.
    let scanning: Vec<bool> = replicas
        .iter()
        .map(|r| r.logs().contains("background scan complete"))
        .collect();
    assert_eq!(scanning.iter().filter(|s| **s).count(), 1, "{scanning:?}");

    // The policy changes to another key: the running pods no longer pass; their report
    // says so and each gets a Warning Event.
    let other = TestKey::generate();
    api.apply_policy(key_policy(&host, &other));
    assert!(
        eventually(30, || {
            report(&api.policy_reports(), "shop").is_some_and(|r| r["summary"]["fail"] == 10)
        })
        .await,
        "{:?}",
        report(&api.policy_reports(), "shop")
    );
    assert!(
        eventually(10, || {
            api.events()
                .iter()
                .filter(|e| e["reason"] == "ImageNoLongerVerified" && e["involvedObject"]["kind"] == "Pod")
                .count()
                >= 10
        })
        .await,
        "{:?}",
        api.events()
    );

    // blog's last workload goes away: so does its report.
    api.remove_workload("Pod", "blog", "draft");
    assert!(
        eventually(30, || report(&api.policy_reports(), "blog").is_none()).await,
        "{:?}",
        api.policy_reports()
    );
    assert!(report(&api.policy_reports(), "shop").is_some());
}
