//! Expressions evaluated on their own (conditions, arguments, operands, bounds) and
//! references followed to the vertex or value they name.

use super::*;

impl Evaluator {
    /// The value of an expression evaluated on its own (conditions, arguments, operands).
    pub(super) fn value_of(&mut self, expr: &Rc<Expr>, env: &Env) -> Step<Result<Value, Vec<Fault>>> {
        self.deeper(|this| this.evaluate_expr(expr, env))
    }

    fn evaluate_expr(&mut self, expr: &Rc<Expr>, env: &Env) -> Step<Result<Value, Vec<Fault>>> {
        self.tick()?;
        let bottom = |message: String| {
            Ok(Err(vec![Fault {
                path: String::new(),
                message,
            }]))
        };
        Ok(Ok(match expr.as_ref() {
            Expr::Null => Value::Null,
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Int(i) => Value::Int(*i),
            Expr::Float(f) => Value::Float(*f),
            Expr::Str(s) => Value::Str(s.clone()),
            Expr::Top => Value::Top,
            Expr::Bottom => return bottom("explicit error (_|_ literal) in source".into()),
            Expr::Kind(kinds) => Value::Constraint(vec![Atom::Kinds(*kinds)]),
            Expr::Interp(parts) => match self.interpolate(parts, env)? {
                Ok(value) => value,
                Err(faults) => return Ok(Err(faults)),
            },
            Expr::Bound(op, limit) => {
                let limit = match self.value_of(limit, env)? {
                    Ok(value) => value,
                    Err(faults) => return Ok(Err(faults)),
                };
                match limit.concrete() {
                    Some(limit) => {
                        if let (BoundOp::Match | BoundOp::NotMatch, Value::Str(pattern)) = (op, limit)
                            && let Err(e) = self.regexes.get(pattern)
                        {
                            return bottom(e);
                        }
                        Value::Constraint(vec![Atom::Bound(*op, limit.clone())])
                    }
                    None => Value::Incomplete("non-concrete bound".into()),
                }
            }
            Expr::Not(inner) => match self.value_of(inner, env)? {
                Ok(value) => match value.concrete() {
                    Some(Value::Bool(b)) => Value::Bool(!b),
                    Some(other) => return bottom(format!("invalid operation !{other}")),
                    None => Value::Incomplete("non-concrete operand of !".into()),
                },
                Err(faults) => return Ok(Err(faults)),
            },
            Expr::Binary(op, a, b) => return self.binary(*op, a, b, env),
            Expr::Call(func, args) => {
                let mut values = Vec::with_capacity(args.len());
                for arg in args {
                    match self.value_of(arg, env)? {
                        Ok(value) => values.push(value),
                        Err(faults) => return Ok(Err(faults)),
                    }
                }
                if *func == Func::Close {
                    values.swap_remove(0)
                } else {
                    match builtins::call(*func, &values) {
                        Ok(value) => value,
                        Err(message) => return bottom(format!("error in call to {}: {message}", func.name())),
                    }
                }
            }
            Expr::Field { .. } | Expr::Let { .. } | Expr::Select(..) | Expr::Index(..) => {
                match self.resolve(expr, env)? {
                    Target::Value(value) => value,
                    Target::Vertex(target, _) => return self.finalize(target),
                    Target::Error(message) => return bottom(message),
                }
            }
            Expr::Struct(_) | Expr::List(..) | Expr::Unify(..) | Expr::Disjunction(_) => {
                let scratch = self.vertex(None, None);
                self.vertices[scratch].regular = true;
                self.push(scratch, conjunct(expr.clone(), env.clone()));
                return self.finalize(scratch);
            }
        }))
    }

    fn interpolate(&mut self, parts: &[Part], env: &Env) -> Step<Result<Value, Vec<Fault>>> {
        let mut text = String::new();
        for part in parts {
            match part {
                Part::Lit(lit) => text = crate::ops::concat(&text, lit).map_err(EvalError::Limit)?,
                Part::Expr(expr) => {
                    let value = match self.value_of(expr, env)? {
                        Ok(value) => value,
                        Err(faults) => return Ok(Err(faults)),
                    };
                    match value.concrete() {
                        Some(Value::Str(s)) => text = crate::ops::concat(&text, s).map_err(EvalError::Limit)?,
                        Some(Value::Int(i)) => text.push_str(&i.to_string()),
                        Some(Value::Float(f)) => text.push_str(&crate::value::format_float(*f)),
                        Some(Value::Bool(b)) => text.push_str(&b.to_string()),
                        Some(other) => {
                            return Ok(Err(vec![Fault {
                                path: String::new(),
                                message: format!("invalid interpolation: cannot use {other} as a string"),
                            }]));
                        }
                        None if value.kinds().and(interpolable()).is_empty() => {
                            return Ok(Err(vec![Fault {
                                path: String::new(),
                                message: format!(
                                    "invalid interpolation: cannot use {value} (type {}) as type {}",
                                    value.kinds().name(),
                                    interpolable().name()
                                ),
                            }]));
                        }
                        None => return Ok(Ok(Value::Incomplete("non-concrete interpolation".into()))),
                    }
                }
            }
        }
        Ok(Ok(Value::Str(text)))
    }

