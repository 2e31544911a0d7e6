//! In-cluster mode: a watch on ClusterImagePolicies.
//!
//! The watch reads objects as `DynamicObject` and decodes each one itself, so one object that
//! does not decode is logged and skipped instead of failing the whole list (a typed watcher
//! would stop at the first bad object and leave signet with no policies at all).

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, Event};

use super::SnapshotHandle;
use crate::api::cip::ClusterImagePolicy;
use crate::policy::snapshot::PolicySnapshot;

fn cip_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("policy.sigstore.dev", "v1beta1", "ClusterImagePolicy");
    ApiResource::from_gvk_with_plural(&gvk, "clusterimagepolicies")
}

fn decode(object: DynamicObject) -> Option<ClusterImagePolicy> {
    let name = object.metadata.name.clone().unwrap_or_default();
    let value = match serde_json::to_value(&object) {
        Ok(value) => value,
        Err(e) => {
            tracing::warn!(policy = %name, error = %e, "ClusterImagePolicy cannot be re-encoded; skipped");
            return None;
        }
    };
    match serde_json::from_value(value) {
        Ok(policy) => Some(policy),
        Err(e) => {
            tracing::warn!(policy = %name, error = %e, "ClusterImagePolicy does not decode; skipped");
            None
        }
    }
}

/// Watches ClusterImagePolicies and publishes a snapshot after the initial list and after
/// every change. Runs until the client is dropped; watch errors are retried with backoff by
/// the caller's loop while the last good snapshot keeps serving.
pub async fn watch_policies(client: kube::Client, handle: SnapshotHandle) {
    let api: Api<DynamicObject> = Api::all_with(client, &cip_resource());
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .map_err(|e| tracing::warn!(error = %e, "ClusterImagePolicy watch failed; retrying"))
        .boxed();
    let mut current: BTreeMap<String, ClusterImagePolicy> = BTreeMap::new();
    let mut pending: BTreeMap<String, ClusterImagePolicy> = BTreeMap::new();
    loop {
        let event = match stream.next().await {
            None => return,
            Some(Err(())) => {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                continue;
            }
            Some(Ok(event)) => event,
        };
        match event {
            Event::Init => pending.clear(),
            Event::InitApply(object) => insert(&mut pending, object),
            Event::InitDone => {
                current = std::mem::take(&mut pending);
                handle.publish(PolicySnapshot::build(current.values().cloned()));
            }
            Event::Apply(object) => {
                insert(&mut current, object);
                handle.publish(PolicySnapshot::build(current.values().cloned()));
            }
            Event::Delete(object) => {
                current.remove(&object.metadata.name.unwrap_or_default());
                handle.publish(PolicySnapshot::build(current.values().cloned()));
            }
        }
    }
}

fn insert(into: &mut BTreeMap<String, ClusterImagePolicy>, object: DynamicObject) {
    let name = object.metadata.name.clone().unwrap_or_default();
    match decode(object) {
        Some(policy) => {
            into.insert(name, policy);
        }
        None => {
            into.remove(&name);
        }
    }
}
