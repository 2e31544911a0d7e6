//! Helpers shared by the integration tests (`mod support;` in each test file).
//!
//! - [`Registry`]: a real Debian `docker-registry` on loopback (plain, TLS, or htpasswd).
//! - [`build_image`], [`build_docker_v2s2_image`], [`build_multiarch_index`]: images built
//!   with umoci and pushed with skopeo.
//! - [`MockServer`]: a tiny hand-written HTTP/1.1 server for failure modes a real registry
//!   will not produce on demand (429, 5xx, wrong bodies, redirect loops, silence).
//! - [`keyed_bundle`], [`attach_bundle`], [`attest_and_attach`]: Sigstore bundles attached to
//!   images as OCI 1.1 referrers (the cosign v3 layout).
//! - [`scripted_registry`]: a registry answering with raw scripted bytes, for hostile
//!   responses (shared with the registry fuzz target).
//! - Paths: [`fixtures_dir`], [`shared_tools_dir`], [`python`].
//!
//! Missing tools or fixtures skip a test with "skipping: <why>", except under `CI=true`,
//! where they fail it: CI must never pass by skipping.
#![allow(dead_code, unused_imports)]

mod bundles;
mod cosign;
mod env;
mod images;
mod keyless;
mod kms;
mod kube_api;
mod mock;
mod registry;
pub mod scripted_registry;

pub use bundles::*;
pub use cosign::*;
pub use env::*;
pub use images::*;
pub use keyless::*;
pub use kms::*;
pub use kube_api::*;
pub use mock::*;
pub use registry::*;
