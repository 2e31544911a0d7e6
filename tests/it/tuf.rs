//! TUF-based `TrustRoot` resources end to end. Real TUF repositories are built with tough's
//! own editor (ed25519 keys, consistent snapshots) around the local `@sigstore/mock`
//! `trusted_root.json`; images are keyless-signed against that mock; every decision goes
//! through the real `signet` binary's `/validate` over HTTPS.
//!
//! - `repository`: the repository travels in `mirrorFS` (gzipped tar, as policy-controller
//!   packs it) and is verified offline; expired and tampered repositories are denied.
//! - `remote`: the same repository served over HTTP on loopback and fetched in the
//!   background; an unreachable mirror is denied while the webhook keeps answering.

use crate::signet_server;
use crate::support;

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use base64::Engine as _;
use serde_json::json;
use signet_server::{Signet, free_port, pod_review, policy_dir};
use support::{MockReply, MockServer, MockSigstore, Registry, build_image, require_tools, sign_keyless};
use tough::editor::RepositoryEditor;
use tough::editor::signed::{PathExists, SignedRole};
use tough::key_source::{KeySource, LocalKeySource};
use tough::schema::{KeyHolder, RoleKeys, RoleType, Root};
use tough::sign::Sign as _;

const ISSUER: &str = "https://oidc.test.local";
const IDENTITY: &str = "alice@example.com";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// An RFC 3339 time `offset` seconds from now, as whatever timestamp type tough wants
/// (it is `jiff::Timestamp`; going through serde avoids depending on jiff here).
fn at<T: serde::de::DeserializeOwned>(offset: i64) -> T {
    let time = time::OffsetDateTime::from_unix_timestamp(now() + offset).unwrap();
    let text = time.format(&time::format_description::well_known::Rfc3339).unwrap();
    serde_json::from_value(json!(text)).unwrap()
}

/// Expiry (seconds from now) of each TUF role.
pub(crate) struct Expiry {
    root: i64,
    timestamp: i64,
}

pub(crate) const VALID: Expiry = Expiry {
    root: 365 * 86_400,
    timestamp: 20 * 86_400,
};

/// A signed TUF repository on disk: `root.json` (the initial root to trust) and
/// `repository/` (metadata at the top, targets under `targets/`).
pub(crate) struct TufRepo {
    dir: tempfile::TempDir,
    pub(crate) root_json: Vec<u8>,
}

impl TufRepo {
    pub(crate) async fn build(target_name: &str, target: &[u8], expiry: Expiry) -> TufRepo {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("key.pk8");
        let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        std::fs::write(&key_path, pkcs8.as_ref()).unwrap();
        let keys: Vec<Box<dyn KeySource>> = vec![Box::new(LocalKeySource { path: key_path })];

        let root = root_metadata(pkcs8.as_ref(), expiry.root);
        let signed_root = SignedRole::new(root.clone(), &KeyHolder::Root(root), &keys, &SystemRandom::new())
            .await
            .unwrap();
        let root_path = dir.path().join("root.json");
        std::fs::write(&root_path, signed_root.buffer()).unwrap();

        let input = dir.path().join("input");
        std::fs::create_dir(&input).unwrap();
        std::fs::write(input.join(target_name), target).unwrap();
        let mut editor = RepositoryEditor::new(&root_path).await.unwrap();
        editor.add_target_path(input.join(target_name)).await.unwrap();
        let one = NonZeroU64::new(1).unwrap();
        editor
            .snapshot_version(one)
            .snapshot_expires(at(VALID.root))
            .timestamp_version(one)
            .timestamp_expires(at(expiry.timestamp));
        editor
            .targets_version(one)
            .unwrap()
            .targets_expires(at(VALID.root))
            .unwrap();
        let signed = editor.sign(&keys).await.unwrap();
        let repository = dir.path().join("repository");
        signed.write(&repository).await.unwrap();
        signed
            .copy_targets(&input, repository.join("targets"), PathExists::Fail)
            .await
            .unwrap();
        TufRepo {
            dir,
            root_json: signed_root.buffer().clone(),
        }
    }

    pub(crate) fn repository(&self) -> PathBuf {
        self.dir.path().join("repository")
    }

    /// Replaces every stored copy of the target with other bytes (the metadata still names
    /// the original's length and hash).
    fn tamper_targets(&self, bytes: &[u8]) {
        for entry in std::fs::read_dir(self.repository().join("targets")).unwrap() {
            std::fs::write(entry.unwrap().path(), bytes).unwrap();
        }
    }

    /// `mirrorFS` as policy-controller writes it: gzip of a tar of `repository/`.
    fn mirror_fs(&self) -> String {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        tar.append_dir_all("repository", self.repository()).unwrap();
        b64(&tar.into_inner().unwrap().finish().unwrap())
    }
}

