//! Where policies come from: a folder (standalone) or the cluster (a kube-rs watch). Both
//! publish the same immutable [`PolicySnapshot`]; admission reads the latest one without
//! locks, and readiness waits for the first.

pub mod folder;
pub mod kube;
pub mod policy_text;
pub mod trust_roots;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::policy::snapshot::PolicySnapshot;

/// The current policy snapshot, shared by every request.
#[derive(Clone, Default)]
pub struct SnapshotHandle {
    current: Arc<ArcSwap<PolicySnapshot>>,
    ready: Arc<AtomicBool>,
}

impl SnapshotHandle {
    /// A handle that is ready at once with `snapshot` (the command-line tools use this).
    pub fn fixed(snapshot: PolicySnapshot) -> Self {
        let handle = SnapshotHandle::default();
        handle.publish(snapshot);
        handle
    }

    pub fn load(&self) -> Arc<PolicySnapshot> {
        self.current.load_full()
    }

    /// Replaces the snapshot (and returns it). The first snapshot whose policy texts have all
    /// been tried (read, or failed with a reason) makes the handle ready, so a restart does not
    /// deny what a `configMapRef` or `remote` policy allows; once ready it stays ready, and a
    /// policy added later denies until its text is read.
    pub fn publish(&self, snapshot: PolicySnapshot) -> Arc<PolicySnapshot> {
        for rejected in &snapshot.rejected {
            tracing::warn!(policy = %rejected.name, error = %rejected.error, "ClusterImagePolicy rejected; it is not enforced");
        }
        tracing::info!(
            policies = snapshot.policies.len(),
            rejected = snapshot.rejected.len(),
            "policy snapshot published"
        );
        let snapshot = Arc::new(snapshot);
        self.current.store(snapshot.clone());
        if snapshot.unread_texts == 0 {
            self.ready.store(true, Ordering::Release);
        } else if !self.is_ready() {
            tracing::info!(
                unread = snapshot.unread_texts,
                "not ready until the policies' ConfigMap and remote texts have been read once"
            );
        }
        snapshot
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}
