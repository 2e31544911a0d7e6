//! What runs in the cluster, for `signet audit`: every pod-bearing object, one per workload.
//! An object a listed controller owns (a Deployment's ReplicaSets, their Pods, a CronJob's
//! Jobs) is left out: its controller's template is the same images, judged once. And the
//! cluster's ClusterImagePolicies and TrustRoots, when the audit is not given policy files.

use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::Value;

use crate::api::cip::ClusterImagePolicy;
use crate::api::trustroot::TrustRoot;
use crate::policy::snapshot::PolicySnapshot;

/// The kinds that run containers, as (group, version, kind, plural).
const KINDS: [(&str, &str, &str, &str); 8] = [
    ("", "v1", "Pod", "pods"),
    ("", "v1", "ReplicationController", "replicationcontrollers"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "ReplicaSet", "replicasets"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("apps", "v1", "DaemonSet", "daemonsets"),
    ("batch", "v1", "Job", "jobs"),
    ("batch", "v1", "CronJob", "cronjobs"),
];

/// Every pod-bearing object in `namespaces` (all when empty) that no listed controller owns.
pub async fn list_workloads(client: &kube::Client, namespaces: &[String]) -> Result<Vec<Value>, kube::Error> {
    let mut objects = Vec::new();
    for (group, version, kind, plural) in KINDS {
        let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let apis: Vec<Api<DynamicObject>> = if namespaces.is_empty() {
            vec![Api::all_with(client.clone(), &resource)]
        } else {
            namespaces
                .iter()
                .map(|ns| Api::namespaced_with(client.clone(), ns, &resource))
                .collect()
        };
        for api in apis {
            for item in list_all(&api).await? {
                let mut object = serde_json::to_value(&item).unwrap_or_default();
                // List items come without their type; the audit needs it.
                object["apiVersion"] = Value::from(resource.api_version.clone());
                object["kind"] = Value::from(kind);
                if !owned_by_a_listed_controller(&object) {
                    objects.push(object);
                }
            }
        }
    }
    Ok(objects)
}

/// Every object of `api`, a page of [`PAGE`] at a time: one list of a big cluster's pods
/// would be one very large answer for the API server and for signet.
async fn list_all(api: &Api<DynamicObject>) -> Result<Vec<DynamicObject>, kube::Error> {
    let mut items = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api.list(&params).await?;
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        items.extend(page.items);
        match next {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(items),
        }
    }
}

/// Objects per list request.
const PAGE: u32 = 500;

fn owned_by_a_listed_controller(object: &Value) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|owner| owner["controller"] == true)
        .any(|owner| {
            // By group and kind: a Volcano `Job` (batch.volcano.sh) is not a batch/v1 Job.
            let group = owner["apiVersion"]
                .as_str()
                .and_then(|v| v.rsplit_once('/'))
                .map_or("", |(group, _)| group);
            KINDS
                .iter()
                .any(|(listed_group, _, kind, _)| owner["kind"] == *kind && group == *listed_group)
        })
}

/// The cluster's ClusterImagePolicies and TrustRoots as a snapshot (policy texts from
/// ConfigMaps or URLs are not read: such a policy denies with that reason).
pub async fn policies(client: &kube::Client) -> Result<PolicySnapshot, kube::Error> {
    let policies = Api::<ClusterImagePolicy>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let roots = Api::<TrustRoot>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    Ok(PolicySnapshot::build(policies.items).with_trust_roots(roots.items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn owners_are_matched_by_group_and_kind() {
        let owned = |api_version: &str, kind: &str| json!({"metadata": {"ownerReferences": [{"apiVersion": api_version, "kind": kind, "controller": true}]}});
        assert!(owned_by_a_listed_controller(&owned("apps/v1", "ReplicaSet")));
        assert!(owned_by_a_listed_controller(&owned("batch/v1", "Job")));
        assert!(!owned_by_a_listed_controller(&owned(
            "batch.volcano.sh/v1alpha1",
            "Job"
        )));
        assert!(!owned_by_a_listed_controller(&owned("argoproj.io/v1alpha1", "Rollout")));
        let not_controller =
            json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet"}]}});
        assert!(!owned_by_a_listed_controller(&not_controller));
    }
}