/// A version-1 root with one ed25519 key for every role.
fn root_metadata(pkcs8: &[u8], expires_in: i64) -> Root {
    let key = tough::sign::parse_keypair(pkcs8).unwrap().tuf_key();
    let key_id = key.key_id().unwrap();
    let role = || RoleKeys {
        keyids: vec![key_id.clone()],
        threshold: NonZeroU64::new(1).unwrap(),
        _extra: HashMap::new(),
    };
    let roles = [
        RoleType::Root,
        RoleType::Snapshot,
        RoleType::Targets,
        RoleType::Timestamp,
    ]
    .into_iter()
    .map(|r| (r, role()))
    .collect();
    Root {
        spec_version: "1.0.0".to_string(),
        consistent_snapshot: true,
        version: NonZeroU64::new(1).unwrap(),
        expires: at(expires_in),
        keys: HashMap::from([(key_id.clone(), key)]),
        roles,
        _extra: HashMap::new(),
    }
}

fn repository_trust_root(repo: &TufRepo) -> String {
    format!(
        "apiVersion: policy.sigstore.dev/v1alpha1\nkind: TrustRoot\nmetadata:\n  name: tuf\nspec:\n  repository:\n    root: {}\n    mirrorFS: {}\n    targets: targets\n",
        b64(&repo.root_json),
        repo.mirror_fs()
    )
}

fn remote_trust_root(repo: &TufRepo, mirror: &str) -> String {
    format!(
        "apiVersion: policy.sigstore.dev/v1alpha1\nkind: TrustRoot\nmetadata:\n  name: tuf\nspec:\n  remote:\n    root: {}\n    mirror: {mirror}\n",
        b64(&repo.root_json)
    )
}

fn policy() -> String {
    format!(
        "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: tuf\nspec:\n  images:\n  - glob: \"**\"\n  authorities:\n  - name: ci\n    keyless:\n      trustRootRef: tuf\n      identities:\n      - subject: \"{IDENTITY}\"\n        issuer: \"{ISSUER}\"\n"
    )
}

/// A registry with one image keyless-signed against the mock.
struct Setup {
    mock: MockSigstore,
    registry: Registry,
    image: String,
}

fn setup() -> Option<Setup> {
    if !require_tools() {
        return None;
    }
    let mock = MockSigstore::start()?;
    let registry = Registry::plain();
    build_image(&registry, "tuf/app", "v1", "t");
    sign_keyless(&registry, "tuf/app", "v1", &mock, IDENTITY, ISSUER);
    let image = format!("{}/tuf/app:v1", registry.host());
    Some(Setup { mock, registry, image })
}

impl Setup {
    fn trusted_root(&self) -> Vec<u8> {
        self.mock.trusted_root().to_string().into_bytes()
    }

    async fn signet(&self, documents: &[&str]) -> (Signet, tempfile::TempDir) {
        let dir = policy_dir(documents);
        let signet = Signet::start(dir.path(), &["--insecure-registry", &self.registry.host()]).await;
        (signet, dir)
    }

    /// `/validate`'s answer: allowed, and the denial message.
    async fn validate(&self, signet: &Signet) -> (bool, String) {
        let response = signet.review("validate", &pod_review("u", &[&self.image])).await;
        let message = response["status"]["message"].as_str().unwrap_or_default().to_string();
        (response["allowed"] == true, message)
    }

    /// `signet verify` (no webhook): the repository is verified on the spot.
    fn cli_verify(&self, policies: &Path) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_signet"))
            .args(["--log-level", "warn", "verify", &self.image, "--policy"])
            .arg(policies)
            .args(["--insecure-registry", &self.registry.host()])
            .output()
            .unwrap()
    }
}

fn assert_denied(outcome: &(bool, String), fragments: &[&str]) {
    assert!(!outcome.0, "expected a denial");
    for fragment in fragments {
        assert!(outcome.1.contains(fragment), "{fragment:?} missing from: {}", outcome.1);
    }
}

