//! `parse_documents` (ClusterImagePolicy / TrustRoot manifests) on arbitrary text, and every
//! decoded policy through compilation into a snapshot, as the folder and cluster sources do.
//!
//! Invariants: nothing panics; a compiled policy keeps its name, has at least one glob
//! and one authority; every policy is either compiled or rejected, never dropped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signet::api::{Document, parse_documents};
use signet::policy::snapshot::PolicySnapshot;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(documents) = parse_documents(text) else {
        return;
    };
    let mut policies = Vec::new();
    let mut roots = Vec::new();
    for document in documents {
        match document {
            Document::Policy(policy) => policies.push(policy),
            Document::TrustRoot(root) => roots.push(root),
            Document::Other { .. } => {}
        }
    }
    let (policy_count, root_count) = (policies.len(), roots.len());
    let snapshot = PolicySnapshot::build(policies);
    assert_eq!(
        snapshot.policies.len() + snapshot.rejected.len(),
        policy_count,
        "every policy is compiled or rejected"
    );
    let snapshot = snapshot.with_trust_roots(roots);
    assert!(snapshot.trust_roots.len() <= root_count);
    for policy in &snapshot.policies {
        assert!(
            !policy.authorities.is_empty(),
            "{} compiled without authorities",
            policy.name
        );
    }
});
