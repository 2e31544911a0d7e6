//! Prometheus metrics. Label values come from fixed sets (endpoint, outcome, …), never from
//! request data, so the series count stays bounded.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    admissions: IntCounterVec,
    admission_seconds: HistogramVec,
    pub policies: IntGauge,
    pub rejected_policies: IntGauge,
    /// Unix time at which the first certificate or key of the trust root expires.
    pub trust_root_expiry: IntGauge,
    /// Registry requests by registry host and HTTP status (hosts are the registries the
    /// policies' images live in: few).
    pub registry_requests: IntCounterVec,
    /// Cache lookups by cache (`signatures`, `verified`, `digests`) and result (`hit`, `miss`).
    pub cache_lookups: IntCounterVec,
    /// Time to verify one authority against one digest, cache misses only, by kind and outcome.
    pub verification_seconds: HistogramVec,
    /// Failed authority verifications (cache misses), by kind and reason
    /// (`AuthorityFailure::metric_label`).
    pub authority_failures: IntCounterVec,
    /// Policies that failed for an image, by mode (`enforce` denies, `warn` warns) and the
    /// reason of the policy's first failing authority.
    pub policy_failures: IntCounterVec,
    /// AdmissionReviews being answered right now.
    pub in_flight: IntGauge,
    /// Reviews whose handling panicked and were answered with a denial.
    pub internal_errors: IntCounter,
    /// Running workload images at the last background scan, by policy (the cluster's
    /// ClusterImagePolicies: few) and verdict.
    pub background_workloads: IntGaugeVec,
    /// When the last background scan completed (Unix time).
    pub background_last_scan: IntGauge,
}

/// Latency buckets from half a millisecond (a cached answer) to seconds (registry trouble).
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Creates metrics and registers each one as it is made.
struct Registrar(Registry);

impl Registrar {
    fn add<M: prometheus::core::Collector + Clone + 'static>(&self, metric: M) -> Result<M, prometheus::Error> {
        self.0.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    fn counters(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec, prometheus::Error> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    fn gauge(&self, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
        self.add(IntGauge::new(name, help)?)
    }

    fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec, prometheus::Error> {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels)?)
    }

    fn histograms(&self, name: &str, help: &str, labels: &[&str]) -> Result<HistogramVec, prometheus::Error> {
        let options = HistogramOpts::new(name, help).buckets(SECONDS_BUCKETS.to_vec());
        self.add(HistogramVec::new(options, labels)?)
    }
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registrar(Registry::new());
        Ok(Metrics {
            admissions: r.counters(
                "signet_admissions_total",
                "AdmissionReviews answered, by endpoint and outcome",
                &["endpoint", "outcome"],
            )?,
            admission_seconds: r.histograms(
                "signet_admission_duration_seconds",
                "Time to answer an AdmissionReview",
                &["endpoint", "outcome"],
            )?,
            policies: r.gauge("signet_policies", "ClusterImagePolicies being enforced")?,
            rejected_policies: r.gauge("signet_policies_rejected", "ClusterImagePolicies rejected as invalid")?,
            trust_root_expiry: r.gauge(
                "signet_trust_root_expiry_timestamp_seconds",
                "When the first certificate or log key of the trust root in use expires (Unix time)",
            )?,
            registry_requests: r.counters(
                "signet_registry_requests_total",
                "Registry requests by registry and HTTP status",
                &["registry", "status"],
            )?,
            cache_lookups: r.counters(
                "signet_cache_lookups_total",
                "Cache lookups by cache and result",
                &["cache", "result"],
            )?,
            verification_seconds: r.histograms(
                "signet_verification_duration_seconds",
                "Time to verify one authority (cache misses)",
                &["kind", "outcome"],
            )?,
            authority_failures: r.counters(
                "signet_authority_failures_total",
                "Failed authority verifications (cache misses), by kind and reason",
                &["kind", "reason"],
            )?,
            policy_failures: r.counters(
                "signet_policy_failures_total",
                "Policies that failed for an image, by mode and the reason of their first failing authority",
                &["mode", "reason"],
            )?,
            in_flight: r.gauge("signet_admissions_in_flight", "AdmissionReviews being answered")?,
            internal_errors: r.add(IntCounter::new(
                "signet_admission_internal_errors_total",
                "Reviews whose handling panicked, answered with a denial",
            )?)?,
            background_workloads: r.gauges(
                "signet_background_workload_images",
                "Running workload images at the last background scan, by policy and verdict",
                &["policy", "verdict"],
            )?,
            background_last_scan: r.gauge(
                "signet_background_scan_timestamp_seconds",
                "When the last background scan completed (Unix time)",
            )?,
            registry: r.0,
        })
    }

    pub fn observe_admission(&self, endpoint: &'static str, outcome: &'static str, elapsed: Duration) {
        self.admissions.with_label_values(&[endpoint, outcome]).inc();
        self.admission_seconds
            .with_label_values(&[endpoint, outcome])
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}
