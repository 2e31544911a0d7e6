//! Sigstore and cosign material, pure: bundles (verified by `sigstore-verify`), cosign's
//! `.sig`/`.att` layers, DSSE, keyless identities, keys and trust roots. Fetching lives in
//! `crate::evidence`; what an authority requires of a signature in `crate::policy::judge`.

pub mod blob;
pub mod bundle;
pub mod cosign;
pub mod dsse;
pub mod keyless;
pub mod keys;
pub mod trust;
