//! An immutable, pre-compiled view of every ClusterImagePolicy: globs compiled, validation
//! done once at load time, so admission only reads it (through an `ArcSwap`, without locks).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use sha2::Digest;

use super::evaluate::ResourceInfo;
use super::glob::Glob;
use super::program::{
    CompiledAttestation, PolicySource, PolicyTexts, Program, ProgramError, fetched_texts_of, policy_sources,
};
use super::reference::ImageRef;
use super::validate::{validate_policy, validate_trust_root};
use crate::api::cip::{Authority, ClusterImagePolicy, ClusterImagePolicySpec};
use crate::api::trustroot::{TrustRoot, TrustRootSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    Warn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorityKind {
    Static { pass: bool, message: Option<String> },
    Key,
    Keyless,
}

#[derive(Debug, Clone)]
pub struct CompiledAuthority {
    /// The authority's `name`, or `authority-<index>` as policy-controller names it.
    pub name: String,
    /// sha256 of the authority's spec: cached results are keyed by it, so an edited
    /// authority never reuses an old result.
    pub fingerprint: String,
    pub kind: AuthorityKind,
    pub spec: Authority,
    /// `attestations[]`, with predicate types as URIs and their policies compiled.
    pub attestations: Vec<CompiledAttestation>,
}

impl CompiledAuthority {
    pub fn is_verifying(&self) -> bool {
        !matches!(self.kind, AuthorityKind::Static { .. })
    }
}

/// `spec.match[]`: a resource kind and an optional label selector.
#[derive(Debug, Clone)]
pub struct ResourceMatch {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub selector: Option<LabelSelector>,
}

#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    pub mode: Mode,
    pub globs: Vec<Glob>,
    pub matches: Vec<ResourceMatch>,
    pub authorities: Vec<CompiledAuthority>,
    pub spec: ClusterImagePolicySpec,
    /// The compiled `spec.policy`, evaluated once an authority passes.
    pub program: Option<Program>,
    /// What is accepted but deprecated (predicate type short names), for the log.
    pub warnings: Vec<String>,
}

/// A policy that failed validation; kept so it can be reported, never enforced silently.
#[derive(Debug, Clone)]
pub struct RejectedPolicy {
    pub kind: RejectedKind,
    /// What to call it in messages (`TrustRoot/<name>` for trust roots, a path for a file).
    pub name: String,
    pub error: String,
}

/// What was rejected: only ClusterImagePolicies have a status to report it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectedKind {
    Policy,
    TrustRoot,
    /// A manifest file that does not parse (standalone mode).
    File,
}

/// Everything admission needs to know about policies at one moment.
#[derive(Debug, Clone, Default)]
pub struct PolicySnapshot {
    pub policies: Vec<Arc<CompiledPolicy>>,
    pub rejected: Vec<RejectedPolicy>,
    /// `TrustRoot` resources by name, for `trustRootRef`.
    pub trust_roots: BTreeMap<String, TrustRootSpec>,
    /// Where the enforced policies' non-inline policy texts live (`configMapRef`, `remote`),
    /// for the policy sources to read.
    pub policy_sources: BTreeSet<PolicySource>,
    /// How many of `policy_sources` have not been tried yet (neither read nor failed).
    pub unread_texts: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("ClusterImagePolicy {name:?} is invalid: {reason}")]
pub struct CompileError {
    pub name: String,
    pub reason: String,
}

impl PolicySnapshot {
    /// Compiles every policy, sorted by name so evaluation order and messages are stable.
    pub fn build(policies: impl IntoIterator<Item = ClusterImagePolicy>) -> Self {
        Self::build_with_texts(policies, &PolicyTexts::new())
    }

    /// The snapshot of the ClusterImagePolicies in `manifests` (YAML), for tests; every one
    /// must compile.
    #[cfg(test)]
    pub(crate) fn from_yaml(manifests: &[&str]) -> Self {
        let policies = manifests
            .iter()
            .flat_map(|text| crate::api::parse_documents(text).expect("test manifests parse"))
            .filter_map(|document| match document {
                crate::api::Document::Policy(policy) => Some(policy),
                _ => None,
            });
        let snapshot = Self::build(policies);
        assert!(snapshot.rejected.is_empty(), "{:?}", snapshot.rejected);
        snapshot
    }

    /// [`PolicySnapshot::build`], with the policy texts read so far from ConfigMaps and URLs.
    pub fn build_with_texts(policies: impl IntoIterator<Item = ClusterImagePolicy>, texts: &PolicyTexts) -> Self {
        let mut snapshot = PolicySnapshot::default();
        for policy in policies {
            match CompiledPolicy::compile(&policy, texts) {
                Ok(compiled) => {
                    snapshot.policy_sources.extend(policy_sources(&compiled.spec));
                    snapshot.policies.push(Arc::new(compiled))
                }
                Err(e) => snapshot.rejected.push(RejectedPolicy {
                    kind: RejectedKind::Policy,
                    name: e.name,
                    error: e.reason,
                }),
            }
        }
        snapshot.policies.sort_by(|a, b| a.name.cmp(&b.name));
        snapshot.rejected.sort_by(|a, b| a.name.cmp(&b.name));
        snapshot.unread_texts = snapshot
            .policy_sources
            .iter()
            .filter(|source| !texts.contains_key(*source))
            .count();
        snapshot
    }

