//! The webhook end to end: the real `signet` binary over real HTTPS, policies from a folder,
//! static authorities, modes, every workload kind, bad input and the admin port.

use crate::signet_server;
use crate::support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use signet_server::{Signet, pod_review, policy_dir, review_for, static_policy};

#[tokio::test]
async fn static_authorities_decide_and_denials_name_policy_and_authority() {
    let dir = policy_dir(&[
        &static_policy("allow-ghcr", "ghcr.io/**", "pass", "enforce"),
        &static_policy("block-evil", "evil.example.com/**", "fail", "enforce"),
    ]);
    let signet = Signet::start(dir.path(), &[]).await;

    let allowed = signet
        .review("validate", &pod_review("u1", &["ghcr.io/org/app:v1"]))
        .await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
    assert!(allowed.get("patch").is_none(), "static authorities pin nothing");

    let denied = signet
        .review("validate", &pod_review("u2", &["evil.example.com/x:1"]))
        .await;
    assert_eq!(denied["allowed"], false);
    let message = denied["status"]["message"].as_str().unwrap();
    for part in [
        "\"c0\"",
        "evil.example.com/x:1",
        "\"block-evil\"",
        "\"authority-0\"",
        "block-evil says fail",
    ] {
        assert!(message.contains(part), "{part} missing from {message}");
    }
    assert_eq!(denied["status"]["code"], 403);
}

#[tokio::test]
async fn every_matching_policy_must_pass_and_one_authority_is_enough() {
    let two_authorities = "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: either\nspec:\n  images:\n  - glob: \"ghcr.io/**\"\n  authorities:\n  - name: no\n    static:\n      action: fail\n  - name: yes\n    static:\n      action: pass\n";
    let dir = policy_dir(&[
        two_authorities,
        &static_policy("strict-team", "ghcr.io/team/**", "fail", "enforce"),
    ]);
    let signet = Signet::start(dir.path(), &[]).await;

    let one_of_two = signet
        .review("validate", &pod_review("u1", &["ghcr.io/other/app"]))
        .await;
    assert_eq!(one_of_two["allowed"], true, "OR across authorities: {one_of_two}");

    let both_policies = signet
        .review("validate", &pod_review("u2", &["ghcr.io/team/app"]))
        .await;
    assert_eq!(both_policies["allowed"], false, "AND across policies: {both_policies}");
    let message = both_policies["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("strict-team") && !message.contains("\"either\""),
        "{message}"
    );
}

#[tokio::test]
async fn warn_mode_admits_with_warnings() {
    let dir = policy_dir(&[&static_policy("audit", "**", "fail", "warn")]);
    let signet = Signet::start(dir.path(), &[]).await;
    let response = signet.review("validate", &pod_review("u1", &["nginx:1.27"])).await;
    assert_eq!(response["allowed"], true);
    let warnings = response["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].as_str().unwrap().contains("\"audit\""), "{warnings:?}");
}

