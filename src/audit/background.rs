//! Background re-verification (`--background-scan-seconds`): on an interval, and when the
//! policies change, the replica holding the status Lease judges what runs in the cluster
//! with `signet audit`'s code and publishes it: a `wgpolicyk8s.io/v1alpha2` PolicyReport per
//! namespace (what Policy Reporter and other tools read), metrics, and a Warning Event on a
//! workload whose image stopped passing. Nothing is ever evicted or changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::{AuditSettings, Row, Verdict, audit, workloads_in};
use crate::cluster::events::{EventRecorder, Involved};
use crate::cluster::lease::Leadership;
use crate::metrics::Metrics;
use crate::policy::evaluate::Verifier;
use crate::policy::handle::SnapshotHandle;

/// The one report signet writes per namespace.
pub const REPORT_NAME: &str = "signet";
/// Results kept in one report: etcd refuses objects over about 1.5 MiB, and a namespace of
/// thousands of pods would pass that. Failures and errors are kept first; the summary
/// still counts every result.
const MAX_RESULTS: usize = 2_000;
/// Longest result message kept.
const MAX_MESSAGE: usize = 512;
const MANAGER: &str = "signet";

/// How the scans run.
pub struct ScanSettings {
    pub interval: Duration,
    pub audit: AuditSettings,
}

fn report_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("wgpolicyk8s.io", "v1alpha2", "PolicyReport"),
        "policyreports",
    )
}

/// Runs until the process ends.
pub async fn keep_scanning(
    client: kube::Client,
    snapshots: SnapshotHandle,
    verifier: Arc<dyn Verifier>,
    leadership: Leadership,
    settings: ScanSettings,
    metrics: Metrics,
) {
    let events = EventRecorder::new(client.clone());
    let mut published = snapshots.subscribe();
    let mut leading = leadership.subscribe();
    // What each (namespace, workload, container, policy) was at the last scan, to tell a
    // workload that stopped passing from one that never did.
    let mut previous: BTreeMap<(String, String, String, String), Verdict> = BTreeMap::new();
    // Publications can come in bursts (every edit of a policy, every re-read policy text): a
    // scan lists every workload, so they are at least this far apart.
    let min_gap = settings.interval.min(Duration::from_secs(60));
    let mut last_scan: Option<std::time::Instant> = None;
    loop {
        if let Some(wait) = last_scan.and_then(|at| min_gap.checked_sub(at.elapsed())) {
            tokio::time::sleep(wait).await;
        }
        if leadership.is_leader() && snapshots.is_ready() {
            last_scan = Some(std::time::Instant::now());
            match scan(&client, &snapshots, verifier.as_ref(), &settings).await {
                Ok(rows) => {
                    warn_on_regressions(&rows, &previous, &events);
                    previous = rows
                        .iter()
                        .map(|r| {
                            (
                                (
                                    r.namespace.clone(),
                                    r.workload.clone(),
                                    r.container.clone(),
                                    r.policy.clone(),
                                ),
                                r.verdict,
                            )
                        })
                        .collect();
                    if let Err(e) = publish_reports(&client, &rows).await {
                        tracing::warn!(error = %e, "cannot write PolicyReports");
                    }
                    report_metrics(&metrics, &rows);
                    tracing::info!(rows = rows.len(), "background scan complete");
                }
                Err(e) => tracing::warn!(error = %e, "background scan failed; retrying at the next interval"),
            }
        }
        tokio::select! {
            changed = published.changed() => if changed.is_err() { return },
            changed = leading.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(settings.interval) => {}
        }
    }
}

async fn scan(
    client: &kube::Client,
    snapshots: &SnapshotHandle,
    verifier: &dyn Verifier,
    settings: &ScanSettings,
) -> Result<Vec<Row>, String> {
    let objects = crate::cluster::workloads::list_workloads(client, &[])
        .await
        .map_err(|e| format!("cannot list workloads: {e}"))?;
    let workloads = workloads_in(&objects)?;
    let snapshot = snapshots.load();
    Ok(audit(&snapshot, &workloads, verifier, &settings.audit, &|_| {}).await)
}

fn warn_on_regressions(
    rows: &[Row],
    previous: &BTreeMap<(String, String, String, String), Verdict>,
    events: &EventRecorder,
) {
    for row in rows.iter().filter(|r| matches!(r.verdict, Verdict::Fail)) {
        let key = (
            row.namespace.clone(),
            row.workload.clone(),
            row.container.clone(),
            row.policy.clone(),
        );
        if previous.get(&key) != Some(&Verdict::Pass) {
            continue;
        }
        let (kind, name) = row.workload.split_once('/').unwrap_or(("", &row.workload));
        let involved = Involved {
            api_version: api_version_of(kind).to_string(),
            kind: kind.to_string(),
            namespace: row.namespace.clone(),
            name: name.to_string(),
            uid: None,
        };
        let message = format!(
            "running image {} (container {}) no longer passes policy {:?}: {}",
            row.image, row.container, row.policy, row.reason
        );
        events.record(involved, "ImageNoLongerVerified", message);
    }
}

fn api_version_of(kind: &str) -> &'static str {
    match kind {
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => "apps/v1",
        "Job" | "CronJob" => "batch/v1",
        _ => "v1",
    }
}

