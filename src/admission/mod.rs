//! Admission handling: an AdmissionReview body in, an AdmissionReview answer out.
//!
//! The same [`Admission::handle`] serves the webhook (`/mutate`, `/validate`) and
//! `signet review`, so what the command line shows is what the cluster gets.

pub mod review;
pub mod workload;

use std::any::Any;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use serde_json::{Value, json};

use crate::cluster::events::{EventRecorder, Involved};
use crate::metrics::Metrics;
use crate::policy::evaluate::{NoMatchPolicy, RequestContext, ResourceInfo, Verifier, evaluate};
use crate::policy::handle::SnapshotHandle;
use review::{AdmissionRequest, Answer, ReviewError, parse_review, render_response};
use workload::{Workload, pod_spec_pointer, workload};

/// The two webhook endpoints differ only in whether pins become a patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Mutate,
    Validate,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Mutate => "mutate",
            Endpoint::Validate => "validate",
        }
    }
}

/// Everything an admission needs; cheap to clone.
#[derive(Clone)]
pub struct Admission {
    pub snapshot: SnapshotHandle,
    pub verifier: Arc<dyn Verifier>,
    pub no_match: NoMatchPolicy,
    pub metrics: Metrics,
    /// Answer budget when the API server does not send `?timeout=`.
    pub default_budget: Duration,
    /// Distinct images of one review evaluated at once (`--review-concurrency`).
    pub images_at_once: usize,
    /// Kubernetes Events for denials and warnings, in a cluster.
    pub events: Option<EventRecorder>,
}

