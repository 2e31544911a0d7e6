//! Container image references: the docker reference grammar, parsed and normalised the way the
//! kubelet and cosign read them (`nginx` is `index.docker.io/library/nginx:latest`).
//!
//! Normalisation is what makes policy matching impossible to dodge: registry host names are
//! case-insensitive, so they are lower-cased, and every alias of Docker Hub becomes
//! `index.docker.io`. Anything outside the ASCII grammar is rejected rather than guessed at.

use std::fmt;

/// Docker Hub's canonical registry name, as policy-controller and go-containerregistry use it.
pub const DEFAULT_REGISTRY: &str = "index.docker.io";
const DOCKER_HUB_ALIASES: &[&str] = &["docker.io", "registry-1.docker.io", "index.docker.io"];
const MAX_NAME_LENGTH: usize = 255;
const MAX_TAG_LENGTH: usize = 128;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: String,
    /// The registry as the runtime contacts it: lower-cased, with the port as written (443
    /// too), without leading zeros. Differs from `registry` only by an explicit `:443`, which
    /// matters for plain-HTTP registries (`http://host` is port 80, `http://host:443` is not).
    endpoint: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
    raw: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("image reference is empty")]
    Empty,
    #[error("image reference {reference:?} is invalid: {reason}")]
    Invalid { reference: String, reason: String },
}

fn invalid(reference: &str, reason: impl Into<String>) -> ReferenceError {
    ReferenceError::Invalid {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

impl ImageRef {
    /// Parses `[registry[:port]/]path[:tag][@algorithm:hex]`.
    pub fn parse(raw: &str) -> Result<Self, ReferenceError> {
        if raw.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if let Some(bad) = raw.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(invalid(raw, format!("character {bad:?} is not allowed")));
        }
        let (name_and_tag, digest) = match raw.split_once('@') {
            Some((rest, digest)) => (rest, Some(parse_digest(raw, digest)?)),
            None => (raw, None),
        };
        let (name, tag) = split_tag(name_and_tag);
        if let Some(tag) = tag {
            validate_tag(raw, tag)?;
        }
        let (registry, endpoint, repository) = split_registry(raw, name)?;
        let full_length = registry.len() + 1 + repository.len();
        if full_length > MAX_NAME_LENGTH {
            return Err(invalid(
                raw,
                format!("name is longer than {MAX_NAME_LENGTH} characters"),
            ));
        }
        Ok(ImageRef {
            registry,
            endpoint,
            repository,
            tag: tag.map(str::to_string),
            digest,
            raw: raw.to_string(),
        })
    }

    /// Registry host (and port), lower-cased; Docker Hub is `index.docker.io`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Where the runtime pulls from: the registry with its written port (see the field).
    /// Registry calls go here; policies match [`ImageRef::registry`].
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `endpoint/repository`: what a fetched result is about, for cache keys.
    pub fn location(&self) -> String {
        format!("{}/{}", self.endpoint, self.repository)
    }

    /// Repository path inside the registry, e.g. `library/nginx`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The reference exactly as written in the pod spec.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag a registry would serve: the written one, or `latest` when neither a tag nor a
    /// digest is given (the kubelet's rule). `None` for digest-only references.
    pub fn effective_tag(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(tag), _) => Some(tag),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        }
    }

    /// What to ask the registry for: the digest when there is one (it wins over any tag, as
    /// in the kubelet), else the effective tag.
    pub fn registry_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or_else(|| self.effective_tag())
            .unwrap_or("latest")
    }

    /// The reference pinned to `digest`, keeping the form the user wrote
    /// (`nginx:1.27` → `nginx:1.27@sha256:…`), so what runs is exactly what was verified.
    pub fn pinned(&self, digest: &str) -> String {
        let without_digest = self.raw.split_once('@').map_or(self.raw.as_str(), |(n, _)| n);
        format!("{without_digest}@{digest}")
    }
}

