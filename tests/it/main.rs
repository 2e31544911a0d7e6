//! signet's integration tests, one binary: real `docker-registry` on loopback, real HTTPS,
//! real signatures from independent signers, real AdmissionReview JSON. One binary links
//! once instead of once per file; nextest still runs every test in its own process.
//! Each module is one area; `support` and `signet_server` are their shared harness.

mod signet_server;
mod support;

mod api_fixtures;
mod attestations;
mod audit;
mod background;
mod bad_input;
mod blob;
mod bundles;
mod caching;
mod cli_output;
mod cluster;
mod conformance;
mod cue_oracle;
mod deploy;
mod digests;
mod fan_out;
mod fuzz_regressions;
mod fuzz_short;
mod github_attestations;
mod github_policies;
mod hardening;
mod hostile_registry;
mod keyed;
mod keyless;
mod keyless_infra;
mod kms;
mod layout;
mod policy_test;
mod policy_text;
mod policy_vectors;
mod registry;
mod registry_responses;
mod rego_policy;
mod slow_clients;
mod soak;
mod tuf;
mod tuf_quirks;
mod webhook;
