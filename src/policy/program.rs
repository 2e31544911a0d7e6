//! The policies inside a ClusterImagePolicy: the CIP-level `spec.policy` and each
//! `authorities[].attestations[].policy`. They are compiled when the ClusterImagePolicy loads
//! (a policy that cannot be compiled rejects the ClusterImagePolicy, like any validation
//! error) and evaluated at admission against a JSON input built here, in policy-controller's
//! shape. No I/O: the text of a policy that lives elsewhere (`configMapRef`, `remote`) is read
//! by the policy sources (`sources::policy_text`) and handed in as [`PolicyTexts`]; until it
//! is there, the policy denies with the reason.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::cue::{CueError, CuePolicy};
use super::rego::{RegoError, RegoPolicy, Verdict};
use crate::api::cip::{Attestation, ClusterImagePolicySpec, Policy};

/// Where the text of a policy without inline `data` lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicySource {
    /// `configMapRef`: a key of a ConfigMap. policy-controller reads it from its own namespace,
    /// and so does signet; a different `namespace` is refused when the text is read.
    ConfigMap {
        namespace: Option<String>,
        name: String,
        key: String,
    },
    /// `remote`: a URL whose body must have this sha256 (hex).
    Remote { url: String, sha256: String },
}

impl PolicySource {
    /// The source of `policy`'s text when it has no inline `data`.
    pub fn of(policy: &Policy) -> Option<Self> {
        if policy.data.as_deref().is_some_and(|d| !d.is_empty()) {
            return None;
        }
        if let Some(cm) = &policy.config_map_ref {
            return Some(PolicySource::ConfigMap {
                namespace: cm.namespace.clone().filter(|n| !n.is_empty()),
                name: cm.name.clone().unwrap_or_default(),
                key: cm.key.clone().unwrap_or_default(),
            });
        }
        let remote = policy.remote.as_ref()?;
        Some(PolicySource::Remote {
            url: remote.url.clone().unwrap_or_default(),
            sha256: remote.sha256sum.clone().unwrap_or_default().to_ascii_lowercase(),
        })
    }

    /// The policy field that names this source.
    fn field(&self) -> &'static str {
        match self {
            PolicySource::ConfigMap { .. } => "configMapRef",
            PolicySource::Remote { .. } => "remote",
        }
    }
}

impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySource::ConfigMap { name, key, .. } => write!(f, "ConfigMap {name:?} key {key:?}"),
            PolicySource::Remote { url, .. } => write!(f, "{url}"),
        }
    }
}

/// Policy texts read by the policy sources: the text, or why it could not be read.
pub type PolicyTexts = BTreeMap<PolicySource, Result<String, String>>;

/// Every source a ClusterImagePolicy takes policy text from (`spec.policy` and the
/// attestations' policies).
pub fn policy_sources(spec: &ClusterImagePolicySpec) -> impl Iterator<Item = PolicySource> + '_ {
    let attestation_policies = spec
        .authorities
        .iter()
        .flat_map(|a| &a.attestations)
        .filter_map(|a| a.policy.as_ref());
    spec.policy
        .iter()
        .chain(attestation_policies)
        .filter_map(PolicySource::of)
}

/// The text of `policy` (at `path`): its `data`, or what the sources read for it.
fn policy_text<'a>(path: &str, policy: &'a Policy, texts: &'a PolicyTexts) -> Result<&'a str, String> {
    if let Some(data) = policy.data.as_deref().filter(|d| !d.is_empty()) {
        return Ok(data);
    }
    let Some(source) = PolicySource::of(policy) else {
        return Err(format!("{path} has no policy text"));
    };
    let field = source.field();
    match texts.get(&source) {
        Some(Ok(text)) => Ok(text),
        Some(Err(why)) => Err(format!("{path}.{field}: {why}")),
        None => Err(format!(
            "{path}.{field}: the policy text ({source}) has not been read yet"
        )),
    }
}

