//! OCI distribution access: tag → digest, manifests and indexes, blobs, OCI 1.1 referrers.
//!
//! This is our own small client on `reqwest` rather than `oci-client`, for three reasons:
//! - `oci-client` stores credentials per registry on first use and never replaces them, but
//!   signet needs per-pod pull secrets: every call here takes its own [`Credentials`], and
//!   bearer tokens are cached per (registry, scope, credential identity).
//! - Admission denials must say exactly why a registry call failed (401, 403, 404, 429,
//!   timeout, TLS, …), so every failure is a specific [`RegistryError`] variant naming the
//!   registry, repository and reference, and [`RegistryError::is_definitive`] tells the cache
//!   whether a failure may be remembered.
//! - Content addressing is checked here, not trusted: a manifest fetched by digest and every
//!   blob must hash to the digest that was asked for, and bodies are size-limited.

mod auth;
mod client;
pub mod config;
pub mod credentials;
mod places;

use std::fmt;
use std::time::Duration;

pub use auth::Credentials;
pub use client::{RegistryClient, error_chain, registry_endpoint};

/// Manifest media types signet understands, in the order sent in `Accept`. Sending the OCI
/// types matters: without them distribution 2.8 answers 404 for OCI manifests, and converts
/// Docker v2s2 manifests to schema1, whose digest differs from the one that was pushed.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest or referrers index we read; real ones are a few KiB.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// How the client reaches registries.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Extra trusted CA certificates (PEM, from `--registry-ca`), added to the platform roots.
    pub extra_roots_pem: Vec<Vec<u8>>,
    /// `host[:port]` entries reached over plain HTTP (`--insecure-registry`).
    pub insecure_hosts: Vec<String>,
    /// Deadline for one whole operation, including auth round trips and 429 retries.
    pub request_timeout: Duration,
    /// Registry operations in flight at once across the process (`--registry-concurrency`);
    /// the rest wait in FIFO order. This bounds open connections, file descriptors and
    /// buffered bodies whatever the reviews ask for.
    pub max_concurrent_operations: usize,
    /// How long an endpoint whose operation timed out is answered at once, without trying.
    pub stalled_for: Duration,
    pub user_agent: String,
}

/// Default of [`RegistryConfig::max_concurrent_operations`]: enough to keep a few slow
/// registries busy; each operation holds at most one connection and one body of at most
/// [`MAX_MANIFEST_BYTES`] (blobs have their own, smaller caps).
pub const DEFAULT_MAX_CONCURRENT_OPERATIONS: usize = 32;

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            extra_roots_pem: Vec::new(),
            insecure_hosts: Vec::new(),
            request_timeout: Duration::from_secs(10),
            max_concurrent_operations: DEFAULT_MAX_CONCURRENT_OPERATIONS,
            stalled_for: Duration::from_secs(10),
            user_agent: concat!("signet/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// A manifest (image manifest or index) as the registry served it.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The body's `mediaType`, else the response `Content-Type`.
    pub media_type: String,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    /// Exact bytes: signatures are over these, so never re-serialise them.
    pub bytes: Vec<u8>,
}

/// What a failed call was about, printed as `registry/repository:tag` or `…@sha256:…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub registry: String,
    pub repository: String,
    pub reference: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if self.reference.contains(':') { '@' } else { ':' };
        write!(f, "{}/{}{}{}", self.registry, self.repository, sep, self.reference)
    }
}

