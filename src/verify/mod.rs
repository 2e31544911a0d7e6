//! Sigstore and cosign cryptography, pure: bundles, DSSE, Rekor entries and inclusion proofs,
//! RFC 3161 timestamps, SCTs, certificate chains, keys and trust roots. Fetching lives in
//! `crate::evidence`; what an authority requires of a signature in `crate::policy::judge`.

pub mod blob;
pub mod bundle;
pub mod cosign;
pub mod dsse;
pub mod keyless;
pub mod keys;
pub mod merkle;
pub mod rekor;
pub mod sct;
pub mod trust;
pub mod tsa;
