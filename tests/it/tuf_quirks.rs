//! TUF repositories as people publish them, verified by signet's TrustRoot code
//! (`verify_repository_at`, the `mirrorFS` path):
//!
//! - repositories written by python-tuf (`tests/it/support/make_tuf_repo.py`) with tuf-on-ci's
//!   quirks: key IDs that do not cover the keys' `x-tuf-on-ci-*` fields, `meta` entries with
//!   only a version, a leftover snapshot entry for a role no longer delegated, the target in a
//!   delegated role, an expired initial root rotated to a valid one, consistent snapshots;
//! - GitHub's real root chain v8 → v9 (`../shared/fixtures/tuf/github-root-partial/`).
//!
//! `tough`, which signet used before, rejects the quirky key IDs; the tests show that too, so
//! they cannot pass on a repository without the quirk.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use signet::api::trustroot::Repository;
use signet::evidence::tuf::{verify_remote, verify_repository_at};
use signet::verify::trust::TrustRoot;
use support::{MockReply, MockServer};
use time::OffsetDateTime;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A gzipped tar of `dir` under `repository/`, as policy-controller packs `mirrorFS`.
fn mirror_fs(dir: &Path) -> String {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all("repository", dir).expect("tar the repository");
    b64(&tar.into_inner().unwrap().finish().unwrap())
}

fn repository(root: &[u8], dir: &Path) -> Repository {
    Repository {
        root: Some(b64(root)),
        mirror_fs: Some(mirror_fs(dir)),
        ..Repository::default()
    }
}

/// Writes a python-tuf repository for `target` into a fresh folder.
fn python_tuf_repo(target: &Path, plain: bool) -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/make_tuf_repo.py");
    let mut command = Command::new(support::python());
    command.arg(&script).arg(dir.path()).arg(target);
    if plain {
        command.arg("--plain");
    }
    let output = command.output().expect("run make_tuf_repo.py");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No module named") {
            support::skip_or_fail(&format!("python-tuf is not installed: {stderr}"));
            return None;
        }
        panic!("make_tuf_repo.py failed: {stderr}");
    }
    Some(dir)
}

fn public_good_trusted_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("trust/public-good-trusted_root.json")
}

/// What tough says of the repository in `dir` (it loads from files directly).
async fn tough_load(root: &[u8], dir: &Path) -> Result<(), String> {
    let base = reqwest::Url::from_directory_path(dir).unwrap();
    let targets = base.join("targets/").unwrap();
    tough::RepositoryLoader::new(&root, base, targets)
        .load()
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn python_tuf_repositories_with_tuf_on_ci_quirks_are_verified() {
    let target = public_good_trusted_root();
    let expected = TrustRoot::from_json(&std::fs::read(&target).unwrap()).unwrap();
    for plain in [true, false] {
        let Some(repo) = python_tuf_repo(&target, plain) else {
            return;
        };
        let root = std::fs::read(repo.path().join("1.root.json")).unwrap();
        let verified = verify_repository_at(&repository(&root, repo.path()), OffsetDateTime::now_utc())
            .await
            .unwrap_or_else(|e| panic!("plain={plain}: {e}"));
        assert_eq!(verified.trust.tlogs.len(), expected.tlogs.len(), "plain={plain}");
        assert_eq!(
            verified.trust.certificate_authorities.len(),
            expected.certificate_authorities.len(),
            "plain={plain}"
        );
        let left = verified.tuf_expires - OffsetDateTime::now_utc();
        if plain {
            assert!(left > time::Duration::days(29), "plain: {left}");
        } else {
            // The delegated role signing the target expires in 2 days, before all others.
            assert!(
                left > time::Duration::days(1) && left <= time::Duration::days(2),
                "quirks: {left}"
            );
        }
        let tough = tough_load(&root, repo.path()).await;
        if plain {
            assert_eq!(tough, Ok(()), "the control repository has no quirk tough trips on");
        } else {
            let err = tough.expect_err("tough rejects tuf-on-ci key IDs");
            assert!(err.contains("key ID"), "{err}");
        }
    }
}

#[tokio::test]
async fn a_tampered_quirky_repository_is_still_refused() {
    let Some(repo) = python_tuf_repo(&public_good_trusted_root(), false) else {
        return;
    };
    let root = std::fs::read(repo.path().join("1.root.json")).unwrap();
    // The delegated role's signature no longer matches once its signed body changes.
    let path = repo.path().join("1.sigstore.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"length\": "), "{text}");
    std::fs::write(&path, text.replacen("\"length\": ", "\"length\": 1", 1)).unwrap();
    let err = verify_repository_at(&repository(&root, repo.path()), OffsetDateTime::now_utc())
        .await
        .expect_err("a delegated role whose signed body changed is refused");
    assert!(err.to_string().contains("threshold"), "{err}");
}

