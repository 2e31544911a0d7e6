//! Human-readable explanations of decisions, for `signet verify`.

use std::fmt::Write as _;

use crate::policy::evaluate::{Evaluation, ImageVerdict};

/// Every policy and authority checked for `image`, then the outcome, in the spirit of
/// cosign's "The following checks were performed on each of these signatures".
pub fn verification_report(image: &str, evaluation: &Evaluation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "image: {image}");
    match evaluation.verdicts.get(image) {
        None => {}
        Some(ImageVerdict::Invalid(reason)) => {
            let _ = writeln!(out, "  invalid reference: {reason}");
        }
        Some(ImageVerdict::NoPolicy { normalised }) => {
            let _ = writeln!(
                out,
                "  normalised: {normalised}\n  no ClusterImagePolicy matches this image"
            );
        }
        Some(ImageVerdict::Checked {
            image,
            digest,
            resolve_error,
            policies,
        }) => {
            let _ = writeln!(out, "  normalised: {image}");
            match (digest, resolve_error) {
                (Some(digest), _) => {
                    let _ = writeln!(out, "  digest: {digest}");
                }
                (None, Some(error)) => {
                    let _ = writeln!(out, "  digest: unknown ({error})");
                }
                (None, None) => {
                    let _ = writeln!(out, "  digest: not needed (only static authorities apply)");
                }
            }
            for policy in policies {
                let verdict = if policy.passed() { "PASSED" } else { "FAILED" };
                let _ = writeln!(out, "  policy {:?} (mode {:?}): {verdict}", policy.policy, policy.mode);
                if let Some(error) = &policy.policy_error {
                    let _ = writeln!(out, "    spec.policy failed: {error}");
                }
                for authority in &policy.authorities {
                    let line = match &authority.outcome {
                        Ok(detail) => format!("passed: {detail}"),
                        Err(why) => format!("failed: {why}"),
                    };
                    let _ = writeln!(out, "    authority {:?} {line}", authority.authority);
                }
            }
        }
    }
    for warning in &evaluation.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    for denial in &evaluation.denials {
        let _ = writeln!(out, "denied: {denial}");
    }
    match evaluation.pins.first() {
        Some(pin) if evaluation.allowed => {
            let _ = writeln!(out, "result: allowed; admission pins the image to {}", pin.image);
        }
        _ if evaluation.allowed => {
            let _ = writeln!(out, "result: allowed");
        }
        _ => {
            let _ = writeln!(out, "result: denied");
        }
    }
    out
}