#[tokio::test]
async fn no_match_policy_allow_deny_warn() {
    let dir = policy_dir(&[&static_policy("only-ghcr", "ghcr.io/**", "pass", "enforce")]);
    let review = pod_review("u1", &["quay.io/x/y:1"]);

    let deny = Signet::start(dir.path(), &[]).await;
    let response = deny.review("validate", &review).await;
    assert_eq!(response["allowed"], false, "deny is the default");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("no ClusterImagePolicy matches quay.io/x/y:1"),
        "{message}"
    );
    drop(deny);

    let allow = Signet::start(dir.path(), &["--no-match-policy", "allow"]).await;
    let response = allow.review("validate", &review).await;
    assert_eq!(response["allowed"], true);
    assert!(response.get("warnings").is_none());
    drop(allow);

    let warn = Signet::start(dir.path(), &["--no-match-policy", "warn"]).await;
    let response = warn.review("validate", &review).await;
    assert_eq!(response["allowed"], true);
    assert_eq!(response["warnings"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn every_workload_kind_is_reviewed() {
    let dir = policy_dir(&[&static_policy("nothing-runs", "**", "fail", "enforce")]);
    let signet = Signet::start(dir.path(), &[]).await;
    let pod_spec = json!({"containers": [{"name": "app", "image": "nginx"}], "initContainers": [{"name": "init", "image": "busybox"}]});
    let kinds = [
        (("", "v1", "pods", "Pod"), json!({"spec": pod_spec})),
        (
            ("apps", "v1", "deployments", "Deployment"),
            json!({"spec": {"template": {"spec": pod_spec}}}),
        ),
        (
            ("apps", "v1", "replicasets", "ReplicaSet"),
            json!({"spec": {"template": {"spec": pod_spec}}}),
        ),
        (
            ("apps", "v1", "statefulsets", "StatefulSet"),
            json!({"spec": {"template": {"spec": pod_spec}}}),
        ),
        (
            ("apps", "v1", "daemonsets", "DaemonSet"),
            json!({"spec": {"template": {"spec": pod_spec}}}),
        ),
        (
            ("batch", "v1", "jobs", "Job"),
            json!({"spec": {"template": {"spec": pod_spec}}}),
        ),
        (
            ("", "v1", "replicationcontrollers", "ReplicationController"),
            json!({"spec": {"template": {"spec": pod_spec}}}),
        ),
        (
            ("batch", "v1", "cronjobs", "CronJob"),
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec}}}}}),
        ),
        (
            ("serving.knative.dev", "v1", "services", "Service"),
            json!({"spec": {"template": {"spec": pod_spec}}}),
        ),
        (
            ("serving.knative.dev", "v1", "configurations", "Configuration"),
            json!({"spec": {"template": {"spec": pod_spec}}}),
        ),
        (
            ("serving.knative.dev", "v1", "revisions", "Revision"),
            json!({"spec": pod_spec}),
        ),
    ];
    for (i, (resource, object)) in kinds.into_iter().enumerate() {
        let response = signet
            .review("validate", &review_for(&format!("u{i}"), resource, "CREATE", object))
            .await;
        assert_eq!(response["allowed"], false, "{}: {response}", resource.3);
        let message = response["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("\"app\"") && message.contains("\"init\""),
            "{}: {message}",
            resource.3
        );
    }
}

#[tokio::test]
async fn ephemeral_containers_subresource_is_reviewed() {
    let dir = policy_dir(&[&static_policy("only-ghcr", "ghcr.io/**", "pass", "enforce")]);
    let signet = Signet::start(dir.path(), &[]).await;
    let mut review = review_for(
        "u1",
        ("", "v1", "pods", "Pod"),
        "UPDATE",
        json!({"spec": {"containers": [{"name": "app", "image": "ghcr.io/a/b"}], "ephemeralContainers": [{"name": "debugger", "image": "busybox"}]}}),
    );
    review["request"]["subResource"] = json!("ephemeralcontainers");
    review["request"]["oldObject"] = json!({"spec": {"containers": [{"name": "app", "image": "ghcr.io/a/b"}]}});
    let response = signet.review("validate", &review).await;
    assert_eq!(response["allowed"], false, "{response}");
    assert!(response["status"]["message"].as_str().unwrap().contains("\"debugger\""));
}

#[tokio::test]
async fn work_free_requests_pass_without_policies() {
    let dir = policy_dir(&[&static_policy("nothing-runs", "**", "fail", "enforce")]);
    let signet = Signet::start(dir.path(), &[]).await;
    let pod = json!({"spec": {"containers": [{"name": "app", "image": "nginx"}]}});
    let mut delete = review_for("d", ("", "v1", "pods", "Pod"), "DELETE", Value::Null);
    delete["request"]["oldObject"] = pod.clone();
    let mut status = review_for("s", ("", "v1", "pods", "Pod"), "UPDATE", pod.clone());
    status["request"]["subResource"] = json!("status");
    let mut scale = review_for(
        "sc",
        ("apps", "v1", "deployments", "Deployment"),
        "UPDATE",
        json!({"spec": {"replicas": 0}}),
    );
    scale["request"]["subResource"] = json!("scale");
    let deployment = json!({"spec": {"replicas": 1, "template": {"spec": pod["spec"]}}});
    let mut scaled_down = review_for(
        "sd",
        ("apps", "v1", "deployments", "Deployment"),
        "UPDATE",
        deployment.clone(),
    );
    scaled_down["request"]["oldObject"] = json!({"spec": {"replicas": 3, "template": {"spec": pod["spec"]}}});
    let role = review_for(
        "r",
        ("rbac.authorization.k8s.io", "v1", "roles", "Role"),
        "CREATE",
        json!({"rules": []}),
    );
    for review in [delete, status, scale, scaled_down, role] {
        let response = signet.review("validate", &review).await;
        assert_eq!(response["allowed"], true, "{review}: {response}");
    }
}

