//! Keeps the verifier's resolved `TrustRoot` resources in step with the policy snapshot:
//! TUF repositories are verified and remote mirrors start fetching as soon as a snapshot
//! names them (not at the first admission that needs them), removed ones are forgotten, and
//! the trust-root expiry metric covers them too.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::evidence::tuf::TrustRootStore;
use crate::metrics::Metrics;
use crate::policy::handle::SnapshotHandle;
use crate::policy::snapshot::PolicySnapshot;

/// Without news, how often the expiry is looked at again (time passing brings a root
/// closer to its 30-day warning, and past an expiry to the next one).
const EXPIRY_RECHECK: Duration = Duration::from_secs(3600);

/// Runs until the process ends. `base_expiry` is the earliest expiry of signet's own trust
/// root (`--trust-root` or the embedded one), which the metric also covers.
pub async fn keep_resolved(
    snapshots: SnapshotHandle,
    store: TrustRootStore,
    base_expiry: Option<OffsetDateTime>,
    metrics: Metrics,
) {
    let mut seen: Option<Arc<PolicySnapshot>> = None;
    let mut reported = base_expiry;
    let mut published = snapshots.subscribe();
    loop {
        let current = snapshots.load();
        if seen.as_ref().is_none_or(|old| !Arc::ptr_eq(old, &current)) {
            store.sync(&current.trust_roots).await;
            seen = Some(current);
        }
        let now = OffsetDateTime::now_utc();
        let earliest = [base_expiry.filter(|end| *end > now), store.earliest_expiry(now)]
            .into_iter()
            .flatten()
            .min();
        if earliest != reported {
            report_expiry(earliest, &metrics, now);
            reported = earliest;
        }
        // Woken by a new snapshot or a TUF fetch that landed; nothing is polled.
        tokio::select! {
            _ = published.changed() => {}
            () = store.changed() => {}
            () = tokio::time::sleep(EXPIRY_RECHECK) => {}
        }
    }
}

fn report_expiry(earliest: Option<OffsetDateTime>, metrics: &Metrics, now: OffsetDateTime) {
    let Some(expiry) = earliest else {
        return;
    };
    metrics.trust_root_expiry.set(expiry.unix_timestamp());
    if expiry - now < time::Duration::days(30) {
        tracing::warn!(expires = %expiry, "part of a trust root (or its TUF metadata) expires within 30 days");
    }
}
