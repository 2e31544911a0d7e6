//! `signet audit` over files (a `kubectl get -o json` list and manifests) and over the
//! in-test API server, against a real registry with images signed, unsigned and signed with
//! a key the policy no longer trusts. Outputs are compared with golden files (registry host
//! and digests replaced by names), and the registry's access log shows one signature fetch
//! per digest however many workloads run it.

use crate::signet_server::{key_policy, policy_dir};
use crate::support::{FakeApiServer, Registry, SignOptions, TestKey, build_image, require_tools, sign_image};

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

fn pod(namespace: &str, name: &str, containers: &[(&str, &str)]) -> Value {
    let containers: Vec<Value> = containers.iter().map(|(n, i)| json!({"name": n, "image": i})).collect();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": namespace, "name": name}, "spec": {"containers": containers}})
}

fn templated(api_version: &str, kind: &str, namespace: &str, name: &str, pointer: &str, image: &str) -> Value {
    let mut object =
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"namespace": namespace, "name": name}});
    let spec = json!({"containers": [{"name": name, "image": image}]});
    let mut path: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let last = path.pop().unwrap();
    let mut cursor = &mut object;
    for part in path {
        cursor = cursor.as_object_mut().unwrap().entry(part).or_insert_with(|| json!({}));
    }
    cursor[last] = spec;
    object
}

/// What the images are, with their digests, for replacing in outputs.
struct Images {
    registry: Registry,
    names: Vec<(String, String)>,
}

impl Images {
    /// `output` with the registry host and each digest (full and short) replaced by a name.
    fn normalise(&self, output: &str) -> String {
        let mut text = output.replace(&self.registry.host(), "REGISTRY");
        for (name, digest) in &self.names {
            let hex = digest.trim_start_matches("sha256:");
            text = text.replace(hex, name).replace(&hex[..12], name);
        }
        text
    }

    fn signature_fetches(&self, repo: &str, digest: &str) -> usize {
        let tag = format!("/v2/{repo}/manifests/{}.sig", digest.replacen(':', "-", 1));
        self.registry
            .access_log()
            .iter()
            .filter(|line| line.contains("\"GET ") && line.contains(&tag))
            .count()
    }
}