#[tokio::test]
async fn bad_input_gets_clear_answers_and_the_server_keeps_serving() {
    let dir = policy_dir(&[&static_policy("all", "**", "pass", "enforce")]);
    let signet = Signet::start(dir.path(), &[]).await;

    for body in [
        "not json",
        "{\"kind\": \"AdmissionReview\"",
        "[]",
        "{\"kind\":\"Pod\",\"apiVersion\":\"v1\"}",
    ] {
        let (status, text) = signet.post("validate", body).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.as_str().is_some_and(|t| !t.is_empty()), "a 400 explains itself");
    }
    let huge = format!(
        "{{\"kind\":\"AdmissionReview\",\"pad\":\"{}\"}}",
        "x".repeat(9 * 1024 * 1024)
    );
    let (status, _) = signet.post("mutate", huge).await;
    assert_eq!(status, 413);

    let null_request = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": null});
    let (status, answer) = signet.post("validate", null_request.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], false);
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("no request")
    );

    let mut bad_image = pod_review("bad", &["ghcr.io/UPPER/case"]);
    let response = signet.review("mutate", &bad_image).await;
    assert_eq!(response["allowed"], false);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("ghcr.io/UPPER/case")
    );
    bad_image["request"]["object"]["spec"]["containers"][0]["image"] = json!(42);
    let response = signet.review("mutate", &bad_image).await;
    assert_eq!(response["allowed"], false, "{response}");

    let fine = signet.review("validate", &pod_review("ok", &["nginx"])).await;
    assert_eq!(fine["allowed"], true, "still serving after bad input");
}