#[derive(thiserror::Error, Debug)]
pub enum RegistryError {
    #[error("{target}: unauthorized (401): {detail}")]
    Unauthorized { target: Target, detail: String },
    #[error("{target}: forbidden (403): {detail}")]
    Forbidden { target: Target, detail: String },
    #[error("{target}: not found (404): {detail}")]
    NotFound { target: Target, detail: String },
    #[error("{target}: rate limited (429){}", fmt_retry_after(.retry_after))]
    RateLimited {
        target: Target,
        retry_after: Option<Duration>,
    },
    #[error("{target}: registry server error ({status}): {detail}")]
    Server {
        target: Target,
        status: u16,
        detail: String,
    },
    #[error("{target}: unexpected HTTP status {status}: {detail}")]
    UnexpectedStatus {
        target: Target,
        status: u16,
        detail: String,
    },
    #[error("{target}: timed out after {elapsed:?}")]
    Timeout { target: Target, elapsed: Duration },
    #[error("{target}: the registry timed out moments ago; not tried again for another {}s", .left.as_secs().max(1))]
    Stalled { target: Target, left: Duration },
    #[error("{target}: TLS error: {detail}")]
    Tls { target: Target, detail: String },
    #[error("{target}: connection failed: {detail}")]
    Connect { target: Target, detail: String },
    #[error("{target}: content digest mismatch: expected {expected}, found {found}")]
    DigestMismatch {
        target: Target,
        expected: String,
        found: String,
    },
    #[error("{target}: response larger than {limit} bytes")]
    TooLarge { target: Target, limit: usize },
    #[error("{target}: protocol error: {detail}")]
    Protocol { target: Target, detail: String },
    #[error("{target}: invalid reference: {detail}")]
    InvalidReference { target: Target, detail: String },
    #[error("invalid registry client configuration: {detail}")]
    InvalidConfig { detail: String },
}

fn fmt_retry_after(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(", retry after {}s", d.as_secs()),
        None => String::new(),
    }
}

impl RegistryError {
    /// True when asking again soon would give the same answer (401/403/404, a digest
    /// mismatch, a bad reference), so the failure may be cached. Timeouts, 429, 5xx and
    /// network trouble are transient and must not be cached.
    pub fn is_definitive(&self) -> bool {
        matches!(
            self,
            RegistryError::Unauthorized { .. }
                | RegistryError::Forbidden { .. }
                | RegistryError::NotFound { .. }
                | RegistryError::DigestMismatch { .. }
                | RegistryError::InvalidReference { .. }
                | RegistryError::InvalidConfig { .. }
        )
    }

    /// The registry/repository/reference the error is about (none for configuration errors).
    pub fn target(&self) -> Option<&Target> {
        match self {
            RegistryError::Unauthorized { target, .. }
            | RegistryError::Forbidden { target, .. }
            | RegistryError::NotFound { target, .. }
            | RegistryError::RateLimited { target, .. }
            | RegistryError::Server { target, .. }
            | RegistryError::UnexpectedStatus { target, .. }
            | RegistryError::Timeout { target, .. }
            | RegistryError::Stalled { target, .. }
            | RegistryError::Tls { target, .. }
            | RegistryError::Connect { target, .. }
            | RegistryError::DigestMismatch { target, .. }
            | RegistryError::TooLarge { target, .. }
            | RegistryError::Protocol { target, .. }
            | RegistryError::InvalidReference { target, .. } => Some(target),
            RegistryError::InvalidConfig { .. } => None,
        }
    }
}

/// True for `sha256:<64 lowercase hex>`, the only digest form signet accepts.
pub fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{:x}", Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_helpers() {
        let d = sha256_digest(b"");
        assert_eq!(
            d,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(is_sha256_digest(&d));
        assert!(!is_sha256_digest("sha256:E3B0"));
        assert!(!is_sha256_digest("sha512:e3b0"));
        assert!(!is_sha256_digest(&d.to_uppercase()));
    }

    #[test]
    fn target_display_and_definitive() {
        let t = Target {
            registry: "r:5000".into(),
            repository: "a/b".into(),
            reference: "v1".into(),
        };
        assert_eq!(t.to_string(), "r:5000/a/b:v1");
        let nf = RegistryError::NotFound {
            target: t.clone(),
            detail: "MANIFEST_UNKNOWN".into(),
        };
        assert!(nf.is_definitive());
        assert_eq!(nf.target(), Some(&t));
        let rl = RegistryError::RateLimited {
            target: t,
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(!rl.is_definitive());
        assert!(rl.to_string().contains("retry after 3s"));
    }
}
