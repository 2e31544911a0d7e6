//! Pure policy logic: image references, globs, validation, snapshots and evaluation. No I/O.
pub mod evaluate;
pub mod glob;
pub mod program;
pub mod reference;
pub mod rego;
pub mod snapshot;
pub mod validate;