/// Fully normalised form: `registry/repository[:tag][@digest]`, with `:latest` implied only
/// when no digest is given.
impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = self.effective_tag() {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Only digests signet can verify are accepted: sha256 and sha512 in lower-case hex.
fn parse_digest(raw: &str, digest: &str) -> Result<String, ReferenceError> {
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or_else(|| invalid(raw, "digest must look like sha256:<hex>"))?;
    let expected_len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        other => {
            return Err(invalid(raw, format!("unsupported digest algorithm {other:?}")));
        }
    };
    let hex_ok = hex.len() == expected_len && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex_ok {
        return Err(invalid(
            raw,
            format!("{algorithm} digest must be {expected_len} lower-case hex characters"),
        ));
    }
    Ok(digest.to_string())
}

/// A tag is whatever follows the last `:` after the last `/`; an earlier `:` is a port.
fn split_tag(name_and_tag: &str) -> (&str, Option<&str>) {
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    match name_and_tag[last_slash..].rfind(':') {
        Some(i) => {
            let at = last_slash + i;
            (&name_and_tag[..at], Some(&name_and_tag[at + 1..]))
        }
        None => (name_and_tag, None),
    }
}

fn validate_tag(raw: &str, tag: &str) -> Result<(), ReferenceError> {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let valid = !tag.is_empty()
        && tag.len() <= MAX_TAG_LENGTH
        && tag.bytes().next().is_some_and(is_word)
        && tag.bytes().all(|b| is_word(b) || b == b'.' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(invalid(raw, format!("tag {tag:?} is not a valid tag")))
    }
}

/// The first path component is a registry when it contains `.` or `:` or is `localhost`.
/// Docker also takes an upper-case single label (`Calico/node`) as a host; signet rejects such
/// references instead, because once the host is lower-cased the normal form would name Docker
/// Hub and a Docker Hub glob could match a different registry.
///
/// Returns the canonical registry, the endpoint (see [`ImageRef`]) and the repository.
fn split_registry(raw: &str, name: &str) -> Result<(String, String, String), ReferenceError> {
    let (registry, path) = match name.split_once('/') {
        Some((first, rest)) if looks_like_registry(first) => (first.to_ascii_lowercase(), rest),
        _ => (DEFAULT_REGISTRY.to_string(), name),
    };
    validate_registry(raw, &registry)?;
    validate_path(raw, path)?;
    let (host, port) = split_host_port(&registry);
    if port.is_some() && DOCKER_HUB_ALIASES.contains(&host) {
        // The runtime reads `docker.io:443/nginx` as host `docker.io:443`, repository
        // `nginx`, not as Docker Hub's `library/nginx`: no normal form fits both readings.
        return Err(invalid(raw, "Docker Hub is named without a port"));
    }
    let endpoint = without_leading_zeros(&registry);
    let registry = if DOCKER_HUB_ALIASES.contains(&registry.as_str()) {
        DEFAULT_REGISTRY.to_string()
    } else {
        canonical_registry(&registry)
    };
    let endpoint = if registry == DEFAULT_REGISTRY {
        registry.clone()
    } else {
        endpoint
    };
    let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    Ok((registry, endpoint, repository))
}

/// `host:0443` → `host:443`; anything that is not a numeric port is left as it is (for
/// validation to reject, never guessed at).
fn without_leading_zeros(registry: &str) -> String {
    let (host, port) = split_host_port(registry);
    match port.map(str::parse::<u16>) {
        Some(Ok(port)) => format!("{host}:{port}"),
        _ => registry.to_string(),
    }
}

/// The one spelling of a (lower-cased) `host[:port]` that the runtime reaches the same
/// registry by: HTTPS's default port 443 is dropped and leading zeros go, so
/// `localhost:443` and `localhost:0443` are `localhost`. Without this a glob for `localhost/**`
/// would not match `localhost:443/app`, although the kubelet pulls the very same image.
pub(crate) fn canonical_registry(registry: &str) -> String {
    let (host, port) = split_host_port(registry);
    if port.and_then(|p| p.parse::<u16>().ok()) == Some(443) {
        host.to_string()
    } else {
        without_leading_zeros(registry)
    }
}

