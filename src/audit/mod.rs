//! `signet audit`: what is running (or about to be applied) judged against the policies with
//! admission's own evaluation, one row per container image and policy. Reading the
//! workloads (files, the cluster) is the caller's; this module turns objects into
//! workloads, evaluates them, and renders the rows.

pub mod background;
mod render;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt as _;
use serde::Serialize;
use serde_json::Value;

use crate::admission::workload::{images_at, pod_spec_pointer};
use crate::policy::evaluate::{ImageVerdict, NoMatchPolicy, RequestContext, ResourceInfo, Verifier, evaluate};
use crate::policy::image::ContainerImage;
use crate::policy::reference::ImageRef;
use crate::policy::snapshot::{Mode, PolicySnapshot};

pub use render::{render_json, render_table};

/// One object that runs containers.
#[derive(Debug, Clone)]
pub struct Workload {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub resource: ResourceInfo,
    pub context: RequestContext,
    pub images: Vec<ContainerImage>,
}

/// A verdict as policy reports name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
    Error,
}

impl Verdict {
    /// The name policy reports, metrics and the table use.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
        }
    }
}

/// One container image judged by one policy (or by none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub namespace: String,
    pub workload: String,
    pub container: String,
    pub image: String,
    pub digest: String,
    pub policy: String,
    pub verdict: Verdict,
    pub reason: String,
}

/// The workloads in `documents` (manifests, `kubectl get -o json` output, `List`s of
/// either): every object whose kind runs containers; others are skipped. An object that
/// runs containers but is malformed is an error naming it.
pub fn workloads_in(documents: &[Value]) -> Result<Vec<Workload>, String> {
    let mut found = Vec::new();
    for document in documents {
        match document.get("items").and_then(Value::as_array) {
            Some(items) if document["kind"].as_str().is_some_and(|k| k.ends_with("List")) => {
                for item in items {
                    found.extend(workload_of(item)?);
                }
            }
            _ => found.extend(workload_of(document)?),
        }
    }
    Ok(found)
}

