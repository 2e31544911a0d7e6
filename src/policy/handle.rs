//! The current policy snapshot, swapped whole: sources publish, admission reads without
//! locks, and background readers are woken by each publication instead of polling.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::snapshot::PolicySnapshot;

/// The current policy snapshot, shared by every request.
#[derive(Clone)]
pub struct SnapshotHandle {
    current: Arc<ArcSwap<PolicySnapshot>>,
    ready: Arc<AtomicBool>,
    /// Counts published snapshots; background readers wait on it instead of polling.
    published: Arc<watch::Sender<u64>>,
}

impl Default for SnapshotHandle {
    fn default() -> Self {
        SnapshotHandle {
            current: Arc::default(),
            ready: Arc::default(),
            published: Arc::new(watch::channel(0).0),
        }
    }
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

    /// Wakes its holder (`changed().await`) each time a snapshot is published.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
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
        // Ready before subscribers are woken: one that wakes and finds the handle not ready
        // yet would wait for the next publication (the status writer did, under load).
        if snapshot.unread_texts == 0 {
            self.ready.store(true, Ordering::Release);
        } else if !self.is_ready() {
            tracing::info!(
                unread = snapshot.unread_texts,
                "not ready until the policies' ConfigMap and remote texts have been read once"
            );
        }
        self.published.send_modify(|count| *count = count.wrapping_add(1));
        snapshot
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}
