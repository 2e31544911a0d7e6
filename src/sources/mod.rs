//! Where policies come from: a folder (standalone) or the cluster (a kube-rs watch). Both
//! publish the same immutable `PolicySnapshot` into a `SnapshotHandle`; admission reads the latest one without
//! locks, and readiness waits for the first.

pub mod folder;
pub mod kube;
pub mod policy_text;
pub mod trust_roots;
