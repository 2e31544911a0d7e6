//! Prometheus metrics. Label values come from fixed sets (endpoint, outcome, …), never from
//! request data, so the series count stays bounded.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
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
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let admissions = IntCounterVec::new(
            Opts::new(
                "signet_admissions_total",
                "AdmissionReviews answered, by endpoint and outcome",
            ),
            &["endpoint", "outcome"],
        )?;
        let admission_seconds = HistogramVec::new(
            HistogramOpts::new("signet_admission_duration_seconds", "Time to answer an AdmissionReview").buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["endpoint", "outcome"],
        )?;
        let policies = IntGauge::new("signet_policies", "ClusterImagePolicies being enforced")?;
        let rejected_policies = IntGauge::new("signet_policies_rejected", "ClusterImagePolicies rejected as invalid")?;
        registry.register(Box::new(admissions.clone()))?;
        registry.register(Box::new(admission_seconds.clone()))?;
        registry.register(Box::new(policies.clone()))?;
        let trust_root_expiry = IntGauge::new(
            "signet_trust_root_expiry_timestamp_seconds",
            "When the first certificate or log key of the trust root in use expires (Unix time)",
        )?;
        registry.register(Box::new(rejected_policies.clone()))?;
        registry.register(Box::new(trust_root_expiry.clone()))?;
        let registry_requests = IntCounterVec::new(
            Opts::new(
                "signet_registry_requests_total",
                "Registry requests by registry and HTTP status",
            ),
            &["registry", "status"],
        )?;
        let cache_lookups = IntCounterVec::new(
            Opts::new("signet_cache_lookups_total", "Cache lookups by cache and result"),
            &["cache", "result"],
        )?;
        let verification_seconds = HistogramVec::new(
            HistogramOpts::new(
                "signet_verification_duration_seconds",
                "Time to verify one authority (cache misses)",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["kind", "outcome"],
        )?;
        let authority_failures = IntCounterVec::new(
            Opts::new(
                "signet_authority_failures_total",
                "Failed authority verifications (cache misses), by kind and reason",
            ),
            &["kind", "reason"],
        )?;
        let policy_failures = IntCounterVec::new(
            Opts::new(
                "signet_policy_failures_total",
                "Policies that failed for an image, by mode and the reason of their first failing authority",
            ),
            &["mode", "reason"],
        )?;
        registry.register(Box::new(authority_failures.clone()))?;
        registry.register(Box::new(policy_failures.clone()))?;
        let in_flight = IntGauge::new("signet_admissions_in_flight", "AdmissionReviews being answered")?;
        registry.register(Box::new(registry_requests.clone()))?;
        registry.register(Box::new(cache_lookups.clone()))?;
        registry.register(Box::new(verification_seconds.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        let internal_errors = IntCounter::new(
            "signet_admission_internal_errors_total",
            "Reviews whose handling panicked, answered with a denial",
        )?;
        registry.register(Box::new(internal_errors.clone()))?;
        Ok(Metrics {
            registry,
            admissions,
            admission_seconds,
            policies,
            rejected_policies,
            trust_root_expiry,
            registry_requests,
            cache_lookups,
            verification_seconds,
            authority_failures,
            policy_failures,
            in_flight,
            internal_errors,
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
