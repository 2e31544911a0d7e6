//! Where each pod-bearing kind keeps its pod spec, and the images inside it.

use serde_json::Value;

use super::review::AdmissionRequest;
use crate::policy::image::{ContainerImage, ImageSource};

/// The container lists of a pod spec; every one of them runs code.
const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// What a request asks signet to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workload {
    /// Nothing that starts containers changes: admit without any work.
    Skip(&'static str),
    /// The images of the object's pod spec.
    Images(Vec<ContainerImage>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    #[error("the request for {resource} has no object to review")]
    MissingObject { resource: String },
    #[error("{path} must be {expected}")]
    Malformed { path: String, expected: &'static str },
}

/// JSON pointer of the pod spec for a resource (`group`, `resource`), or `None` when the kind
/// does not run containers.
pub fn pod_spec_pointer(group: &str, resource: &str) -> Option<&'static str> {
    match (group, resource) {
        ("", "pods") => Some("/spec"),
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets")
        | ("batch", "jobs")
        | ("", "replicationcontrollers") => Some("/spec/template/spec"),
        ("batch", "cronjobs") => Some("/spec/jobTemplate/spec/template/spec"),
        // Knative Serving (and Cloud Run, which speaks its API), as policy-controller reviews it.
        ("serving.knative.dev", "services" | "configurations") => Some("/spec/template/spec"),
        ("serving.knative.dev", "revisions") => Some("/spec"),
        _ => None,
    }
}

/// Decides what a request needs: DELETEs, status and scale updates, objects being deleted
/// and updates that leave every image as it was need nothing.
pub fn workload(request: &AdmissionRequest) -> Result<Workload, WorkloadError> {
    let resource = &request.resource;
    let Some(pointer) = pod_spec_pointer(&resource.group, &resource.resource) else {
        return Ok(Workload::Skip("the resource does not run containers"));
    };
    match request.sub_resource.as_deref() {
        None | Some("") | Some("ephemeralcontainers") => {}
        Some(_) => return Ok(Workload::Skip("the subresource does not change images")),
    }
    if !matches!(request.operation.as_str(), "CREATE" | "UPDATE") {
        return Ok(Workload::Skip("only CREATE and UPDATE start containers"));
    }
    let object = request
        .object
        .as_ref()
        .filter(|o| !o.is_null())
        .ok_or_else(|| WorkloadError::MissingObject {
            resource: resource.resource.clone(),
        })?;
    if object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return Ok(Workload::Skip("the object is being deleted"));
    }
    let images = images_at(object, pointer)?;
    let old_images = (request.operation == "UPDATE")
        .then(|| request.old_object.as_ref().filter(|o| !o.is_null()))
        .flatten()
        .and_then(|old| images_at(old, pointer).ok());
    if old_images.as_ref() == Some(&images) {
        return Ok(Workload::Skip("the update leaves every image unchanged"));
    }
    Ok(Workload::Images(images))
}

/// Every `image` of the pod spec at `pointer` in `object`.
pub fn images_at(object: &Value, pointer: &str) -> Result<Vec<ContainerImage>, WorkloadError> {
    let spec = match object.pointer(pointer) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(spec @ Value::Object(_)) => spec,
        Some(_) => return Err(malformed(pointer, "an object")),
    };
    let mut images = Vec::new();
    for list in CONTAINER_LISTS {
        let list_pointer = format!("{pointer}/{list}");
        let containers = match spec.get(*list) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(containers)) => containers,
            Some(_) => return Err(malformed(&list_pointer, "a list of containers")),
        };
        for (index, container) in containers.iter().enumerate() {
            let container_pointer = format!("{list_pointer}/{index}");
            if let Some(image) = container_image(container, &container_pointer)? {
                images.push(image);
            }
        }
    }
    images.extend(volume_images(spec, pointer)?);
    Ok(images)
}

