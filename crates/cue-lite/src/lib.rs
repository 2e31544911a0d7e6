//! The part of CUE that admission policies use, evaluated as sigstore's policy-controller
//! evaluates a `type: cue` policy: compile the policy, compile the input JSON, unify them,
//! and validate **without** requiring concrete values, so only conflicts fail (a field the
//! input lacks is not an error).
//!
//! Why a crate of its own: no usable CUE evaluator exists in Rust (the `cue-rs` crate wraps
//! Go's libcue through cgo), and the Go implementation compiled to WebAssembly needs a
//! JavaScript host. The policies in the wild use a small part of the language; this crate
//! evaluates that part and refuses the rest at compile time, naming the construct and its
//! line, so nothing is ever evaluated approximately.
//!
//! Supported: struct unification; basic types (`string`, `int`, `float`, `number`, `bool`,
//! `bytes`, `null`, `_`, `_|_`); bounds (`<`, `<=`, `>`, `>=`, `!=`, `=~`, `!~`);
//! `#Definitions` (closed, `...` opens them); optional fields `?:`; disjunctions with `*`
//! defaults; lists with `[...T]`; `close()`; `let`; `if` comprehensions; references;
//! selectors and indexing; string interpolation; `+`; `==`, `!=`, `<`, … `&&`, `||`, `!`;
//! `len`; and from the packages `list` (`Contains`, `MinItems`, `MaxItems`), `strings`
//! (`Join`, `HasPrefix`, `HasSuffix`, `Contains`), `struct` (`MinFields`, `MaxFields`) and
//! `time` (`Parse`, `Format`, `Time`, `RFC3339`, `RFC3339Nano`).
//!
//! Refused: `for` comprehensions, pattern constraints, hidden fields, attributes, other
//! packages and builtins, arithmetic other than `+`, required fields, dynamic labels,
//! aliases, multi-line, raw and byte strings.

#![forbid(unsafe_code)]

mod ast;
mod builtins;
mod eval;
mod lexer;
mod ops;
mod parser;
mod value;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use eval::Fault;

/// Why a policy does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("line {line}: {message}")]
    Syntax { line: u32, message: String },
    #[error("line {line}: unsupported CUE construct: {construct}")]
    Unsupported { line: u32, construct: String },
}

impl CompileError {
    fn syntax(line: u32, message: &str) -> Self {
        CompileError::Syntax {
            line,
            message: message.to_string(),
        }
    }

    fn unsupported(line: u32, construct: &str) -> Self {
        CompileError::Unsupported {
            line,
            construct: construct.to_string(),
        }
    }
}

/// Why an evaluation did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("the CUE evaluation was stopped: {0}")]
    Limit(String),
    #[error("the input cannot be evaluated: {0}")]
    Input(String),
}

/// How far one evaluation may go.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Conjuncts processed and expressions evaluated.
    pub steps: u64,
    /// Wall time, checked every 1,024 steps.
    pub time: Duration,
    /// Values (fields and list elements) created.
    pub vertices: usize,
    /// Combinations of alternatives tried for one field.
    pub disjuncts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            steps: 2_000_000,
            time: Duration::from_secs(2),
            vertices: 1_000_000,
            disjuncts: 1_024,
        }
    }
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    file: Arc<ast::StructLit>,
}

/// What validation found: nothing, or the conflicts, each with its path.
#[derive(Debug, Clone, PartialEq)]
pub struct Violations(pub Vec<Fault>);

impl Policy {
    pub fn compile(source: &str) -> Result<Self, CompileError> {
        Ok(Policy {
            file: parser::parse_file(source)?,
        })
    }

    /// Unifies the policy with `input` and validates the result.
    pub fn evaluate(&self, input: &serde_json::Value, limits: Limits) -> Result<Result<(), Violations>, EvalError> {
        let input = parser::json_expr(input).map_err(EvalError::Input)?;
        let mut evaluator = eval::Evaluator::new(limits);
        let faults = evaluator.run(self.file.clone(), input)?;
        Ok(if faults.is_empty() {
            Ok(())
        } else {
            Err(Violations(faults))
        })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl fmt::Display for Violations {
    /// As CUE prints an error list: the first error, and how many more there are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("no errors"),
            [only] => write!(f, "{only}"),
            [first, rest @ ..] => write!(f, "{first} (and {} more errors)", rest.len()),
        }
    }
}
