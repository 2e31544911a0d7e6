//! The `policy.sigstore.dev` resources signet shares with policy-controller: types, CRDs and a
//! manifest reader. No I/O here, so the CLI, the folder source and the in-cluster reflector all
//! decode policies the same way.

pub mod cip;
pub mod trustroot;

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResourceExt;
use kube::core::crd::{MergeError, merge_crds};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use cip::{ClusterImagePolicy, ClusterImagePolicySpec};
pub use trustroot::{TrustRoot, TrustRootSpec};

/// `apiVersion` of the storage version of ClusterImagePolicy.
pub const CIP_STORAGE_VERSION: &str = "v1beta1";

/// Why manifests or CRDs could not be produced or read. Document errors carry the document's
/// position (0-based, counting every `---`-separated document, empty ones included) and the
/// line it starts on, because a policy folder often holds many documents per file.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("document {index} (line {line}): invalid YAML: {source}")]
    Yaml {
        index: usize,
        line: usize,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    #[error("document {index} (line {line}): missing apiVersion or kind")]
    MissingTypeMeta { index: usize, line: usize },
    #[error("document {index} (line {line}): {kind} {api_version} is not supported (expected {expected})")]
    UnsupportedVersion {
        index: usize,
        line: usize,
        api_version: String,
        kind: String,
        expected: &'static str,
    },
    #[error("document {index} (line {line}): cannot decode {kind}: {source}")]
    Decode {
        index: usize,
        line: usize,
        kind: &'static str,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    #[error("cannot post-process the schema of CRD {name}: {source}")]
    Schema {
        name: String,
        #[source]
        source: Box<serde_json::Error>,
    },
    #[error("cannot merge the ClusterImagePolicy CRD versions: {0}")]
    MergeCrds(#[from] MergeError),
    #[error("cannot render CRD {name} as YAML: {source}")]
    RenderCrd {
        name: String,
        #[source]
        source: Box<serde_saphyr::SerializeError>,
    },
}

// Shared by both resources, in the shape policy-controller (knative) writes, so a cluster
// moving between the two keeps readable status.
/// Status represents the current state of the resource. This data may be out of date.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// Conditions the latest available observations of a resource's current state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// ObservedGeneration is the 'Generation' of the resource that was last processed by the
    /// controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Annotations is additional Status fields for the Resource to save some additional State
    /// as well as convey more information to the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

// A standard Kubernetes condition plus knative's optional severity.
/// An observation of one aspect of the resource's state.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of condition, e.g. Ready.
    #[serde(rename = "type")]
    pub type_: String,
    /// Status of the condition, one of True, False, Unknown.
    pub status: String,
    /// The reason for the condition's last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human readable message indicating details about the transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// LastTransitionTime is the last time the condition transitioned from one status to
    /// another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// The generation of the resource the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Severity with which to treat failures of this type of condition. When this is not
    /// specified, it defaults to Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
}

/// One decoded manifest document.
// Documents are decoded one at a time and moved on, so boxing the large variants buys nothing
// but noise at every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// A ClusterImagePolicy of either served version, as the storage (v1beta1) type.
    Policy(ClusterImagePolicy),
    TrustRoot(TrustRoot),
    /// Anything else (ConfigMaps, Secrets...), so callers can skip it knowingly.
    Other {
        api_version: String,
        kind: String,
    },
}

/// The CRDs signet installs: ClusterImagePolicy (v1alpha1 + v1beta1, v1beta1 stored) and
/// TrustRoot (v1alpha1). Versions are sorted so the output never depends on merge order.
pub fn crds() -> Result<Vec<CustomResourceDefinition>, ApiError> {
    let mut cip = merge_crds(
        vec![
            cip::v1alpha1::ClusterImagePolicy::crd(),
            cip::v1beta1::ClusterImagePolicy::crd(),
        ],
        CIP_STORAGE_VERSION,
    )?;
    cip.spec.versions.sort_by(|a, b| a.name.cmp(&b.name));
    let mut crds = vec![cip, TrustRoot::crd()];
    for crd in &mut crds {
        strip_defaults(crd)?;
    }
    Ok(crds)
}

