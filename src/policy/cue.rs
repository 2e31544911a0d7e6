//! CUE policies (`type: cue`), evaluated as policy-controller evaluates them: the policy is
//! unified with the input JSON and validated without requiring concrete values, so only a
//! conflict fails (see the `cue-lite` crate for the supported part of the language; anything
//! else is refused when the ClusterImagePolicy loads, naming the construct and its line).
//!
//! Messages are policy-controller's: `failed evaluating cue policy for NAME: failed to
//! evaluate the policy with error: PATH: conflicting values A and B`, where NAME is the
//! attestation's name, or `ClusterImagePolicy` for `spec.policy`.
//!
//! Limits: the policy's size and lines as for Rego; the input's JSON size; evaluation steps,
//! values created and wall time inside the evaluator; and the same bounded evaluation threads
//! and admission deadline as Rego ([`super::rego::run_bounded`]).

use std::fmt;
use std::sync::Arc;

use super::rego::{LIMITS as REGO_LIMITS, Verdict, json_size_over, run_bounded};

/// Most bytes of the input's JSON (an SBOM attestation can be large; 16 MiB is far above the
/// ones seen in the wild, and well under what signet reads from a registry).
pub const INPUT_BYTES: usize = 16 * 1024 * 1024;

/// The evaluator's own bounds (time is Rego's step time). Values: each field or list
/// element of policy and input is one, and costs up to ~2.4 KB at the peak (measured: 200,000
/// values of an SBOM-like list, 477 MB RSS), so 100,000 values bound one evaluation to about
/// 250 MB; a statement with 3,000 packages of a dozen fields each fits.
pub const LIMITS: cue_lite::Limits = cue_lite::Limits {
    steps: 20_000_000,
    time: REGO_LIMITS.steps_time,
    vertices: 100_000,
    disjuncts: 1_024,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CueError {
    #[error("failed to compile the cue policy with error: {0}")]
    Compile(#[from] cue_lite::CompileError),
    #[error(
        "failed to compile the cue policy with error: the policy is {size} bytes, more than signet allows ({limit})"
    )]
    TooLarge { size: usize, limit: usize },
    #[error(
        "failed to compile the cue policy with error: the policy has {lines} lines, more than signet allows ({limit})"
    )]
    TooLong { lines: usize, limit: usize },
}

/// A compiled CUE policy, cheap to clone and share between threads.
#[derive(Clone)]
pub struct CuePolicy {
    /// What policy-controller calls it in messages: the attestation's name, or
    /// `ClusterImagePolicy`.
    name: Arc<str>,
    policy: cue_lite::Policy,
}

impl fmt::Debug for CuePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CuePolicy")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CuePolicy {
    pub fn compile(name: &str, source: &str) -> Result<Self, CueError> {
        if source.len() > REGO_LIMITS.policy_bytes {
            return Err(CueError::TooLarge {
                size: source.len(),
                limit: REGO_LIMITS.policy_bytes,
            });
        }
        let lines = source.lines().count();
        if lines > REGO_LIMITS.policy_lines {
            return Err(CueError::TooLong {
                lines,
                limit: REGO_LIMITS.policy_lines,
            });
        }
        Ok(CuePolicy {
            name: name.into(),
            policy: cue_lite::Policy::compile(source)?,
        })
    }

    /// Evaluates on the calling thread, bounded by the evaluator's limits.
    pub fn evaluate_blocking(&self, input: &serde_json::Value) -> Verdict {
        self.evaluate_with(input, LIMITS)
    }

    fn evaluate_with(&self, input: &serde_json::Value, limits: cue_lite::Limits) -> Verdict {
        let name = &self.name;
        if json_size_over(input, INPUT_BYTES).is_some() {
            return Verdict::deny(format!(
                "failed evaluating cue policy for {name}: the input is larger than {INPUT_BYTES} bytes"
            ));
        }
        match self.policy.evaluate(input, limits) {
            Ok(Ok(())) => Verdict::Allow { warning: None },
            Ok(Err(violations)) => Verdict::deny(format!(
                "failed evaluating cue policy for {name}: failed to evaluate the policy with error: {violations}"
            )),
            Err(error) => {
                tracing::warn!(policy = %name, %error, "cue evaluation stopped");
                Verdict::deny(format!("failed evaluating cue policy for {name}: {error}"))
            }
        }
    }

    /// Evaluates on a bounded evaluation thread; denies when no answer comes in time.
    pub async fn evaluate(&self, input: serde_json::Value) -> Verdict {
        let policy = self.clone();
        run_bounded("cue", &self.name, move || policy.evaluate_blocking(&input)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deny_text(verdict: Verdict) -> String {
        match verdict {
            Verdict::Deny { error, .. } => error,
            Verdict::Allow { .. } => panic!("allowed"),
        }
    }

    #[test]
    fn conflicts_deny_with_policy_controllers_wording_and_incomplete_values_pass() {
        let policy = CuePolicy::compile(
            "ClusterImagePolicy",
            "spec: serviceAccount: \"non-default\"\nspec: x: int\n",
        )
        .unwrap();
        assert_eq!(
            policy.evaluate_blocking(&json!({"spec": {"serviceAccount": "non-default"}})),
            Verdict::Allow { warning: None }
        );
        assert_eq!(
            deny_text(policy.evaluate_blocking(&json!({"spec": {"serviceAccount": "default"}}))),
            "failed evaluating cue policy for ClusterImagePolicy: failed to evaluate the policy with error: \
             spec.serviceAccount: conflicting values \"non-default\" and \"default\""
        );
    }

    #[test]
    fn unsupported_and_broken_policies_are_refused_at_compile_time() {
        let err = CuePolicy::compile("a", "x: [for v in y {v}]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to compile the cue policy with error: line 1: unsupported CUE construct: for comprehensions"
        );
        let err = CuePolicy::compile("a", "{\"wontgo").unwrap_err();
        assert!(err.to_string().contains("string literal not terminated"), "{err}");
        let big = "a: 1\n".repeat(REGO_LIMITS.policy_lines + 1);
        assert!(matches!(CuePolicy::compile("a", &big), Err(CueError::TooLong { .. })));
    }

    #[test]
    fn evaluation_limits_deny_instead_of_running_on() {
        let policy = CuePolicy::compile("att", "x: [...{a: int}]").unwrap();
        let input = json!({"x": vec![json!({"a": 1}); 200]});
        let tight = cue_lite::Limits { steps: 100, ..LIMITS };
        let error = deny_text(policy.evaluate_with(&input, tight));
        assert!(
            error.starts_with("failed evaluating cue policy for att: the CUE evaluation was stopped: more than 100"),
            "{error}"
        );
        assert_eq!(policy.evaluate_with(&input, LIMITS), Verdict::Allow { warning: None });
    }
}