#[tokio::test]
async fn github_root_chain_v8_to_v9_is_followed() {
    let Some(fixtures) = support::fixtures_dir() else {
        return;
    };
    let chain = fixtures.join("tuf/github-root-partial");
    let v8 = std::fs::read(chain.join("8.root.json")).unwrap();
    let v9 = std::fs::read(chain.join("9.root.json")).unwrap();
    // Within v9's validity (it expires 2027-01-28); v8 expired on 2026-08-01.
    let at = OffsetDateTime::from_unix_timestamp(1_790_000_000).unwrap(); // 2026-09-21
    // GitHub publishes no timestamp/snapshot/targets anywhere public, so the walk can only
    // get as far as the timestamp: reaching it means v8 → v9 was accepted.
    let mirror = tempfile::tempdir().unwrap();
    std::fs::write(mirror.path().join("9.root.json"), &v9).unwrap();
    let err = verify_repository_at(&repository(&v8, mirror.path()), at)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timestamp.json not found"), "{err}");
    // Without 9.root.json the expired v8 is final, and refused as expired.
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("placeholder"), b"").unwrap();
    let err = verify_repository_at(&repository(&v8, empty.path()), at)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("root metadata expired"), "{err}");
    // tough cannot even read GitHub's root (tuf-on-ci key IDs).
    let err = tough_load(&v8, mirror.path())
        .await
        .expect_err("tough rejects GitHub's root");
    assert!(err.contains("key ID"), "{err}");
}

/// Serves `dir` over HTTP; `timestamp.json` is whichever file `timestamp` names.
async fn serve_mirror(dir: PathBuf, timestamp: Arc<Mutex<&'static str>>) -> MockServer {
    MockServer::start(move |request| {
        let name = request.path.trim_start_matches('/');
        let name = if name == "timestamp.json" {
            *timestamp.lock().unwrap()
        } else {
            name
        };
        match std::fs::read(dir.join(name)) {
            Ok(bytes) => MockReply::with_body(200, bytes),
            Err(_) => MockReply::status(404),
        }
    })
    .await
}

#[tokio::test]
async fn a_remote_mirror_cannot_roll_a_refresher_back() {
    let Some(repo) = python_tuf_repo(&public_good_trusted_root(), false) else {
        return;
    };
    let root = std::fs::read(repo.path().join("1.root.json")).unwrap();
    let timestamp = Arc::new(Mutex::new("timestamp.v2.json"));
    let mirror = serve_mirror(repo.path().to_path_buf(), timestamp.clone()).await;
    let remote = signet::api::trustroot::Remote {
        root: Some(b64(&root)),
        mirror: Some(format!("http://{}", mirror.host())),
        ..Default::default()
    };
    let seen = Arc::new(sigstore_tuf::MemoryStore::new());
    verify_remote(&remote, seen.clone())
        .await
        .expect("timestamp v2 verifies");
    // The mirror now serves the older, still unexpired timestamp v1.
    *timestamp.lock().unwrap() = "timestamp.json";
    let err = verify_remote(&remote, seen.clone())
        .await
        .expect_err("a rollback to v1 is refused");
    assert!(err.to_string().contains("rollback"), "{err}");
    // A client that never saw v2 accepts v1: what protects is the refresher's memory.
    verify_remote(&remote, Arc::new(sigstore_tuf::MemoryStore::new()))
        .await
        .expect("v1 alone verifies");
}