/// What an authority's result depends on besides its spec: the text its attestation policies
/// were read from, so a cached result never outlives an edited ConfigMap.
pub fn fetched_texts_of<'a>(
    attestations: &'a [Attestation],
    texts: &'a PolicyTexts,
) -> impl Iterator<Item = String> + 'a {
    attestations
        .iter()
        .filter_map(|a| a.policy.as_ref())
        .filter_map(|p| texts.get(&PolicySource::of(p)?))
        .map(|text| format!("{text:?}"))
}

/// Why a policy cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    #[error("{path}: {source}")]
    Cue {
        path: String,
        #[source]
        source: CueError,
    },
    #[error("{path}: {source}")]
    Rego {
        path: String,
        #[source]
        source: RegoError,
    },
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub enum Program {
    Rego(RegoPolicy),
    Cue(CuePolicy),
    /// Known at load time to be impossible to evaluate here; every evaluation fails with this.
    Unavailable(String),
}

impl Program {
    /// Compiles `policy`, found at `path` (e.g. `spec.policy`) of ClusterImagePolicy `cip`;
    /// text that is not inline comes from `texts`. `subject` is what policy-controller's CUE
    /// messages call the policy: the attestation's name, or `ClusterImagePolicy`.
    pub fn compile(
        cip: &str,
        path: &str,
        subject: &str,
        policy: &Policy,
        texts: &PolicyTexts,
    ) -> Result<Self, ProgramError> {
        let source = match policy_text(path, policy, texts) {
            Ok(text) => text,
            Err(why) => return Ok(Program::Unavailable(why)),
        };
        if policy.type_ == "cue" {
            return CuePolicy::compile(subject, source)
                .map(Program::Cue)
                .map_err(|source| ProgramError::Cue {
                    path: path.to_string(),
                    source,
                });
        }
        RegoPolicy::compile(&format!("{cip} {path}"), source)
            .map(Program::Rego)
            .map_err(|source| ProgramError::Rego {
                path: path.to_string(),
                source,
            })
    }

    /// Evaluates against `input` on a bounded evaluation thread (see [`super::rego`]).
    pub async fn evaluate(&self, input: Value) -> Verdict {
        match self {
            Program::Rego(policy) => policy.evaluate(input).await,
            Program::Cue(policy) => policy.evaluate(input).await,
            Program::Unavailable(reason) => Verdict::Deny {
                error: reason.clone(),
                warning: None,
            },
        }
    }
}

/// `authorities[].attestations[]`, compiled: the predicate type as a URI and its policy.
#[derive(Debug, Clone)]
pub struct CompiledAttestation {
    pub name: String,
    pub predicate_type: String,
    pub program: Option<Program>,
}

impl CompiledAttestation {
    /// Compiles `attestation` at `path`; a deprecated predicate type short name adds a warning.
    pub fn compile(
        cip: &str,
        path: &str,
        attestation: &Attestation,
        texts: &PolicyTexts,
        warnings: &mut Vec<String>,
    ) -> Result<Self, ProgramError> {
        let (predicate_type, deprecated) = predicate_type_uri(&attestation.predicate_type);
        if let Some(warning) = deprecated {
            warnings.push(format!("{path}.predicateType: {warning}"));
        }
        let program = attestation
            .policy
            .as_ref()
            .map(|policy| Program::compile(cip, &format!("{path}.policy"), &attestation.name, policy, texts))
            .transpose()?;
        Ok(CompiledAttestation {
            name: attestation.name.clone(),
            predicate_type,
            program,
        })
    }

    /// Checks one verified attestation: `statement` is its whole in-toto statement
    /// (`_type`, `subject`, `predicateType`, `predicate`), as policy-controller passes it. An
    /// attestation without a policy passes once verified.
    pub async fn evaluate(&self, statement: Value) -> Verdict {
        match &self.program {
            Some(program) => program.evaluate(statement).await,
            None => Verdict::Allow { warning: None },
        }
    }
}

