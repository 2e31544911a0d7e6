//! Human-readable explanations of decisions, for `signet verify`.

use std::fmt::Write as _;

use crate::policy::evaluate::{Evaluation, ImageVerdict};
use crate::policy::glob::candidates;
use crate::policy::reference::ImageRef;
use crate::policy::snapshot::PolicySnapshot;

/// For `signet verify --explain`: every policy, whether its globs match the image (and the
/// spellings tried when none does), and the policies that were not loaded at all.
pub fn explain_matching(image: &str, snapshot: &PolicySnapshot) -> String {
    let mut out = String::new();
    let parsed = match ImageRef::parse(image) {
        Ok(parsed) => parsed,
        Err(e) => return format!("explain: {e}\n"),
    };
    let spellings = candidates(&parsed);
    let _ = writeln!(out, "explain: {image} is matched as {}", spellings.join(", "));
    for policy in &snapshot.policies {
        let matching: Vec<&str> = policy
            .globs
            .iter()
            .filter(|g| g.matches(&parsed))
            .map(|g| g.as_str())
            .collect();
        if matching.is_empty() {
            let globs: Vec<String> = policy
                .globs
                .iter()
                .map(|g| format!("{:?} (/{}/)", g.as_str(), g.pattern()))
                .collect();
            let _ = writeln!(
                out,
                "  policy {:?}: no glob matches; globs {}",
                policy.name,
                globs.join(", ")
            );
        } else {
            let _ = writeln!(
                out,
                "  policy {:?}: glob {:?} matches",
                policy.name,
                matching.join(", ")
            );
        }
        if !policy.matches.is_empty() {
            let kinds: Vec<String> = policy
                .matches
                .iter()
                .map(|m| format!("{}/{}", m.group, m.resource))
                .collect();
            let _ = writeln!(
                out,
                "    applies only to {} (signet verify checks as a Pod)",
                kinds.join(", ")
            );
        }
    }
    for rejected in &snapshot.rejected {
        let _ = writeln!(out, "  policy {:?} is not loaded: {}", rejected.name, rejected.error);
    }
    out
}

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