#[tokio::test]
async fn admission_review_fixtures_from_other_projects_get_sensible_answers() {
    let Some(fixtures) = support::fixtures_dir() else {
        return;
    };
    let dir = policy_dir(&[&static_policy("all", "**", "fail", "enforce")]);
    let signet = Signet::start(dir.path(), &[]).await;
    let mut checked = 0;
    for entry in std::fs::read_dir(fixtures.join("admission-review")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        // kubewarden's files are bare AdmissionRequests; wrap them in a review.
        let body = if value.get("uid").is_some() && value.get("kind").is_some_and(Value::is_object) {
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": value}).to_string()
        } else {
            text
        };
        let (status, answer) = signet.post("validate", body).await;
        let images_inside = answer.to_string();
        match status {
            200 => {
                let response = &answer["response"];
                let is_workload = [
                    "pods",
                    "deployments",
                    "replicasets",
                    "statefulsets",
                    "daemonsets",
                    "jobs",
                    "cronjobs",
                    "replicationcontrollers",
                ]
                .contains(
                    &value
                        .pointer("/request/resource/resource")
                        .or(value.pointer("/resource/resource"))
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                );
                let op = value
                    .pointer("/request/operation")
                    .or(value.pointer("/operation"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let object = value.pointer("/request/object").or(value.pointer("/object"));
                let being_deleted = object
                    .and_then(|o| o.pointer("/metadata/deletionTimestamp"))
                    .is_some_and(|t| !t.is_null());
                let has_images = object.is_some_and(|o| o.to_string().contains("\"image\""));
                if is_workload && op == "CREATE" && !being_deleted && has_images {
                    assert_eq!(
                        response["allowed"], false,
                        "{name}: a static-fail policy must deny workloads: {images_inside}"
                    );
                }
                checked += 1;
            }
            400 => checked += 1,
            other => panic!("{name}: unexpected status {other}: {answer}"),
        }
    }
    assert!(checked >= 40, "only {checked} fixtures checked");
}

#[tokio::test]
async fn admin_port_reports_health_readiness_and_metrics() {
    let dir = policy_dir(&[&static_policy("all", "**", "pass", "enforce"), "not: [valid"]);
    let signet = Signet::start(dir.path(), &[]).await;
    assert_eq!(signet.admin_get("/healthz").await.0, 200);
    assert_eq!(signet.admin_get("/readyz").await.0, 200);
    signet.review("validate", &pod_review("u", &["nginx"])).await;
    let (status, metrics) = signet.admin_get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("signet_admissions_total{endpoint=\"validate\",outcome=\"allowed\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("signet_policies 1"), "{metrics}");
    assert!(
        metrics.contains("signet_policies_rejected 1"),
        "the unparsable file is reported: {metrics}"
    );
    assert!(metrics.contains("signet_admission_duration_seconds_bucket"));
    let expiry: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("signet_trust_root_expiry_timestamp_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .expect("trust root expiry metric");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        expiry > now,
        "the embedded root's first expiry is in the future: {expiry}"
    );
}

#[tokio::test]
async fn policy_folder_changes_apply_without_restart() {
    let dir = policy_dir(&[&static_policy("gate", "**", "pass", "enforce")]);
    let signet = Signet::start(dir.path(), &[]).await;
    let review = pod_review("u", &["nginx"]);
    assert_eq!(signet.review("validate", &review).await["allowed"], true);

    std::fs::write(
        dir.path().join("policy-0.yaml"),
        static_policy("gate", "**", "fail", "enforce"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if signet.review("validate", &review).await["allowed"] == false {
            break;
        }
        assert!(Instant::now() < deadline, "the edited policy was never applied");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn invalid_policies_are_rejected_with_the_field_named() {
    let invalid = "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: broken\nspec:\n  mode: garbage\n  images:\n  - glob: \"**\"\n  authorities:\n  - static:\n      action: pass\n";
    let dir = policy_dir(&[invalid]);
    let signet = Signet::start(dir.path(), &[]).await;
    let response = signet.review("validate", &pod_review("u", &["nginx"])).await;
    assert_eq!(
        response["allowed"], false,
        "an invalid policy admits nothing: {response}"
    );
    let logs = signet.logs();
    assert!(logs.contains("broken") && logs.contains("spec.mode"), "{logs}");
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly() {
    let dir = policy_dir(&[&static_policy("all", "**", "pass", "enforce")]);
    let mut signet = Signet::start(dir.path(), &[]).await;
    assert!(signet.is_running());
    let status = signet.terminate();
    assert!(status.success(), "{status:?}: {}", signet.logs());
}

#[tokio::test]
async fn rotated_certificates_are_picked_up_without_restart() {
    let first = signet::tls::self_signed(&["localhost".to_string()]).unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = (certs.path().join("tls.crt"), certs.path().join("tls.key"));
    std::fs::write(&cert, &first.cert_pem).unwrap();
    std::fs::write(&key, &first.key_pem).unwrap();
    let dir = policy_dir(&[&static_policy("all", "**", "pass", "enforce")]);
    let args = [
        "--policy-dir",
        dir.path().to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let signet = Signet::spawn_with_ca(&args, first.ca_pem.clone().into_bytes());
    signet.wait_ready().await;
    assert_eq!(
        signet.review("validate", &pod_review("u", &["nginx"])).await["allowed"],
        true
    );

    let second = signet::tls::self_signed(&["localhost".to_string()]).unwrap();
    let staged = certs.path().join("staged");
    std::fs::create_dir(&staged).unwrap();
    std::fs::write(staged.join("tls.key"), &second.key_pem).unwrap();
    std::fs::write(staged.join("tls.crt"), &second.cert_pem).unwrap();
    std::fs::rename(staged.join("tls.key"), &key).unwrap();
    std::fs::rename(staged.join("tls.crt"), &cert).unwrap();

    let new_client = signet_server::https_client(second.ca_pem.as_bytes());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = new_client
            .post(format!("{}/validate", signet.webhook))
            .body(pod_review("u", &["nginx"]).to_string())
            .send()
            .await;
        if attempt.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "the new certificate was never served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let old_client = signet_server::https_client(first.ca_pem.as_bytes());
    let old = old_client
        .post(format!("{}/validate", signet.webhook))
        .body("{}")
        .send()
        .await;
    assert!(old.is_err(), "the old certificate is no longer served");
}
