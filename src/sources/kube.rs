//! In-cluster mode: watches on ClusterImagePolicies and TrustRoots.
//!
//! The watches read objects as `DynamicObject` and decode each one themselves, so one object
//! that does not decode is logged and skipped instead of failing the whole list (a typed
//! watcher would stop at the first bad object and leave signet with no policies at all).
//! A snapshot is published once both initial lists are in, then after every change; while
//! the API server is unreachable the last snapshot keeps serving.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;

use super::policy_text::TextsReceiver;
use crate::api::TrustRoot;
use crate::api::cip::ClusterImagePolicy;
use crate::policy::handle::SnapshotHandle;
use crate::policy::snapshot::PolicySnapshot;

/// The ClusterImagePolicy resource (v1beta1), for watches and status writes.
pub fn policy_resource() -> ApiResource {
    resource("v1beta1", "ClusterImagePolicy", "clusterimagepolicies")
}

fn resource(version: &str, kind: &str, plural: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk("policy.sigstore.dev", version, kind);
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

/// The objects of one kind, as the watch has seen them.
struct Watched<T> {
    kind: &'static str,
    current: BTreeMap<String, T>,
    pending: BTreeMap<String, T>,
    synced: bool,
}

impl<T: DeserializeOwned> Watched<T> {
    fn new(kind: &'static str) -> Self {
        Watched {
            kind,
            current: BTreeMap::new(),
            pending: BTreeMap::new(),
            synced: false,
        }
    }

    /// Applies one watch event; true when the visible set changed.
    fn apply(&mut self, event: Event<DynamicObject>) -> bool {
        match event {
            Event::Init => {
                self.pending.clear();
                false
            }
            Event::InitApply(object) => {
                let kind = self.kind;
                insert(&mut self.pending, object, kind);
                false
            }
            Event::InitDone => {
                self.current = std::mem::take(&mut self.pending);
                self.synced = true;
                true
            }
            Event::Apply(object) => {
                let kind = self.kind;
                insert(&mut self.current, object, kind);
                true
            }
            Event::Delete(object) => {
                self.current.remove(&object.metadata.name.unwrap_or_default());
                true
            }
        }
    }
}

fn insert<T: DeserializeOwned>(into: &mut BTreeMap<String, T>, object: DynamicObject, kind: &str) {
    let name = object.metadata.name.clone().unwrap_or_default();
    let decoded = serde_json::to_value(&object)
        .map_err(|e| e.to_string())
        .and_then(|value| serde_json::from_value::<T>(value).map_err(|e| e.to_string()));
    match decoded {
        Ok(decoded) => {
            into.insert(name, decoded);
        }
        Err(error) => {
            tracing::warn!(kind, name = %name, %error, "object does not decode; skipped");
            into.remove(&name);
        }
    }
}

enum Change {
    Policy(Event<DynamicObject>),
    TrustRoot(Event<DynamicObject>),
    /// Policy text from a ConfigMap or URL was read, or changed.
    Texts,
    Failed,
}

fn watch(
    client: &kube::Client,
    resource: &ApiResource,
    wrap: fn(Event<DynamicObject>) -> Change,
) -> impl futures::Stream<Item = Change> + use<> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
    let kind = resource.kind.clone();
    watcher::watcher(api, watcher::Config::default())
        .map_err(move |e| tracing::warn!(kind = %kind, error = %e, "watch failed; retrying"))
        .map(move |item| item.map_or(Change::Failed, wrap))
}

/// Watches ClusterImagePolicies and TrustRoots and publishes snapshots into `handle`,
/// compiled with the policy texts from `texts` (and again whenever those change).
pub async fn watch_policies(client: kube::Client, handle: SnapshotHandle, texts: TextsReceiver) {
    let cip = policy_resource();
    let policies = watch(&client, &cip, Change::Policy);
    let roots = watch(
        &client,
        &resource("v1alpha1", "TrustRoot", "trustroots"),
        Change::TrustRoot,
    );
    let text_changes = futures::stream::unfold(texts.clone(), |mut texts| async move {
        texts.changed().await.ok()?;
        Some((Change::Texts, texts))
    });
    let mut changes = futures::stream::select(futures::stream::select(policies, roots), text_changes).boxed();
    let mut watched_policies: Watched<ClusterImagePolicy> = Watched::new("ClusterImagePolicy");
    let mut watched_roots: Watched<TrustRoot> = Watched::new("TrustRoot");
    while let Some(change) = changes.next().await {
        let changed = match change {
            Change::Policy(event) => watched_policies.apply(event),
            Change::TrustRoot(event) => watched_roots.apply(event),
            Change::Texts => true,
            Change::Failed => {
                // The watcher retries by itself; pacing keeps a down API server from being
                // hammered.
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                false
            }
        };
        if changed && watched_policies.synced && watched_roots.synced {
            let current_texts = texts.borrow().clone();
            let snapshot = PolicySnapshot::build_with_texts(watched_policies.current.values().cloned(), &current_texts)
                .with_trust_roots(watched_roots.current.values().cloned());
            handle.publish(snapshot);
        }
    }
}
