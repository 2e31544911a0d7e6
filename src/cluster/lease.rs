//! Which replica writes status: the holder of a `coordination.k8s.io/v1` Lease in signet's
//! namespace, as Kubernetes controllers (and linkerd's) elect theirs. Every replica answers
//! admissions; only the holder writes ClusterImagePolicy status, so replicas never fight over
//! it. A holder that stops renewing loses the Lease after its duration, and another takes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;

/// The Lease signet's replicas compete for.
pub const LEASE_NAME: &str = "signet-status-writer";

/// Whether this replica holds the Lease now; wakes watchers when that changes.
#[derive(Clone)]
pub struct Leadership {
    leading: Arc<AtomicBool>,
    changed: Arc<watch::Sender<bool>>,
}

impl Leadership {
    fn new() -> Self {
        Leadership {
            leading: Arc::default(),
            changed: Arc::new(watch::channel(false).0),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::Acquire)
    }

    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.changed.subscribe()
    }

    fn set(&self, leading: bool) {
        if self.leading.swap(leading, Ordering::AcqRel) != leading {
            tracing::info!(leading, lease = LEASE_NAME, "status-writer lease changed hands");
            self.changed.send_replace(leading);
        }
    }
}

/// This replica's name in the Lease: the pod's name (`POD_NAME`, set by the chart) or the
/// host name, and a random suffix so two processes on one host are told apart.
pub fn identity() -> String {
    let name = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "signet".to_string());
    let mut suffix = [0u8; 4];
    // Without randomness the pod name alone still identifies the replica.
    let _ = aws_lc_rs::rand::fill(&mut suffix);
    format!("{name}-{}", hex::encode(suffix))
}

/// Competes for the Lease until the process ends, renewing it a third of its duration apart.
pub fn start(client: kube::Client, namespace: &str, identity: String, duration: Duration) -> Leadership {
    let leadership = Leadership::new();
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let watched = leadership.clone();
    tokio::spawn(async move {
        loop {
            let leading = match try_hold(&api, &identity, duration).await {
                Ok(leading) => leading,
                Err(e) => {
                    tracing::warn!(lease = LEASE_NAME, error = %e, "cannot read or renew the status-writer lease");
                    false
                }
            };
            watched.set(leading);
            tokio::time::sleep(duration / 3).await;
        }
    });
    leadership
}

/// One round: create the Lease, renew it while ours, or take it over once it has expired.
/// Conflicts (another replica wrote first) answer "not ours" until the next round.
async fn try_hold(api: &Api<Lease>, identity: &str, duration: Duration) -> Result<bool, kube::Error> {
    let now = MicroTime(jiff::Timestamp::now());
    let seconds = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(LEASE_NAME).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(identity.to_string()),
                lease_duration_seconds: Some(seconds),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return written(api.create(&PostParams::default(), &lease).await);
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let ours = spec.holder_identity.as_deref() == Some(identity);
    if !ours && !expired(spec, &now) {
        return Ok(false);
    }
    if !ours {
        spec.holder_identity = Some(identity.to_string());
        spec.acquire_time = Some(now.clone());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
    }
    spec.renew_time = Some(now);
    spec.lease_duration_seconds = Some(seconds);
    // `replace` sends the resourceVersion read above: a concurrent writer makes it a 409.
    written(api.replace(LEASE_NAME, &PostParams::default(), &lease).await)
}

fn expired(spec: &LeaseSpec, now: &MicroTime) -> bool {
    let Some(MicroTime(renewed)) = &spec.renew_time else {
        return true;
    };
    let lasts = jiff::SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    renewed.checked_add(lasts).map_or(true, |until| until < now.0)
}

fn written(outcome: Result<Lease, kube::Error>) -> Result<bool, kube::Error> {
    match outcome {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