/// Removes the `default`s schemars derives from `#[serde(default)]`: the API server would
/// write them (`name: ""`, `images: []`) into stored objects, which policy-controller's CRD
/// never does, and every field here is optional on purpose (validation reports what is
/// missing, with its path).
fn strip_defaults(crd: &mut CustomResourceDefinition) -> Result<(), ApiError> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let schema_error = |source| ApiError::Schema {
        name: name.clone(),
        source: Box::new(source),
    };
    for version in &mut crd.spec.versions {
        let Some(validation) = version.schema.as_mut() else {
            continue;
        };
        let Some(schema) = validation.open_api_v3_schema.take() else {
            continue;
        };
        let mut json = serde_json::to_value(schema).map_err(schema_error)?;
        strip_schema_defaults(&mut json);
        validation.open_api_v3_schema = Some(serde_json::from_value(json).map_err(schema_error)?);
    }
    Ok(())
}

fn strip_schema_defaults(schema: &mut serde_json::Value) {
    match schema {
        serde_json::Value::Object(map) => {
            map.remove("default");
            for (key, value) in map.iter_mut() {
                match (key.as_str(), value.as_object_mut()) {
                    // Keys of `properties` are field names, not schema keywords.
                    ("properties", Some(fields)) => fields.values_mut().for_each(strip_schema_defaults),
                    _ => strip_schema_defaults(value),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_schema_defaults),
        _ => {}
    }
}

const GENERATED_HEADER: &str = "# Generated by `signet crd` from src/api. Do not edit.\n";

/// File names under `crds/` and their contents, for `signet crd` to write and CI to compare.
pub fn crd_files() -> Result<Vec<(&'static str, String)>, ApiError> {
    let names = ["clusterimagepolicies.yaml", "trustroots.yaml"];
    names
        .into_iter()
        .zip(crds()?)
        .map(|(file, crd)| Ok((file, render_crd(&crd)?)))
        .collect()
}

fn render_crd(crd: &CustomResourceDefinition) -> Result<String, ApiError> {
    let yaml = serde_saphyr::to_string(crd).map_err(|source| ApiError::RenderCrd {
        name: crd.metadata.name.clone().unwrap_or_default(),
        source: Box::new(source),
    })?;
    Ok(format!("{GENERATED_HEADER}{yaml}"))
}

/// Both CRDs as one multi-document YAML stream (what `signet crd` prints).
pub fn crds_yaml() -> Result<String, ApiError> {
    let files = crd_files()?;
    let docs: Vec<String> = files.into_iter().map(|(_, yaml)| yaml).collect();
    Ok(docs.join("---\n"))
}

/// A document's text, padded with blank lines so that parser errors report line numbers of
/// the whole stream rather than of the document.
struct RawDocument {
    index: usize,
    line: usize,
    text: String,
}

/// Splits a YAML stream on `---` / `...` markers at column 0. Done by hand rather than with
/// the parser's multi-document API so each document keeps its position even when it is empty
/// or broken.
fn split_documents(yaml: &str) -> Vec<RawDocument> {
    let mut docs = Vec::new();
    let mut current = RawDocument {
        index: 0,
        line: 1,
        text: String::new(),
    };
    for (number, line) in yaml.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        if let Some(rest) = marker_rest(line) {
            let next = RawDocument {
                index: docs.len() + 1,
                line: number,
                text: "\n".repeat(number - 1),
            };
            docs.push(std::mem::replace(&mut current, next));
            current.text.push_str(rest);
            current.text.push('\n');
        } else if line.starts_with('%') {
            // A directive (`%YAML 1.2`) only describes the document after it.
            current.text.push('\n');
        } else {
            current.text.push_str(line);
            current.text.push('\n');
        }
    }
    docs.push(current);
    docs
}

/// The text after a `---` or `...` marker if `line` is one.
fn marker_rest(line: &str) -> Option<&str> {
    ["---", "..."].into_iter().find_map(|marker| {
        let rest = line.strip_prefix(marker)?;
        let separated = rest.is_empty() || rest.starts_with([' ', '\t']);
        let is_start = marker == "---";
        separated.then_some(if is_start { rest } else { "" })
    })
}

/// Just enough of a document to route it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeHeader {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

/// Reads every document of a (multi-document) YAML or JSON manifest. Empty documents are
/// skipped; ClusterImagePolicy of either served version becomes the v1beta1 type (the schemas
/// are identical); TrustRoot is decoded; anything else is returned as [`Document::Other`].
pub fn parse_documents(yaml: &str) -> Result<Vec<Document>, ApiError> {
    let mut out = Vec::new();
    for raw in split_documents(yaml) {
        if let Some(doc) = parse_document(&raw)? {
            out.push(doc);
        }
    }
    Ok(out)
}

fn parse_document(raw: &RawDocument) -> Result<Option<Document>, ApiError> {
    let (index, line) = (raw.index, raw.line);
    let header: Option<TypeHeader> = serde_saphyr::from_str(&raw.text).map_err(|source| ApiError::Yaml {
        index,
        line,
        source: Box::new(source),
    })?;
    let Some(header) = header else {
        return Ok(None);
    };
    let (Some(api_version), Some(kind)) = (header.api_version, header.kind) else {
        return Err(ApiError::MissingTypeMeta { index, line });
    };
    let Some(group_version) = api_version.strip_prefix(cip::GROUP).and_then(|r| r.strip_prefix('/')) else {
        return Ok(Some(Document::Other { api_version, kind }));
    };
    let unsupported = |expected| ApiError::UnsupportedVersion {
        index,
        line,
        api_version: api_version.clone(),
        kind: kind.clone(),
        expected,
    };
    match (kind.as_str(), group_version) {
        (cip::KIND, "v1alpha1" | "v1beta1") => decode(raw, cip::KIND).map(Document::Policy),
        (cip::KIND, _) => Err(unsupported("v1alpha1 or v1beta1")),
        (trustroot::KIND, "v1alpha1") => decode(raw, trustroot::KIND).map(Document::TrustRoot),
        (trustroot::KIND, _) => Err(unsupported("v1alpha1")),
        _ => Ok(Document::Other {
            api_version: api_version.clone(),
            kind: kind.clone(),
        }),
    }
    .map(Some)
}

fn decode<T: serde::de::DeserializeOwned>(raw: &RawDocument, kind: &'static str) -> Result<T, ApiError> {
    serde_saphyr::from_str(&raw.text).map_err(|source| ApiError::Decode {
        index: raw.index,
        line: raw.line,
        kind,
        source: Box::new(source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "apiVersion: policy.sigstore.dev/v1alpha1\nkind: ClusterImagePolicy\nmetadata: {name: a}\nspec:\n  images: [{glob: '**'}]\n";

    #[test]
    fn splits_comments_markers_and_empty_documents() -> Result<(), ApiError> {
        let yaml = format!(
            "# licence\n---\n{POLICY}---\n---\n# only a comment\n--- # trailing\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n...\n"
        );
        let docs = parse_documents(&yaml)?;
        assert_eq!(docs.len(), 2);
        assert!(matches!(&docs[0], Document::Policy(p) if p.spec.images[0].glob == "**"));
        let other = Document::Other {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
        };
        assert_eq!(docs[1], other);
        Ok(())
    }

    #[test]
    fn both_versions_become_the_storage_type() -> Result<(), ApiError> {
        let beta = POLICY.replace("v1alpha1", "v1beta1");
        let docs = parse_documents(&format!("{POLICY}---\n{beta}"))?;
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0], docs[1]);
        Ok(())
    }

    #[test]
    fn json_is_accepted() -> Result<(), ApiError> {
        let json = r#"{"apiVersion":"policy.sigstore.dev/v1alpha1","kind":"TrustRoot","metadata":{"name":"t"},"spec":{"remote":{"mirror":"https://m"}}}"#;
        let docs = parse_documents(json)?;
        assert!(matches!(&docs[0], Document::TrustRoot(t) if t.spec.remote.is_some()));
        Ok(())
    }

    #[test]
    fn decode_errors_name_document_and_absolute_line() {
        let bad = POLICY.replace("images: [{glob: '**'}]", "images: 7");
        let yaml = format!("{POLICY}---\n{bad}");
        let err = parse_documents(&yaml).err();
        let Some(ApiError::Decode { index, line, .. }) = &err else {
            panic!("expected a decode error, got {err:?}");
        };
        assert_eq!((*index, *line), (1, 6));
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.starts_with("document 1 (line 6): cannot decode ClusterImagePolicy"));
        assert!(text.contains("line 11 column 11"), "{text}");
    }

    #[test]
    fn missing_type_meta_and_unknown_versions_are_errors() {
        let err = parse_documents("metadata: {name: x}\n").err();
        assert!(matches!(err, Some(ApiError::MissingTypeMeta { index: 0, line: 1 })));
        let v1 = POLICY.replace("v1alpha1", "v1");
        let err = parse_documents(&v1).err();
        assert!(matches!(err, Some(ApiError::UnsupportedVersion { .. })));
        let err = parse_documents("a: [\n").err();
        assert!(matches!(err, Some(ApiError::Yaml { .. })));
    }

    #[test]
    fn a_marker_needs_a_separator() {
        assert_eq!(marker_rest("---"), Some(""));
        assert_eq!(marker_rest("--- # c"), Some(" # c"));
        assert_eq!(marker_rest("..."), Some(""));
        assert_eq!(marker_rest("----"), None);
        assert_eq!(marker_rest(" ---"), None);
    }

    #[test]
    fn cip_crd_serves_both_versions_and_stores_v1beta1() -> Result<(), ApiError> {
        let crds = crds()?;
        let versions = &crds[0].spec.versions;
        let names: Vec<_> = versions.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["v1alpha1", "v1beta1"]);
        let stored: Vec<_> = versions.iter().map(|v| v.storage).collect();
        assert_eq!(stored, [false, true]);
        assert!(versions.iter().all(|v| v.served && v.subresources.is_some()));
        assert_eq!(versions[0].schema, versions[1].schema);
        assert!(crds[0].spec.conversion.is_none());
        Ok(())
    }

    #[test]
    fn crds_yaml_is_deterministic_and_parses_back() -> Result<(), Box<dyn std::error::Error>> {
        let yaml = crds_yaml()?;
        assert_eq!(yaml, crds_yaml()?);
        let back: Vec<CustomResourceDefinition> = serde_saphyr::from_multiple(&yaml)?;
        assert_eq!(back, crds()?);
        Ok(())
    }

    #[test]
    fn schemas_carry_no_defaults() -> Result<(), ApiError> {
        let yaml = crds_yaml()?;
        assert!(!yaml.contains("default:"), "{yaml}");
        Ok(())
    }

    #[test]
    fn defaults_are_stripped_but_fields_named_default_survive() {
        let mut schema = serde_json::json!({
            "default": "",
            "properties": {"default": {"type": "string", "default": "x"}},
            "items": {"default": []},
        });
        strip_schema_defaults(&mut schema);
        let want = serde_json::json!({
            "properties": {"default": {"type": "string"}},
            "items": {},
        });
        assert_eq!(schema, want);
    }

    /// CI guard: the committed `crds/*.yaml` must be what the Rust types generate.
    #[test]
    fn committed_crd_files_are_current() -> Result<(), ApiError> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
        for (name, generated) in crd_files()? {
            let committed = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
            assert!(
                committed == generated,
                "crds/{name} is out of date with src/api; regenerate it with `signet crd --write crds`"
            );
        }
        Ok(())
    }
}
