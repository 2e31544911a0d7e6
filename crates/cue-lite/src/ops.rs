//! Operators on concrete values: bounds (`<5`, `=~"re"`) checked against a value, and the
//! binary operators of expressions.

use crate::ast::{BinOp, BoundOp, Kinds};
use crate::builtins;
use crate::value::Value;

pub fn check_bound(op: BoundOp, limit: &Value, value: &Value) -> Result<(), String> {
    use std::cmp::Ordering::*;
    let ok = match op {
        BoundOp::Ne => !builtins::equal(value, limit),
        BoundOp::Match | BoundOp::NotMatch => {
            let (Value::Str(pattern), Value::Str(text)) = (limit, value) else {
                return Err(format!("conflicting values {value} and {}{limit}", op.symbol()));
            };
            let matched = regex::Regex::new(pattern).map(|re| re.is_match(text)).unwrap_or(false);
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

pub fn binary_value(op: BinOp, l: &Value, r: &Value) -> Result<Value, String> {
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
                let re = regex::Regex::new(pattern).map_err(|e| format!("invalid regular expression: {e}"))?;
                Value::Bool(re.is_match(text) == (op == BinOp::Match))
            }
            _ => return Err(mismatch()),
        },
        BinOp::Add => match (l, r) {
            (Value::Str(a), Value::Str(b)) => Value::Str(format!("{a}{b}")),
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
