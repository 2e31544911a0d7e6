//! A short soak: concurrent admissions for 15 s while signet's RSS is read every second; fails
//! only when RSS more than doubles after a 5 s warm-up. Opt-in (`SIGNET_SOAK=1`), because it
//! keeps both cores of a CI machine busy while other tests run. Static policies only, so no
//! registry: the TLS, admission, patch and logging paths. `bench/run.sh soak` is the full soak,
//! with signature verification and its caches (see bench/README.md).

use crate::signet_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use signet_server::{Signet, pod_review, policy_dir, static_policy};

const CONNECTIONS: usize = 8;
const LOAD: Duration = Duration::from_secs(15);
const WARM_UP: Duration = Duration::from_secs(5);

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One sender: allowed validations, mutations (patch path) and denials, back to back.
async fn send(signet: Arc<Signet>, task: usize, until: Instant, answered: Arc<AtomicUsize>) {
    let mut i = 0;
    while Instant::now() < until {
        let uid = format!("soak-{task}-{i}");
        let (endpoint, image, allowed) = match i % 4 {
            0 => ("validate", "evil.example.com/x:1", false),
            1 => ("mutate", "ghcr.io/org/app:v1", true),
            _ => ("validate", "ghcr.io/org/app:v1", true),
        };
        let response = signet.review(endpoint, &pod_review(&uid, &[image])).await;
        assert_eq!(response["allowed"], allowed, "{uid}: {response}");
        answered.fetch_add(1, Ordering::Relaxed);
        i += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rss_stays_flat_under_concurrent_admissions() {
    if std::env::var("SIGNET_SOAK").as_deref() != Ok("1") {
        eprintln!("skipped: set SIGNET_SOAK=1 to run the 15 s soak");
        return;
    }
    let dir = policy_dir(&[
        &static_policy("allow-org", "ghcr.io/org/**", "pass", "enforce"),
        &static_policy("block-evil", "evil.example.com/**", "fail", "enforce"),
    ]);
    let signet = Arc::new(Signet::start(dir.path(), &[]).await);
    let pid = signet.pid();
    let answered = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let senders: Vec<_> = (0..CONNECTIONS)
        .map(|task| tokio::spawn(send(signet.clone(), task, started + LOAD, answered.clone())))
        .collect();
    let mut series = Vec::new();
    while started.elapsed() < LOAD {
        tokio::time::sleep(Duration::from_secs(1)).await;
        series.push((started.elapsed(), vm_rss_kib(pid)));
    }
    for sender in senders {
        sender.await.expect("sender");
    }
    series.push((started.elapsed(), vm_rss_kib(pid)));
    let table: Vec<String> = series
        .iter()
        .map(|(t, kib)| format!("{:.1} s {} KiB", t.as_secs_f64(), kib))
        .collect();
    eprintln!("VmRSS: {}", table.join(", "));
    let warm = series
        .iter()
        .find(|(t, _)| *t >= WARM_UP)
        .map(|(_, kib)| *kib)
        .expect("a sample after the warm-up");
    let end = series.last().map(|(_, kib)| *kib).expect("a sample");
    let requests = answered.load(Ordering::Relaxed);
    eprintln!("{requests} admissions; VmRSS after warm-up {warm} KiB, at the end {end} KiB");
    assert!(warm > 0 && requests > 0, "no RSS read or nothing answered");
    assert!(
        end <= 2 * warm,
        "VmRSS grew from {warm} KiB to {end} KiB: {}",
        table.join(", ")
    );
}
