//! signet: a Kubernetes admission webhook that lets only signed container images run.
//!
//! Data flows one way: AdmissionReview in → images out of the pod spec → policies matched →
//! signatures fetched once → verified → decision + patch out. Policy evaluation and the
//! judgement of evidence (`policy`) and the cryptography (`verify`) are pure; I/O sits in
//! `evidence` (signatures, keys, trust roots), `registry`, `cluster` and `sources`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod admission;
pub mod api;
pub mod audit;
pub mod cli;
pub mod cluster;
pub mod evidence;
pub mod metrics;
pub mod policy;
pub mod registry;
pub mod report;
pub mod server;
pub mod sources;
pub mod tls;
pub mod verify;
