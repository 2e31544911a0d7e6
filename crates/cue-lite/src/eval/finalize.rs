//! Finalizing a vertex: unifying what it holds into one value (or the faults found),
//! disjunctions alternative by alternative, closedness, list lengths and validators.

use super::*;

impl Evaluator {
    /// The value of `v`, evaluated once (until new conjuncts arrive): `Err` holds the faults
    /// of `v` and everything under it.
    pub(super) fn finalize(&mut self, v: VertexId) -> Step<Result<Value, Vec<Fault>>> {
        self.deeper(|this| this.finalize_vertex(v))
    }

    fn finalize_vertex(&mut self, v: VertexId) -> Step<Result<Value, Vec<Fault>>> {
        match &self.vertices[v].state {
            State::Done(result) => return Ok(result.clone()),
            // A field read while it is still being evaluated (`a: "v\\(a)"`): what it holds
            // so far, as CUE reads a partial value, when that is a concrete scalar.
            State::Finalizing | State::Expanding => {
                return Ok(Ok(self.partial_value(v)));
            }
            _ => {}
        }
        self.expand(v)?;
        self.vertices[v].state = State::Finalizing;
        let result = if self.vertices[v].disjunctions.is_empty() {
            self.combine(v)?
        } else {
            self.disjunction(v)?
        };
        if matches!(self.vertices[v].state, State::Finalizing) {
            self.vertices[v].state = State::Done(result.clone());
        }
        Ok(result)
    }

    /// What a field being evaluated holds so far, when that is a concrete scalar (CUE reads
    /// such a partial value; a struct or list in a cycle stays incomplete).
    fn partial_value(&self, v: VertexId) -> Value {
        let vertex = &self.vertices[v];
        match vertex.concrete.first() {
            Some(value) => value.clone(),
            None => Value::Incomplete("cycle".into()),
        }
    }

    fn disjunction(&mut self, v: VertexId) -> Step<Result<Value, Vec<Fault>>> {
        let mut combos: Vec<Vec<(Conjunct, bool)>> = vec![Vec::new()];
        for disjunction in self.vertices[v].disjunctions.clone() {
            let Expr::Disjunction(alternatives) = disjunction.expr.as_ref() else {
                continue;
            };
            let mut next = Vec::new();
            for combo in &combos {
                for (alternative, default) in alternatives {
                    let mut combo = combo.clone();
                    combo.push((
                        Conjunct {
                            expr: alternative.clone(),
                            ..disjunction.clone()
                        },
                        *default,
                    ));
                    next.push(combo);
                }
            }
            if next.len() > self.limits.disjuncts {
                return Err(EvalError::Limit(format!(
                    "more than {} combinations of disjunctions",
                    self.limits.disjuncts
                )));
            }
            combos = next;
        }
        let (parent, label, regular) = {
            let vertex = &self.vertices[v];
            (vertex.parent, vertex.label.clone(), vertex.regular)
        };
        let leaves = self.vertices[v].leaves.clone();
        let extra = self.vertices[v].incomplete.clone();
        let mut survivors: Vec<(Value, bool)> = Vec::new();
        let mut failures = Vec::new();
        // An alternative that refers back to this field (`b: true | *b`), or to the field the
        // disjunction was copied from, adds nothing.
        let sources: Vec<VertexId> = self.vertices[v].disjunctions.iter().filter_map(|d| d.via).collect();
        let following = self.following.len();
        self.following.push(v);
        self.following.extend(sources);
        for combo in combos {
            let scratch = self.vertex(parent, label.clone());
            self.vertices[scratch].regular = regular;
            self.vertices[scratch].incomplete = extra.clone();
            for leaf in &leaves {
                self.push(scratch, leaf.clone());
            }
            let default = combo.iter().all(|(_, d)| *d);
            for (alternative, _) in combo {
                self.push(scratch, alternative);
            }
            match self.finalize(scratch)? {
                Ok(value) => match survivors.iter_mut().find(|(s, _)| s == &value) {
                    Some(existing) => existing.1 |= default,
                    None => survivors.push((value, default)),
                },
                Err(faults) => failures.extend(faults),
            }
        }
        self.following.truncate(following);
        Ok(match survivors.len() {
            0 => {
                let path = self.path(v);
                let count = failures.len();
                let mut faults = vec![Fault {
                    path: path.clone(),
                    message: format!("{count} errors in empty disjunction:"),
                }];
                faults.extend(failures);
                Err(faults)
            }
            1 => Ok(survivors.remove(0).0),
            _ => {
                let defaults: Vec<&Value> = survivors.iter().filter(|(_, d)| *d).map(|(s, _)| s).collect();
                let default = (defaults.len() == 1).then(|| Box::new(defaults[0].clone()));
                Ok(Value::Disjunction {
                    alternatives: survivors.into_iter().map(|(s, _)| s).collect(),
                    default,
                })
            }
        })
    }