/// The value of the trust-root expiry gauge once it equals `want`, or the last one seen.
async fn expiry_metric(signet: &Signet, want: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, text) = signet.admin_get("/metrics").await;
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix("signet_trust_root_expiry_timestamp_seconds "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_default() as i64;
        if value == want || Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn tuf_repository_in_mirror_fs() {
    let Some(setup) = setup() else { return };
    let started = now();

    // A valid repository whose trusted_root.json is the mock's: admitted, by the webhook
    // and by `signet verify`; the expiry metric follows the TUF timestamp's expiry.
    let repo = TufRepo::build("trusted_root.json", &setup.trusted_root(), VALID).await;
    let (signet, dir) = setup.signet(&[&policy(), &repository_trust_root(&repo)]).await;
    let outcome = setup.validate(&signet).await;
    assert!(outcome.0, "valid TUF repository: {}\n{}", outcome.1, signet.logs());
    let cli = setup.cli_verify(dir.path());
    assert!(cli.status.success(), "signet verify: {cli:?}");
    let metric = expiry_metric(&signet, started + VALID.timestamp).await;
    assert!(
        (started + VALID.timestamp..=now() + VALID.timestamp).contains(&metric),
        "expiry metric {metric} is not the TUF timestamp's expiry"
    );
    drop(signet);

    // The initial root has expired: TUF refuses the whole repository.
    let expired_root = Expiry { root: -3600, ..VALID };
    let repo = TufRepo::build("trusted_root.json", &setup.trusted_root(), expired_root).await;
    let (signet, _dir) = setup.signet(&[&policy(), &repository_trust_root(&repo)]).await;
    assert_denied(
        &setup.validate(&signet).await,
        &["TrustRoot \"tuf\": TUF repository: TUF metadata has expired (root metadata expired at "],
    );
    drop(signet);

    // The timestamp has expired (a frozen repository): denied too.
    let expired_timestamp = Expiry {
        timestamp: -60,
        ..VALID
    };
    let repo = TufRepo::build("trusted_root.json", &setup.trusted_root(), expired_timestamp).await;
    let (signet, _dir) = setup.signet(&[&policy(), &repository_trust_root(&repo)]).await;
    assert_denied(
        &setup.validate(&signet).await,
        &["TUF metadata has expired (timestamp metadata expired at "],
    );
    drop(signet);

    // The target was swapped after signing (same name, other bytes): hash mismatch.
    let repo = TufRepo::build("trusted_root.json", &setup.trusted_root(), VALID).await;
    let mut forged = setup.mock.trusted_root();
    forged["tlogs"] = json!([]);
    repo.tamper_targets(forged.to_string().as_bytes());
    let (signet, _dir) = setup.signet(&[&policy(), &repository_trust_root(&repo)]).await;
    let outcome = setup.validate(&signet).await;
    assert_denied(
        &outcome,
        &["target \"trusted_root.json\" is not usable: trusted_root.json: length"],
    );
    drop(signet);

    // A repository without the trusted root target, and one with a custom target name.
    let repo = TufRepo::build("other.json", &setup.trusted_root(), VALID).await;
    let (signet, _dir) = setup.signet(&[&policy(), &repository_trust_root(&repo)]).await;
    assert_denied(
        &setup.validate(&signet).await,
        &["target \"trusted_root.json\" is not listed in the TUF targets metadata"],
    );
    drop(signet);
    let custom = repository_trust_root(&repo) + "    trustedRootTarget: other.json\n";
    let (signet, _dir) = setup.signet(&[&policy(), &custom]).await;
    let outcome = setup.validate(&signet).await;
    assert!(outcome.0, "trustedRootTarget: {}", outcome.1);
}

/// Serves `repository/` like a static TUF mirror; 404 for anything else.
pub(crate) async fn mirror_server(repository: PathBuf) -> MockServer {
    MockServer::start(move |request| {
        let path = request
            .path
            .split('?')
            .next()
            .unwrap_or_default()
            .trim_start_matches('/');
        if path.contains("..") {
            return MockReply::status(400);
        }
        match std::fs::read(repository.join(path)) {
            Ok(bytes) => MockReply::with_body(200, bytes),
            Err(_) => MockReply::status(404),
        }
    })
    .await
}

#[tokio::test]
async fn tuf_remote_mirror_fetched_in_the_background() {
    let Some(setup) = setup() else { return };
    let repo = TufRepo::build("trusted_root.json", &setup.trusted_root(), VALID).await;

    // Unreachable mirror: signet starts and answers, denying with the reason.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let (signet, _dir) = setup.signet(&[&policy(), &remote_trust_root(&repo, &closed)]).await;
    let outcome = setup.validate(&signet).await;
    assert_denied(
        &outcome,
        &[&format!(
            "TrustRoot \"tuf\": the TUF mirror {closed} has not been fetched yet"
        )],
    );
    // Once the first attempt failed, the reason says why.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let outcome = setup.validate(&signet).await;
    assert_denied(&outcome, &["has not been fetched yet: TUF verification failed"]);
    let (status, _) = signet.admin_get("/readyz").await;
    assert_eq!(status, 200);
    drop(signet);

    // A real mirror on loopback: admitted once the background fetch verified it.
    let mirror = mirror_server(repo.repository()).await;
    let url = format!("http://{}", mirror.host());
    let (signet, _dir) = setup.signet(&[&policy(), &remote_trust_root(&repo, &url)]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let outcome = loop {
        let outcome = setup.validate(&signet).await;
        if outcome.0 || Instant::now() > deadline {
            break outcome;
        }
        assert!(outcome.1.contains("has not been fetched yet"), "{}", outcome.1);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(outcome.0, "remote mirror: {}\n{}", outcome.1, signet.logs());
    assert!(mirror.count("/timestamp.json") >= 1, "{:?}", mirror.requests());
    assert!(mirror.count("/targets/") >= 1, "{:?}", mirror.requests());
    // Admissions do not fetch: the mirror sees no new requests for more reviews.
    let requests = mirror.requests().len();
    for _ in 0..3 {
        assert!(setup.validate(&signet).await.0);
    }
    assert_eq!(mirror.requests().len(), requests);
}