    /// Adds `TrustRoot` resources; invalid ones are reported like rejected policies.
    pub fn with_trust_roots(mut self, roots: impl IntoIterator<Item = TrustRoot>) -> Self {
        for root in roots {
            let name = root.metadata.name.clone().unwrap_or_default();
            match validate_trust_root(&root.spec) {
                Ok(()) => {
                    self.trust_roots.insert(name, root.spec);
                }
                Err(e) => self.rejected.push(RejectedPolicy {
                    kind: RejectedKind::TrustRoot,
                    name: format!("TrustRoot/{name}"),
                    error: e.to_string(),
                }),
            }
        }
        self
    }
}

impl CompiledPolicy {
    /// Compiles `policy`; policy text that is not inline comes from `texts`.
    pub fn compile(policy: &ClusterImagePolicy, texts: &PolicyTexts) -> Result<Self, CompileError> {
        let name = policy.metadata.name.clone().unwrap_or_default();
        let fail = |reason: String| CompileError {
            name: name.clone(),
            reason,
        };
        let spec = &policy.spec;
        validate_policy(spec).map_err(|e| fail(e.to_string()))?;
        let globs = spec
            .images
            .iter()
            .map(|i| Glob::compile(&i.glob))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(e.to_string()))?;
        let mut warnings = Vec::new();
        let authorities = spec
            .authorities
            .iter()
            .enumerate()
            .map(|(index, authority)| compile_authority(&name, index, authority, texts, &mut warnings))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(e.to_string()))?;
        let program = spec
            .policy
            .as_ref()
            .map(|policy| Program::compile(&name, "spec.policy", "ClusterImagePolicy", policy, texts))
            .transpose()
            .map_err(|e| fail(e.to_string()))?;
        for warning in &warnings {
            tracing::warn!(policy = %name, %warning, "ClusterImagePolicy uses a deprecated form");
        }
        let matches = spec
            .match_
            .iter()
            .map(|m| ResourceMatch {
                group: m.group.clone().unwrap_or_default(),
                version: m.version.clone().unwrap_or_default(),
                resource: m.resource.clone().unwrap_or_default(),
                selector: m.selector.clone(),
            })
            .collect();
        Ok(CompiledPolicy {
            name: name.clone(),
            uid: policy.metadata.uid.clone().unwrap_or_default(),
            resource_version: policy.metadata.resource_version.clone().unwrap_or_default(),
            mode: match spec.mode.as_deref() {
                Some("warn") => Mode::Warn,
                _ => Mode::Enforce,
            },
            globs,
            matches,
            authorities,
            spec: spec.clone(),
            program,
            warnings,
        })
    }

    /// Whether this policy governs `image` in `resource`: a glob matches and, when the
    /// policy lists `match` entries, one of them names the resource (and its labels).
    pub fn applies_to(&self, image: &ImageRef, resource: &ResourceInfo) -> bool {
        let glob_matches = self.globs.iter().any(|g| g.matches(image));
        let resource_matches = self.matches.is_empty()
            || self.matches.iter().any(|m| {
                m.resource == resource.resource
                    && m.group == resource.group
                    && (m.version.is_empty() || m.version == resource.version)
                    && m.selector
                        .as_ref()
                        .is_none_or(|s| selector_matches(s, &resource.labels))
            });
        glob_matches && resource_matches
    }

    /// Whether `spec.policy` needs the image's config files (`fetchConfigFile`).
    pub fn wants_config_files(&self) -> bool {
        self.program.is_some()
            && self
                .spec
                .policy
                .as_ref()
                .is_some_and(|p| p.fetch_config_file == Some(true))
    }

    pub fn has_verifying_authority(&self) -> bool {
        self.authorities.iter().any(CompiledAuthority::is_verifying)
    }
}

fn compile_authority(
    policy: &str,
    index: usize,
    authority: &Authority,
    texts: &PolicyTexts,
    warnings: &mut Vec<String>,
) -> Result<CompiledAuthority, ProgramError> {
    let name = authority
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("authority-{index}"));
    let kind = match (&authority.static_, &authority.key) {
        (Some(s), _) => AuthorityKind::Static {
            pass: s.action == "pass",
            message: s.message.clone().filter(|m| !m.is_empty()),
        },
        (None, Some(_)) => AuthorityKind::Key,
        (None, None) => AuthorityKind::Keyless,
    };
    let attestations = authority
        .attestations
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let path = format!("spec.authorities[{index}].attestations[{i}]");
            CompiledAttestation::compile(policy, &path, a, texts, warnings)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut hasher = sha2::Sha256::new();
    hasher.update(serde_json::to_vec(authority).unwrap_or_default());
    for text in fetched_texts_of(&authority.attestations, texts) {
        hasher.update(text);
    }
    let fingerprint = format!("{:x}", hasher.finalize());
    Ok(CompiledAuthority {
        name,
        fingerprint,
        kind,
        spec: authority.clone(),
        attestations,
    })
}

/// Kubernetes label selector semantics: every `matchLabels` entry and every expression holds.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_hold = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_hold = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            // An operator Kubernetes does not define selects nothing.
            _ => false,
        }
    });
    labels_hold && expressions_hold
}
