//! `spec.images[].glob` patterns, with policy-controller's semantics and its tag bug fixed.
//!
//! `*` matches within one path segment, `**` across segments; `*` alone means
//! `index.docker.io/library/*` and `*/*` means `index.docker.io/*/*`. A glob is matched
//! against several spellings of the normalised image (repository, `:tag`, `@digest`, both,
//! and the reference as written), so a glob that names a tag matches that tag even when the
//! pod also pins a digest (policy-controller's issue #888).

use regex::Regex;

use super::reference::{DEFAULT_REGISTRY, ImageRef, canonical_registry};

#[derive(Debug, Clone)]
pub struct Glob {
    source: String,
    regex: Regex,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("glob is empty")]
    Empty,
    #[error("glob {glob:?} is invalid: {reason}")]
    Invalid { glob: String, reason: String },
}

impl Glob {
    pub fn compile(glob: &str) -> Result<Self, GlobError> {
        if glob.is_empty() {
            return Err(GlobError::Empty);
        }
        let invalid = |reason: &str| GlobError::Invalid {
            glob: glob.to_string(),
            reason: reason.to_string(),
        };
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-_:/*.@".contains(c);
        if !glob.chars().all(allowed) {
            return Err(invalid(
                "only letters, digits, '-', '_', ':', '/', '.', '@' and '*' are allowed",
            ));
        }
        if glob.contains("***") {
            return Err(invalid("'***' is ambiguous; use '*' or '**'"));
        }
        let expanded = expand_shorthand(glob);
        let pattern = format!("^{}$", translate(&normalise_registry(&expanded)));
        let regex = Regex::new(&pattern).map_err(|e| invalid(&e.to_string()))?;
        Ok(Glob {
            source: glob.to_string(),
            regex,
        })
    }

    /// The glob as written in the policy.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The regular expression the glob became, for explanations.
    pub fn pattern(&self) -> &str {
        self.regex.as_str()
    }

    pub fn matches(&self, image: &ImageRef) -> bool {
        candidates(image).iter().any(|c| self.regex.is_match(c))
    }
}

fn expand_shorthand(glob: &str) -> String {
    match glob {
        "*" => format!("{DEFAULT_REGISTRY}/library/*"),
        "*/*" => format!("{DEFAULT_REGISTRY}/*/*"),
        other => other.to_string(),
    }
}

/// Lower-cases a literal registry host, drops port 443 and maps Docker Hub aliases, exactly as
/// image references are normalised, so `docker.io/library/nginx`, `GHCR.IO/**` and
/// `ghcr.io:443/**` match.
fn normalise_registry(glob: &str) -> String {
    let Some((first, rest)) = glob.split_once('/') else {
        return glob.to_string();
    };
    if !(first.contains(['.', ':']) || first == "localhost") {
        return glob.to_string();
    }
    if first.contains('*') {
        // A wildcard host with a literal default port (`*.corp.example:443`) names the same
        // registries as without it.
        return format!("{}/{rest}", canonical_registry(first));
    }
    let host = canonical_registry(&first.to_ascii_lowercase());
    let host = match host.as_str() {
        "docker.io" | "registry-1.docker.io" => DEFAULT_REGISTRY.to_string(),
        _ => host,
    };
    format!("{host}/{rest}")
}

fn translate(glob: &str) -> String {
    let mut pattern = String::with_capacity(glob.len() * 2);
    let mut rest = glob;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("**") {
            pattern.push_str(".*");
            rest = after;
        } else if let Some(after) = rest.strip_prefix('*') {
            pattern.push_str("[^/]*");
            rest = after;
        } else {
            let literal_end = rest.find('*').unwrap_or(rest.len());
            pattern.push_str(&regex::escape(&rest[..literal_end]));
            rest = &rest[literal_end..];
        }
    }
    pattern
}

/// The spellings of `image` a glob is matched against, most normalised first.
pub fn candidates(image: &ImageRef) -> Vec<String> {
    let name = image.name();
    let mut out = vec![image.to_string(), image.raw().to_string()];
    if let Some(tag) = image.effective_tag() {
        out.push(format!("{name}:{tag}"));
    }
    if let Some(digest) = image.digest() {
        out.push(format!("{name}@{digest}"));
    }
    out.push(name);
    let mut seen = std::collections::HashSet::new();
    out.retain(|spelling| seen.insert(spelling.clone()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(glob: &str, image: &str) -> bool {
        let glob = Glob::compile(glob).unwrap_or_else(|e| panic!("{glob}: {e}"));
        glob.matches(&ImageRef::parse(image).unwrap_or_else(|e| panic!("{image}: {e}")))
    }

    #[test]
    fn star_stays_within_a_segment() {
        assert!(matches("ghcr.io/*/*", "ghcr.io/foo/bar"));
        assert!(!matches("ghcr.io/*/*", "ghcr.io/foo"));
        assert!(!matches("ghcr.io/*", "ghcr.io/foo/bar"));
        assert!(matches("ghcr.io/**", "ghcr.io/foo/bar/baz"));
    }

    #[test]
    fn tag_globs_match_tags_even_next_to_digests() {
        let d = "sha256:5504f2a95018e3d8a52d80d9e1a128c6ea337581808ff9fe96f5628ce2336350";
        assert!(matches("ghcr.io/foo:v1", &format!("ghcr.io/foo:v1@{d}")));
        assert!(matches("ghcr.io/foo:v*", "ghcr.io/foo:v2"));
        assert!(!matches("ghcr.io/foo:v1", "ghcr.io/foo:v2"));
        assert!(!matches("ghcr.io/foo:v1", &format!("ghcr.io/foo@{d}")));
        assert!(matches("ghcr.io/foo", &format!("ghcr.io/foo@{d}")));
    }

    #[test]
    fn registry_spellings_are_normalised() {
        assert!(matches("docker.io/library/nginx*", "nginx:1.27"));
        assert!(matches("GHCR.IO/org/**", "ghcr.io/org/app"));
        assert!(matches("ghcr.io/org/**", "GHCR.io/org/app"));
        assert!(!matches("ghcr.io/org/**", "ghcr.io/orgx/app"));
        assert!(!matches("ghcr.io/**", "ghcrxio/foo"));
        // HTTPS's default port names the same registry, written on either side.
        assert!(matches("localhost/demo/**", "localhost:443/demo/app"));
        assert!(matches("localhost/demo/**", "localhost:0443/demo/app:v1"));
        assert!(matches("localhost:443/demo/**", "localhost/demo/app"));
        assert!(matches("ghcr.io:443/org/*", "ghcr.io/org/app"));
        assert!(matches("docker.io:443/library/nginx", "nginx"));
        assert!(!matches("localhost/demo/**", "localhost:8443/demo/app"));
        assert!(matches("*.corp.example:443/**", "a.corp.example/app"));
        assert!(matches("*.corp.example:0443/**", "a.corp.example:443/app"));
        assert!(!matches("*.corp.example:8443/**", "a.corp.example/app"));
        assert!(!matches("localhost:5000/demo/**", "localhost/demo/app"));
    }

    #[test]
    fn rejects_invalid_globs() {
        for glob in ["", "[", ".+", "[a-z]*", "foo bar", "***", "a?b", "ghcr.io/(x|y)"] {
            assert!(Glob::compile(glob).is_err(), "{glob:?} must be rejected");
        }
    }
}
