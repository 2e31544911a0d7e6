//! Evaluated values, and how CUE prints them in messages.

use std::fmt;

use crate::ast::{BoundOp, Func, Kinds, Label};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `_`: anything.
    Top,
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    /// Not concrete: a type, bounds or validators still to be met.
    Constraint(Vec<Atom>),
    Struct(Vec<(Label, Value)>),
    List(Vec<Value>),
    /// Several alternatives survived; `default` is the one `*` marks, if any.
    Disjunction {
        alternatives: Vec<Value>,
        default: Option<Box<Value>>,
    },
    /// Not known yet (a missing field, a non-concrete operand): not an error for validation.
    Incomplete(String),
}

/// A non-structural constraint on a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Atom {
    Kinds(Kinds),
    Bound(BoundOp, Value),
    /// A validator builtin and its arguments (`list.MinItems(2)`).
    Validator(Func, Vec<Value>),
}

impl Value {
    /// The kinds this value can still be.
    pub fn kinds(&self) -> Kinds {
        match self {
            Value::Null => Kinds::NULL,
            Value::Bool(_) => Kinds::BOOL,
            Value::Int(_) => Kinds::INT,
            Value::Float(_) => Kinds::FLOAT,
            Value::Str(_) => Kinds::STRING,
            Value::Struct(_) => Kinds::STRUCT,
            Value::List(_) => Kinds::LIST,
            Value::Constraint(atoms) => atoms.iter().fold(Kinds::ALL, |k, a| k.and(a.kinds())),
            Value::Top | Value::Incomplete(_) => Kinds::ALL,
            Value::Disjunction { alternatives, .. } => Kinds(alternatives.iter().fold(0, |k, a| k | a.kinds().0)),
        }
    }

    pub fn is_scalar(&self) -> bool {
        matches!(
            self,
            Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Str(_)
        )
    }

    /// The concrete value this stands for, taking a disjunction's default; `None` when it
    /// is not concrete yet.
    pub fn concrete(&self) -> Option<&Value> {
        match self {
            Value::Disjunction { default, .. } => default.as_deref().and_then(Value::concrete),
            Value::Top | Value::Constraint(_) | Value::Incomplete(_) => None,
            other => Some(other),
        }
    }
}

impl Atom {
    pub fn kinds(&self) -> Kinds {
        match self {
            Atom::Kinds(kinds) => *kinds,
            Atom::Bound(BoundOp::Match | BoundOp::NotMatch, _) => Kinds::STRING.and(Kinds::ALL),
            // `!=null` admits every kind; `!=0` only numbers, `!="a"` only strings.
            Atom::Bound(BoundOp::Ne, Value::Null) => Kinds::ALL,
            Atom::Bound(BoundOp::Ne, Value::Bool(_)) => Kinds::BOOL,
            Atom::Bound(_, value) => match value {
                Value::Str(_) => Kinds::STRING,
                _ => Kinds::NUMBER,
            },
            Atom::Validator(func, _) => match func {
                Func::ListMinItems | Func::ListMaxItems => Kinds::LIST,
                Func::StructMinFields | Func::StructMaxFields => Kinds::STRUCT,
                _ => Kinds::STRING,
            },
        }
    }
}

/// A string as CUE quotes it.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn format_float(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Top => f.write_str("_"),
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => f.write_str(&format_float(*x)),
            Value::Str(s) => f.write_str(&quote(s)),
            Value::Constraint(atoms) if atoms.is_empty() => f.write_str("_"),
            Value::Constraint(atoms) => {
                let parts: Vec<String> = atoms.iter().map(|a| a.to_string()).collect();
                f.write_str(&parts.join(" & "))
            }
            Value::Struct(fields) => {
                f.write_str("{")?;
                for (i, (label, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{label}:{value}")?;
                }
                f.write_str("}")
            }
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Disjunction { alternatives, default } => {
                let parts: Vec<String> = alternatives
                    .iter()
                    .map(|a| {
                        if default.as_deref() == Some(a) {
                            format!("*{a}")
                        } else {
                            a.to_string()
                        }
                    })
                    .collect();
                f.write_str(&parts.join(" | "))
            }
            Value::Incomplete(_) => f.write_str("_"),
        }
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Kinds(kinds) => f.write_str(&kinds.name()),
            Atom::Bound(op, value) => write!(f, "{}{value}", op.symbol()),
            Atom::Validator(func, args) => {
                let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
                write!(f, "{}({})", func.name(), args.join(", "))
            }
        }
    }
}
