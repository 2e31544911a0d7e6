//! Operators on concrete values: bounds (`<5`, `=~"re"`) checked against a value, and the
//! binary operators of expressions.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use regex::{Regex, RegexBuilder};

use crate::ast::{BinOp, BoundOp, Kinds};
use crate::builtins;
use crate::value::Value;

/// Longest string an evaluation builds (`+`, interpolation, `strings.Join`): a few lines
/// that double a string would otherwise reach gigabytes.
pub const MAX_STRING_BYTES: usize = 1 << 20;

/// Most memory one compiled regular expression may take (the regex crate's default, stated):
/// bounds its compile time too; `\\w{100}` fits, as it does in CUE.
const REGEX_BYTES: usize = 10 << 20;

/// The regular expressions of one evaluation, compiled once per pattern rather than once per
/// value they are checked against.
#[derive(Default)]
pub struct Regexes(RefCell<HashMap<String, Result<Rc<Regex>, String>>>);

impl Regexes {
    pub fn get(&self, pattern: &str) -> Result<Rc<Regex>, String> {
        if let Some(compiled) = self.0.borrow().get(pattern) {
            return compiled.clone();
        }
        let compiled = RegexBuilder::new(pattern)
            .size_limit(REGEX_BYTES)
            .dfa_size_limit(REGEX_BYTES)
            .build()
            .map(Rc::new)
            .map_err(|e| format!("invalid regular expression {}: {e}", crate::value::quote(pattern)));
        self.0.borrow_mut().insert(pattern.to_string(), compiled.clone());
        compiled
    }
}

/// `a + b` of two strings, refusing to build one longer than [`MAX_STRING_BYTES`].
pub fn concat(a: &str, b: &str) -> Result<String, String> {
    if a.len() + b.len() > MAX_STRING_BYTES {
        return Err(format!("a string of more than {MAX_STRING_BYTES} bytes is not built"));
    }
    Ok(format!("{a}{b}"))
}

pub fn check_bound(op: BoundOp, limit: &Value, value: &Value, regexes: &Regexes) -> Result<(), String> {
    use std::cmp::Ordering::*;
    let ok = match op {
        BoundOp::Ne => !builtins::equal(value, limit),
        BoundOp::Match | BoundOp::NotMatch => {
            let (Value::Str(pattern), Value::Str(text)) = (limit, value) else {
                return Err(format!("conflicting values {value} and {}{limit}", op.symbol()));
            };
            let matched = regexes.get(pattern)?.is_match(text);
            matched == (op == BoundOp::Match)
        }
        _ => match builtins::compare(value, limit) {
            Some(order) => match op {
                BoundOp::Lt => order == Less,
                BoundOp::Le => order != Greater,
                BoundOp::Gt => order == Greater,
                _ => order != Less,
            },
            None => {
                return Err(format!(
                    "conflicting values {value} and {}{limit} (mismatched types {} and {})",
                    op.symbol(),
                    value.kinds().name(),
                    limit.kinds().name()
                ));
            }
        },
    };
    if ok {
        Ok(())
    } else {
        Err(format!("invalid value {value} (out of bound {}{limit})", op.symbol()))
    }
}

pub fn binary_value(op: BinOp, l: &Value, r: &Value, regexes: &Regexes) -> Result<Value, String> {
    use std::cmp::Ordering::*;
    let mismatch = || {
        format!(
            "invalid operation {l} {} {r} (mismatched types {} and {})",
            op.symbol(),
            l.kinds().name(),
            r.kinds().name()
        )
    };
    Ok(match op {
        BinOp::And | BinOp::Or => match (l, r) {
            (Value::Bool(a), Value::Bool(b)) => Value::Bool(if op == BinOp::And { *a && *b } else { *a || *b }),
            _ => return Err(mismatch()),
        },
        BinOp::Eq | BinOp::Ne => {
            let comparable = l.kinds() == r.kinds()
                || (l.kinds().and(Kinds::NUMBER) == l.kinds() && r.kinds().and(Kinds::NUMBER) == r.kinds())
                || matches!(l, Value::Null)
                || matches!(r, Value::Null);
            if !comparable {
                return Err(mismatch());
            }
            Value::Bool(builtins::equal(l, r) == (op == BinOp::Eq))
        }
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let Some(order) = builtins::compare(l, r).filter(|_| !matches!(l, Value::Bool(_) | Value::Null)) else {
                return Err(mismatch());
            };
            Value::Bool(match op {
                BinOp::Lt => order == Less,
                BinOp::Le => order != Greater,
                BinOp::Gt => order == Greater,
                _ => order != Less,
            })
        }
        BinOp::Match | BinOp::NotMatch => match (l, r) {
            (Value::Str(text), Value::Str(pattern)) => {
                Value::Bool(regexes.get(pattern)?.is_match(text) == (op == BinOp::Match))
            }
            _ => return Err(mismatch()),
        },
        BinOp::Add => match (l, r) {
            (Value::Str(a), Value::Str(b)) => Value::Str(concat(a, b)?),
            (Value::Int(a), Value::Int(b)) => Value::Int(a.checked_add(*b).ok_or("integer overflow")?),
            (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => Value::Float(as_f64(l) + as_f64(r)),
            _ => return Err(mismatch()),
        },
    })
}

fn as_f64(value: &Value) -> f64 {
    match value {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => 0.0,
    }
}
