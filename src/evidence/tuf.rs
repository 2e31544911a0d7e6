//! TUF-distributed trust roots: policy-controller's `TrustRoot` `repository` (a TUF
//! repository shipped inside the resource, for air-gapped clusters) and `remote` (a TUF
//! mirror). Either way the `trustedRootTarget` (a Sigstore `trusted_root.json`) is only used
//! after `sigstore-tuf` has verified the chain from the given `root.json`: signatures,
//! thresholds, versions, expiry and the target's length and hashes. Unlike `tough`, it takes
//! key IDs as the root declares them, so tuf-on-ci repositories (GitHub's, Sigstore's
//! public-good root v11 and later) load.
//!
//! Verification runs once per TrustRoot spec, never per admission: results are kept by a hash
//! of the spec in a [`TrustRootStore`]. Remote mirrors are fetched by background tasks that
//! keep the last good root; admission never waits on the network.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::Url;
use sha2::Digest;
use sigstore_tuf::MemoryStore;
use sigstore_tuf::transport::FetchFuture;
use time::OffsetDateTime;

use crate::api::cip::Authority;
use crate::api::trustroot::{Remote, Repository, TrustRootSpec, decode_base64};
use crate::registry::error_chain;
use crate::verify::trust::{TrustRoot, TrustRootError};

/// policy-controller's defaults for `targets` and `trustedRootTarget`.
pub const DEFAULT_TARGETS: &str = "targets";
pub const DEFAULT_TRUSTED_ROOT_TARGET: &str = "trusted_root.json";
/// policy-controller packs the repository folder itself, so entries start with this.
const MIRROR_FS_PREFIX: &str = "repository/";
/// How often a fetched remote mirror is checked again.
const REMOTE_REFRESH: Duration = Duration::from_secs(600);
/// First retry after a failed fetch; doubles up to [`REMOTE_REFRESH`].
const REMOTE_RETRY: Duration = Duration::from_secs(2);
/// How long a repository that failed verification is answered from the store.
const RETRY_FAILED: Duration = Duration::from_secs(60);
/// Deadline of one HTTP request to a mirror.
const REMOTE_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest single file signet takes from a mirror (sigstore-tuf applies tighter per-role
/// limits, as python-tuf does).
const REMOTE_MAX_FILE: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TufError {
    #[error("{field} is missing")]
    Missing { field: &'static str },
    #[error("{field} is not valid base64: {source}")]
    Base64 {
        field: &'static str,
        source: base64::DecodeError,
    },
    #[error("mirrorFS is not a gzipped tar archive: {0}")]
    Archive(std::io::Error),
    #[error("mirrorFS is too large: {0}")]
    TooLarge(String),
    #[error("mirrorFS entry {path:?}: {reason}")]
    Entry { path: String, reason: String },
    #[error("{field} {value:?} is not a usable URL: {detail}")]
    Url {
        field: &'static str,
        value: String,
        detail: String,
    },
    #[error("TUF metadata has expired ({0}); the repository must be re-signed")]
    Expired(String),
    #[error("TUF verification failed: {0}")]
    Verify(String),
    #[error("target {0:?} is not listed in the TUF targets metadata")]
    NoTarget(String),
    #[error("target {name:?} is not usable: {detail}")]
    Target { name: String, detail: String },
    #[error("target {name:?} is not a valid trusted_root.json: {source}")]
    TrustedRoot { name: String, source: TrustRootError },
    #[error("cannot build an HTTP client for the mirror: {0}")]
    Client(String),
}

/// A trust root taken from a verified TUF repository, and when that verification stops
/// holding: the earliest expiry of the root, timestamp, snapshot and targets metadata.
#[derive(Debug, Clone)]
pub struct VerifiedRoot {
    pub trust: Arc<TrustRoot>,
    pub tuf_expires: OffsetDateTime,
}

// ---------------------------------------------------------------------------------------
// mirrorFS: a gzipped tar of the repository folder, unpacked in memory.

/// Bounds on unpacking `mirrorFS`, against decompression bombs.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    /// Most bytes the gzip stream may decompress to (tar headers included).
    pub max_total: u64,
    /// Most bytes of one file.
    pub max_file: u64,
    /// Most entries (files, folders, links) in the archive.
    pub max_entries: usize,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_total: 64 * 1024 * 1024,
            max_file: 16 * 1024 * 1024,
            max_entries: 10_000,
        }
    }
}

