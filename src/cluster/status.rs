//! ClusterImagePolicy status: a `Ready` condition per policy, `True` when signet enforces it
//! and `False` with the validation error when it does not, so `kubectl get cip` shows broken
//! policies. Written by the replica holding the status Lease ([`super::lease`]) only, when a
//! snapshot is published or the Lease changes hands.

use std::collections::BTreeMap;

use kube::Api;
use kube::api::{ApiResource, DynamicObject};

use super::lease::Leadership;
use crate::policy::handle::SnapshotHandle;
use crate::policy::snapshot::{PolicySnapshot, RejectedKind};

/// Runs until the process ends: writes the status of each published snapshot while this
/// replica holds the Lease; a replica that gains it writes everything once.
pub async fn keep_written(
    client: kube::Client,
    policies: ApiResource,
    snapshots: SnapshotHandle,
    leadership: Leadership,
) {
    let api: Api<DynamicObject> = Api::all_with(client, &policies);
    let mut written = WrittenStatus::new();
    let mut published = snapshots.subscribe();
    let mut leading = leadership.subscribe();
    loop {
        if leadership.is_leader() {
            if snapshots.is_ready() {
                report_status(&api, &snapshots.load(), &mut written).await;
            }
        } else {
            written.clear();
        }
        tokio::select! {
            changed = published.changed() => if changed.is_err() { return },
            changed = leading.changed() => if changed.is_err() { return },
        }
    }
}

/// What signet last wrote into a policy's status, so an unchanged verdict is not rewritten
/// (each write bumps the resourceVersion and comes back through the watch).
type WrittenStatus = BTreeMap<String, (bool, String)>;

/// Sets each policy's `Ready` condition: `True` when signet enforces it, `False` with the
/// validation error when it does not, so `kubectl get cip` shows broken policies.
async fn report_status(api: &Api<DynamicObject>, snapshot: &PolicySnapshot, written: &mut WrittenStatus) {
    let verdicts: Vec<(String, (bool, String))> = snapshot
        .policies
        .iter()
        .map(|p| (p.name.clone(), (true, "enforced by signet".to_string())))
        .chain(
            snapshot
                .rejected
                .iter()
                // Only ClusterImagePolicies have a status; TrustRoots and files do not.
                .filter(|r| r.kind == RejectedKind::Policy)
                .map(|r| (r.name.clone(), (false, r.error.clone()))),
        )
        .collect();
    for (name, verdict) in &verdicts {
        if written.get(name) == Some(verdict) {
            continue;
        }
        let (ready, message) = verdict;
        let condition = serde_json::json!({
            "type": "Ready",
            "status": if *ready { "True" } else { "False" },
            "reason": if *ready { "PolicyValid" } else { "PolicyInvalid" },
            "message": message,
            "lastTransitionTime": time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        });
        let patch = kube::api::Patch::Merge(serde_json::json!({"status": {"conditions": [condition]}}));
        match api.patch_status(name, &kube::api::PatchParams::default(), &patch).await {
            Ok(_) => {
                written.insert(name.clone(), verdict.clone());
            }
            Err(e) => tracing::warn!(policy = %name, error = %e, "cannot update ClusterImagePolicy status"),
        }
    }
    written.retain(|name, _| verdicts.iter().any(|(n, _)| n == name));
}
