//! Why one authority did not pass, as a type: the denial message is its `Display`, the
//! metric reason its [`AuthorityFailure::metric_label`], and whether it may be cached
//! [`AuthorityFailure::is_definitive`].

/// Why an authority failed for one image digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityFailure {
    /// A `static: {action: fail}` authority, with its message.
    #[error("{0}")]
    Static(String),
    /// The image's tag could not be resolved to a digest, so there is nothing to verify.
    #[error("the digest of {image} is unknown: {why}")]
    DigestUnknown { image: String, why: String },
    /// The authority needs something this build cannot check; passing it on a signature
    /// alone would admit images that never met it.
    #[error("{requirement} is not supported by this signet build yet")]
    Unsupported { requirement: &'static str },
    /// Neither `key` nor `keyless` (validation rejects this; kept for fed snapshots).
    #[error("this authority has nothing to verify")]
    NothingToVerify,
    /// The key or CA certificate the authority names cannot be had (Secret, KMS, PEM).
    #[error("{0}")]
    KeyUnavailable(String),
    /// The `trustRootRef` names no usable TrustRoot.
    #[error("{0}")]
    TrustRoot(String),
    /// Signatures or bundles could not be read from the registry.
    #[error("{detail}")]
    Registry { detail: String, definitive: bool },
    /// No signature of the wanted format was found anywhere the authority looks.
    #[error("{}", reasons.join("; "))]
    Unsigned { reasons: Vec<String> },
    /// Signatures were found, and none satisfies the authority (each one's reason).
    #[error("{}", reasons.join("; "))]
    Rejected { reasons: Vec<String> },
    /// `attestations[NAME]`: no verified attestation of its predicate type.
    #[error(
        "attestation {name:?}: no verified attestation of type {predicate_type}{}",
        in_parentheses(failures)
    )]
    AttestationMissing {
        name: String,
        predicate_type: String,
        /// Why the attestations that were found did not verify.
        failures: Vec<String>,
    },
    /// `attestations[NAME]`: verified attestations exist, and its policy denied every one.
    #[error("attestation {name:?} failed its policy: {}", denials.join("; "))]
    AttestationDenied { name: String, denials: Vec<String> },
}

fn in_parentheses(reasons: &[String]) -> String {
    if reasons.is_empty() {
        String::new()
    } else {
        format!(" ({})", reasons.join("; "))
    }
}

impl AuthorityFailure {
    /// A fixed label for metrics (bounded: one per variant).
    pub fn metric_label(&self) -> &'static str {
        match self {
            AuthorityFailure::Static(_) => "static",
            AuthorityFailure::DigestUnknown { .. } => "digest_unknown",
            AuthorityFailure::Unsupported { .. } => "unsupported",
            AuthorityFailure::NothingToVerify => "invalid_authority",
            AuthorityFailure::KeyUnavailable(_) => "key_unavailable",
            AuthorityFailure::TrustRoot(_) => "trust_root",
            AuthorityFailure::Registry { .. } => "registry",
            AuthorityFailure::Unsigned { .. } => "unsigned",
            AuthorityFailure::Rejected { .. } => "signature_rejected",
            AuthorityFailure::AttestationMissing { .. } => "attestation_missing",
            AuthorityFailure::AttestationDenied { .. } => "attestation_denied",
        }
    }

    /// True when checking again within seconds would give the same answer, so the failure
    /// may be cached briefly. Registry trouble that may pass (timeouts, 5xx, 429), keys read
    /// from the cluster and TrustRoots still being fetched are recomputed every time.
    pub fn is_definitive(&self) -> bool {
        match self {
            AuthorityFailure::Registry { definitive, .. } => *definitive,
            AuthorityFailure::KeyUnavailable(_) | AuthorityFailure::TrustRoot(_) => false,
            AuthorityFailure::DigestUnknown { .. } => false,
            AuthorityFailure::Static(_)
            | AuthorityFailure::Unsupported { .. }
            | AuthorityFailure::NothingToVerify
            | AuthorityFailure::Unsigned { .. }
            | AuthorityFailure::Rejected { .. }
            | AuthorityFailure::AttestationMissing { .. }
            | AuthorityFailure::AttestationDenied { .. } => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_before_the_type_existed() {
        let missing = AuthorityFailure::AttestationMissing {
            name: "sbom".into(),
            predicate_type: "https://spdx.dev/Document".into(),
            failures: vec!["a: bad".into(), "b: worse".into()],
        };
        assert_eq!(
            missing.to_string(),
            "attestation \"sbom\": no verified attestation of type https://spdx.dev/Document (a: bad; b: worse)"
        );
        let none_found = AuthorityFailure::AttestationMissing {
            name: "sbom".into(),
            predicate_type: "x".into(),
            failures: vec![],
        };
        assert_eq!(
            none_found.to_string(),
            "attestation \"sbom\": no verified attestation of type x"
        );
        let rejected = AuthorityFailure::Rejected {
            reasons: vec!["signature 1 of 2: no".into(), "signature 2 of 2: no".into()],
        };
        assert_eq!(rejected.to_string(), "signature 1 of 2: no; signature 2 of 2: no");
    }

    #[test]
    fn transient_failures_are_not_definitive() {
        let transient = AuthorityFailure::Registry {
            detail: "503".into(),
            definitive: false,
        };
        assert!(!transient.is_definitive());
        assert!(!AuthorityFailure::KeyUnavailable("secret unreadable".into()).is_definitive());
        assert!(AuthorityFailure::Unsigned { reasons: vec![] }.is_definitive());
        assert_eq!(transient.metric_label(), "registry");
    }
}