fn looks_like_registry(first: &str) -> bool {
    first.contains(['.', ':']) || first == "localhost" || first.starts_with('[')
}

fn validate_registry(raw: &str, registry: &str) -> Result<(), ReferenceError> {
    let (host, port) = split_host_port(registry);
    if let Some(port) = port {
        let port_ok = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok();
        if !port_ok {
            return Err(invalid(raw, format!("registry port {port:?} is not a number")));
        }
    }
    if let Some(ipv6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match ipv6.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(invalid(raw, format!("registry {host:?} is not an IPv6 address"))),
        };
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if host.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(invalid(raw, format!("registry host {host:?} is not a valid host name")))
    }
}

fn split_host_port(registry: &str) -> (&str, Option<&str>) {
    let host_end = if registry.starts_with('[') {
        registry.find(']').map_or(registry.len(), |i| i + 1)
    } else {
        registry.find(':').unwrap_or(registry.len())
    };
    let (host, rest) = registry.split_at(host_end);
    (host, rest.strip_prefix(':'))
}

/// Path components are lower-case alphanumerics joined by `.`, `_`, `__` or runs of `-`.
fn validate_path(raw: &str, path: &str) -> Result<(), ReferenceError> {
    if path.is_empty() {
        return Err(invalid(raw, "repository path is empty"));
    }
    for component in path.split('/') {
        if !path_component_ok(component) {
            return Err(invalid(
                raw,
                format!("repository path component {component:?} must be lower-case letters, digits and separators"),
            ));
        }
    }
    Ok(())
}

