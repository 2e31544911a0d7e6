//! A whole AdmissionReview body through `parse_review` and `Admission::handle` (both
//! endpoints), with static policies, a keyed policy and a verifier that never does I/O and
//! never verifies anything.
//!
//! Invariants: `handle` fails exactly when `parse_review` does; every answer is an
//! AdmissionReview echoing the uid; a denial carries a message; nothing is ever pinned (no
//! signature ever verifies); an image that a fail-closed policy matches is never admitted.
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures::future::BoxFuture;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use signet::admission::review::parse_review;
use signet::admission::workload::{Workload, workload};
use signet::admission::{Admission, Endpoint};
use signet::api::{Document, parse_documents};
use signet::metrics::Metrics;
use signet::policy::evaluate::{AuthorityCheck, NoMatchPolicy, RequestContext, Verifier};
use signet::policy::failure::AuthorityFailure;
use signet::policy::program::AuthorityMatch;
use signet::policy::glob::Glob;
use signet::policy::reference::ImageRef;
use signet::policy::snapshot::PolicySnapshot;
use signet::policy::handle::SnapshotHandle;

const POLICIES: &str = r#"
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: allow-ghcr
spec:
  images:
  - glob: "ghcr.io/**"
  authorities:
  - static:
      action: pass
---
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: block-evil
spec:
  images:
  - glob: "evil.example.com/**"
  authorities:
  - static:
      action: fail
      message: evil is blocked
---
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: audit-quay
spec:
  mode: warn
  images:
  - glob: "quay.io/**"
  authorities:
  - static:
      action: fail
---
apiVersion: policy.sigstore.dev/v1beta1
kind: ClusterImagePolicy
metadata:
  name: signed-by-key
spec:
  images:
  - glob: "registry.example.com/**"
  authorities:
  - name: team-key
    key:
      data: |
        -----BEGIN PUBLIC KEY-----
        MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEt/gRgxtSPI++j5+wLC4VBsjxrdu+
        3qPi2knXH7YkBlDIdOIPEBhWs+QjO/NG199vfRhm7VG2Gusqus+/sgPjXg==
        -----END PUBLIC KEY-----
"#;

/// Globs of the enforcing policies whose images can never pass here.
const FAIL_CLOSED: &[&str] = &["evil.example.com/**", "registry.example.com/**"];

/// The I/O side, without I/O: tags never resolve and signatures never verify.
struct NoIo;

impl Verifier for NoIo {
    fn resolve_digest<'a>(
        &'a self,
        image: &'a ImageRef,
        _: &'a RequestContext,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move { Err(format!("fuzz: no registry for {image}")) })
    }

    fn verify<'a>(&'a self, check: AuthorityCheck<'a>) -> BoxFuture<'a, Result<(String, AuthorityMatch), AuthorityFailure>> {
        let why = format!("fuzz: no signature for {}@{}", check.image, check.digest);
        Box::pin(async move { Err(AuthorityFailure::Unsigned { reasons: vec![why] }) })
    }
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    admission: Admission,
    fail_closed: Vec<Glob>,
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let policies: Vec<_> = parse_documents(POLICIES)
        .expect("fuzz policies parse")
        .into_iter()
        .filter_map(|d| match d {
            Document::Policy(p) => Some(p),
            _ => None,
        })
        .collect();
    let snapshot = PolicySnapshot::build(policies);
    assert_eq!(
        snapshot.policies.len(),
        4,
        "fuzz policies compile: {:?}",
        snapshot.rejected
    );
    let admission = Admission {
        snapshot: SnapshotHandle::fixed(snapshot),
        verifier: Arc::new(NoIo),
        no_match: NoMatchPolicy::Deny,
        metrics: Metrics::new().expect("metrics"),
        default_budget: Duration::from_secs(5),
        images_at_once: signet::policy::evaluate::DEFAULT_IMAGES_AT_ONCE,
        events: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let fail_closed = FAIL_CLOSED.iter().map(|g| Glob::compile(g).expect("glob")).collect();
    Harness {
        runtime,
        admission,
        fail_closed,
    }
});

fuzz_target!(|data: &[u8]| {
    let harness = &*HARNESS;
    let parsed = parse_review(data);
    for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
        let answer = harness.runtime.block_on(harness.admission.handle(data, endpoint, None));
        let (review, answer) = match (&parsed, answer) {
            (Err(_), Err(_)) => continue,
            (Ok(review), Ok(answer)) => (review, answer),
            (Err(e), Ok(_)) => panic!("parse_review refused ({e}) but handle answered"),
            (Ok(_), Err(e)) => panic!("parse_review accepted but handle refused: {e}"),
        };
        let answer: Value = serde_json::from_slice(&answer).expect("the answer is JSON");
        assert_eq!(answer["kind"], "AdmissionReview");
        assert_eq!(answer["apiVersion"].as_str(), Some(review.api_version.as_str()));
        let response = &answer["response"];
        let uid = review.request.as_ref().map(|r| r.uid.as_str()).unwrap_or("");
        assert_eq!(response["uid"].as_str(), Some(uid), "uid echoed");
        let allowed = response["allowed"].as_bool().expect("allowed is a bool");
        if !allowed {
            assert!(
                response["status"]["message"].as_str().is_some_and(|m| !m.is_empty()),
                "a denial explains itself: {response}"
            );
        }
        assert!(
            response.get("patch").is_none(),
            "nothing verified, nothing pinned: {response}"
        );
        let Ok(request) = &review.request else {
            assert!(!allowed, "a review without a usable request is denied");
            continue;
        };
        if let Ok(Workload::Images(images)) = workload(request) {
            for image in &images {
                let Ok(reference) = ImageRef::parse(&image.image) else {
                    assert!(!allowed, "invalid image {:?} admitted", image.image);
                    continue;
                };
                if harness.fail_closed.iter().any(|g| g.matches(&reference)) {
                    assert!(!allowed, "{:?} must be denied: {response}", image.image);
                }
            }
        }
    }
});