/// The image volumes of a pod spec; other volume types carry no image.
fn volume_images(spec: &Value, pointer: &str) -> Result<Vec<ContainerImage>, WorkloadError> {
    let list_pointer = format!("{pointer}/volumes");
    let volumes = match spec.get("volumes") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(volumes)) => volumes,
        Some(_) => return Err(malformed(&list_pointer, "a list of volumes")),
    };
    let mut images = Vec::new();
    for (index, volume) in volumes.iter().enumerate() {
        let volume_pointer = format!("{list_pointer}/{index}");
        let Value::Object(fields) = volume else {
            return Err(malformed(&volume_pointer, "a volume object"));
        };
        let source = match fields.get("image") {
            None | Some(Value::Null) => continue,
            Some(source @ Value::Object(_)) => source,
            Some(_) => return Err(malformed(&format!("{volume_pointer}/image"), "an object")),
        };
        let path = format!("{volume_pointer}/image/reference");
        match source.get("reference") {
            // As with a container's image, a template may leave it to be filled in later.
            None | Some(Value::Null) => {}
            Some(Value::String(image)) => images.push(ContainerImage {
                path,
                name: name_of(fields),
                source: ImageSource::Volume,
                image: image.clone(),
            }),
            Some(_) => return Err(malformed(&path, "a string")),
        }
    }
    Ok(images)
}

fn name_of(fields: &serde_json::Map<String, Value>) -> String {
    fields
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn container_image(container: &Value, pointer: &str) -> Result<Option<ContainerImage>, WorkloadError> {
    let Value::Object(fields) = container else {
        return Err(malformed(pointer, "a container object"));
    };
    let path = format!("{pointer}/image");
    match fields.get("image") {
        // Workload templates may leave the image to be filled in later; the pod it becomes
        // is reviewed again.
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(image)) => Ok(Some(ContainerImage {
            path,
            name: name_of(fields),
            source: ImageSource::Container,
            image: image.clone(),
        })),
        Some(_) => Err(malformed(&path, "a string")),
    }
}