/// The PolicyReport of one namespace: a result per workload, container and policy.
pub fn report_for(namespace: &str, rows: &[&Row]) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut kept: Vec<&&Row> = rows.iter().collect();
    // Worst first (error, fail, warn, pass), then as listed.
    kept.sort_by_key(|row| std::cmp::Reverse(row.verdict));
    kept.truncate(MAX_RESULTS);
    let results: Vec<Value> = kept
        .iter()
        .map(|row| {
            let (kind, name) = row.workload.split_once('/').unwrap_or(("", &row.workload));
            json!({
                "source": "signet",
                "policy": if row.policy.is_empty() { "no-policy" } else { row.policy.as_str() },
                "rule": row.container,
                "result": row.verdict.as_str(),
                "message": message(row),
                "scored": true,
                "timestamp": {"seconds": now, "nanos": 0},
                "resources": [{"apiVersion": api_version_of(kind), "kind": kind, "name": name, "namespace": namespace}],
                "properties": {"image": row.image, "digest": row.digest},
            })
        })
        .collect();
    let count = |verdict: Verdict| rows.iter().filter(|r| r.verdict == verdict).count();
    json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {
            "name": REPORT_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": MANAGER},
        },
        "scope": {"kind": "Namespace", "name": namespace},
        "summary": {
            "pass": count(Verdict::Pass),
            "warn": count(Verdict::Warn),
            "fail": count(Verdict::Fail),
            "error": count(Verdict::Error),
            "skip": 0,
        },
        "results": results,
    })
}

/// Writes each namespace's report (server-side apply) and deletes signet's reports in
/// namespaces that no longer run anything judged. One namespace that cannot be written (say,
/// one being deleted) does not keep the others stale: each is tried, and the failures are
/// returned together.
async fn publish_reports(client: &kube::Client, rows: &[Row]) -> Result<(), String> {
    let resource = report_resource();
    let mut by_namespace: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for row in rows {
        by_namespace.entry(row.namespace.as_str()).or_default().push(row);
    }
    let mut failures = Vec::new();
    let params = PatchParams::apply(MANAGER).force();
    for (namespace, rows) in &by_namespace {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        if let Err(e) = api
            .patch(REPORT_NAME, &params, &Patch::Apply(report_for(namespace, rows)))
            .await
        {
            failures.push(format!("{namespace}: {e}"));
        }
    }
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let labels = ListParams::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
    match all.list(&labels).await {
        Ok(existing) => {
            let current: BTreeSet<&str> = by_namespace.keys().copied().collect();
            for report in existing {
                let namespace = report.metadata.namespace.clone().unwrap_or_default();
                if current.contains(namespace.as_str()) {
                    continue;
                }
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
                if let Err(e) = api.delete(REPORT_NAME, &DeleteParams::default()).await {
                    failures.push(format!("{namespace} (delete): {e}"));
                }
            }
        }
        Err(e) => failures.push(format!("listing signet's reports: {e}")),
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

fn message(row: &Row) -> String {
    if row.reason.is_empty() {
        return format!("{} verified", row.image);
    }
    match row.reason.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}…", &row.reason[..cut]),
        None => row.reason.clone(),
    }
}

fn report_metrics(metrics: &Metrics, rows: &[Row]) {
    metrics.background_workloads.reset();
    let mut counts: BTreeMap<(&str, &'static str), i64> = BTreeMap::new();
    for row in rows {
        *counts.entry((row.policy.as_str(), row.verdict.as_str())).or_insert(0) += 1;
    }
    for ((policy, verdict), count) in counts {
        metrics
            .background_workloads
            .with_label_values(&[if policy.is_empty() { "none" } else { policy }, verdict])
            .set(count);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    metrics.background_last_scan.set(i64::try_from(now).unwrap_or(i64::MAX));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: usize, verdict: Verdict) -> Row {
        Row {
            namespace: "shop".into(),
            workload: format!("Pod/p{n}"),
            container: "main".into(),
            image: "registry.example/app:v1".into(),
            digest: "sha256:00".into(),
            policy: "release".into(),
            verdict,
            reason: if verdict == Verdict::Pass {
                String::new()
            } else {
                "x".repeat(2_000)
            },
        }
    }

    #[test]
    fn big_namespaces_keep_failures_and_every_count() {
        let rows: Vec<Row> = (0..3_000)
            .map(|n| row(n, if n % 1_000 == 7 { Verdict::Fail } else { Verdict::Pass }))
            .collect();
        let refs: Vec<&Row> = rows.iter().collect();
        let report = report_for("shop", &refs);
        let results = report["results"].as_array().unwrap();
        assert_eq!(results.len(), MAX_RESULTS);
        assert_eq!(report["summary"]["pass"], 2_997);
        assert_eq!(report["summary"]["fail"], 3);
        assert!(results[..3].iter().all(|r| r["result"] == "fail"));
        let message = results[0]["message"].as_str().unwrap();
        assert_eq!(message.chars().count(), MAX_MESSAGE + 1, "cut, with an ellipsis");
        assert_eq!(results[3]["message"], "registry.example/app:v1 verified");
    }
}
