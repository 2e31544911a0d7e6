//! Runs the real `signet` binary as a webhook on loopback and talks to it over real HTTPS.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct Signet {
    child: Child,
    pub webhook: String,
    pub admin: String,
    pub ca_pem: Vec<u8>,
    pub log: PathBuf,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// The binary under test: this build's, or `SIGNET_TEST_BINARY` (e.g. a release build, for
/// figures).
pub fn signet_binary() -> PathBuf {
    std::env::var_os("SIGNET_TEST_BINARY").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_signet")), PathBuf::from)
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

pub fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Writes `policies` (YAML documents) into a fresh folder, one file each.
pub fn policy_dir(policies: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, policy) in policies.iter().enumerate() {
        std::fs::write(dir.path().join(format!("policy-{i}.yaml")), policy).expect("write policy");
    }
    dir
}

impl Signet {
    /// Starts `signet serve --policy-dir DIR` with a generated certificate and waits until
    /// it is ready.
    pub async fn start(policy_dir: &Path, extra_args: &[&str]) -> Signet {
        let mut args = vec!["--policy-dir", policy_dir.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra_args);
        let signet = Signet::spawn(&args, &[]);
        signet.wait_ready().await;
        signet
    }

    /// Starts `signet serve ARGS` (with ENVS) on free loopback ports without waiting.
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Signet {
        Signet::launch(args, envs, None)
    }

    /// Like [`Signet::spawn`] for a server given `--tls-cert`/`--tls-key` signed by `ca_pem`.
    pub fn spawn_with_ca(args: &[&str], ca_pem: Vec<u8>) -> Signet {
        Signet::launch(args, &[], Some(ca_pem))
    }

