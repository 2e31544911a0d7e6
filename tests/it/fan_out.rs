//! One Pod with thousands of distinct images, against a real registry. signet works through
//! them a few at a time (`--review-concurrency`), holds at most `--registry-concurrency`
//! registry operations (and so connections) at once, answers the review, and keeps answering
//! other reviews meanwhile. Peak RSS and open file descriptors of the real `signet serve`
//! process are sampled from /proc and held to the bounds the README states.
//!
//! The figures printed here come from the test build; `SIGNET_TEST_BINARY` points the test at
//! another build (the release figures in the README were taken that way).

use crate::signet_server;
use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::Value;
use signet_server::{Signet, key_policy, pod_review, policy_dir};
use support::{Registry, SignOptions, TestKey, build_image, get_manifest, require_tools, sign_image};

/// Most descriptors signet may hold while the flood is processed, above its idle count: the
/// 32 registry operations of `--registry-concurrency`, a little slack for pooled connections
/// being closed, and the test's own few webhook connections.
const EXTRA_FDS_BOUND: usize = 64;
/// Most memory the flood may add to signet's resident set (peak over idle), as the README
/// states it for 10,000 distinct images.
const EXTRA_RSS_BOUND_MIB: f64 = 96.0;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Pushes `count` distinct manifests (one annotation apart) as tags `t0`, `t1`, … of `repo`.
async fn push_distinct_images(registry: &Registry, repo: &str, count: usize) -> Vec<String> {
    build_image(registry, repo, "base", "fan-out base");
    let base = get_manifest(registry, repo, "base").await.expect("base manifest");
    let http = reqwest::Client::new();
    let url = registry.url();
    let pushes = (0..count).map(|i| {
        let mut manifest = base.clone();
        manifest["annotations"] = serde_json::json!({"n": i.to_string()});
        let (http, url) = (http.clone(), url.clone());
        async move {
            let response = http
                .put(format!("{url}/v2/{repo}/manifests/t{i}"))
                .header("content-type", OCI_MANIFEST)
                .body(serde_json::to_vec(&manifest).unwrap())
                .send()
                .await
                .expect("put manifest");
            assert_eq!(response.status().as_u16(), 201);
        }
    });
    futures::stream::iter(pushes)
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    (0..count).map(|i| format!("{}/{repo}:t{i}", registry.host())).collect()
}

#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    rss_mib: f64,
    peak_rss_mib: f64,
    fds: usize,
}

fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    Usage {
        rss_mib: kib("VmRSS:") / 1024.0,
        peak_rss_mib: kib("VmHWM:") / 1024.0,
        fds,
    }
}

/// Samples signet's descriptors every 10 ms until told to stop; returns the most seen.
fn sample_fds(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut most = 0;
        while !stop.load(Ordering::Relaxed) {
            most = most.max(usage(pid).fds);
            std::thread::sleep(Duration::from_millis(10));
        }
        most
    })
}

async fn flood(count: usize) {
    if !require_tools() {
        return;
    }
    let registry = Registry::plain();
    let key = TestKey::generate();
    let host = registry.host();
    let images = push_distinct_images(&registry, "fan/unsigned", count).await;
    // Signed images for the normal reviews that run beside the flood, one each, so every one
    // of them needs registry work of its own.
    let mut signed = Vec::new();
    for i in 0..5 {
        let digest = build_image(&registry, "fan/signed", &format!("v{i}"), &format!("signed {i}"));
        sign_image(&registry, "fan/signed", &digest, &key, &SignOptions::default()).await;
        signed.push(format!("{host}/fan/signed:v{i}"));
    }
    let dir = policy_dir(&[&key_policy("signed-only", "**", &key.public_pem(), "")]);
    let signet = Signet::start(dir.path(), &["--insecure-registry", &host]).await;
    let warm = signet.review("validate", &pod_review("warm", &[&signed[0]])).await;
    assert_eq!(warm["allowed"], true, "{warm}");
    let idle = usage(signet.pid());

    let stop = Arc::new(AtomicBool::new(false));
    let fds = sample_fds(signet.pid(), stop.clone());
    let refs: Vec<&str> = images.iter().map(String::as_str).collect();
    let big = pod_review("flood", &refs).to_string();
    println!("{count} distinct images: review of {} KiB", big.len() / 1024);
    let started = Instant::now();
    let flood = signet.post("validate?timeout=30s", big);
    let beside = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut slowest = Duration::ZERO;
        for (i, image) in signed.iter().enumerate().skip(1) {
            let started = Instant::now();
            let answer = signet
                .review("validate", &pod_review(&format!("beside-{i}"), &[image]))
                .await;
            slowest = slowest.max(started.elapsed());
            assert_eq!(answer["allowed"], true, "a signed image beside the flood: {answer}");
        }
        slowest
    };
    let ((status, answer), slowest_beside) = tokio::join!(flood, beside);
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak_fds = fds.join().unwrap();
    let after = usage(signet.pid());

    assert_eq!(status, 200, "{answer}");
    let response: &Value = &answer["response"];
    assert_eq!(response["uid"], "flood");
    assert_eq!(response["allowed"], false, "none of these images is signed");
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.len() < 64 * 1024,
        "the denial is summarised, not {} bytes",
        message.len()
    );
    let extra_rss = after.peak_rss_mib - idle.rss_mib;
    println!(
        "{count} distinct images: answered in {took:.1?}; RSS idle {:.1} MiB, peak {:.1} MiB (+{extra_rss:.1}), \
         after {:.1} MiB; fds idle {}, peak {peak_fds}; slowest normal review beside it {slowest_beside:.0?}",
        idle.rss_mib, after.peak_rss_mib, after.rss_mib, idle.fds
    );
    println!("denial starts: {}", message.chars().take(300).collect::<String>());
    assert!(
        peak_fds <= idle.fds + EXTRA_FDS_BOUND,
        "{peak_fds} descriptors at the peak, {} idle",
        idle.fds
    );
    assert!(
        extra_rss <= EXTRA_RSS_BOUND_MIB,
        "the flood added {extra_rss:.1} MiB at its peak"
    );
}

#[tokio::test]
async fn five_thousand_distinct_images_in_one_review_stay_within_bounds() {
    flood(5_000).await;
}

#[tokio::test]
async fn ten_thousand_distinct_images_in_one_review_stay_within_bounds() {
    flood(10_000).await;
}