impl Admission {
    /// Answers one AdmissionReview body; `Err` only when the body is not an AdmissionReview.
    /// `timeout` is the API server's own deadline for this call, when it sent one.
    ///
    /// A panic anywhere below is caught and answered as a denial echoing the uid: a dropped
    /// connection would let the pod in under `failurePolicy: Ignore`.
    pub async fn handle(
        &self,
        body: &[u8],
        endpoint: Endpoint,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, ReviewError> {
        match AssertUnwindSafe(self.handle_unguarded(body, endpoint, timeout))
            .catch_unwind()
            .await
        {
            Ok(answered) => answered,
            Err(panic) => Ok(self.internal_error(body, endpoint, panic.as_ref())),
        }
    }

    /// The denial for a review whose handling panicked; the panic itself is logged.
    fn internal_error(&self, body: &[u8], endpoint: Endpoint, panic: &(dyn Any + Send)) -> Vec<u8> {
        let what = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("a panic without a message");
        let (api_version, uid) = review::envelope_of(body);
        self.metrics.internal_errors.inc();
        self.metrics
            .observe_admission(endpoint.as_str(), "error", Duration::ZERO);
        tracing::error!(
            endpoint = endpoint.as_str(),
            uid,
            panic = what,
            "internal error while reviewing; denied"
        );
        let answer = Answer::deny(
            "signet hit an internal error while reviewing this request, so it is denied; the error is in signet's log",
        );
        render_response(&api_version, &uid, &answer)
    }

    async fn handle_unguarded(
        &self,
        body: &[u8],
        endpoint: Endpoint,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, ReviewError> {
        let started = Instant::now();
        self.metrics.in_flight.inc();
        let _in_flight = InFlight(&self.metrics.in_flight);
        let review = parse_review(body)?;
        let (uid, answer) = match &review.request {
            Err(why) => (review.uid.clone(), Answer::deny(why.clone())),
            Ok(request) => {
                let budget = answer_budget(timeout, self.default_budget);
                let answer = match tokio::time::timeout(budget, self.answer(request, endpoint)).await {
                    Ok(answer) => answer,
                    Err(_) => Answer::deny(format!(
                        "signet could not finish verifying the images within {budget:.1?}; retry, or check registry reachability"
                    )),
                };
                (request.uid.clone(), answer)
            }
        };
        self.record(&review.request, &answer, endpoint, started);
        Ok(render_response(&review.api_version, &uid, &answer))
    }

    async fn answer(&self, request: &AdmissionRequest, endpoint: Endpoint) -> Answer {
        let images = match workload(request) {
            Err(e) => return Answer::deny(e.to_string()),
            Ok(Workload::Skip(_)) => return Answer::allow(),
            Ok(Workload::Images(images)) if images.is_empty() => return Answer::allow(),
            Ok(Workload::Images(images)) => images,
        };
        let snapshot = self.snapshot.load();
        let resource = resource_info(request);
        let context = request_context(request);
        let evaluation = evaluate(
            &snapshot,
            &images,
            &resource,
            &context,
            self.verifier.as_ref(),
            self.no_match,
            self.images_at_once,
        )
        .await;
        let mut answer = if evaluation.allowed {
            Answer::allow()
        } else {
            Answer::deny(first_of(&evaluation.denials, MESSAGES_SHOWN).join("\n"))
        };
        answer.warnings = first_of(&evaluation.warnings, MESSAGES_SHOWN);
        log_verdicts(request, &evaluation);
        self.count_policy_failures(&evaluation);
        self.record_events(request, endpoint, &answer);
        if endpoint == Endpoint::Mutate {
            // `test` first: the patch applies only to the object signet reviewed.
            answer.patch = evaluation
                .pins
                .iter()
                .flat_map(|pin| {
                    [
                        json!({"op": "test", "path": pin.path, "value": pin.original}),
                        json!({"op": "replace", "path": pin.path, "value": pin.image}),
                    ]
                })
                .collect();
        }
        answer
    }

    fn record(
        &self,
        request: &Result<AdmissionRequest, String>,
        answer: &Answer,
        endpoint: Endpoint,
        started: Instant,
    ) {
        let outcome = match (answer.allowed, answer.warnings.is_empty()) {
            (false, _) => "denied",
            (true, false) => "warned",
            (true, true) => "allowed",
        };
        let elapsed = started.elapsed();
        self.metrics.observe_admission(endpoint.as_str(), outcome, elapsed);
        let (uid, namespace, kind, name) = match request {
            Ok(r) => (
                r.uid.as_str(),
                r.namespace.as_deref().unwrap_or_default(),
                r.kind.kind.as_str(),
                r.name.as_deref().unwrap_or_default(),
            ),
            Err(_) => ("", "", "", ""),
        };
        tracing::info!(
            endpoint = endpoint.as_str(),
            uid,
            namespace,
            kind,
            name,
            outcome,
            reason = answer.message.as_deref().unwrap_or_default(),
            warnings = answer.warnings.len(),
            pinned = answer.patch.len() / 2,
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "admission reviewed"
        );
    }
    /// A denial (from either endpoint) or warnings (from `/validate`, so a mutated object
    /// does not report twice) become a Warning Event on the workload. Dry runs record nothing.
    fn record_events(&self, request: &AdmissionRequest, endpoint: Endpoint, answer: &Answer) {
        let Some(events) = &self.events else { return };
        if request.dry_run == Some(true) {
            return;
        }
        let involved = involved_object(request);
        match (&answer.message, answer.allowed) {
            (Some(message), false) => events.record(involved, "ImageDenied", message.clone()),
            _ if endpoint == Endpoint::Validate && !answer.warnings.is_empty() => {
                events.record(involved, "ImagePolicyWarning", answer.warnings.join("\n"))
            }
            _ => {}
        }
    }
}

fn involved_object(request: &AdmissionRequest) -> Involved {
    let metadata = request.object.as_ref().and_then(|o| o.get("metadata"));
    let field = |name: &str| {
        metadata
            .and_then(|m| m.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let kind = &request.kind;
    Involved {
        api_version: if kind.group.is_empty() {
            kind.version.clone()
        } else {
            format!("{}/{}", kind.group, kind.version)
        },
        kind: kind.kind.clone(),
        namespace: request.namespace.clone().unwrap_or_default(),
        name: request
            .name
            .clone()
            .or_else(|| field("name"))
            .or_else(|| field("generateName"))
            .unwrap_or_default(),
        uid: field("uid"),
    }
}

impl Admission {
    /// An admission over the policies in `manifests` (YAML) with `verifier`, no Events, the
    /// default limits and `noMatchPolicy: deny`.
    #[cfg(test)]
    pub(crate) fn for_tests(manifests: &str, verifier: Arc<dyn Verifier>) -> Admission {
        Admission {
            snapshot: SnapshotHandle::fixed(crate::policy::snapshot::PolicySnapshot::from_yaml(&[manifests])),
            verifier,
            no_match: NoMatchPolicy::Deny,
            metrics: Metrics::new().expect("metrics register once per registry"),
            default_budget: Duration::from_secs(5),
            images_at_once: crate::policy::evaluate::DEFAULT_IMAGES_AT_ONCE,
            events: None,
        }
    }

    /// `signet_policy_failures_total{mode, reason}`: one count per failing (image, policy).
    fn count_policy_failures(&self, evaluation: &crate::policy::evaluate::Evaluation) {
        use crate::policy::evaluate::ImageVerdict;
        use crate::policy::snapshot::Mode;
        for verdict in evaluation.verdicts.values() {
            let ImageVerdict::Checked { policies, .. } = verdict else {
                continue;
            };
            for policy in policies {
                if let Some(reason) = policy.failure_label() {
                    let mode = match policy.mode {
                        Mode::Enforce => "enforce",
                        Mode::Warn => "warn",
                    };
                    self.metrics.policy_failures.with_label_values(&[mode, reason]).inc();
                }
            }
        }
    }
}

/// One structured log line per (image, policy): what was checked and how it ended.
fn log_verdicts(request: &AdmissionRequest, evaluation: &crate::policy::evaluate::Evaluation) {
    use crate::policy::evaluate::ImageVerdict;
    for (image, verdict) in &evaluation.verdicts {
        let ImageVerdict::Checked { digest, policies, .. } = verdict else {
            tracing::info!(uid = %request.uid, image = %image, outcome = "unmatched-or-invalid", "image reviewed");
            continue;
        };
        for policy in policies {
            let passed_by = policy
                .authorities
                .iter()
                .find(|a| a.outcome.is_ok())
                .map(|a| a.authority.as_str());
            let failures: Vec<String> = policy
                .authorities
                .iter()
                .filter_map(|a| a.outcome.as_ref().err().map(|why| format!("{}: {why}", a.authority)))
                .collect();
            tracing::info!(
                uid = %request.uid,
                namespace = request.namespace.as_deref().unwrap_or_default(),
                kind = %request.kind.kind,
                image = %image,
                digest = digest.as_deref().unwrap_or_default(),
                policy = %policy.policy,
                authority = passed_by.unwrap_or_default(),
                outcome = if policy.passed() { "passed" } else { "failed" },
                failures = %failures.join("; "),
                "image reviewed"
            );
        }
    }
}

/// Denials (and warnings) shown in one answer. The message reaches kubectl, Events and
/// controllers' status; for a pod with thousands of failing images the first ones and a count
/// say as much as all of them, and keep the answer small. Every one is still logged.
const MESSAGES_SHOWN: usize = 20;

/// The first `shown` messages, and a last line counting the rest when there are more.
fn first_of(messages: &[String], shown: usize) -> Vec<String> {
    if messages.len() <= shown {
        return messages.to_vec();
    }
    let mut kept = messages[..shown].to_vec();
    kept.push(format!(
        "… and {} more (all are in signet's log)",
        messages.len() - shown
    ));
    kept
}

/// Decrements the in-flight gauge however `handle` returns.
struct InFlight<'a>(&'a prometheus::IntGauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// signet answers before the API server gives up: 80% of its timeout, at least 1 s.
fn answer_budget(timeout: Option<Duration>, default: Duration) -> Duration {
    timeout
        .map(|t| t.mul_f64(0.8).max(Duration::from_secs(1)))
        .unwrap_or(default)
}

fn resource_info(request: &AdmissionRequest) -> ResourceInfo {
    let labels = request
        .object
        .as_ref()
        .and_then(|o| o.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect::<BTreeMap<_, _>>()
        })
        .unwrap_or_default();
    ResourceInfo {
        group: request.resource.group.clone(),
        version: request.resource.version.clone(),
        resource: request.resource.resource.clone(),
        labels,
        object: request.object.clone().map(std::sync::Arc::new),
    }
}

/// Who runs the pod, for registry credentials: its ServiceAccount and pull secrets.
fn request_context(request: &AdmissionRequest) -> RequestContext {
    let spec = pod_spec_pointer(&request.resource.group, &request.resource.resource)
        .and_then(|p| request.object.as_ref()?.pointer(p));
    let service_account = spec
        .and_then(|s| s.get("serviceAccountName"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let image_pull_secrets = spec
        .and_then(|s| s.get("imagePullSecrets"))
        .and_then(Value::as_array)
        .map(|secrets| {
            secrets
                .iter()
                .filter_map(|s| s.get("name")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    RequestContext {
        namespace: request.namespace.clone(),
        service_account,
        image_pull_secrets,
    }
}

#[cfg(test)]
mod tests {
    use futures::future::BoxFuture;

    use super::*;
    use crate::policy::evaluate::AuthorityCheck;
    use crate::policy::failure::AuthorityFailure;
    use crate::policy::program::AuthorityMatch;
    use crate::policy::reference::ImageRef;

    /// Stands for any bug below the admission layer.
    struct PanickingVerifier;

    impl Verifier for PanickingVerifier {
        fn resolve_digest<'a>(
            &'a self,
            _: &'a ImageRef,
            _: &'a RequestContext,
        ) -> BoxFuture<'a, Result<String, String>> {
            Box::pin(async { panic!("a bug deep in verification") })
        }

        fn verify<'a>(
            &'a self,
            _: AuthorityCheck<'a>,
        ) -> BoxFuture<'a, Result<(String, AuthorityMatch), AuthorityFailure>> {
            Box::pin(async { panic!("a bug deep in verification") })
        }
    }

    fn admission() -> Admission {
        let policy = "apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata:\n  name: all\nspec:\n  images:\n  - glob: \"**\"\n  authorities:\n  - name: k\n    key:\n      data: |\n        -----BEGIN PUBLIC KEY-----\n        MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZxAfzrQG1EbWyCI8LiSB7YgSFXoI\n        FNGTyQGKHFc6/H8TQumT9VLS78pUwtv3w7EfKoyFZoP32KrO7nzUy2q6Cw==\n        -----END PUBLIC KEY-----\n";
        Admission::for_tests(policy, Arc::new(PanickingVerifier))
    }

    #[test]
    fn long_lists_of_messages_are_cut_with_a_count() {
        let messages: Vec<String> = (0..25).map(|i| format!("m{i}")).collect();
        assert_eq!(first_of(&messages[..3], 20), messages[..3].to_vec());
        assert_eq!(first_of(&messages[..20], 20), messages[..20].to_vec());
        let cut = first_of(&messages, 20);
        assert_eq!(cut.len(), 21);
        assert_eq!(cut[19], "m19");
        assert_eq!(cut[20], "… and 5 more (all are in signet's log)");
    }

    #[tokio::test]
    async fn a_panic_while_reviewing_is_a_denial_that_echoes_the_uid() {
        let admission = admission();
        let body = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "7f0b2891-916f-4ed6-b7cd-27bff1815a8c",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "operation": "CREATE",
                "namespace": "default",
                "object": {"spec": {"containers": [{"name": "app", "image": "ghcr.io/org/app:v1"}]}}
            }
        });
        for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
            let answer = admission
                .handle(body.to_string().as_bytes(), endpoint, None)
                .await
                .expect("an answer, not an error");
            let answer: Value = serde_json::from_slice(&answer).unwrap();
            assert_eq!(answer["response"]["uid"], "7f0b2891-916f-4ed6-b7cd-27bff1815a8c");
            assert_eq!(answer["response"]["allowed"], false);
            let message = answer["response"]["status"]["message"].as_str().unwrap();
            assert!(message.contains("internal error"), "{message}");
            assert!(answer["response"].get("patch").is_none());
        }
        assert_eq!(admission.metrics.internal_errors.get(), 2);
        assert!(
            admission
                .metrics
                .render()
                .contains("signet_admission_internal_errors_total 2")
        );
    }
}
