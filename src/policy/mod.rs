//! Pure policy logic: image references, globs, validation, snapshots and evaluation. No I/O.
pub mod evaluate;
pub mod glob;
pub mod reference;
pub mod snapshot;
pub mod validate;
