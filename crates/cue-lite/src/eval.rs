//! Unification, modelled on CUE's own evaluator: every field is a vertex holding the
//! conjuncts (expression + environment) that apply to it. Struct and list conjuncts add arcs
//! (child vertices); references copy the conjuncts of the vertex they point to, so a
//! definition's internal references bind to the place it is used; disjunctions are tried
//! alternative by alternative on a fresh vertex. Validation, as policy-controller runs it,
//! fails only on conflicts: a value that is merely incomplete (a missing field, a type without
//! a value) passes.

use std::collections::HashMap;
use std::sync::Arc as Rc;
use std::time::Instant;

use crate::ast::*;
use crate::builtins;
use crate::value::{Atom, Value, quote};
use crate::{EvalError, Limits};

type VertexId = usize;
type Env = Option<Rc<Frame>>;

/// One struct literal being evaluated in a vertex: its fields are that vertex's arcs.
struct Frame {
    vertex: VertexId,
    lit: Rc<StructLit>,
    up: Env,
}

#[derive(Clone)]
struct Conjunct {
    expr: Rc<Expr>,
    env: Env,
    /// Reached through a definition: its structs are closed, recursively.
    closed: bool,
    /// `close()`: only the outermost struct is closed.
    close_outer: bool,
}

struct Comprehension {
    condition: Rc<Expr>,
    body: Rc<StructLit>,
    env: Env,
    closed: bool,
}

struct ListShape {
    len: usize,
    rest: Option<Conjunct>,
    /// Elements the rest type has been applied to (from `len` on).
    applied: usize,
}

#[derive(Clone, Default)]
enum State {
    #[default]
    Fresh,
    Expanding,
    Expanded,
    Finalizing,
    Done(Result<Value, Vec<Fault>>),
}

/// One error: where and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub path: String,
    pub message: String,
}

#[derive(Default)]
struct Vertex {
    parent: Option<VertexId>,
    label: Option<Label>,
    conjuncts: Vec<Conjunct>,
    expanded: usize,
    arcs: Vec<(Label, VertexId)>,
    arc_index: HashMap<Label, VertexId>,
    /// A non-optional field declares it (optional-only fields are constraints, not values).
    regular: bool,
    is_struct: bool,
    lists: Vec<ListShape>,
    atoms: Vec<(Atom, String)>,
    concrete: Vec<Value>,
    faults: Vec<String>,
    incomplete: Option<String>,
    disjunctions: Vec<Conjunct>,
    /// Processed conjuncts that are not references or `&`: a disjunction re-evaluates them
    /// with each alternative.
    leaves: Vec<Conjunct>,
    comprehensions: Vec<Comprehension>,
    comprehensions_done: usize,
    closed_by: Vec<Rc<StructLit>>,
    state: State,
}

/// What a reference points to.
enum Target {
    Vertex(VertexId, bool),
    Value(Value),
}

/// Deepest recursion of evaluation (nested values, chains of references): far above what
/// input JSON (128 levels) and a policy (64 levels) need, and within an 8 MiB stack.
const MAX_DEPTH: usize = 400;

pub struct Evaluator {
    vertices: Vec<Vertex>,
    depth: usize,
    /// Vertices whose conjuncts are being copied (a reference cycle stops here).
    following: Vec<VertexId>,
    steps: u64,
    limits: Limits,
    started: Instant,
}

type Step<T> = Result<T, EvalError>;

impl Evaluator {
    pub fn new(limits: Limits) -> Self {
        Evaluator {
            vertices: Vec::new(),
            depth: 0,
            following: Vec::new(),
            steps: 0,
            limits,
            started: Instant::now(),
        }
    }

    /// Unifies the policy with the input and validates the result: the faults found.
    pub fn run(&mut self, policy: Rc<StructLit>, input: Rc<Expr>) -> Step<Vec<Fault>> {
        let root = self.vertex(None, None);
        self.vertices[root].regular = true;
        // The input first, as `cue eval POLICY INPUT` orders them: a conflict then names the
        // policy's value first, as CUE's messages do.
        self.push(root, conjunct(input, None));
        self.push(root, conjunct(Rc::new(Expr::Struct(policy)), None));
        match self.finalize(root)? {
            Ok(_) => Ok(Vec::new()),
            Err(faults) => Ok(faults),
        }
    }

