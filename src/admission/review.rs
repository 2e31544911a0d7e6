//! The AdmissionReview wire format (`admission.k8s.io/v1`, and `v1beta1`, which has the same
//! shape).
//!
//! signet reads and writes these itself instead of using kube's `AdmissionReview` types:
//! kube serialises `response.patch` as an array of numbers (kube-rs issue #1781) where the
//! API documents a base64 string, and its request type rejects requests that lack fields
//! signet does not need (such as `userInfo`). Requests are parsed strictly: a JSON object with
//! a duplicated key is refused, so no two readers can disagree on which value counts.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

const SUPPORTED_API_VERSIONS: &[&str] = &["admission.k8s.io/v1", "admission.k8s.io/v1beta1"];

/// Why a body is not an AdmissionReview at all (answered with HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("request body is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("request body is not an AdmissionReview: {0}")]
    NotAReview(String),
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct GroupVersionResource {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub resource: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
}

/// The parts of an AdmissionRequest signet uses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub resource: GroupVersionResource,
    #[serde(default)]
    pub sub_resource: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub operation: String,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub old_object: Option<Value>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// A parsed AdmissionReview: its apiVersion (echoed back) and its request, if it has a usable
/// one. `request` is `Err` with a reason when the envelope is fine but the request is not.
#[derive(Debug)]
pub struct Review {
    pub api_version: String,
    /// The request's uid when it has a readable one, even if the rest is malformed: the
    /// API server only accepts an answer that echoes it.
    pub uid: String,
    pub request: Result<AdmissionRequest, String>,
}

/// The `apiVersion` and request `uid` of a body, read leniently, for answering a review whose
/// handling failed part-way; `admission.k8s.io/v1` and an empty uid when unreadable.
pub fn envelope_of(body: &[u8]) -> (String, String) {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(rename = "apiVersion")]
        api_version: Option<String>,
        request: Option<Request>,
    }
    #[derive(Deserialize)]
    struct Request {
        uid: Option<String>,
    }
    let envelope = serde_json::from_slice::<Envelope>(body).ok();
    let api_version = envelope
        .as_ref()
        .and_then(|e| e.api_version.clone())
        .filter(|v| SUPPORTED_API_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| "admission.k8s.io/v1".to_string());
    let uid = envelope.and_then(|e| e.request?.uid).unwrap_or_default();
    (api_version, uid)
}