    /// Unifies what `v` holds, validates its arcs and builds its value.
    fn combine(&mut self, v: VertexId) -> Step<Result<Value, Vec<Fault>>> {
        let path = self.path(v);
        let mut faults: Vec<Fault> = std::mem::take(&mut self.vertices[v].faults)
            .into_iter()
            .map(|message| Fault {
                path: path.clone(),
                message,
            })
            .collect();
        let scalar = self.combine_scalars(v);
        let value = match scalar {
            Err(message) => {
                faults.push(Fault { path, message });
                return Ok(Err(faults));
            }
            Ok(value) => value,
        };
        let value = match value {
            Shape::Struct => self.combine_struct(v, &mut faults)?,
            Shape::List => self.combine_list(v, &mut faults)?,
            Shape::Scalar(value) => value,
        };
        if let Err(message) = self.check_validators(v, &value) {
            faults.push(Fault {
                path: self.path(v),
                message,
            });
        }
        if faults.is_empty() {
            if let Some(why) = self.vertices[v].incomplete.clone()
                && value.is_scalar()
            {
                return Ok(Ok(Value::Incomplete(why)));
            }
            Ok(Ok(value))
        } else {
            Ok(Err(faults))
        }
    }

    fn combine_scalars(&self, v: VertexId) -> Result<Shape, String> {
        let vertex = &self.vertices[v];
        // The kinds every part allows, with a witness of each, for the mismatch message.
        // In the order CUE names them in a mismatch: values, lists, constraints, structs.
        let mut parts: Vec<(Kinds, String)> = Vec::new();
        for value in &vertex.concrete {
            parts.push((value.kinds(), value.to_string()));
        }
        if !vertex.lists.is_empty() {
            parts.push((Kinds::LIST, "[...]".into()));
        }
        for (atom, _) in &vertex.atoms {
            parts.push((atom.kinds(), atom.to_string()));
        }
        if vertex.is_struct {
            parts.push((Kinds::STRUCT, "{...}".into()));
        }
        let mut kinds = Kinds::ALL;
        let mut witness: Option<&(Kinds, String)> = None;
        for part in &parts {
            let next = kinds.and(part.0);
            if next.is_empty() {
                let (first_kinds, first) = witness.map(|w| (w.0, w.1.as_str())).unwrap_or((kinds, "_"));
                return Err(format!(
                    "conflicting values {} and {} (mismatched types {} and {})",
                    first,
                    part.1,
                    first_kinds.name(),
                    part.0.name()
                ));
            }
            kinds = next;
            witness.get_or_insert(part);
        }
        if let [first, rest @ ..] = vertex.concrete.as_slice()
            && let Some(other) = rest.iter().find(|o| !builtins::equal(first, o))
        {
            return Err(format!("conflicting values {other} and {first}"));
        }
        if vertex.is_struct {
            return Ok(Shape::Struct);
        }
        if !vertex.lists.is_empty() {
            return Ok(Shape::List);
        }
        let Some(value) = vertex.concrete.first() else {
            let atoms: Vec<Atom> = vertex.atoms.iter().map(|(a, _)| a.clone()).collect();
            check_bounds_meet(&atoms)?;
            return Ok(Shape::Scalar(if atoms.is_empty() {
                Value::Top
            } else {
                Value::Constraint(atoms)
            }));
        };
        for (atom, _) in &vertex.atoms {
            if let Atom::Bound(op, limit) = atom {
                check_bound(*op, limit, value, &self.regexes)?;
            }
        }
        Ok(Shape::Scalar(value.clone()))
    }