    fn tick(&mut self) -> Step<()> {
        self.steps += 1;
        if self.steps > self.limits.steps {
            return Err(EvalError::Limit(format!(
                "more than {} evaluation steps",
                self.limits.steps
            )));
        }
        if self.steps.is_multiple_of(1024) && self.started.elapsed() > self.limits.time {
            return Err(EvalError::Limit(format!(
                "evaluation took longer than {:?}",
                self.limits.time
            )));
        }
        if self.vertices.len() > self.limits.vertices {
            return Err(EvalError::Limit(format!("more than {} values", self.limits.vertices)));
        }
        Ok(())
    }

    fn vertex(&mut self, parent: Option<VertexId>, label: Option<Label>) -> VertexId {
        self.vertices.push(Vertex {
            parent,
            label,
            ..Default::default()
        });
        self.vertices.len() - 1
    }

    fn arc(&mut self, v: VertexId, label: &Label) -> VertexId {
        if let Some(id) = self.vertices[v].arc_index.get(label) {
            return *id;
        }
        let id = self.vertex(Some(v), Some(label.clone()));
        self.vertices[v].arc_index.insert(label.clone(), id);
        self.vertices[v].arcs.push((label.clone(), id));
        id
    }

    /// Adds a conjunct to `v`; a vertex already evaluated is evaluated again when next asked.
    fn push(&mut self, v: VertexId, c: Conjunct) {
        let vertex = &mut self.vertices[v];
        vertex.conjuncts.push(c);
        if matches!(vertex.state, State::Done(_)) {
            vertex.state = State::Expanded;
        }
    }

    fn path(&self, v: VertexId) -> String {
        let mut labels = Vec::new();
        let mut at = Some(v);
        while let Some(id) = at {
            if let Some(label) = &self.vertices[id].label {
                labels.push(label.to_string());
            }
            at = self.vertices[id].parent;
        }
        labels.reverse();
        labels.join(".")
    }

    /// Processes the conjuncts `v` has not seen yet, then its comprehensions.
    fn expand(&mut self, v: VertexId) -> Step<()> {
        if matches!(self.vertices[v].state, State::Expanding) {
            return Ok(());
        }
        let previous = std::mem::replace(&mut self.vertices[v].state, State::Expanding);
        let result = self.expand_conjuncts(v);
        self.vertices[v].state = match previous {
            State::Fresh | State::Expanding => State::Expanded,
            other => other,
        };
        result
    }

    fn expand_conjuncts(&mut self, v: VertexId) -> Step<()> {
        loop {
            let next = self.vertices[v].expanded;
            if let Some(c) = self.vertices[v].conjuncts.get(next).cloned() {
                self.vertices[v].expanded += 1;
                self.add(v, c)?;
                continue;
            }
            self.apply_list_rests(v);
            let done = self.vertices[v].comprehensions_done;
            if done < self.vertices[v].comprehensions.len() {
                self.vertices[v].comprehensions_done += 1;
                self.comprehension(v, done)?;
                continue;
            }
            return Ok(());
        }
    }