fn malformed(path: &str, expected: &'static str) -> WorkloadError {
    WorkloadError::Malformed {
        path: path.to_string(),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(group: &str, resource: &str, operation: &str, object: Value) -> AdmissionRequest {
        AdmissionRequest {
            uid: "u".into(),
            operation: operation.into(),
            resource: super::super::review::GroupVersionResource {
                group: group.into(),
                version: "v1".into(),
                resource: resource.into(),
            },
            object: Some(object),
            ..Default::default()
        }
    }

    fn pod_spec() -> Value {
        json!({
            "containers": [{"name": "app", "image": "app:1"}, {"name": "side", "image": "side:2"}],
            "initContainers": [{"name": "init", "image": "init:3"}],
            "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "x"}},
                {"name": "models", "image": {"reference": "models:4", "pullPolicy": "IfNotPresent"}}
            ]
        })
    }

    fn wrap(prefix: &str, spec: Value) -> Value {
        let mut object = spec;
        for key in prefix.trim_start_matches('/').rsplit('/') {
            object = json!({ key: object });
        }
        object
    }

    #[test]
    fn every_kind_has_its_paths() {
        let kinds = [
            ("", "pods", "/spec"),
            ("apps", "deployments", "/spec/template/spec"),
            ("apps", "replicasets", "/spec/template/spec"),
            ("apps", "statefulsets", "/spec/template/spec"),
            ("apps", "daemonsets", "/spec/template/spec"),
            ("batch", "jobs", "/spec/template/spec"),
            ("", "replicationcontrollers", "/spec/template/spec"),
            ("batch", "cronjobs", "/spec/jobTemplate/spec/template/spec"),
        ];
        for (group, resource, prefix) in kinds {
            let req = request(group, resource, "CREATE", wrap(prefix, pod_spec()));
            let Workload::Images(images) = workload(&req).unwrap() else {
                panic!("{resource} must be reviewed");
            };
            let paths: Vec<_> = images.iter().map(|i| i.path.as_str()).collect();
            assert_eq!(
                paths,
                [
                    format!("{prefix}/containers/0/image"),
                    format!("{prefix}/containers/1/image"),
                    format!("{prefix}/initContainers/0/image"),
                    format!("{prefix}/ephemeralContainers/0/image"),
                    format!("{prefix}/volumes/1/image/reference"),
                ],
                "{resource}"
            );
            assert_eq!(images[2].image, "init:3");
            assert_eq!(images[3].name, "debug");
            assert_eq!(images[4].name, "models");
            assert_eq!(images[4].source, ImageSource::Volume);
            assert_eq!(images[4].image, "models:4");
        }
    }

    #[test]
    fn work_is_skipped_where_nothing_starts() {
        let pod = wrap("/spec", pod_spec());
        let mut delete = request("", "pods", "DELETE", pod.clone());
        delete.object = None;
        let mut status = request("", "pods", "UPDATE", pod.clone());
        status.sub_resource = Some("status".into());
        let mut scale = request("apps", "deployments", "UPDATE", pod.clone());
        scale.sub_resource = Some("scale".into());
        let mut same = request("", "pods", "UPDATE", pod.clone());
        same.old_object = Some(pod.clone());
        let mut deleting = pod.clone();
        deleting["metadata"] = json!({"deletionTimestamp": "2026-01-01T00:00:00Z"});
        let deleting = request("", "pods", "UPDATE", deleting);
        let role = request("rbac.authorization.k8s.io", "roles", "CREATE", json!({}));
        for req in [delete, status, scale, same, deleting, role] {
            assert!(matches!(workload(&req), Ok(Workload::Skip(_))), "{req:?}");
        }
    }

    #[test]
    fn updates_that_change_an_image_are_reviewed() {
        let mut req = request("", "pods", "UPDATE", wrap("/spec", pod_spec()));
        let mut old = pod_spec();
        old["containers"][0]["image"] = json!("app:0");
        req.old_object = Some(wrap("/spec", old));
        assert!(matches!(workload(&req), Ok(Workload::Images(i)) if i.len() == 5));
    }

    #[test]
    fn an_update_that_changes_only_an_image_volume_is_reviewed() {
        let mut req = request("", "pods", "UPDATE", wrap("/spec", pod_spec()));
        let mut old = pod_spec();
        old["volumes"][1]["image"]["reference"] = json!("models:3");
        req.old_object = Some(wrap("/spec", old));
        assert!(matches!(workload(&req), Ok(Workload::Images(i)) if i.len() == 5));
    }

    #[test]
    fn ephemeral_container_subresource_is_reviewed() {
        let mut req = request("", "pods", "UPDATE", wrap("/spec", pod_spec()));
        req.sub_resource = Some("ephemeralcontainers".into());
        assert!(matches!(workload(&req), Ok(Workload::Images(i)) if i.len() == 5));
    }

    #[test]
    fn absent_or_null_containers_have_no_images() {
        for spec in [
            json!({}),
            json!({"containers": null}),
            json!({"containers": [{"name": "x"}]}),
            json!({"volumes": [{"name": "v", "image": {}}, {"name": "e", "emptyDir": {}}]}),
        ] {
            let req = request("", "pods", "CREATE", wrap("/spec", spec));
            assert_eq!(workload(&req).unwrap(), Workload::Images(vec![]));
        }
    }

    #[test]
    fn malformed_specs_are_errors() {
        let cases = [
            (json!({"spec": {"containers": {}}}), "/spec/containers"),
            (json!({"spec": {"containers": ["x"]}}), "/spec/containers/0"),
            (
                json!({"spec": {"containers": [{"image": 7}]}}),
                "/spec/containers/0/image",
            ),
            (json!({"spec": "x"}), "/spec"),
            (json!({"spec": {"volumes": {}}}), "/spec/volumes"),
            (json!({"spec": {"volumes": [7]}}), "/spec/volumes/0"),
            (json!({"spec": {"volumes": [{"image": "x"}]}}), "/spec/volumes/0/image"),
            (
                json!({"spec": {"volumes": [{"image": {"reference": 1}}]}}),
                "/spec/volumes/0/image/reference",
            ),
        ];
        for (object, path) in cases {
            let err = workload(&request("", "pods", "CREATE", object)).unwrap_err();
            assert!(err.to_string().starts_with(path), "{err}");
        }
        let mut missing = request("", "pods", "CREATE", Value::Null);
        missing.object = None;
        assert!(workload(&missing).is_err());
    }
}