    fn check_validators(&self, v: VertexId, value: &Value) -> Result<(), String> {
        if value.concrete().is_none() {
            return Ok(());
        }
        for (atom, _) in &self.vertices[v].atoms {
            if let Atom::Validator(func, args) = atom {
                builtins::validate(*func, args, value)?;
            }
        }
        Ok(())
    }

    fn regular_arcs(&self, v: VertexId) -> Vec<(Label, VertexId)> {
        self.vertices[v]
            .arcs
            .iter()
            .filter(|(_, id)| self.vertices[*id].regular)
            .cloned()
            .collect()
    }

    /// The struct's fields, each validated; definitions are validated too (CUE reports a
    /// conflict inside a definition even when nothing uses it) but are not part of the value.
    fn combine_struct(&mut self, v: VertexId, faults: &mut Vec<Fault>) -> Step<Value> {
        let mut fields = Vec::new();
        for (label, child) in self.regular_arcs(v) {
            if label.is_definition() {
                if let Err(child_faults) = self.finalize(child)? {
                    faults.extend(child_faults);
                }
                continue;
            }
            // Every closing definition (or close()) must allow it, through any of its structs.
            let closers = &self.vertices[v].closed_by;
            let allowed = closers.iter().all(|(group, _)| {
                closers
                    .iter()
                    .filter(|(g, _)| g == group)
                    .any(|(_, lit)| lit.open || lit.labels.contains(&label))
            });
            if !allowed {
                faults.push(Fault {
                    path: self.path(v),
                    message: format!("field {label} not allowed"),
                });
                continue;
            }
            match self.finalize(child)? {
                Ok(value) => fields.push((label, value)),
                Err(child_faults) => faults.extend(child_faults),
            }
        }
        Ok(Value::Struct(fields))
    }

    fn combine_list(&mut self, v: VertexId, faults: &mut Vec<Fault>) -> Step<Value> {
        let len = self.list_len(v);
        let shapes: Vec<(usize, bool)> = self.vertices[v]
            .lists
            .iter()
            .map(|s| (s.len, s.rest.is_some()))
            .collect();
        if let Some((closed_len, _)) = shapes.iter().find(|(n, open)| !open && *n != len) {
            let longer = shapes.iter().map(|s| s.0).max().unwrap_or(0);
            faults.push(Fault {
                path: self.path(v),
                message: format!("incompatible list lengths ({closed_len} and {longer})"),
            });
            return Ok(Value::List(Vec::new()));
        }
        let mut items = Vec::with_capacity(len);
        for i in 0..len {
            // Every index below the longest literal's length is an arc (see add_list).
            let Some(child) = self.arc_of(v, &Label::Index(i)) else {
                continue;
            };
            match self.finalize(child)? {
                Ok(value) => items.push(value),
                Err(child_faults) => faults.extend(child_faults),
            }
        }
        Ok(Value::List(items))
    }
}

/// Bounds that no value can meet (`>1 & <0`) conflict even without a value, as in CUE.
fn check_bounds_meet(atoms: &[Atom]) -> Result<(), String> {
    use std::cmp::Ordering::*;
    let bounds = atoms.iter().filter_map(|atom| match atom {
        Atom::Bound(op @ (BoundOp::Gt | BoundOp::Ge | BoundOp::Lt | BoundOp::Le), limit) => Some((*op, limit)),
        _ => None,
    });
    let (lower, upper): (Vec<_>, Vec<_>) = bounds.partition(|(op, _)| matches!(op, BoundOp::Gt | BoundOp::Ge));
    for (low_op, low) in &lower {
        for (up_op, up) in &upper {
            let empty = match builtins::compare(low, up) {
                Some(Greater) => true,
                Some(Equal) => *low_op == BoundOp::Gt || *up_op == BoundOp::Lt,
                _ => false,
            };
            if empty {
                return Err(format!(
                    "incompatible bounds {}{low} and {}{up}",
                    low_op.symbol(),
                    up_op.symbol()
                ));
            }
        }
    }
    Ok(())
}