    /// Runs `step` one level deeper; past [`MAX_DEPTH`] the evaluation stops (an error ends
    /// it, so the depth need not be restored then).
    fn deeper<T>(&mut self, step: impl FnOnce(&mut Self) -> Step<T>) -> Step<T> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(EvalError::Limit(format!(
                "values or references nested deeper than {MAX_DEPTH}"
            )));
        }
        let result = step(self)?;
        self.depth -= 1;
        Ok(result)
    }

    fn add(&mut self, v: VertexId, c: Conjunct) -> Step<()> {
        self.deeper(|this| this.add_conjunct(v, c))
    }

    fn add_conjunct(&mut self, v: VertexId, c: Conjunct) -> Step<()> {
        self.tick()?;
        match c.expr.as_ref() {
            Expr::Struct(lit) => {
                self.vertices[v].leaves.push(c.clone());
                self.add_struct(v, lit, &c)?;
            }
            Expr::List(items, rest) => {
                self.vertices[v].leaves.push(c.clone());
                self.add_list(v, items, rest, &c);
            }
            Expr::Unify(a, b) => {
                self.add(
                    v,
                    Conjunct {
                        expr: a.clone(),
                        ..c.clone()
                    },
                )?;
                self.add(v, Conjunct { expr: b.clone(), ..c })?;
            }
            Expr::Disjunction(alternatives) => match alternatives.as_slice() {
                [(only, _)] => self.add(
                    v,
                    Conjunct {
                        expr: only.clone(),
                        ..c
                    },
                )?,
                _ => self.vertices[v].disjunctions.push(c),
            },
            Expr::Field { .. } | Expr::Let { .. } | Expr::Select(..) | Expr::Index(..) => self.add_reference(v, c)?,
            Expr::Call(Func::Close, args) => {
                let inner = Conjunct {
                    expr: args[0].clone(),
                    close_outer: true,
                    ..c
                };
                self.add(v, inner)?;
            }
            Expr::Top => {}
            _ => {
                self.vertices[v].leaves.push(c.clone());
                match self.value_of(&c.expr, &c.env)? {
                    Ok(value) => self.add_value(v, value, &c)?,
                    Err(faults) => self.vertices[v].faults.extend(faults.into_iter().map(|f| f.message)),
                }
            }
        }
        Ok(())
    }

    fn add_struct(&mut self, v: VertexId, lit: &Rc<StructLit>, c: &Conjunct) -> Step<()> {
        self.vertices[v].is_struct = true;
        if c.closed || c.close_outer {
            self.vertices[v].closed_by.push(lit.clone());
        }
        let frame = Some(Rc::new(Frame {
            vertex: v,
            lit: lit.clone(),
            up: c.env.clone(),
        }));
        for decl in &lit.decls {
            match decl {
                Decl::Field { label, optional, value } => {
                    let child = self.arc(v, label);
                    if !optional {
                        self.vertices[child].regular = true;
                    }
                    let closed = c.closed || label.is_definition();
                    self.push(
                        child,
                        Conjunct {
                            expr: value.clone(),
                            env: frame.clone(),
                            closed,
                            close_outer: false,
                        },
                    );
                }
                Decl::If { condition, body } => self.vertices[v].comprehensions.push(Comprehension {
                    condition: condition.clone(),
                    body: body.clone(),
                    env: frame.clone(),
                    closed: c.closed,
                }),
                Decl::Embed(expr) => {
                    let embedded = Conjunct {
                        expr: expr.clone(),
                        env: frame.clone(),
                        closed: c.closed,
                        close_outer: false,
                    };
                    self.add(v, embedded)?;
                }
            }
        }
        Ok(())
    }

    fn add_list(&mut self, v: VertexId, items: &[Rc<Expr>], rest: &Option<Rc<Expr>>, c: &Conjunct) {
        for (i, item) in items.iter().enumerate() {
            let child = self.arc(v, &Label::Index(i));
            self.vertices[child].regular = true;
            self.push(
                child,
                Conjunct {
                    expr: item.clone(),
                    env: c.env.clone(),
                    closed: c.closed,
                    close_outer: false,
                },
            );
        }
        let rest = rest.as_ref().map(|r| Conjunct {
            expr: r.clone(),
            env: c.env.clone(),
            closed: c.closed,
            close_outer: false,
        });
        self.vertices[v].lists.push(ListShape {
            len: items.len(),
            rest,
            applied: items.len(),
        });
    }

    /// An open list's rest type applies to every element after its own.
    fn apply_list_rests(&mut self, v: VertexId) {
        let elements = self.list_len(v);
        for shape in 0..self.vertices[v].lists.len() {
            let ListShape { rest, applied, .. } = &self.vertices[v].lists[shape];
            let (Some(rest), from) = (rest.clone(), *applied) else {
                continue;
            };
            for i in from..elements {
                let child = self.vertices[v].arc_index[&Label::Index(i)];
                self.push(child, rest.clone());
            }
            self.vertices[v].lists[shape].applied = elements.max(from);
        }
    }

    fn list_len(&self, v: VertexId) -> usize {
        self.vertices[v].lists.iter().map(|s| s.len).max().unwrap_or(0)
    }

    fn add_reference(&mut self, v: VertexId, c: Conjunct) -> Step<()> {
        match self.resolve(&c.expr, &c.env)? {
            Target::Vertex(target, through_definition) => {
                if target == v || self.following.contains(&target) || self.is_ancestor(target, v) {
                    // `name: name`, or a cycle through references: adds nothing, as in CUE.
                    return Ok(());
                }
                self.following.push(target);
                let copied = self.vertices[target].conjuncts.clone();
                let mut result = Ok(());
                for conj in copied {
                    let conj = Conjunct {
                        closed: conj.closed || c.closed || through_definition,
                        close_outer: conj.close_outer || c.close_outer,
                        ..conj
                    };
                    result = self.add(v, conj);
                    if result.is_err() {
                        break;
                    }
                }
                self.following.pop();
                result
            }
            Target::Value(value) => self.add_value(v, value, &c),
        }
    }

    fn is_ancestor(&self, candidate: VertexId, mut v: VertexId) -> bool {
        while let Some(parent) = self.vertices[v].parent {
            if parent == candidate {
                return true;
            }
            v = parent;
        }
        false
    }

    /// Adds an evaluated value: scalars and constraints as atoms, structs and lists as the
    /// literals they are.
    fn add_value(&mut self, v: VertexId, value: Value, c: &Conjunct) -> Step<()> {
        let source = self.path(v);
        let vertex = &mut self.vertices[v];
        match value {
            Value::Top => {}
            Value::Incomplete(why) => {
                vertex.incomplete.get_or_insert(why);
            }
            Value::Constraint(atoms) => vertex.atoms.extend(atoms.into_iter().map(|a| (a, source.clone()))),
            Value::Struct(_) | Value::List(_) | Value::Disjunction { .. } => {
                let expr = value_expr(&value);
                self.add(
                    v,
                    Conjunct {
                        expr,
                        env: None,
                        ..c.clone()
                    },
                )?;
            }
            scalar => vertex.concrete.push(scalar),
        }
        Ok(())
    }

    fn fault(&mut self, v: VertexId, message: String) {
        self.vertices[v].faults.push(message);
    }

    fn comprehension(&mut self, v: VertexId, index: usize) -> Step<()> {
        let (condition, env) = {
            let comp = &self.vertices[v].comprehensions[index];
            (comp.condition.clone(), comp.env.clone())
        };
        let value = self.value_of(&condition, &env)?;
        let take = match value {
            Err(faults) => {
                self.vertices[v].faults.extend(faults.into_iter().map(|f| f.message));
                false
            }
            Ok(value) => match value.concrete() {
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    let message = format!("cannot use {other} (type {}) as type bool", other.kinds().name());
                    self.fault(v, message);
                    false
                }
                None => false,
            },
        };
        if !take {
            return Ok(());
        }
        let comp = &self.vertices[v].comprehensions[index];
        let body = comp.body.clone();
        // The body's fields join v itself, in a frame nested in the `if`'s. It does not close
        // v on its own: the enclosing literal's labels already include the body's.
        let inner = Conjunct {
            expr: Rc::new(Expr::Struct(body.clone())),
            env,
            closed: false,
            close_outer: false,
        };
        let closed = comp.closed;
        self.add_struct(v, &body, &Conjunct { closed, ..inner })?;
        let lits = &mut self.vertices[v].closed_by;
        if closed {
            lits.pop();
        }
        Ok(())
    }

    /// The value of `v`, evaluated once (until new conjuncts arrive): `Err` holds the faults
    /// of `v` and everything under it.
    fn finalize(&mut self, v: VertexId) -> Step<Result<Value, Vec<Fault>>> {
        self.deeper(|this| this.finalize_vertex(v))
    }

    fn finalize_vertex(&mut self, v: VertexId) -> Step<Result<Value, Vec<Fault>>> {
        match &self.vertices[v].state {
            State::Done(result) => return Ok(result.clone()),
            State::Finalizing | State::Expanding => return Ok(Ok(Value::Incomplete("cycle".into()))),
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
        let mut parts: Vec<(Kinds, String)> = Vec::new();
        if vertex.is_struct {
            parts.push((Kinds::STRUCT, "{...}".into()));
        }
        if !vertex.lists.is_empty() {
            parts.push((Kinds::LIST, "[...]".into()));
        }
        for value in &vertex.concrete {
            parts.push((value.kinds(), value.to_string()));
        }
        for (atom, _) in &vertex.atoms {
            parts.push((atom.kinds(), atom.to_string()));
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
            return Ok(Shape::Scalar(if atoms.is_empty() {
                Value::Top
            } else {
                Value::Constraint(atoms)
            }));
        };
        for (atom, _) in &vertex.atoms {
            if let Atom::Bound(op, limit) = atom {
                check_bound(*op, limit, value)?;
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
            .filter(|(label, id)| !label.is_definition() && self.vertices[*id].regular)
            .cloned()
            .collect()
    }

    fn combine_struct(&mut self, v: VertexId, faults: &mut Vec<Fault>) -> Step<Value> {
        let mut fields = Vec::new();
        for (label, child) in self.regular_arcs(v) {
            let allowed = self.vertices[v]
                .closed_by
                .iter()
                .all(|lit| lit.open || lit.labels.contains(&label));
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
            let child = self.vertices[v].arc_index[&Label::Index(i)];
            match self.finalize(child)? {
                Ok(value) => items.push(value),
                Err(child_faults) => faults.extend(child_faults),
            }
        }
        Ok(Value::List(items))
    }

    /// The value of an expression evaluated on its own (conditions, arguments, operands).
    fn value_of(&mut self, expr: &Rc<Expr>, env: &Env) -> Step<Result<Value, Vec<Fault>>> {
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
                            && let Err(e) = regex::Regex::new(pattern)
                        {
                            return bottom(format!("invalid regular expression {}: {e}", quote(pattern)));
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
                Part::Lit(lit) => text.push_str(lit),
                Part::Expr(expr) => {
                    let value = match self.value_of(expr, env)? {
                        Ok(value) => value,
                        Err(faults) => return Ok(Err(faults)),
                    };
                    match value.concrete() {
                        Some(Value::Str(s)) => text.push_str(s),
                        Some(Value::Int(i)) => text.push_str(&i.to_string()),
                        Some(Value::Float(f)) => text.push_str(&crate::value::format_float(*f)),
                        Some(Value::Bool(b)) => text.push_str(&b.to_string()),
                        Some(Value::Null) => text.push_str("null"),
                        Some(other) => {
                            return Ok(Err(vec![Fault {
                                path: String::new(),
                                message: format!("invalid interpolation: cannot use {other} as a string"),
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
        let result = binary_value(op, l, r);
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
    fn resolve(&mut self, expr: &Rc<Expr>, env: &Env) -> Step<Target> {
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
                if !self.vertices[v].disjunctions.is_empty() {
                    let value = flatten(self.finalize(v)?);
                    return Ok(Target::Value(select_value(&value, label)));
                }
                match self.vertices[v].arc_index.get(label) {
                    Some(child) => Ok(Target::Vertex(*child, through_definition || label.is_definition())),
                    None => Ok(Target::Value(Value::Incomplete(format!("undefined field: {label}")))),
                }
            }
            Target::Value(value) => Ok(Target::Value(select_value(&value, label))),
        }
    }
}

enum Shape {
    Struct,
    List,
    Scalar(Value),
}

fn conjunct(expr: Rc<Expr>, env: Env) -> Conjunct {
    Conjunct {
        expr,
        env,
        closed: false,
        close_outer: false,
    }
}

fn frame_at(env: &Env, depth: usize) -> Option<Rc<Frame>> {
    let mut frame = env.clone()?;
    for _ in 0..depth {
        frame = frame.up.clone()?;
    }
    Some(frame)
}

fn is_path(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Field { .. } | Expr::Let { .. } | Expr::Select(..) | Expr::Index(..)
    )
}

/// A value where faults only matter as "not usable": for selecting and indexing.
fn flatten(result: Result<Value, Vec<Fault>>) -> Value {
    match result {
        Ok(value) => value,
        Err(faults) => Value::Incomplete(faults.first().map(|f| f.message.clone()).unwrap_or_default()),
    }
}

fn select_value(value: &Value, label: &Label) -> Value {
    let value = match value {
        Value::Disjunction { default: Some(d), .. } => d.as_ref(),
        other => other,
    };
    let found = match (value, label) {
        (Value::Struct(fields), _) => fields.iter().find(|(l, _)| l == label).map(|(_, v)| v.clone()),
        (Value::List(items), Label::Index(i)) => items.get(*i).cloned(),
        _ => None,
    };
    found.unwrap_or_else(|| Value::Incomplete(format!("undefined field: {label}")))
}

/// An evaluated struct, list or disjunction as the literal it stands for.
fn value_expr(value: &Value) -> Rc<Expr> {
    Rc::new(match value {
        Value::Struct(fields) => {
            let mut lit = StructLit::default();
            for (label, v) in fields {
                lit.labels.push(label.clone());
                lit.decls.push(Decl::Field {
                    label: label.clone(),
                    optional: false,
                    value: value_expr(v),
                });
            }
            lit.open = true;
            Expr::Struct(Rc::new(lit))
        }
        Value::List(items) => Expr::List(items.iter().map(value_expr).collect(), None),
        Value::Disjunction { alternatives, default } => Expr::Disjunction(
            alternatives
                .iter()
                .map(|a| (value_expr(a), default.as_deref() == Some(a)))
                .collect(),
        ),
        Value::Null => Expr::Null,
        Value::Bool(b) => Expr::Bool(*b),
        Value::Int(i) => Expr::Int(*i),
        Value::Float(f) => Expr::Float(*f),
        Value::Str(s) => Expr::Str(s.clone()),
        Value::Top | Value::Incomplete(_) | Value::Constraint(_) => Expr::Top,
    })
}

fn check_bound(op: BoundOp, limit: &Value, value: &Value) -> Result<(), String> {
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

fn binary_value(op: BinOp, l: &Value, r: &Value) -> Result<Value, String> {
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