/// Parses a body into a [`Review`]; only bodies that are not an AdmissionReview at all fail.
pub fn parse_review(body: &[u8]) -> Result<Review, ReviewError> {
    let StrictValue(value) = serde_json::from_slice(body)?;
    let Value::Object(mut envelope) = value else {
        return Err(ReviewError::NotAReview("the body is not a JSON object".into()));
    };
    let kind = envelope.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind != "AdmissionReview" {
        return Err(ReviewError::NotAReview(format!(
            "kind is {kind:?}, expected \"AdmissionReview\""
        )));
    }
    let api_version = envelope.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    if !SUPPORTED_API_VERSIONS.contains(&api_version) {
        return Err(ReviewError::NotAReview(format!(
            "apiVersion {api_version:?} is not supported (expected admission.k8s.io/v1)"
        )));
    }
    let api_version = api_version.to_string();
    let uid = envelope
        .get("request")
        .and_then(|r| r.get("uid"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let request = match envelope.remove("request") {
        None | Some(Value::Null) => Err("the AdmissionReview has no request".to_string()),
        Some(request) => serde_json::from_value::<AdmissionRequest>(request)
            .map_err(|e| format!("the AdmissionReview's request is malformed: {e}")),
    };
    let request = request.and_then(|r| {
        if r.uid.is_empty() {
            Err("the AdmissionReview's request has no uid".to_string())
        } else {
            Ok(r)
        }
    });
    Ok(Review {
        api_version,
        uid,
        request,
    })
}

/// The answer to one AdmissionReview.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub allowed: bool,
    /// Denial reason; shown to the user by kubectl.
    pub message: Option<String>,
    pub warnings: Vec<String>,
    /// JSON Patch operations (mutation only).
    pub patch: Vec<Value>,
}

impl Answer {
    pub fn allow() -> Self {
        Answer {
            allowed: true,
            ..Default::default()
        }
    }

    pub fn deny(message: impl Into<String>) -> Self {
        Answer {
            allowed: false,
            message: Some(message.into()),
            ..Default::default()
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'a str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusOut<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    /// base64 of the JSON Patch document, as the Kubernetes API documents it.
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    audit_annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct StatusOut<'a> {
    code: u16,
    message: &'a str,
    reason: &'static str,
}

/// Serialises the AdmissionReview response for `uid`.
pub fn render_response(api_version: &str, uid: &str, answer: &Answer) -> Vec<u8> {
    let status = answer
        .message
        .as_deref()
        .filter(|_| !answer.allowed)
        .map(|message| StatusOut {
            code: 403,
            message,
            reason: "Forbidden",
        });
    let patch = (answer.allowed && !answer.patch.is_empty()).then(|| {
        let document = Value::Array(answer.patch.clone()).to_string();
        base64::engine::general_purpose::STANDARD.encode(document)
    });
    let out = ReviewOut {
        api_version,
        kind: "AdmissionReview",
        response: ResponseOut {
            uid,
            allowed: answer.allowed,
            status,
            warnings: &answer.warnings,
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
            audit_annotations: BTreeMap::new(),
        },
    };
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_vec(&out).unwrap_or_default()
}

/// A JSON value whose objects had no duplicate keys.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let StrictValue(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn review(request: Value) -> Vec<u8> {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn parses_a_request() {
        let body = review(json!({
            "uid": "u1", "operation": "CREATE", "namespace": "ns",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "object": {"spec": {}}
        }));
        let parsed = parse_review(&body).unwrap();
        let request = parsed.request.unwrap();
        assert_eq!(request.uid, "u1");
        assert_eq!(request.resource.resource, "pods");
        assert_eq!(request.namespace.as_deref(), Some("ns"));
    }

    #[test]
    fn envelope_errors_are_not_reviews() {
        for body in [
            &b"not json"[..],
            b"{\"kind\": \"AdmissionReview\"",
            b"[]",
            b"null",
            b"{\"kind\": \"Pod\", \"apiVersion\": \"v1\"}",
            b"{\"kind\": \"AdmissionReview\", \"apiVersion\": \"admission.k8s.io/v2\"}",
            b"{\"kind\": \"AdmissionReview\", \"kind\": \"AdmissionReview\"}",
        ] {
            assert!(parse_review(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn request_problems_are_answered_not_rejected() {
        for request in [Value::Null, json!({"operation": "CREATE"}), json!({"uid": 5})] {
            let parsed = parse_review(&review(request.clone())).unwrap();
            assert!(parsed.request.is_err(), "{request}");
        }
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let body = br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u","object":{"spec":{"containers":[{"image":"a","image":"b"}]}}}}"#;
        let err = parse_review(body).unwrap_err().to_string();
        assert!(err.contains("duplicate key \"image\""), "{err}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_review(body.as_bytes()).is_err());
    }

    #[test]
    fn patches_are_base64_strings() {
        let mut answer = Answer::allow();
        answer.patch = vec![json!({"op": "replace", "path": "/spec/containers/0/image", "value": "x@sha256:1"})];
        let rendered: Value = serde_json::from_slice(&render_response("admission.k8s.io/v1", "u", &answer)).unwrap();
        let response = &rendered["response"];
        assert_eq!(response["uid"], "u");
        assert_eq!(response["patchType"], "JSONPatch");
        let encoded = response["patch"].as_str().expect("patch must be a string");
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        let patch: Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(patch[0]["path"], "/spec/containers/0/image");
    }

    #[test]
    fn denials_carry_a_status_and_no_patch() {
        let mut answer = Answer::deny("nope");
        answer.patch = vec![json!({"op": "replace", "path": "/x", "value": 1})];
        let rendered: Value = serde_json::from_slice(&render_response("admission.k8s.io/v1", "u", &answer)).unwrap();
        assert_eq!(rendered["response"]["allowed"], false);
        assert_eq!(rendered["response"]["status"]["message"], "nope");
        assert_eq!(rendered["response"]["status"]["code"], 403);
        assert!(rendered["response"].get("patch").is_none());
    }
}