    fn launch(args: &[&str], envs: &[(&str, &str)], known_ca: Option<Vec<u8>>) -> Signet {
        install_crypto();
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_path = dir.path().join("ca.pem");
        let log = dir.path().join("signet.log");
        // Both listeners are held at once, so the two ports differ (two free_port() calls
        // can be handed the same port, and signet then fails with "address in use").
        let (webhook_port, admin_port) = {
            let webhook = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
            let admin = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
            let port = |l: &TcpListener| l.local_addr().expect("local addr").port();
            (port(&webhook), port(&admin))
        };
        let child = Command::new(signet_binary())
            .args(["serve", "--listen", &format!("127.0.0.1:{webhook_port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .arg("--tls-ca-out")
            .arg(&ca_path)
            .args(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn signet");
        let admin = format!("http://127.0.0.1:{admin_port}");
        // Without a known CA, signet writes its generated one before it listens.
        let deadline = Instant::now() + Duration::from_secs(20);
        let ca_pem = loop {
            if let Some(pem) = &known_ca {
                break pem.clone();
            }
            match std::fs::read(&ca_path) {
                Ok(pem) if !pem.is_empty() => break pem,
                _ if Instant::now() > deadline => {
                    panic!(
                        "signet wrote no CA: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    )
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let client = https_client(&ca_pem);
        Signet {
            child,
            webhook: format!("https://localhost:{webhook_port}"),
            admin,
            ca_pem,
            log,
            client,
            _dir: dir,
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        wait_for(&format!("{}/readyz", self.admin), &self.log).await;
    }

    /// POSTs `body` to `/mutate` or `/validate` and returns status and parsed JSON (or the
    /// text for non-JSON answers, as a JSON string).
    pub async fn post(&self, endpoint: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/{endpoint}", self.webhook))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("webhook answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    /// Sends an AdmissionReview and returns its `response`, checking the uid is echoed.
    pub async fn review(&self, endpoint: &str, review: &Value) -> Value {
        let (status, answer) = self.post(endpoint, review.to_string()).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["kind"], "AdmissionReview");
        let uid = review["request"]["uid"].as_str().unwrap_or_default();
        assert_eq!(answer["response"]["uid"], uid, "uid must be echoed");
        answer["response"].clone()
    }

    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("{}{path}", self.admin))
            .await
            .expect("admin answers");
        (response.status().as_u16(), response.text().await.unwrap_or_default())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "signet did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Signet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn https_client(ca_pem: &[u8]) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(ca_pem).expect("CA PEM");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(30))
        .build()
        .expect("https client")
}

async fn wait_for(url: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match reqwest::get(url).await {
            Ok(response) if response.status().is_success() => return,
            Ok(_) => {}
            Err(e) if Instant::now() + Duration::from_millis(100) > deadline => eprintln!("{e:?}"),
            Err(_) => {}
        }
        assert!(
            Instant::now() < deadline,
            "signet did not become ready: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An AdmissionReview for `object` of `resource` (`group`, `version`, `resource`, `kind`).
pub fn review_for(uid: &str, resource: (&str, &str, &str, &str), operation: &str, object: Value) -> Value {
    let (group, version, plural, kind) = resource;
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": plural},
            "namespace": "default",
            "operation": operation,
            "userInfo": {"username": "test"},
            "object": object,
        }
    })
}

/// A Pod AdmissionReview running `images` as containers c0, c1, …
pub fn pod_review(uid: &str, images: &[&str]) -> Value {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    review_for(
        uid,
        ("", "v1", "pods", "Pod"),
        "CREATE",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": containers}}),
    )
}

/// The JSON Patch of a response, decoded from its base64 string.
pub fn decoded_patch(response: &Value) -> Vec<Value> {
    use base64::Engine as _;
    let Some(encoded) = response["patch"].as_str() else {
        return Vec::new();
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("patch is base64");
    serde_json::from_slice(&bytes).expect("patch is a JSON array")
}

pub fn static_policy(name: &str, glob: &str, action: &str, mode: &str) -> String {
    format!(
        "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: {name}\nspec:\n  mode: {mode}\n  images:\n  - glob: \"{glob}\"\n  authorities:\n  - static:\n      action: {action}\n      message: {name} says {action}\n"
    )
}

/// `text` with every line indented by `spaces`, for a YAML block scalar.
pub fn indent(text: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// A ClusterImagePolicy over `glob` with a passing static authority and a Rego `spec.policy`
/// whose other fields are `policy_fields` (YAML indented four spaces: `data: |`, `remote:`,
/// `configMapRef:`, `fetchConfigFile:`).
pub fn static_rego_policy(name: &str, glob: &str, policy_fields: &str) -> String {
    format!(
        "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: {name}\nspec:\n  images:\n  - glob: \"{glob}\"\n  authorities:\n  - static:\n      action: pass\n  policy:\n    type: rego\n{policy_fields}"
    )
}

/// A ClusterImagePolicy with one `key` authority named `release-key`; `extra` is appended
/// to the authority (YAML indented four spaces).
pub fn key_policy(name: &str, glob: &str, public_pem: &str, extra: &str) -> String {
    let indented = indent(public_pem, 8);
    format!(
        "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: {name}\nspec:\n  images:\n  - glob: \"{glob}\"\n  authorities:\n  - name: release-key\n    key:\n      data: |\n{indented}{extra}"
    )
}

/// Decides `image` through `/validate` and through `signet verify` with the same policies
/// and `args`; they must agree. Returns (allowed, the webhook's denial message).
pub async fn decide(signet: &Signet, policies: &Path, image: &str, args: &[&str]) -> (bool, String) {
    let response = signet.review("validate", &pod_review("u", &[image])).await;
    let output = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["--log-level", "warn", "verify", image, "--policy"])
        .arg(policies)
        .args(args)
        .output()
        .expect("signet verify");
    let allowed = response["allowed"] == true;
    assert_eq!(
        output.status.success(),
        allowed,
        "webhook and CLI disagree: {response}\n{output:?}"
    );
    let message = response["status"]["message"].as_str().unwrap_or_default().to_string();
    if !allowed {
        let cli = String::from_utf8_lossy(&output.stdout);
        assert!(cli.contains("denied"), "{cli}");
    }
    (allowed, message)
}

pub fn assert_allowed(outcome: &(bool, String)) {
    assert!(outcome.0, "expected admission: {}", outcome.1);
}

/// `/validate`'s answer for a pod running `image`: allowed, and the denial message.
pub async fn validate(signet: &Signet, image: &str) -> (bool, String) {
    let response = signet.review("validate", &pod_review("u", &[image])).await;
    let message = response["status"]["message"].as_str().unwrap_or_default().to_string();
    (response["allowed"] == true, message)
}

/// `/validate`'s answer once it admits `image`, or the last one after `seconds` (for what
/// signet fetches in the background: KMS keys, TUF trust roots).
pub async fn admitted_within(signet: &Signet, image: &str, seconds: u64) -> (bool, String) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let outcome = validate(signet, image).await;
        if outcome.0 || Instant::now() > deadline {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether `check` holds within `seconds` (polled every 100 ms).
pub async fn eventually(seconds: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check()
}

pub fn assert_denied(outcome: &(bool, String), fragments: &[&str]) {
    assert!(!outcome.0, "expected a denial, the image was admitted: {}", outcome.1);
    for fragment in fragments {
        assert!(outcome.1.contains(fragment), "{fragment:?} missing from: {}", outcome.1);
    }
}