/// A reader that fails once more than `left` bytes went through it; `tripped` remembers that
/// the failure was this limit and not a broken archive.
struct Capped<R> {
    inner: R,
    left: u64,
    tripped: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        match self.left.checked_sub(read as u64) {
            Some(left) => {
                self.left = left;
                Ok(read)
            }
            None => {
                self.tripped.set(true);
                Err(std::io::Error::other("decompressed size limit reached"))
            }
        }
    }
}

/// Unpacks a gzipped tar into `path → bytes`, relative to the repository folder (a leading
/// `repository/` is removed, as policy-controller does). Only regular files are kept; links
/// and devices are ignored, since nothing is written to disk they cannot point anywhere.
pub fn unpack_mirror_fs(gzipped: &[u8], limits: &UnpackLimits) -> Result<HashMap<String, Vec<u8>>, TufError> {
    let tripped = std::rc::Rc::new(std::cell::Cell::new(false));
    let reader = Capped {
        inner: flate2::read::GzDecoder::new(gzipped),
        left: limits.max_total,
        tripped: tripped.clone(),
    };
    let too_large = || TufError::TooLarge(format!("it unpacks to more than {} bytes", limits.max_total));
    let mut archive = tar::Archive::new(reader);
    let mut files = HashMap::new();
    let entries = archive.entries().map_err(|e| {
        if tripped.get() {
            too_large()
        } else {
            TufError::Archive(e)
        }
    })?;
    for (index, entry) in entries.enumerate() {
        if index >= limits.max_entries {
            return Err(TufError::TooLarge(format!("more than {} entries", limits.max_entries)));
        }
        let entry = entry.map_err(|e| {
            if tripped.get() {
                too_large()
            } else {
                TufError::Archive(e)
            }
        })?;
        if let Some((path, bytes)) = unpack_entry(entry, limits).map_err(|e| match e {
            TufError::Archive(_) if tripped.get() => too_large(),
            other => other,
        })? {
            files.insert(path, bytes);
        }
    }
    Ok(files)
}

fn unpack_entry<R: Read>(
    mut entry: tar::Entry<'_, R>,
    limits: &UnpackLimits,
) -> Result<Option<(String, Vec<u8>)>, TufError> {
    let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    if !entry.header().entry_type().is_file() {
        return Ok(None);
    }
    let path = clean_path(&raw_path).ok_or_else(|| TufError::Entry {
        path: raw_path.clone(),
        reason: "the path leaves the repository folder".to_string(),
    })?;
    let size = entry.header().size().map_err(TufError::Archive)?;
    if size > limits.max_file {
        return Err(TufError::TooLarge(format!(
            "{raw_path:?} is {size} bytes, more than {} per file",
            limits.max_file
        )));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    entry.read_to_end(&mut bytes).map_err(TufError::Archive)?;
    Ok(Some((path, bytes)))
}

/// `./repository/targets/x` → `targets/x`; `None` for paths with `..`.
fn clean_path(raw: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    Some(match joined.strip_prefix(MIRROR_FS_PREFIX) {
        Some(rest) => rest.to_string(),
        None => joined,
    })
}

/// Where the TUF client finds a repository's files: metadata at the top, targets in their
/// folder. sigstore-tuf names each file it wants and bounds it by `max_length`.
enum Mirror {
    /// An unpacked `mirrorFS`: verifying an air-gapped repository never touches the network
    /// or the disk.
    Memory {
        files: HashMap<String, Vec<u8>>,
        targets: String,
    },
    /// A mirror over HTTP(S).
    Http {
        client: reqwest::Client,
        metadata: Url,
        targets: Url,
    },
}

impl sigstore_tuf::Repository for Mirror {
    fn fetch_metadata<'a>(&'a self, name: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(self.fetch(Folder::Metadata, name, max_length))
    }

    fn fetch_target<'a>(&'a self, path: &'a str, max_length: u64) -> FetchFuture<'a> {
        Box::pin(self.fetch(Folder::Targets, path, max_length))
    }
}

