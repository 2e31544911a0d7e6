//! The builtins of the supported packages, as CUE's Go implementation defines them.

use std::cmp::Ordering;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ast::{Func, Kinds};
use crate::value::Value;

/// Go's layouts, as CUE's `time` package exports them.
pub const RFC3339: &str = "2006-01-02T15:04:05Z07:00";
pub const RFC3339_NANO: &str = "2006-01-02T15:04:05.999999999Z07:00";

/// Calls a function builtin. `Ok(Value::Incomplete)` when an argument is not concrete yet;
/// `Err` is the message of an error value.
pub fn call(func: Func, args: &[Value]) -> Result<Value, String> {
    if func.is_validator() {
        return Ok(Value::Constraint(vec![crate::value::Atom::Validator(
            func,
            args.to_vec(),
        )]));
    }
    let mut concrete = Vec::with_capacity(args.len());
    for (i, arg) in args.iter().enumerate() {
        let wanted = argument_kinds(func, i);
        if arg.kinds().and(wanted).is_empty() && !matches!(arg, Value::Incomplete(_)) {
            return Err(format!(
                "cannot use {arg} (type {}) as {} in argument {} to {}",
                arg.kinds().name(),
                wanted.name(),
                i + 1,
                func.name()
            ));
        }
        match arg.concrete() {
            Some(value) => concrete.push(value),
            None => return Ok(Value::Incomplete(format!("{}: non-concrete argument", func.name()))),
        }
    }
    let string = |i: usize| match concrete[i] {
        Value::Str(s) => Ok(s.as_str()),
        other => Err(format!(
            "cannot use {other} (type {}) as string in argument {} to {}",
            other.kinds().name(),
            i + 1,
            func.name()
        )),
    };
    match func {
        Func::Len => length(concrete[0]).map(Value::Int),
        Func::ListContains => match concrete[0] {
            Value::List(items) => Ok(Value::Bool(items.iter().any(|item| equal(item, concrete[1])))),
            other => Err(format!("cannot use {other} as list in argument 1 to list.Contains")),
        },
        Func::StringsJoin => {
            let Value::List(items) = concrete[0] else {
                return Err(format!(
                    "cannot use {} as list in argument 1 to strings.Join",
                    concrete[0]
                ));
            };
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                match item.concrete() {
                    Some(Value::Str(s)) => parts.push(s.as_str()),
                    Some(other) => return Err(format!("cannot use {other} as string in argument 1 to strings.Join")),
                    None => return Ok(Value::Incomplete("strings.Join: non-concrete element".into())),
                }
            }
            let separator = string(1)?;
            let total = parts.iter().map(|p| p.len()).sum::<usize>() + separator.len() * parts.len();
            if total > crate::ops::MAX_STRING_BYTES {
                return Err(format!(
                    "a string of more than {} bytes is not built",
                    crate::ops::MAX_STRING_BYTES
                ));
            }
            Ok(Value::Str(parts.join(separator)))
        }
        Func::StringsHasPrefix => Ok(Value::Bool(string(0)?.starts_with(string(1)?))),
        Func::StringsHasSuffix => Ok(Value::Bool(string(0)?.ends_with(string(1)?))),
        Func::StringsContains => Ok(Value::Bool(string(0)?.contains(string(1)?))),
        Func::TimeParse => {
            let (layout, text) = (string(0)?, string(1)?);
            parse_time(layout, text).map(|t| Value::Str(format_rfc3339_nano(t)))
        }
        Func::Close => Err("close takes a struct".into()),
        _ => Err(format!("{} is a validator", func.name())),
    }
}

/// The kinds argument `index` of `func` may have: one that cannot be one of them is an error
/// even before it is concrete.
fn argument_kinds(func: Func, index: usize) -> Kinds {
    match (func, index) {
        (Func::Len, _) => Kinds(Kinds::STRING.0 | Kinds::BYTES.0 | Kinds::LIST.0 | Kinds::STRUCT.0),
        (Func::ListContains, 0) | (Func::StringsJoin, 0) => Kinds::LIST,
        (Func::ListContains, _) => Kinds::ALL,
        (Func::StringsJoin | Func::StringsHasPrefix | Func::StringsHasSuffix | Func::StringsContains, _) => {
            Kinds::STRING
        }
        (Func::TimeParse, _) => Kinds::STRING,
        _ => Kinds::ALL,
    }
}

