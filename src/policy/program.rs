//! The policies inside a ClusterImagePolicy: the CIP-level `spec.policy` and each
//! `authorities[].attestations[].policy`. They are compiled when the ClusterImagePolicy loads
//! (a policy that cannot be compiled rejects the ClusterImagePolicy, like any validation
//! error) and evaluated at admission against a JSON input built here, in policy-controller's
//! shape. No I/O: a policy whose text lives elsewhere (`configMapRef`, `remote`) is evaluated
//! only once the policy sources put that text into `data`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::rego::{RegoError, RegoPolicy, Verdict};
use crate::api::cip::{Attestation, Policy};

/// Why a policy cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    #[error(
        "{path}: CUE policies are not supported: signet has no CUE evaluator, so this policy cannot be enforced; write it in Rego (type: rego)"
    )]
    Cue { path: String },
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
    /// Known at load time to be impossible to evaluate here; every evaluation fails with this.
    Unavailable(String),
}

impl Program {
    /// Compiles `policy`, found at `path` (e.g. `spec.policy`) of ClusterImagePolicy `cip`.
    pub fn compile(cip: &str, path: &str, policy: &Policy) -> Result<Self, ProgramError> {
        if policy.type_ == "cue" {
            return Err(ProgramError::Cue { path: path.to_string() });
        }
        if policy.fetch_config_file == Some(true) {
            // Needs registry I/O per platform before evaluation, which signet does not do yet.
            return Ok(Program::Unavailable(format!(
                "{path}.fetchConfigFile (image config files) is not supported by this signet build yet"
            )));
        }
        let Some(source) = policy.data.as_deref().filter(|d| !d.is_empty()) else {
            return Ok(Program::Unavailable(unresolved_reason(path, policy)));
        };
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
            Program::Unavailable(reason) => Verdict::Deny {
                error: reason.clone(),
                warning: None,
            },
        }
    }
}

/// Why a policy without inline `data` has no text yet.
fn unresolved_reason(path: &str, policy: &Policy) -> String {
    if policy.config_map_ref.is_some() {
        format!("{path}.configMapRef: the policy text has not been read from the ConfigMap")
    } else if policy.remote.is_some() {
        format!("{path}.remote: the policy text has not been fetched (or did not match its sha256sum)")
    } else {
        format!("{path} has no policy text")
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
        warnings: &mut Vec<String>,
    ) -> Result<Self, ProgramError> {
        let (predicate_type, deprecated) = predicate_type_uri(&attestation.predicate_type);
        if let Some(warning) = deprecated {
            warnings.push(format!("{path}.predicateType: {warning}"));
        }
        let program = attestation
            .policy
            .as_ref()
            .map(|policy| Program::compile(cip, &format!("{path}.policy"), policy))
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
/// name), plus the admitted object's `spec`, `metadata` and `typemeta` when the policy asks
/// for them with `includeSpec`, `includeObjectMeta` and `includeTypeMeta`.
pub fn cip_policy_input(policy: &Policy, matches: &BTreeMap<String, AuthorityMatch>, object: Option<&Value>) -> Value {
    let mut input = Map::new();
    let matches: Map<String, Value> = matches.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
    input.insert("authorityMatches".into(), Value::Object(matches));
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
    fn cue_is_rejected_and_rego_compiles() {
        let cue = Policy {
            type_: "cue".into(),
            data: Some("predicateType: \"x\"".into()),
            ..Default::default()
        };
        let err = Program::compile("p", "spec.policy", &cue).unwrap_err().to_string();
        assert!(err.starts_with("spec.policy: CUE policies are not supported"), "{err}");
        let err = Program::compile("p", "spec.policy", &rego("package x")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.policy: rego policy \"p spec.policy\" must be"),
            "{err}"
        );
        let ok = Program::compile("p", "spec.policy", &rego("package sigstore\nisCompliant = true"));
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
                "spec.policy.configMapRef: the policy text has not been read",
            ),
            (
                Policy {
                    type_: "rego".into(),
                    remote: Some(Default::default()),
                    ..Default::default()
                },
                "spec.policy.remote: the policy text has not been fetched",
            ),
            (
                Policy {
                    fetch_config_file: Some(true),
                    ..rego("package sigstore\nisCompliant = true")
                },
                "fetchConfigFile (image config files) is not supported",
            ),
        ];
        for (policy, want) in rows {
            let program = Program::compile("p", "spec.policy", &policy).unwrap();
            match program.evaluate(json!({})).await {
                Verdict::Deny { error, .. } => assert!(error.contains(want), "{error}"),
                other => panic!("{want}: {other:?}"),
            }
        }
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
            cip_policy_input(&everything, &matches, Some(&object)),
            json!({
                "authorityMatches": {
                    "fixed": {"static": true},
                    "key": {"signatures": [{"id": "abc", "githubWorkflowRef": "refs/tags/v1"}]}
                },
                "spec": {"serviceAccountName": "default"},
                "metadata": {"name": "p", "labels": {"a": "b"}},
                "typemeta": {"apiVersion": "v1", "kind": "Pod"}
            })
        );
        let nothing = cip_policy_input(&rego(""), &BTreeMap::new(), Some(&object));
        assert_eq!(nothing, json!({"authorityMatches": {}}));
    }
}