    fn binary(&mut self, op: BinOp, a: &Rc<Expr>, b: &Rc<Expr>, env: &Env) -> Step<Result<Value, Vec<Fault>>> {
        let left = match self.value_of(a, env)? {
            Ok(value) => value,
            Err(faults) => return Ok(Err(faults)),
        };
        // && and || decide on the left operand when they can, as CUE does.
        if let (BinOp::And | BinOp::Or, Some(Value::Bool(l))) = (op, left.concrete())
            && ((op == BinOp::And && !l) || (op == BinOp::Or && *l))
        {
            return Ok(Ok(Value::Bool(*l)));
        }
        let right = match self.value_of(b, env)? {
            Ok(value) => value,
            Err(faults) => return Ok(Err(faults)),
        };
        let (Some(l), Some(r)) = (left.concrete(), right.concrete()) else {
            return Ok(Ok(Value::Incomplete(format!(
                "non-concrete operand of {}",
                op.symbol()
            ))));
        };
        let result = binary_value(op, l, r, &self.regexes);
        Ok(match result {
            Ok(value) => Ok(value),
            Err(message) => Err(vec![Fault {
                path: String::new(),
                message,
            }]),
        })
    }

    /// Follows a reference: to a vertex while the path stays in the configuration, to a value
    /// once it goes through something evaluated (a `let` value, a disjunction).
    pub(super) fn resolve(&mut self, expr: &Rc<Expr>, env: &Env) -> Step<Target> {
        match expr.as_ref() {
            Expr::Field { depth, label } => {
                let Some(frame) = frame_at(env, *depth) else {
                    return Ok(Target::Value(Value::Incomplete("unresolved reference".into())));
                };
                let owner = frame.vertex;
                self.expand(owner)?;
                let target = self.arc(owner, label);
                Ok(Target::Vertex(target, label.is_definition()))
            }
            Expr::Let { depth, index } => {
                let Some(frame) = frame_at(env, *depth) else {
                    return Ok(Target::Value(Value::Incomplete("unresolved let".into())));
                };
                let Some(value) = frame.lit.lets.get(*index).cloned() else {
                    return Ok(Target::Value(Value::Incomplete("unresolved let".into())));
                };
                let frame_env = Some(frame.clone());
                if is_path(&value) {
                    return self.resolve(&value, &frame_env);
                }
                Ok(Target::Value(flatten(self.value_of(&value, &frame_env)?)))
            }
            Expr::Select(base, label) => {
                let base = self.resolve(base, env)?;
                self.select(base, label)
            }
            Expr::Index(base, index) => {
                let base = self.resolve(base, env)?;
                let index = flatten(self.value_of(index, env)?);
                let label = match index.concrete() {
                    Some(Value::Str(s)) => Label::Field(s.clone()),
                    Some(Value::Int(i)) if *i >= 0 => Label::Index(*i as usize),
                    Some(other) => {
                        return Ok(Target::Value(Value::Incomplete(format!("invalid index {other}"))));
                    }
                    None => return Ok(Target::Value(Value::Incomplete("non-concrete index".into()))),
                };
                self.select(base, &label)
            }
            _ => Ok(Target::Value(flatten(self.value_of(expr, env)?))),
        }
    }

    fn select(&mut self, base: Target, label: &Label) -> Step<Target> {
        match base {
            Target::Vertex(v, through_definition) => {
                self.expand(v)?;
                // A field being evaluated (a reference back into it) is read as far as it goes.
                let in_cycle = matches!(self.vertices[v].state, State::Expanding | State::Finalizing);
                if let Some(child) = self.arc_of(v, label)
                    && (self.vertices[v].disjunctions.is_empty() || in_cycle)
                {
                    return Ok(Target::Vertex(child, through_definition || label.is_definition()));
                }
                let value = flatten(self.finalize(v)?);
                let name = self.vertices[v]
                    .label
                    .as_ref()
                    .map(|l| l.to_string())
                    .unwrap_or_default();
                self.select_from_value(&name, &value, label)
            }
            Target::Value(value) => self.select_from_value("value", &value, label),
            Target::Error(message) => Ok(Target::Error(message)),
        }
    }

    fn select_from_value(&mut self, name: &str, value: &Value, label: &Label) -> Step<Target> {
        Ok(match check_selectable(name, value, label) {
            Ok(()) => Target::Value(select_value(value, label)),
            Err(message) => Target::Error(message),
        })
    }
}

/// The kinds a string interpolation takes.
fn interpolable() -> Kinds {
    Kinds(Kinds::STRING.0 | Kinds::BYTES.0 | Kinds::NUMBER.0 | Kinds::BOOL.0)
}
