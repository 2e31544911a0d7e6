//! Reads the policy texts that ClusterImagePolicies keep outside themselves: `configMapRef`
//! (a ConfigMap key in signet's namespace, re-read every refresh so an edit takes effect) and
//! `remote` (an HTTP(S) URL whose body must match `sha256sum`, fetched until it does and then
//! kept: the digest pins it). All of it happens in the background, never on the admission
//! path; the snapshot builders recompile when a text changes, and until a text is read its
//! policy denies with the reason.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sha2::Digest;
use tokio::sync::watch;

use crate::cluster::ClusterAccess;
use crate::policy::handle::SnapshotHandle;
use crate::policy::program::{PolicySource, PolicyTexts};
use crate::registry::error_chain;

/// Policy texts larger than this are refused: a policy is a few kilobytes of Rego.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;
/// One fetch of a remote policy, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The texts read so far, shared with the snapshot builders.
pub type TextsSender = watch::Sender<Arc<PolicyTexts>>;
pub type TextsReceiver = watch::Receiver<Arc<PolicyTexts>>;

/// A channel for policy texts, empty at first.
pub fn texts_channel() -> (TextsSender, TextsReceiver) {
    watch::channel(Arc::new(PolicyTexts::new()))
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyTextError {
    #[error("cannot build the HTTP client for remote policies: {0}")]
    Client(String),
}

/// Reads policy texts from ConfigMaps (in a cluster) and URLs.
#[derive(Clone)]
pub struct PolicyTextReader {
    http: reqwest::Client,
    cluster: Option<ClusterAccess>,
}

impl PolicyTextReader {
    pub fn new(cluster: Option<ClusterAccess>) -> Result<Self, PolicyTextError> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| PolicyTextError::Client(error_chain(&e)))?;
        Ok(PolicyTextReader { http, cluster })
    }

    /// Reads every source in `sources`. A remote text read before is kept without fetching
    /// (its digest pins it), and so is a ConfigMap text when the API server cannot be reached
    /// (a missing ConfigMap or key is not kept: it was deleted).
    pub async fn read_all(&self, sources: &BTreeSet<PolicySource>, previous: &PolicyTexts) -> PolicyTexts {
        let reads = sources.iter().map(|source| async move {
            let earlier = previous.get(source).and_then(|r| r.as_ref().ok());
            let result = match (source, earlier) {
                (PolicySource::Remote { .. }, Some(text)) => Ok(text.clone()),
                _ => match self.read(source).await {
                    Err(Unreadable::Transient(why)) if earlier.is_some() => {
                        tracing::warn!(source = %source, error = %why, "cannot re-read a policy text; keeping the last one");
                        Ok(earlier.cloned().unwrap_or_default())
                    }
                    Err(e) => {
                        tracing::warn!(source = %source, error = %e.reason(), "cannot read a policy text; its policy denies until it can");
                        Err(e.reason().to_string())
                    }
                    Ok(text) => Ok(text),
                },
            };
            (source.clone(), result)
        });
        futures::future::join_all(reads).await.into_iter().collect()
    }

    async fn read(&self, source: &PolicySource) -> Result<String, Unreadable> {
        match source {
            PolicySource::ConfigMap { namespace, name, key } => {
                self.read_config_map(namespace.as_deref(), name, key).await
            }
            PolicySource::Remote { url, sha256 } => self.fetch(url, sha256).await,
        }
    }

    async fn read_config_map(&self, namespace: Option<&str>, name: &str, key: &str) -> Result<String, Unreadable> {
        let Some(cluster) = &self.cluster else {
            return Err(Unreadable::Permanent(format!(
                "ConfigMap {name:?} cannot be read: signet is not running in a cluster (--policy-dir)"
            )));
        };
        let own = cluster.namespace();
        if let Some(other) = namespace.filter(|ns| *ns != own) {
            return Err(Unreadable::Permanent(format!(
                "ConfigMap {other}/{name}: signet reads policy ConfigMaps only from its own namespace {own:?}"
            )));
        }
        let data = match cluster.config_map(own, name).await {
            Ok(Some(data)) => data,
            Ok(None) => return Err(Unreadable::Permanent(format!("ConfigMap {own}/{name} not found"))),
            Err(e) => return Err(Unreadable::Transient(e.to_string())),
        };
        match data.get(key) {
            Some(text) if text.len() > MAX_POLICY_BYTES => Err(Unreadable::Permanent(format!(
                "ConfigMap {own}/{name} key {key:?} is larger than {MAX_POLICY_BYTES} bytes"
            ))),
            Some(text) if !text.trim().is_empty() => Ok(text.clone()),
            _ => Err(Unreadable::Permanent(format!(
                "ConfigMap {own}/{name} has no key {key:?} (keys: {})",
                data.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    async fn fetch(&self, url: &str, sha256: &str) -> Result<String, Unreadable> {
        let failed = |detail: String| Unreadable::Transient(format!("fetching {url}: {detail}"));
        let response = self.http.get(url).send().await.map_err(|e| failed(error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(failed(format!("HTTP {status}")));
        }
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            body.extend_from_slice(&chunk.map_err(|e| failed(error_chain(&e)))?);
            if body.len() > MAX_POLICY_BYTES {
                return Err(failed(format!("the body is larger than {MAX_POLICY_BYTES} bytes")));
            }
        }
        let found = format!("{:x}", sha2::Sha256::digest(&body));
        if found != sha256 {
            return Err(failed(format!(
                "its sha256 is {found}, the policy's sha256sum is {sha256}"
            )));
        }
        String::from_utf8(body).map_err(|_| Unreadable::Permanent(format!("{url}: the policy text is not UTF-8")))
    }
}

/// Why a text could not be read: `Transient` keeps an earlier good text, `Permanent` does not.
enum Unreadable {
    Transient(String),
    Permanent(String),
}

impl Unreadable {
    fn reason(&self) -> &str {
        match self {
            Unreadable::Transient(why) | Unreadable::Permanent(why) => why,
        }
    }
}

/// Runs until the process ends: reads the sources the current snapshot names whenever that
/// set changes and every `refresh`, and sends the texts when they differ from the last ones.
/// (A snapshot rebuilt only because texts arrived names the same sources: no second read.)
pub async fn keep_read(snapshots: SnapshotHandle, reader: PolicyTextReader, texts: TextsSender, refresh: Duration) {
    let mut read_sources: Option<BTreeSet<PolicySource>> = None;
    let mut last_read = Instant::now();
    let mut published = snapshots.subscribe();
    loop {
        let current = snapshots.load();
        let changed = read_sources.as_ref() != Some(&current.policy_sources);
        let due = last_read.elapsed() >= refresh;
        let idle = current.policy_sources.is_empty() && texts.borrow().is_empty();
        if (changed || due) && !idle {
            let previous = texts.borrow().clone();
            let read = reader.read_all(&current.policy_sources, &previous).await;
            last_read = Instant::now();
            if read != *previous {
                tracing::info!(sources = read.len(), "policy texts changed; recompiling policies");
                texts.send_replace(Arc::new(read));
            }
        }
        read_sources = Some(current.policy_sources.clone());
        // Woken by a new snapshot (its sources may differ) or, with sources to read, when the
        // refresh is due; nothing is polled.
        let until_due = refresh.saturating_sub(last_read.elapsed());
        tokio::select! {
            _ = published.changed() => {}
            () = tokio::time::sleep(until_due), if !idle => {}
        }
    }
}