/// Checks `value` against a validator; the error reads like CUE's.
pub fn validate(func: Func, args: &[Value], value: &Value) -> Result<(), String> {
    let count = |limit: &Value| match limit.concrete() {
        Some(Value::Int(n)) => Ok(*n),
        _ => Err(format!("{}: the limit must be an int", func.name())),
    };
    let call = || {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        format!("{}({})", func.name(), args.join(", "))
    };
    let fail = |why: String| Err(format!("invalid value {value} (does not satisfy {}): {why}", call()));
    match func {
        Func::ListMinItems | Func::ListMaxItems | Func::StructMinFields | Func::StructMaxFields => {
            let limit = count(&args[0])?;
            let Ok(len) = length(value) else {
                return Ok(());
            };
            let (what, name) = match func {
                Func::ListMinItems | Func::ListMaxItems => ("list", &func.name()[5..]),
                _ => ("fields", &func.name()[7..]),
            };
            let min = matches!(func, Func::ListMinItems | Func::StructMinFields);
            // A struct may still gain fields (structs are open), so too few is not a conflict
            // yet, as in CUE; a list from the input is closed, so too few items is.
            if min && len < limit && func == Func::StructMinFields {
                return Ok(());
            }
            if min && len < limit {
                return fail(format!("len({what}) < {name}({limit}) ({len} < {limit})"));
            }
            if !min && len > limit {
                return fail(format!("len({what}) > {name}({limit}) ({len} > {limit})"));
            }
            Ok(())
        }
        Func::TimeFormat | Func::TimeTime => {
            let layout = match args.first().and_then(Value::concrete) {
                Some(Value::Str(layout)) => layout.as_str(),
                None if func == Func::TimeTime => RFC3339_NANO,
                _ => return Err("time.Format: the layout must be a string".into()),
            };
            let Value::Str(text) = value else { return Ok(()) };
            match parse_time(layout, text) {
                Ok(_) => Ok(()),
                Err(_) => fail(format!(
                    "error in call to {}: invalid time {}",
                    func.name(),
                    crate::value::quote(text)
                )),
            }
        }
        _ => Ok(()),
    }
}

/// `len`: bytes of a string, elements of a list, fields of a struct.
fn length(value: &Value) -> Result<i128, String> {
    match value {
        Value::Str(s) => Ok(s.len() as i128),
        Value::List(items) => Ok(items.len() as i128),
        Value::Struct(fields) => Ok(fields.len() as i128),
        other => Err(format!(
            "invalid argument {other} (type {}) for len",
            other.kinds().name()
        )),
    }
}

/// Deep equality as CUE's `==` sees it (numbers by value).
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Struct(x), Value::Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(label, value)| y.iter().any(|(l, v)| l == label && equal(value, v)))
        }
        (Value::List(x), Value::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q)),
        _ => compare(a, b) == Some(Ordering::Equal),
    }
}

/// Order of two concrete scalars of comparable kinds (numbers with numbers, strings with
/// strings); `None` otherwise.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Float(y)) => (*x as f64).partial_cmp(y),
        (Value::Float(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => (x == y).then_some(Ordering::Equal),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        _ => None,
    }
}

/// Go's `time.Parse` for the RFC 3339 layouts (the only ones supported).
fn parse_time(layout: &str, text: &str) -> Result<OffsetDateTime, String> {
    if layout != RFC3339 && layout != RFC3339_NANO {
        return Err(format!(
            "time layout {layout:?} is not supported (only time.RFC3339 and time.RFC3339Nano)"
        ));
    }
    // Go accepts only an upper-case T and Z here; the time crate also takes lower case.
    if text.contains(['t', 'z']) {
        return Err(format!("parsing time {text:?} as {layout:?}: cannot parse"));
    }
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("parsing time {text:?} as {layout:?}: {e}"))
}

/// Go's `t.UTC().Format(time.RFC3339Nano)`: fractional seconds without trailing zeros.
fn format_rfc3339_nano(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = t.nanosecond();
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}