#[derive(Clone, Copy)]
enum Folder {
    Metadata,
    Targets,
}

impl Mirror {
    /// `Ok(None)` is "not found", which ends the walk along `N.root.json`.
    async fn fetch(&self, folder: Folder, name: &str, max_length: u64) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        let limit = usize::try_from(max_length).unwrap_or(usize::MAX).min(REMOTE_MAX_FILE);
        match self {
            Mirror::Memory { files, targets } => {
                let path = match folder {
                    Folder::Metadata => name.to_string(),
                    Folder::Targets => format!("{targets}/{name}"),
                };
                match files.get(&path) {
                    Some(bytes) if bytes.len() > limit => Err(sigstore_tuf::Error::transport(format!(
                        "{path} is larger than {limit} bytes"
                    ))),
                    found => Ok(found.cloned()),
                }
            }
            Mirror::Http {
                client,
                metadata,
                targets,
            } => {
                let base = match folder {
                    Folder::Metadata => metadata,
                    Folder::Targets => targets,
                };
                http_get(client, file_url(base, name)?, limit).await
            }
        }
    }
}

/// `base` (a folder URL) with `name` appended segment by segment. Names come from signed
/// metadata and the TrustRoot, but are never read as URLs: `//host`, `https:`, `..`, `?` and
/// `#` cannot lead anywhere but below `base`.
fn file_url(base: &Url, name: &str) -> sigstore_tuf::Result<Url> {
    let refuse = || sigstore_tuf::Error::transport(format!("{name:?} is not a file name below the mirror"));
    let segments: Vec<&str> = name.split('/').collect();
    if segments.iter().any(|s| s.is_empty() || *s == "." || *s == "..") {
        return Err(refuse());
    }
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| refuse())?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// GETs one mirror file of at most `limit` bytes. A 403 counts as "not found" because object
/// stores answer missing files (such as the next `N.root.json`) that way.
async fn http_get(client: &reqwest::Client, url: Url, limit: usize) -> sigstore_tuf::Result<Option<Vec<u8>>> {
    let failed = |detail: String| sigstore_tuf::Error::transport(format!("{url}: {detail}"));
    let mut response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| failed(error_chain(&e)))?;
    let status = response.status();
    if matches!(status.as_u16(), 403 | 404) {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(failed(format!("HTTP {status}")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(error_chain(&e)))? {
        if body.len() + chunk.len() > limit {
            return Err(failed(format!("larger than {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

// ---------------------------------------------------------------------------------------
// Verification.

fn decoded(field: &Option<String>, name: &'static str) -> Result<Vec<u8>, TufError> {
    let text = field
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .ok_or(TufError::Missing { field: name })?;
    decode_base64(text).map_err(|source| TufError::Base64 { field: name, source })
}

/// The targets folder's name, without slashes.
fn targets_folder(targets: Option<&str>) -> &str {
    targets
        .map(|t| t.trim().trim_matches('/'))
        .filter(|t| !t.is_empty())
        .unwrap_or(DEFAULT_TARGETS)
}

/// Verifies an air-gapped `repository`: unpack `mirrorFS` in memory, verify it from `root`.
pub async fn verify_repository(repository: &Repository) -> Result<VerifiedRoot, TufError> {
    verify_repository_at(repository, OffsetDateTime::now_utc()).await
}

/// [`verify_repository`] with expiry judged at `now`.
pub async fn verify_repository_at(repository: &Repository, now: OffsetDateTime) -> Result<VerifiedRoot, TufError> {
    let root = decoded(&repository.root, "root")?;
    let archive = decoded(&repository.mirror_fs, "mirrorFS")?;
    let files = unpack_mirror_fs(&archive, &UnpackLimits::default())?;
    let mirror = Mirror::Memory {
        files,
        targets: targets_folder(repository.targets.as_deref()).to_string(),
    };
    trusted_root_from_tuf(&root, mirror, repository.trusted_root_target.as_deref(), now, None).await
}

/// Verifies a `remote` mirror over HTTP(S). Only the background refresher calls this.
/// `seen` holds the metadata verified on earlier fetches of this mirror: versions below it
/// are refused as a rollback, as a TUF client with a local cache does.
pub async fn verify_remote(remote: &Remote, seen: Arc<MemoryStore>) -> Result<VerifiedRoot, TufError> {
    let root = decoded(&remote.root, "root")?;
    let mirror = remote
        .mirror
        .as_deref()
        .filter(|m| !m.trim().is_empty())
        .ok_or(TufError::Missing { field: "mirror" })?;
    let url_error = |field: &'static str, value: &str, detail: String| TufError::Url {
        field,
        value: value.to_string(),
        detail,
    };
    // A base URL without a trailing slash would lose its last segment in `join`.
    let metadata = Url::parse(&format!("{}/", mirror.trim_end_matches('/')))
        .map_err(|e| url_error("mirror", mirror, e.to_string()))?;
    if !matches!(metadata.scheme(), "http" | "https") {
        return Err(url_error("mirror", mirror, "expected an http(s) URL".to_string()));
    }
    let folder = targets_folder(remote.targets.as_deref());
    let targets = metadata
        .join(&format!("{folder}/"))
        .map_err(|e| url_error("targets", folder, e.to_string()))?;
    let client = reqwest::Client::builder()
        .timeout(REMOTE_REQUEST_TIMEOUT)
        .build()
        .map_err(|e| TufError::Client(error_chain(&e)))?;
    let mirror = Mirror::Http {
        client,
        metadata,
        targets,
    };
    let target = remote.trusted_root_target.as_deref();
    trusted_root_from_tuf(&root, mirror, target, OffsetDateTime::now_utc(), Some(seen)).await
}

/// The TUF client workflow from `root` (root chain, timestamp, snapshot, targets, with
/// signatures, thresholds, versions and expiry at `now`), then the trusted-root target,
/// whose length and hashes the signed targets metadata fixes.
async fn trusted_root_from_tuf(
    root: &[u8],
    mirror: Mirror,
    target: Option<&str>,
    now: OffsetDateTime,
    seen: Option<Arc<MemoryStore>>,
) -> Result<VerifiedRoot, TufError> {
    let target = target
        .filter(|t| !t.trim().is_empty())
        .unwrap_or(DEFAULT_TRUSTED_ROOT_TARGET);
    let now = jiff::Timestamp::from_second(now.unix_timestamp()).map_err(|e| TufError::Verify(e.to_string()))?;
    let mut updater = sigstore_tuf::Updater::new(mirror, root).map_err(tuf_error)?;
    if let Some(seen) = seen {
        updater = updater.with_store(seen);
    }
    updater.refresh(now).await.map_err(tuf_error)?;
    let bytes = updater.get_target(target, now).await.map_err(|e| match e {
        sigstore_tuf::Error::TargetNotFound(_) => TufError::NoTarget(target.to_string()),
        sigstore_tuf::Error::IntegrityMismatch(detail) => TufError::Target {
            name: target.to_string(),
            detail,
        },
        other => tuf_error(other),
    })?;
    let trust = TrustRoot::from_json(&bytes).map_err(|source| TufError::TrustedRoot {
        name: target.to_string(),
        source,
    })?;
    let trusted = updater.trusted();
    let earliest = [
        Some(trusted.root().expires),
        trusted.timestamp().map(|t| t.expires),
        trusted.snapshot().map(|s| s.expires),
    ]
    .into_iter()
    .flatten()
    .chain(targets_expiries(trusted))
    .min()
    .map_or(i64::MAX, |expires| expires.as_second());
    Ok(VerifiedRoot {
        trust: Arc::new(trust),
        tuf_expires: OffsetDateTime::from_unix_timestamp(earliest).unwrap_or(OffsetDateTime::UNIX_EPOCH),
    })
}

/// The expiry of every targets role the client loaded: the top level and each delegated role
/// reached from it. The target may be signed by a delegated role, and a root kept past that
/// role's expiry is exactly the freeze TUF's expiry guards against.
fn targets_expiries(trusted: &sigstore_tuf::TrustedMetadataSet) -> Vec<jiff::Timestamp> {
    let mut expiries = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut pending = vec!["targets".to_string()];
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(role) = trusted.targets_role(&name) else {
            continue;
        };
        expiries.push(role.expires);
        if let Some(delegations) = &role.delegations {
            pending.extend(delegations.roles.iter().map(|r| r.name.clone()));
        }
    }
    expiries
}

fn tuf_error(error: sigstore_tuf::Error) -> TufError {
    match &error {
        sigstore_tuf::Error::Expired { .. } => TufError::Expired(error.to_string()),
        _ => TufError::Verify(error_chain(&error)),
    }
}

// ---------------------------------------------------------------------------------------
// The store: one verification per spec, remote mirrors refreshed in the background.

/// hex(sha256) of the whole spec (its derived `Debug` form, which names every field and
/// cannot fail): identical specs under different names share one entry.
fn spec_key(spec: &TrustRootSpec) -> String {
    format!("{:x}", sha2::Sha256::digest(format!("{spec:?}")))
}

/// What is known about one spec.
#[derive(Debug, Clone)]
enum Entry {
    /// `sigstoreKeys`, or a verified TUF repository.
    Ready(VerifiedRoot),
    /// A spec that did not give a trust root, and when: verified again after
    /// [`RETRY_FAILED`] in case the cause was passing (such as a full temporary folder).
    Failed { why: String, at: Instant },
    /// A remote mirror whose first fetch has not succeeded yet (and the last error, if any).
    Fetching { mirror: String, last_error: Option<String> },
    /// A remote mirror fetched before; `last_error` is the latest refresh's failure.
    Fetched {
        root: VerifiedRoot,
        mirror: String,
        last_error: Option<String>,
    },
}

/// Resolved `TrustRoot` resources, keyed by a hash of their spec. Cloning shares the store.
#[derive(Debug, Clone, Default)]
pub struct TrustRootStore {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    /// Signalled when a background fetch changes an entry, so the expiry metric follows at
    /// once instead of being polled.
    changed: Arc<tokio::sync::Notify>,
}

impl TrustRootStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panicking holder cannot leave a half-written entry: every write is one insert.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The trust root of `name`, from the store only: cheap enough for every admission.
    /// TUF-based specs not yet resolved answer why (never an empty root).
    pub fn get(&self, name: &str, spec: &TrustRootSpec) -> Result<Arc<TrustRoot>, String> {
        if spec.sigstore_keys.is_some() {
            return self.keys_root(name, spec);
        }
        let entry = self.lock().get(&spec_key(spec)).cloned();
        let now = OffsetDateTime::now_utc();
        match entry {
            Some(Entry::Ready(root)) => fresh(name, &root, now, None),
            Some(Entry::Fetched { root, last_error, .. }) => fresh(name, &root, now, last_error.as_deref()),
            Some(Entry::Failed { why, .. }) => Err(format!("TrustRoot {name:?}: {why}")),
            Some(Entry::Fetching { mirror, last_error }) => Err(match last_error {
                None => format!("TrustRoot {name:?}: the TUF mirror {mirror} has not been fetched yet"),
                Some(e) => format!("TrustRoot {name:?}: the TUF mirror {mirror} has not been fetched yet: {e}"),
            }),
            None => Err(format!(
                "TrustRoot {name:?}: its TUF repository has not been verified yet"
            )),
        }
    }

    /// `sigstoreKeys` parse synchronously; the result (or error) is kept like the others.
    fn keys_root(&self, name: &str, spec: &TrustRootSpec) -> Result<Arc<TrustRoot>, String> {
        let key = spec_key(spec);
        if let Some(Entry::Ready(root)) = self.lock().get(&key) {
            return Ok(root.trust.clone());
        }
        let trust = Arc::new(TrustRoot::from_spec(name, spec)?);
        let root = VerifiedRoot {
            trust: trust.clone(),
            tuf_expires: OffsetDateTime::now_utc() + time::Duration::days(365 * 100),
        };
        self.lock().insert(key, Entry::Ready(root));
        Ok(trust)
    }

    /// Makes sure every TrustRoot an authority names is resolved or being fetched, before
    /// [`TrustRootStore::get`] is asked: verifies `repository` specs now (local work, once per
    /// spec) and starts the background fetch of `remote` ones (never waits for it).
    pub async fn prepare(&self, authority: &Authority, roots: &BTreeMap<String, TrustRootSpec>) {
        let keyless = authority.keyless.as_ref().and_then(|k| k.trust_root_ref.as_deref());
        let ctlog = authority.ctlog.as_ref().and_then(|c| c.trust_root_ref.as_deref());
        let tsa = authority
            .rfc3161timestamp
            .as_ref()
            .and_then(|t| t.trust_root_ref.as_deref());
        for name in [keyless, ctlog, tsa].into_iter().flatten() {
            if let Some(spec) = roots.get(name) {
                self.resolve(name, spec).await;
            }
        }
    }

    /// Resolves one spec if the store does not know it yet.
    pub async fn resolve(&self, name: &str, spec: &TrustRootSpec) {
        let key = spec_key(spec);
        let known = match self.lock().get(&key) {
            Some(Entry::Failed { at, .. }) => at.elapsed() < RETRY_FAILED,
            other => other.is_some(),
        };
        if known {
            return;
        }
        if let Some(repository) = &spec.repository {
            let entry = match verify_repository(repository).await {
                Ok(root) => {
                    tracing::info!(trust_root = name, tuf_expires = %root.tuf_expires, "TUF repository verified");
                    Entry::Ready(root)
                }
                Err(e) => {
                    tracing::warn!(trust_root = name, error = %e, "TUF repository rejected");
                    Entry::Failed {
                        why: format!("TUF repository: {e}"),
                        at: Instant::now(),
                    }
                }
            };
            self.lock().insert(key, entry);
        } else if let Some(remote) = &spec.remote {
            self.start_remote(name, key, remote.clone());
        }
    }

    /// Registers the mirror as fetching and spawns its refresher, unless another caller won.
    fn start_remote(&self, name: &str, key: String, remote: Remote) {
        let mirror = remote.mirror.clone().unwrap_or_default();
        {
            let mut entries = self.lock();
            if entries.contains_key(&key) {
                return;
            }
            entries.insert(
                key.clone(),
                Entry::Fetching {
                    mirror: mirror.clone(),
                    last_error: None,
                },
            );
        }
        tracing::info!(trust_root = name, mirror = %mirror, "fetching TUF mirror in the background");
        tokio::spawn(self.clone().refresh_remote(name.to_string(), key, remote));
    }

    /// Fetches a remote mirror now and again; stops once its spec was dropped by [`retain`].
    ///
    /// [`retain`]: TrustRootStore::retain
    async fn refresh_remote(self, name: String, key: String, remote: Remote) {
        let mut retry = REMOTE_RETRY;
        // What earlier fetches verified, so a mirror cannot roll this refresher back.
        let seen = Arc::new(MemoryStore::new());
        loop {
            let outcome = verify_remote(&remote, seen.clone()).await;
            let wait = match &outcome {
                Ok(root) => {
                    tracing::info!(trust_root = %name, tuf_expires = %root.tuf_expires, "TUF mirror fetched and verified");
                    retry = REMOTE_RETRY;
                    REMOTE_REFRESH
                }
                Err(e) => {
                    tracing::warn!(trust_root = %name, error = %e, retry_seconds = retry.as_secs(), "TUF mirror fetch failed");
                    let wait = retry;
                    retry = (retry * 2).min(REMOTE_REFRESH);
                    wait
                }
            };
            if !self.record_remote(&key, outcome) {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits until a background fetch has changed an entry (a change made while nobody
    /// waited is kept for the next call).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Stores a fetch outcome, keeping the last good root on failure. False once the spec
    /// is no longer wanted.
    fn record_remote(&self, key: &str, outcome: Result<VerifiedRoot, TufError>) -> bool {
        let recorded = self.store_remote(key, outcome);
        if recorded {
            self.changed.notify_one();
        }
        recorded
    }

    fn store_remote(&self, key: &str, outcome: Result<VerifiedRoot, TufError>) -> bool {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(key) else {
            return false;
        };
        let mirror = match entry {
            Entry::Fetching { mirror, .. } | Entry::Fetched { mirror, .. } => mirror.clone(),
            Entry::Ready(_) | Entry::Failed { .. } => return false,
        };
        *entry = match (outcome, entry.clone()) {
            (Ok(root), _) => Entry::Fetched {
                root,
                mirror,
                last_error: None,
            },
            (Err(e), Entry::Fetched { root, .. }) => Entry::Fetched {
                root,
                mirror,
                last_error: Some(e.to_string()),
            },
            (Err(e), _) => Entry::Fetching {
                mirror,
                last_error: Some(e.to_string()),
            },
        };
        true
    }

    /// Forgets every spec not in `roots` (their refreshers stop) and resolves the new ones.
    pub async fn sync(&self, roots: &BTreeMap<String, TrustRootSpec>) {
        let wanted: std::collections::HashSet<String> = roots.values().map(spec_key).collect();
        self.retain(&wanted);
        for (name, spec) in roots {
            if spec.sigstore_keys.is_none() {
                self.resolve(name, spec).await;
            }
        }
    }

    fn retain(&self, wanted: &std::collections::HashSet<String>) {
        self.lock().retain(|key, _| wanted.contains(key));
    }

    /// The earliest expiry of any resolved trust root still valid at `now` (certificates and
    /// log keys, see [`TrustRoot::earliest_expiry`], and the TUF metadata they came with).
    pub fn earliest_expiry(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let roots: Vec<VerifiedRoot> = self
            .lock()
            .values()
            .filter_map(|entry| match entry {
                Entry::Ready(root) | Entry::Fetched { root, .. } => Some(root.clone()),
                _ => None,
            })
            .collect();
        roots
            .iter()
            .flat_map(|root| [root.trust.earliest_expiry(now), Some(root.tuf_expires)])
            .flatten()
            .filter(|end| *end > now)
            .min()
    }
}

/// A resolved root, unless its TUF metadata expired since (a stale mirror must not be
/// trusted forever: that is the freeze attack TUF's expiry exists for).
fn fresh(
    name: &str,
    root: &VerifiedRoot,
    now: OffsetDateTime,
    last_error: Option<&str>,
) -> Result<Arc<TrustRoot>, String> {
    if now < root.tuf_expires {
        return Ok(root.trust.clone());
    }
    let refresh = last_error
        .map(|e| format!("; the last refresh failed: {e}"))
        .unwrap_or_default();
    Err(format!(
        "TrustRoot {name:?}: its TUF metadata expired at {}{refresh}",
        root.tuf_expires
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_file_names_stay_below_the_mirror() {
        let base = Url::parse("https://mirror.example/tuf/targets/").unwrap();
        let url = |name: &str| file_url(&base, name).map(|u| u.to_string());
        assert_eq!(
            url("trusted_root.json").unwrap(),
            "https://mirror.example/tuf/targets/trusted_root.json"
        );
        assert_eq!(url("a/b.json").unwrap(), "https://mirror.example/tuf/targets/a/b.json");
        assert_eq!(url("x?y#z").unwrap(), "https://mirror.example/tuf/targets/x%3Fy%23z");
        assert_eq!(url("https:x").unwrap(), "https://mirror.example/tuf/targets/https:x");
        for bad in ["//evil.example/x", "../x", "a/../../x", "./x", "", "a//b"] {
            assert!(file_url(&base, bad).is_err(), "{bad}");
        }
    }
    use std::io::Write;

    fn gzip_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, path, *data).unwrap();
        }
        let tar = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn unpacks_and_strips_the_repository_folder() {
        let archive = gzip_tar(&[("repository/1.root.json", b"{}"), ("repository/targets/a.json", b"a")]);
        let files = unpack_mirror_fs(&archive, &UnpackLimits::default()).unwrap();
        assert_eq!(files.get("1.root.json").map(|b| b.as_ref()), Some(&b"{}"[..]));
        assert_eq!(files.get("targets/a.json").map(|b| b.as_ref()), Some(&b"a"[..]));
        let plain = gzip_tar(&[("timestamp.json", b"t")]);
        assert!(
            unpack_mirror_fs(&plain, &UnpackLimits::default())
                .unwrap()
                .contains_key("timestamp.json")
        );
    }

    #[test]
    fn a_decompression_bomb_is_stopped_at_the_total_limit() {
        let zeros = vec![0u8; 8 * 1024 * 1024];
        let archive = gzip_tar(&[("repository/big", &zeros)]);
        assert!(archive.len() < 64 * 1024, "compresses well: {}", archive.len());
        let limits = UnpackLimits {
            max_total: 1024 * 1024,
            ..UnpackLimits::default()
        };
        let err = unpack_mirror_fs(&archive, &limits).unwrap_err().to_string();
        assert!(err.contains("unpacks to more than 1048576 bytes"), "{err}");
    }

    #[test]
    fn one_file_over_its_limit_is_refused() {
        let archive = gzip_tar(&[("repository/big", &[7u8; 5000])]);
        let limits = UnpackLimits {
            max_file: 4096,
            ..UnpackLimits::default()
        };
        let err = unpack_mirror_fs(&archive, &limits).unwrap_err().to_string();
        assert!(err.contains("5000 bytes, more than 4096 per file"), "{err}");
    }

    #[test]
    fn too_many_entries_are_refused() {
        let names: Vec<String> = (0..20).map(|i| format!("repository/f{i}")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        let limits = UnpackLimits {
            max_entries: 10,
            ..UnpackLimits::default()
        };
        let err = unpack_mirror_fs(&gzip_tar(&entries), &limits).unwrap_err().to_string();
        assert!(err.contains("more than 10 entries"), "{err}");
    }

    #[test]
    fn not_gzip_and_escaping_paths_are_errors() {
        let err = unpack_mirror_fs(b"not gzip", &UnpackLimits::default()).unwrap_err();
        assert!(matches!(err, TufError::Archive(_)), "{err}");
        // tar's builder refuses `..`, so write the name into the header by hand.
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..13].copy_from_slice(b"../etc/passwd");
        header.set_size(1);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        let mut tar = header.as_bytes().to_vec();
        tar.extend_from_slice(&[b'x'; 512]);
        tar.extend_from_slice(&[0; 1024]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let err = unpack_mirror_fs(&gz.finish().unwrap(), &UnpackLimits::default()).unwrap_err();
        assert!(err.to_string().contains("leaves the repository folder"), "{err}");
    }

    #[test]
    fn clean_path_normalises() {
        assert_eq!(clean_path("./repository/targets/x").as_deref(), Some("targets/x"));
        assert_eq!(clean_path("/root.json").as_deref(), Some("root.json"));
        assert_eq!(clean_path("a/../b"), None);
    }

    #[tokio::test]
    async fn missing_fields_and_unknown_specs_are_explained() {
        let err = verify_repository(&Repository::default()).await.unwrap_err();
        assert_eq!(err.to_string(), "root is missing");
        let store = TrustRootStore::default();
        let spec = TrustRootSpec {
            repository: Some(Repository::default()),
            ..TrustRootSpec::default()
        };
        let unresolved = store.get("r", &spec).unwrap_err();
        assert!(unresolved.contains("has not been verified yet"), "{unresolved}");
        store.resolve("r", &spec).await;
        let failed = store.get("r", &spec).unwrap_err();
        assert_eq!(failed, "TrustRoot \"r\": TUF repository: root is missing");
    }
}