/// cosign's predicate type short names and the URIs they stand for.
const PREDICATE_TYPES: [(&str, &str); 10] = [
    ("custom", "https://cosign.sigstore.dev/attestation/v1"),
    ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance02", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
    ("spdx", "https://spdx.dev/Document"),
    ("spdxjson", "https://spdx.dev/Document"),
    ("cyclonedx", "https://cyclonedx.org/bom"),
    ("link", "https://in-toto.io/Link/v1"),
    ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
    ("openvex", "https://openvex.dev/ns"),
];

/// The predicate type URI `name` stands for, and a deprecation warning when `name` is one of
/// cosign's short names (accepted, as policy-controller accepts them). Anything else is taken
/// as a URI already.
pub fn predicate_type_uri(name: &str) -> (String, Option<String>) {
    match PREDICATE_TYPES.iter().find(|(short, _)| *short == name) {
        Some((short, uri)) => (
            uri.to_string(),
            Some(format!(
                "the short name {short:?} is deprecated; write the predicate type URI {uri:?}"
            )),
        ),
        None => (name.to_string(), None),
    }
}

/// A verified signature, as policy-controller's `PolicySignature` shows it to a `spec.policy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicySignature {
    /// The digest (hex) of the signature's OCI layer.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub issuer: String,
    /// GitHub certificate extensions by policy-controller's field name
    /// (`githubWorkflowTrigger`, `githubWorkflowSha`, `githubWorkflowName`,
    /// `githubWorkflowRepo`, `githubWorkflowRef`).
    #[serde(flatten)]
    pub github: BTreeMap<String, String>,
}

/// What one passing authority contributes to `authorityMatches`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorityMatch {
    Static,
    Signatures(Vec<PolicySignature>),
    /// Attestation name → the verified attestations (each a [`PolicySignature`] plus
    /// `predicateType`), for authorities with `attestations`.
    Attestations(BTreeMap<String, Vec<Value>>),
}

impl AuthorityMatch {
    fn to_json(&self) -> Value {
        match self {
            AuthorityMatch::Static => json!({"static": true}),
            AuthorityMatch::Signatures(signatures) => json!({"signatures": signatures}),
            AuthorityMatch::Attestations(attestations) => json!({"attestations": attestations}),
        }
    }
}