/// The workload an object is, if its kind runs containers.
fn workload_of(object: &Value) -> Result<Option<Workload>, String> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    };
    let resource = format!("{}s", kind.to_ascii_lowercase());
    let Some(pointer) = pod_spec_pointer(group, &resource) else {
        return Ok(None);
    };
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let mut images = images_at(object, pointer).map_err(|e| format!("{kind} {namespace}/{name}: {e}"))?;
    pin_to_running_digests(object, &mut images);
    let labels: BTreeMap<String, String> = object
        .pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    let spec = object.pointer(pointer);
    let text = |field: &str| {
        spec.and_then(|s| s.get(field))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let pull_secrets = spec
        .and_then(|s| s.get("imagePullSecrets"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str().map(str::to_string))
        .collect();
    Ok(Some(Workload {
        kind: kind.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        resource: ResourceInfo {
            group: group.to_string(),
            version: version.to_string(),
            resource,
            labels,
            object: Some(Arc::new(object.clone())),
        },
        context: RequestContext {
            namespace: Some(namespace.to_string()),
            service_account: text("serviceAccountName"),
            image_pull_secrets: pull_secrets,
        },
        images,
    }))
}

/// A running Pod's containers are judged by the digest they run (`status.*Statuses[].imageID`),
/// not by what their tag points to now: a tag moved to a signed image does not make an old,
/// unsigned one that is still running pass.
fn pin_to_running_digests(object: &Value, images: &mut [ContainerImage]) {
    let mut running: BTreeMap<&str, &str> = BTreeMap::new();
    for list in [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ] {
        let statuses = object.pointer(&format!("/status/{list}")).and_then(Value::as_array);
        for status in statuses.into_iter().flatten() {
            let (Some(name), Some(image_id)) = (status["name"].as_str(), status["imageID"].as_str()) else {
                continue;
            };
            if let Some(digest) = sha256_digest_in(image_id) {
                running.insert(name, digest);
            }
        }
    }
    for container in images.iter_mut() {
        let Some(digest) = running.get(container.name.as_str()) else {
            continue;
        };
        if let Ok(reference) = ImageRef::parse(&container.image)
            && reference.digest().is_none()
        {
            container.image = reference.pinned(digest);
        }
    }
}

/// The `sha256:<64 hex>` an imageID ends with (`docker-pullable://repo@sha256:…`,
/// `repo@sha256:…`), if it does.
fn sha256_digest_in(image_id: &str) -> Option<&str> {
    let (_, digest) = image_id.rsplit_once('@')?;
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(digest)
}

/// How the audit runs.
pub struct AuditSettings {
    pub no_match: NoMatchPolicy,
    /// Workloads evaluated at once.
    pub concurrency: usize,
    /// Images of one workload evaluated at once.
    pub images_at_once: usize,
}

/// Evaluates every workload as admission would (the verifier's caches make each digest's
/// verification once per audit) and returns the rows in a stable order. `progress` is told
/// how many workloads are done.
pub async fn audit(
    snapshot: &PolicySnapshot,
    workloads: &[Workload],
    verifier: &dyn Verifier,
    settings: &AuditSettings,
    progress: &(dyn Fn(usize) + Sync),
) -> Vec<Row> {
    let done = std::sync::atomic::AtomicUsize::new(0);
    // The futures are made up front: a closure kept inside the stream across awaits makes
    // rustc unable to prove the audit `Send` for the background scanner's task.
    let evaluations: Vec<_> = workloads
        .iter()
        .map(|workload| {
            let done = &done;
            async move {
                let evaluation = evaluate(
                    snapshot,
                    &workload.images,
                    &workload.resource,
                    &workload.context,
                    verifier,
                    settings.no_match,
                    settings.images_at_once,
                )
                .await;
                progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
                rows_of(workload, &evaluation.verdicts, settings.no_match)
            }
        })
        .collect();
    let batches: Vec<Vec<Row>> = futures::stream::iter(evaluations)
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
    let mut rows: Vec<Row> = batches.into_iter().flatten().collect();
    rows.sort_by(|a, b| {
        (&a.namespace, &a.workload, &a.container, &a.policy).cmp(&(&b.namespace, &b.workload, &b.container, &b.policy))
    });
    rows
}

fn rows_of(workload: &Workload, verdicts: &BTreeMap<String, ImageVerdict>, no_match: NoMatchPolicy) -> Vec<Row> {
    let mut rows = Vec::new();
    for container in &workload.images {
        let row = |digest: &str, policy: &str, verdict: Verdict, reason: String| Row {
            namespace: workload.namespace.clone(),
            workload: format!("{}/{}", workload.kind, workload.name),
            container: container.name.clone(),
            image: container.image.clone(),
            digest: digest.to_string(),
            policy: policy.to_string(),
            verdict,
            reason,
        };
        match verdicts.get(&container.image) {
            None => rows.push(row("", "", Verdict::Error, "not evaluated".to_string())),
            Some(ImageVerdict::Invalid(why)) => rows.push(row("", "", Verdict::Error, why.clone())),
            Some(ImageVerdict::NoPolicy { .. }) => {
                let verdict = match no_match {
                    NoMatchPolicy::Allow => Verdict::Pass,
                    NoMatchPolicy::Warn => Verdict::Warn,
                    NoMatchPolicy::Deny => Verdict::Fail,
                };
                rows.push(row("", "", verdict, "no ClusterImagePolicy matches".to_string()));
            }
            Some(ImageVerdict::Checked {
                digest,
                resolve_error,
                policies,
                ..
            }) => {
                let digest = digest.as_deref().unwrap_or_default();
                for result in policies {
                    let (verdict, reason) = if result.passed() {
                        (Verdict::Pass, result.policy_warning.clone().unwrap_or_default())
                    } else {
                        let reason = result
                            .policy_error
                            .clone()
                            .or_else(|| resolve_error.clone())
                            .unwrap_or_else(|| failure_reasons(result));
                        let verdict = match (result.mode, resolve_error) {
                            (_, Some(_)) => Verdict::Error,
                            (Mode::Warn, None) => Verdict::Warn,
                            (Mode::Enforce, None) => Verdict::Fail,
                        };
                        (verdict, reason)
                    };
                    rows.push(row(digest, &result.policy, verdict, reason));
                }
            }
        }
    }
    rows
}

/// Why each authority of a failed policy failed, as admission says it.
fn failure_reasons(result: &crate::policy::evaluate::PolicyResult) -> String {
    result
        .authorities
        .iter()
        .filter_map(|a| a.outcome.as_ref().err().map(|e| format!("{}: {e}", a.authority)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Counts by verdict, for the summary and the exit code.
pub fn summary(rows: &[Row]) -> BTreeMap<Verdict, usize> {
    let mut counts = BTreeMap::new();
    for row in rows {
        *counts.entry(row.verdict).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn running_pods_are_judged_by_the_digest_they_run() {
        let running = format!("sha256:{}", "a".repeat(64));
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "shop", "name": "web"},
            "spec": {"containers": [
                {"name": "web", "image": "registry.example/app:v1"},
                {"name": "pinned", "image": format!("registry.example/app@sha256:{}", "b".repeat(64))},
                {"name": "starting", "image": "registry.example/app:v2"}
            ]},
            "status": {"containerStatuses": [
                {"name": "web", "imageID": format!("docker-pullable://registry.example/app@{running}")},
                {"name": "pinned", "imageID": format!("registry.example/app@{running}")},
                {"name": "starting", "imageID": ""}
            ]}
        });
        let workloads = workloads_in(&[pod]).unwrap();
        let images: Vec<&str> = workloads[0].images.iter().map(|i| i.image.as_str()).collect();
        assert_eq!(images[0], format!("registry.example/app:v1@{running}"));
        assert_eq!(
            images[1],
            format!("registry.example/app@sha256:{}", "b".repeat(64)),
            "a spec digest stays"
        );
        assert_eq!(images[2], "registry.example/app:v2", "no running digest yet");
    }
}