/// signed: signed by the policy's key; unsigned; rotated: signed by the key before.
fn images(key: &TestKey) -> (Images, [String; 3]) {
    let registry = Registry::plain();
    let signed = build_image(&registry, "app/signed", "v1", "signed");
    let unsigned = build_image(&registry, "app/unsigned", "v1", "unsigned");
    let rotated = build_image(&registry, "app/rotated", "v1", "rotated");
    let runtime = tokio::runtime::Handle::current();
    let old_key = TestKey::generate();
    tokio::task::block_in_place(|| {
        runtime.block_on(async {
            sign_image(&registry, "app/signed", &signed, key, &SignOptions::default()).await;
            sign_image(&registry, "app/rotated", &rotated, &old_key, &SignOptions::default()).await;
        })
    });
    use sha2::Digest as _;
    let key_fingerprint = format!("sha256:{:x}", sha2::Sha256::digest(key.spki_der()));
    let names = vec![
        ("KEY".to_string(), key_fingerprint),
        ("SIGNED".to_string(), signed.clone()),
        ("UNSIGNED".to_string(), unsigned.clone()),
        ("ROTATED".to_string(), rotated.clone()),
    ];
    (Images { registry, names }, [signed, unsigned, rotated])
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/golden").join(name);
    if std::env::var_os("SIGNET_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(actual, expected, "{name} differs (SIGNET_UPDATE_GOLDEN=1 rewrites it)");
}

fn audit(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["--log-level", "warn", "audit"])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_of_files_one_verification_per_digest() {
    if !require_tools() {
        return;
    }
    let key = TestKey::generate();
    let (images, [_, _, _]) = images(&key);
    let host = images.registry.host();
    let image = |repo: &str| format!("{host}/app/{repo}:v1");

    // `kubectl get pods -A -o json`: 20 pods of the signed image, one with an unsigned
    // sidecar; and a manifest file with a Deployment, a CronJob, a ConfigMap.
    let mut pods: Vec<Value> = (0..20)
        .map(|i| {
            pod(
                if i % 2 == 0 { "shop" } else { "blog" },
                &format!("web-{i:02}"),
                &[("web", &image("signed"))],
            )
        })
        .collect();
    pods.push(pod(
        "shop",
        "cart",
        &[("cart", &image("signed")), ("proxy", &image("unsigned"))],
    ));
    let list = json!({"apiVersion": "v1", "kind": "List", "items": pods});
    let scratch = tempfile::tempdir().unwrap();
    let pods_file = scratch.path().join("pods.json");
    std::fs::write(&pods_file, list.to_string()).unwrap();
    let manifests = [
        templated(
            "apps/v1",
            "Deployment",
            "shop",
            "api",
            "/spec/template/spec",
            &image("signed"),
        ),
        templated(
            "batch/v1",
            "CronJob",
            "batch",
            "report",
            "/spec/jobTemplate/spec/template/spec",
            &image("rotated"),
        ),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "b"}}),
    ]
    .iter()
    .map(|d| serde_json::to_string(d).unwrap())
    .collect::<Vec<_>>()
    .join("\n---\n");
    let manifests_file = scratch.path().join("manifests.yaml");
    std::fs::write(&manifests_file, manifests).unwrap();
    let policies = policy_dir(&[&key_policy("release", &format!("{host}/app/**"), &key.public_pem(), "")]);

    let args = [
        "--file",
        pods_file.to_str().unwrap(),
        "--file",
        manifests_file.to_str().unwrap(),
        "--policy",
        policies.path().to_str().unwrap(),
        "--insecure-registry",
        &host,
    ];
    let (code, table, stderr) = audit(&args, &[]);
    assert_eq!(code, 1, "a failing row exits 1: {stderr}");
    golden("audit-files.txt", &images.normalise(&table));
    let [signed, unsigned, rotated] = [&images.names[1].1, &images.names[2].1, &images.names[3].1];
    assert_eq!(
        images.signature_fetches("app/signed", signed),
        1,
        "23 workloads, one digest"
    );
    assert_eq!(images.signature_fetches("app/unsigned", unsigned), 1);
    assert_eq!(images.signature_fetches("app/rotated", rotated), 1);

    let (code, json_text, _) = audit(&[&args[..], &["-o", "json"]].concat(), &[]);
    assert_eq!(code, 1);
    let document: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(
        document["summary"],
        json!({"error": 0, "fail": 2, "pass": 22, "warn": 0}),
        "{json_text}"
    );
    golden("audit-files.json", &images.normalise(&json_text));

    // Only what passes: exit 0.
    let deployment_file = scratch.path().join("deployment.yaml");
    let deployment = templated(
        "apps/v1",
        "Deployment",
        "shop",
        "api",
        "/spec/template/spec",
        &image("signed"),
    );
    std::fs::write(&deployment_file, deployment.to_string()).unwrap();
    let policy_dir_arg = policies.path().to_str().unwrap();
    let (code, table, stderr) = audit(
        &[
            "--file",
            deployment_file.to_str().unwrap(),
            "--policy",
            policy_dir_arg,
            "--insecure-registry",
            &host,
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}\n{table}");
    // A file that is not YAML: an error, exit 2.
    let broken = scratch.path().join("broken.yaml");
    std::fs::write(&broken, "kind: [").unwrap();
    let (code, _, stderr) = audit(
        &[
            "--file",
            broken.to_str().unwrap(),
            "--policy",
            policies.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not YAML or JSON"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_of_the_cluster_lists_workloads_and_policies() {
    if !require_tools() {
        return;
    }
    let key = TestKey::generate();
    let (images, [_, _, _]) = images(&key);
    let host = images.registry.host();
    let image = |repo: &str| format!("{host}/app/{repo}:v1");
    let api = FakeApiServer::start().await;
    let policy_yaml = key_policy("release", &format!("{host}/app/**"), &key.public_pem(), "");
    let policy: Value = serde_saphyr::from_str(&policy_yaml).unwrap();
    api.apply_policy(policy);
    api.add_workload(pod(
        "shop",
        "cart",
        &[("cart", &image("signed")), ("proxy", &image("unsigned"))],
    ));
    api.add_workload(templated(
        "apps/v1",
        "Deployment",
        "shop",
        "api",
        "/spec/template/spec",
        &image("signed"),
    ));
    // The Deployment's ReplicaSet and Pod: the same images, judged once through the Deployment.
    let mut replica_set = templated(
        "apps/v1",
        "ReplicaSet",
        "shop",
        "api-5d4f",
        "/spec/template/spec",
        &image("signed"),
    );
    replica_set["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api", "controller": true}]);
    api.add_workload(replica_set);
    let mut owned_pod = pod("shop", "api-5d4f-x1", &[("api", &image("signed"))]);
    owned_pod["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-5d4f", "controller": true}]);
    api.add_workload(owned_pod);
    api.add_workload(templated(
        "batch/v1",
        "CronJob",
        "batch",
        "report",
        "/spec/jobTemplate/spec/template/spec",
        &image("rotated"),
    ));
    api.add_workload(templated(
        "apps/v1",
        "DaemonSet",
        "kube-system",
        "agent",
        "/spec/template/spec",
        &image("signed"),
    ));

    let scratch = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(scratch.path());
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let (code, table, stderr) = audit(&["--insecure-registry", &host], &env);
    assert_eq!(code, 1, "{stderr}");
    golden("audit-cluster.txt", &images.normalise(&table));

    // Some namespaces only.
    let (code, table, stderr) = audit(&["--insecure-registry", &host, "-n", "kube-system"], &env);
    assert_eq!(code, 0, "{stderr}\n{table}");
    assert!(table.contains("DaemonSet/agent") && !table.contains("shop"), "{table}");
    assert!(
        api.requests()
            .iter()
            .any(|r| r == "list apps/daemonsets in kube-system"),
        "{:?}",
        api.requests()
    );
}