fn path_component_ok(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Separators between alphanumeric runs: one '.', one '_', exactly "__", or any run of '-'.
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:5504f2a95018e3d8a52d80d9e1a128c6ea337581808ff9fe96f5628ce2336350";

    fn parts(s: &str) -> (String, String, Option<String>, Option<String>) {
        let r = ImageRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        (
            r.registry().to_string(),
            r.repository().to_string(),
            r.tag().map(str::to_string),
            r.digest().map(str::to_string),
        )
    }

    #[test]
    fn normalises_docker_hub_names() {
        let cases = [
            ("nginx", "index.docker.io/library/nginx:latest"),
            ("nginx:1.27", "index.docker.io/library/nginx:1.27"),
            ("docker.io/nginx", "index.docker.io/library/nginx:latest"),
            ("docker.io/library/nginx", "index.docker.io/library/nginx:latest"),
            (
                "registry-1.docker.io/bitnami/redis:7",
                "index.docker.io/bitnami/redis:7",
            ),
            ("myuser/myapp", "index.docker.io/myuser/myapp:latest"),
            ("ghcr.io/foo/bar", "ghcr.io/foo/bar:latest"),
            ("GHCR.IO/foo", "ghcr.io/foo:latest"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/a/b/c:v1", "localhost:5000/a/b/c:v1"),
            ("127.0.0.1:5000/demo/hello:v1", "127.0.0.1:5000/demo/hello:v1"),
            ("[::1]:5000/demo:v1", "[::1]:5000/demo:v1"),
            // HTTPS's default port is the registry without a port, as the runtime pulls it.
            ("localhost:443/demo/app", "localhost/demo/app:latest"),
            ("LOCALHOST:0443/demo/app:v1", "localhost/demo/app:v1"),
            ("ghcr.io:443/foo/bar:v1", "ghcr.io/foo/bar:v1"),
            ("[::1]:443/demo", "[::1]/demo:latest"),
            ("localhost:05000/a", "localhost:5000/a:latest"),
            ("localhost:80/a", "localhost:80/a:latest"),
            ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
            ("a__b/c-d---e/f.g_h", "index.docker.io/a__b/c-d---e/f.g_h:latest"),
        ];
        for (input, want) in cases {
            let parsed = ImageRef::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed.to_string(), want, "{input}");
        }
    }

    #[test]
    fn the_endpoint_keeps_the_written_port() {
        let cases = [
            ("localhost:443/demo/app", "localhost", "localhost:443"),
            ("LOCALHOST:0443/demo/app", "localhost", "localhost:443"),
            ("localhost/demo/app", "localhost", "localhost"),
            ("localhost:05000/a", "localhost:5000", "localhost:5000"),
            ("nginx", "index.docker.io", "index.docker.io"),
            ("docker.io/nginx", "index.docker.io", "index.docker.io"),
        ];
        for (input, registry, endpoint) in cases {
            let parsed = ImageRef::parse(input).unwrap();
            assert_eq!((parsed.registry(), parsed.endpoint()), (registry, endpoint), "{input}");
        }
        assert_eq!(
            ImageRef::parse("localhost:443/demo/app").unwrap().location(),
            "localhost:443/demo/app"
        );
    }

    #[test]
    fn keeps_tag_and_digest_apart() {
        assert_eq!(
            parts(&format!("ghcr.io/foo:v1@{D}")),
            ("ghcr.io".into(), "foo".into(), Some("v1".into()), Some(D.into()))
        );
        let digest_only = ImageRef::parse(&format!("ghcr.io/foo@{D}")).unwrap();
        assert_eq!(digest_only.effective_tag(), None);
        assert_eq!(digest_only.registry_reference(), D);
        assert_eq!(digest_only.to_string(), format!("ghcr.io/foo@{D}"));
        let both = ImageRef::parse(&format!("foo:v1@{D}")).unwrap();
        assert_eq!(both.registry_reference(), D, "the digest wins over the tag");
        assert_eq!(ImageRef::parse("foo").unwrap().registry_reference(), "latest");
    }

    #[test]
    fn pins_keep_the_written_form() {
        let r = ImageRef::parse("nginx:1.27").unwrap();
        assert_eq!(r.pinned(D), format!("nginx:1.27@{D}"));
        let already = ImageRef::parse(&format!("nginx:1.27@{D}")).unwrap();
        assert_eq!(already.pinned(D), format!("nginx:1.27@{D}"));
    }

    #[test]
    fn rejects_malformed_references() {
        let long_name = format!("example.com/{}", "a".repeat(250));
        let long_tag = format!("foo:{}", "a".repeat(129));
        let rejects = [
            "",
            "invalid&name",
            "Foo",
            "foo/Bar",
            "foo:",
            "foo:-tag",
            "foo::tag",
            "foo@sha256:abc",
            "foo@sha256:5504F2A95018E3D8A52D80D9E1A128C6EA337581808FF9FE96F5628CE2336350",
            "foo@md5:d41d8cd98f00b204e9800998ecf8427e",
            "foo@",
            "/foo",
            "foo/",
            "foo//bar",
            "-foo",
            "foo-",
            "foo..bar",
            "foo___bar",
            "foo bar",
            " foo",
            "foo\n",
            "ghcr.io:port/foo",
            "ghcr.io:123456/foo",
            "ghcr.io:65536/foo",
            "ghcr.io:/foo",
            "docker.io:443/nginx",
            "index.docker.io:443/library/nginx:1",
            "registry-1.docker.io:5000/x",
            "-ghcr.io/foo",
            "[zz]:5000/foo",
            "nginx\u{200b}",
            "ngіnx",
            long_name.as_str(),
            long_tag.as_str(),
        ];
        for input in rejects {
            assert!(ImageRef::parse(input).is_err(), "{input:?} must be rejected");
        }
    }

    #[test]
    fn errors_name_the_reference() {
        let err = ImageRef::parse("foo/Bar").unwrap_err().to_string();
        assert!(err.contains("foo/Bar") && err.contains("Bar"), "{err}");
    }
}