/// The input of a CIP-level `spec.policy`: `authorityMatches` (passing authorities only, by
/// name), the image's `config` files by platform when the policy has `fetchConfigFile`, and
/// the admitted object's `spec`, `metadata` and `typemeta` when the policy asks for them with
/// `includeSpec`, `includeObjectMeta` and `includeTypeMeta`.
pub fn cip_policy_input(
    policy: &Policy,
    matches: &BTreeMap<String, AuthorityMatch>,
    object: Option<&Value>,
    config: Option<Value>,
) -> Value {
    let mut input = Map::new();
    let matches: Map<String, Value> = matches.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
    input.insert("authorityMatches".into(), Value::Object(matches));
    if let Some(config) = config {
        input.insert("config".into(), config);
    }
    let field = |name: &str| object.and_then(|o| o.get(name)).cloned();
    if policy.include_spec == Some(true)
        && let Some(spec) = field("spec")
    {
        input.insert("spec".into(), spec);
    }
    if policy.include_object_meta == Some(true)
        && let Some(metadata) = field("metadata")
    {
        input.insert("metadata".into(), metadata);
    }
    if policy.include_type_meta == Some(true) {
        let mut typemeta = Map::new();
        for name in ["apiVersion", "kind"] {
            if let Some(value) = field(name) {
                typemeta.insert(name.into(), value);
            }
        }
        input.insert("typemeta".into(), Value::Object(typemeta));
    }
    Value::Object(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rego(data: &str) -> Policy {
        Policy {
            type_: "rego".into(),
            data: Some(data.into()),
            ..Default::default()
        }
    }

    #[test]
    fn predicate_type_short_names() {
        let rows = [
            ("custom", "https://cosign.sigstore.dev/attestation/v1", true),
            ("slsaprovenance", "https://slsa.dev/provenance/v0.2", true),
            ("slsaprovenance02", "https://slsa.dev/provenance/v0.2", true),
            ("slsaprovenance1", "https://slsa.dev/provenance/v1", true),
            ("spdx", "https://spdx.dev/Document", true),
            ("spdxjson", "https://spdx.dev/Document", true),
            ("cyclonedx", "https://cyclonedx.org/bom", true),
            ("link", "https://in-toto.io/Link/v1", true),
            ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1", true),
            ("openvex", "https://openvex.dev/ns", true),
            (
                "https://slsa.dev/provenance/v1",
                "https://slsa.dev/provenance/v1",
                false,
            ),
            ("https://example.com/custom", "https://example.com/custom", false),
            ("SPDX", "SPDX", false),
        ];
        for (name, uri, deprecated) in rows {
            let (found, warning) = predicate_type_uri(name);
            assert_eq!(found, uri, "{name}");
            assert_eq!(warning.is_some(), deprecated, "{name}");
            if let Some(warning) = warning {
                assert!(warning.contains("deprecated") && warning.contains(uri), "{warning}");
            }
        }
    }

    #[test]
    fn cue_and_rego_compile_and_bad_policies_name_their_path() {
        let cue = |data: &str| Policy {
            type_: "cue".into(),
            data: Some(data.into()),
            ..Default::default()
        };
        let ok = Program::compile(
            "p",
            "spec.policy",
            "ClusterImagePolicy",
            &cue("predicateType: \"x\""),
            &PolicyTexts::new(),
        );
        assert!(matches!(ok, Ok(Program::Cue(_))));
        let err = Program::compile(
            "p",
            "spec.policy",
            "ClusterImagePolicy",
            &cue("x: [for v in y {v}]"),
            &PolicyTexts::new(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "spec.policy: failed to compile the cue policy with error: line 1: unsupported CUE construct: for comprehensions"
        );
        let err = Program::compile(
            "p",
            "spec.policy",
            "ClusterImagePolicy",
            &rego("package x"),
            &PolicyTexts::new(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.policy: rego policy \"p spec.policy\" must be"),
            "{err}"
        );
        let ok = Program::compile(
            "p",
            "spec.policy",
            "ClusterImagePolicy",
            &rego("package sigstore\nisCompliant = true"),
            &PolicyTexts::new(),
        );
        assert!(matches!(ok, Ok(Program::Rego(_))));
    }

    #[tokio::test]
    async fn policies_without_text_fail_at_evaluation_with_the_reason() {
        let rows = [
            (
                Policy {
                    type_: "rego".into(),
                    config_map_ref: Some(Default::default()),
                    ..Default::default()
                },
                "spec.policy.configMapRef: the policy text (ConfigMap \"\" key \"\") has not been read yet",
            ),
            (
                Policy {
                    type_: "rego".into(),
                    remote: Some(Default::default()),
                    ..Default::default()
                },
                "spec.policy.remote: the policy text () has not been read yet",
            ),
        ];
        for (policy, want) in rows {
            let program =
                Program::compile("p", "spec.policy", "ClusterImagePolicy", &policy, &PolicyTexts::new()).unwrap();
            match program.evaluate(json!({})).await {
                Verdict::Deny { error, .. } => assert!(error.contains(want), "{error}"),
                other => panic!("{want}: {other:?}"),
            }
        }
    }

    fn from_config_map(name: &str) -> Policy {
        Policy {
            type_: "rego".into(),
            config_map_ref: Some(crate::api::cip::ConfigMapReference {
                name: Some(name.into()),
                key: Some("policy".into()),
                namespace: None,
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn fetched_texts_are_compiled_and_failures_keep_their_reason() {
        let source = |name: &str| PolicySource::of(&from_config_map(name)).unwrap();
        let texts = PolicyTexts::from([
            (source("good"), Ok("package sigstore\nisCompliant = true".to_string())),
            (source("gone"), Err("ConfigMap \"gone\" not found".to_string())),
            (source("broken"), Ok("package elsewhere".to_string())),
        ]);
        let good = Program::compile(
            "p",
            "spec.policy",
            "ClusterImagePolicy",
            &from_config_map("good"),
            &texts,
        )
        .unwrap();
        assert!(matches!(good.evaluate(json!({})).await, Verdict::Allow { .. }));
        let gone = Program::compile(
            "p",
            "spec.policy",
            "ClusterImagePolicy",
            &from_config_map("gone"),
            &texts,
        )
        .unwrap();
        match gone.evaluate(json!({})).await {
            Verdict::Deny { error, .. } => {
                assert_eq!(error, "spec.policy.configMapRef: ConfigMap \"gone\" not found")
            }
            other => panic!("{other:?}"),
        }
        let broken = Program::compile(
            "p",
            "spec.policy",
            "ClusterImagePolicy",
            &from_config_map("broken"),
            &texts,
        )
        .unwrap_err();
        assert!(broken.to_string().starts_with("spec.policy: rego policy"), "{broken}");
    }

    #[test]
    fn sources_of_a_policy() {
        let remote = Policy {
            type_: "rego".into(),
            remote: Some(crate::api::cip::RemotePolicy {
                url: Some("https://example.com/p.rego".into()),
                sha256sum: Some("ABCD".into()),
            }),
            ..Default::default()
        };
        assert_eq!(
            PolicySource::of(&remote),
            Some(PolicySource::Remote {
                url: "https://example.com/p.rego".into(),
                sha256: "abcd".into()
            })
        );
        assert_eq!(PolicySource::of(&rego("package sigstore")), None);
        let spec = ClusterImagePolicySpec {
            policy: Some(remote.clone()),
            authorities: vec![crate::api::cip::Authority {
                attestations: vec![Attestation {
                    name: "a".into(),
                    predicate_type: "custom".into(),
                    policy: Some(from_config_map("cm")),
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let sources: Vec<PolicySource> = policy_sources(&spec).collect();
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[1].to_string(), "ConfigMap \"cm\" key \"policy\"");
    }

    #[test]
    fn cip_input_has_policy_controllers_shape() {
        let object = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b"}},
            "spec": {"serviceAccountName": "default"}
        });
        let matches = BTreeMap::from([
            ("fixed".to_string(), AuthorityMatch::Static),
            (
                "key".to_string(),
                AuthorityMatch::Signatures(vec![PolicySignature {
                    id: "abc".into(),
                    github: BTreeMap::from([("githubWorkflowRef".to_string(), "refs/tags/v1".to_string())]),
                    ..Default::default()
                }]),
            ),
        ]);
        let everything = Policy {
            include_spec: Some(true),
            include_object_meta: Some(true),
            include_type_meta: Some(true),
            ..rego("")
        };
        assert_eq!(
            cip_policy_input(
                &everything,
                &matches,
                Some(&object),
                Some(json!({"linux/amd64": {"os": "linux"}}))
            ),
            json!({
                "authorityMatches": {
                    "fixed": {"static": true},
                    "key": {"signatures": [{"id": "abc", "githubWorkflowRef": "refs/tags/v1"}]}
                },
                "config": {"linux/amd64": {"os": "linux"}},
                "spec": {"serviceAccountName": "default"},
                "metadata": {"name": "p", "labels": {"a": "b"}},
                "typemeta": {"apiVersion": "v1", "kind": "Pod"}
            })
        );
        let nothing = cip_policy_input(&rego(""), &BTreeMap::new(), Some(&object), None);
        assert_eq!(nothing, json!({"authorityMatches": {}}));
    }
}
