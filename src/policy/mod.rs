//! Pure policy logic: image references, globs, validation, snapshots, evaluation and the
//! judgement of one authority over its evidence. No I/O.
pub mod cue;
pub mod evaluate;
pub mod failure;
pub mod glob;
pub mod handle;
pub mod image;
pub mod judge;
pub mod program;
pub mod reference;
pub mod rego;
pub mod snapshot;
pub mod validate;
