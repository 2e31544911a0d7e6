//! Standalone mode: policies from every YAML/JSON file in a folder, reloaded on change.
//!
//! The folder is polled rather than watched with inotify: ConfigMap volumes update through
//! symlink swaps that inotify watchers miss, and a poll of a few small files every two
//! seconds costs nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::policy_text::TextsReceiver;
use crate::api::TrustRoot;
use crate::api::cip::ClusterImagePolicy;
use crate::api::{Document, parse_documents};
use crate::policy::handle::SnapshotHandle;
use crate::policy::program::PolicyTexts;
use crate::policy::snapshot::{PolicySnapshot, RejectedKind, RejectedPolicy};

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("cannot read policy folder {path}: {source}")]
    ReadDir { path: PathBuf, source: std::io::Error },
    #[error("cannot read policy file {path}: {source}")]
    ReadFile { path: PathBuf, source: std::io::Error },
}

/// A policy file's path and text.
type PolicyFile = (PathBuf, String);

/// All policy files in `dir`, sorted, with a fingerprint of their contents.
fn read_folder(dir: &Path) -> Result<(Vec<PolicyFile>, [u8; 32]), FolderError> {
    let entries = std::fs::read_dir(dir).map_err(|source| FolderError::ReadDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| is_policy_file(p))
        .collect();
    paths.sort();
    let mut hasher = Sha256::new();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|source| FolderError::ReadFile {
            path: path.clone(),
            source,
        })?;
        hasher.update(path.to_string_lossy().as_bytes());
        hasher.update(text.as_bytes());
        files.push((path, text));
    }
    Ok((files, hasher.finalize().into()))
}

fn is_policy_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    let policy_extension = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"));
    !hidden && policy_extension && path.is_file()
}

/// Builds a snapshot from policy files; a file that does not parse is reported as a rejected
/// policy named after the file, so an operator sees it in logs and metrics.
pub fn snapshot_from_files(files: &[PolicyFile], texts: &PolicyTexts) -> PolicySnapshot {
    let mut policies: Vec<ClusterImagePolicy> = Vec::new();
    let mut trust_roots: Vec<TrustRoot> = Vec::new();
    let mut unparsable = Vec::new();
    for (path, text) in files {
        match parse_documents(text) {
            Ok(documents) => {
                for document in documents {
                    match document {
                        Document::Policy(policy) => policies.push(policy),
                        Document::TrustRoot(root) => trust_roots.push(root),
                        Document::Other { .. } => {}
                    }
                }
            }
            Err(e) => unparsable.push(RejectedPolicy {
                kind: RejectedKind::File,
                name: path.display().to_string(),
                error: e.to_string(),
            }),
        }
    }
    let mut snapshot = PolicySnapshot::build_with_texts(policies, texts).with_trust_roots(trust_roots);
    snapshot.rejected.extend(unparsable);
    snapshot
}

/// Loads policy files given on the command line (files or folders), with policy texts read
/// so far.
pub fn load_paths(paths: &[PathBuf], texts: &PolicyTexts) -> Result<PolicySnapshot, FolderError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files.extend(read_folder(path)?.0);
        } else {
            let text = std::fs::read_to_string(path).map_err(|source| FolderError::ReadFile {
                path: path.clone(),
                source,
            })?;
            files.push((path.clone(), text));
        }
    }
    Ok(snapshot_from_files(&files, texts))
}

/// Publishes the folder's policies now, then again whenever its contents or the policy texts
/// they reference (`texts`) change.
pub async fn watch_folder(
    dir: PathBuf,
    handle: SnapshotHandle,
    mut texts: TextsReceiver,
    interval: Duration,
) -> Result<(), FolderError> {
    let (mut files, mut fingerprint) = read_folder(&dir)?;
    handle.publish(snapshot_from_files(&files, &texts.borrow_and_update()));
    let mut ticker = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            Ok(()) = texts.changed() => {
                let current_texts = texts.borrow_and_update().clone();
                handle.publish(snapshot_from_files(&files, &current_texts));
                continue;
            }
        }
        match read_folder(&dir) {
            Ok((current_files, current)) if current != fingerprint => {
                fingerprint = current;
                files = current_files;
                tracing::info!(folder = %dir.display(), "policy folder changed; reloading");
                let current_texts = texts.borrow().clone();
                handle.publish(snapshot_from_files(&files, &current_texts));
            }
            Ok(_) => {}
            // Keep serving the last good snapshot; a half-written folder is not a reason to
            // drop every policy.
            Err(e) => {
                tracing::warn!(error = %e, "policy folder unreadable; keeping the last snapshot")
            }
        }
    }
}
