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
use crate::ops::{Regexes, binary_value, check_bound};
use crate::value::{Atom, Value};
use crate::{EvalError, Limits};

type VertexId = usize;

/// The file's top-level struct, unified with the input: the first vertex created.
const ROOT: VertexId = 0;
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
    /// Reached through a definition: its structs are closed, recursively, by that
    /// definition (the structs of one definition allow each other's fields).
    closed: Option<Group>,
    /// `close()`: only the outermost struct is closed.
    close_outer: bool,
    /// The field whose conjuncts this was copied from by a reference: a disjunction copied
    /// from `b` that refers to `b` again adds nothing there.
    via: Option<VertexId>,
}

struct Comprehension {
    condition: Rc<Expr>,
    body: Rc<StructLit>,
    env: Env,
    closed: Option<Group>,
}

/// What closes a struct: a definition (its field's vertex), or one `close()` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Definition(VertexId),
    Close(usize),
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
    closed_by: Vec<(Group, Rc<StructLit>)>,
    state: State,
}

/// What a reference points to.
enum Target {
    Vertex(VertexId, bool),
    Value(Value),
    /// Selecting from something that can never be a struct or list.
    Error(String),
}

/// Deepest recursion of evaluation (nested values, chains of references): far above what
/// input JSON (128 levels) and a policy (64 levels) need, and within an 8 MiB stack.
const MAX_DEPTH: usize = 400;

pub struct Evaluator {
    vertices: Vec<Vertex>,
    regexes: Regexes,
    /// `close()` calls evaluated so far (each closes with a group of its own).
    closes: usize,
    depth: usize,
    /// Vertices whose conjuncts are being copied (a reference cycle stops here).
    following: Vec<VertexId>,
    steps: u64,
    limits: Limits,
    started: Instant,
}

type Step<T> = Result<T, EvalError>;

mod expr;
mod finalize;

impl Evaluator {
    pub fn new(limits: Limits) -> Self {
        Evaluator {
            vertices: Vec::new(),
            regexes: Regexes::default(),
            closes: 0,
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
        debug_assert_eq!(root, ROOT);
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
        if self.steps.is_multiple_of(16) && self.started.elapsed() > self.limits.time {
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
        if let Some(id) = self.arc_of(v, label) {
            return id;
        }
        let id = self.vertex(Some(v), Some(label.clone()));
        let vertex = &mut self.vertices[v];
        // List elements are arcs 0..n in order (list literals create them so), found by
        // position; only field labels need the index (it would double a long list's memory).
        let positional = matches!(label, Label::Index(i) if *i == vertex.arcs.len());
        if !positional {
            vertex.arc_index.insert(label.clone(), id);
        }
        vertex.arcs.push((label.clone(), id));
        id
    }

    /// The arc of `v` with `label`, if it has one.
    fn arc_of(&self, v: VertexId, label: &Label) -> Option<VertexId> {
        let vertex = &self.vertices[v];
        if let Label::Index(i) = label
            && let Some((found, id)) = vertex.arcs.get(*i)
            && found == label
        {
            return Some(*id);
        }
        vertex.arc_index.get(label).copied()
    }

    /// Adds a conjunct to `v`; a vertex already evaluated is evaluated again when next asked.
    fn push(&mut self, v: VertexId, c: Conjunct) {
        let vertex = &mut self.vertices[v];
        push_small(&mut vertex.conjuncts, c);
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
                push_small(&mut self.vertices[v].leaves, c.clone());
                self.add_struct(v, lit, &c)?;
            }
            Expr::List(items, rest) => {
                push_small(&mut self.vertices[v].leaves, c.clone());
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
                    via: None,
                    ..c
                };
                self.add(v, inner)?;
            }
            Expr::Top => {}
            _ => {
                push_small(&mut self.vertices[v].leaves, c.clone());
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
        let group = match (c.closed, c.close_outer) {
            (Some(group), _) => Some(group),
            (None, true) => {
                self.closes += 1;
                Some(Group::Close(self.closes))
            }
            (None, false) => None,
        };
        if let Some(group) = group {
            self.vertices[v].closed_by.push((group, lit.clone()));
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
                    let closed = match label.is_definition() {
                        true => Some(Group::Definition(child)),
                        false => c.closed,
                    };
                    self.push(
                        child,
                        Conjunct {
                            expr: value.clone(),
                            env: frame.clone(),
                            closed,
                            close_outer: false,
                            via: None,
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
                        via: None,
                    };
                    let before = self.vertices[v].closed_by.len();
                    self.add(v, embedded)?;
                    // An embedded definition closes the struct around both its own fields
                    // and those of the struct it is embedded in.
                    let embedded_closers: Vec<_> = self.vertices[v].closed_by.drain(before..).collect();
                    for (group, closer) in embedded_closers {
                        let mut widened = StructLit::clone(&closer);
                        widened.labels.extend(lit.labels.iter().cloned());
                        self.vertices[v].closed_by.push((group, Rc::new(widened)));
                    }
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
                    via: None,
                },
            );
        }
        let rest = rest.as_ref().map(|r| Conjunct {
            expr: r.clone(),
            env: c.env.clone(),
            closed: c.closed,
            close_outer: false,
            via: None,
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
                if let Some(child) = self.arc_of(v, &Label::Index(i)) {
                    self.push(child, rest.clone());
                }
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
                        closed: conj
                            .closed
                            .or(c.closed)
                            .or(through_definition.then_some(Group::Definition(target))),
                        close_outer: conj.close_outer || c.close_outer,
                        via: Some(target),
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
            Target::Error(message) => {
                self.fault(v, message);
                Ok(())
            }
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
            scalar => push_small(&mut vertex.concrete, scalar),
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
                // A constraint that can never be a bool is a type error, as in CUE.
                None if value.kinds().and(Kinds::BOOL).is_empty() => {
                    let message = format!("cannot use {value} (type {}) as type bool", value.kinds().name());
                    self.fault(v, message);
                    false
                }
                // CUE v0.4 reports a top-level `if` it cannot decide (the file's own fields
                // depend on it); a nested one waits, as an incomplete value.
                None if v == ROOT => {
                    let why = match &value {
                        Value::Incomplete(why) => why.clone(),
                        other => format!("non-concrete value {other}"),
                    };
                    self.fault(v, format!("incomplete condition of a top-level if: {why}"));
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
            closed: None,
            close_outer: false,
            via: None,
        };
        let closed = comp.closed;
        self.add_struct(v, &body, &Conjunct { closed, ..inner })?;
        let lits = &mut self.vertices[v].closed_by;
        if closed.is_some() {
            lits.pop();
        }
        Ok(())
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
        closed: None,
        close_outer: false,
        via: None,
    }
}

/// Pushes onto a list that usually holds one or two items: a first push reserves one slot
/// rather than Vec's four, which is most of a vertex's memory on a large input.
fn push_small<T>(items: &mut Vec<T>, item: T) {
    if items.capacity() == 0 {
        items.reserve_exact(1);
    }
    items.push(item);
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

/// `Err` when `value` can never have `label` (a field of something that cannot be a
/// struct, an index of something that cannot be a list), as CUE words it; `name` is what
/// was selected from.
fn check_selectable(name: &str, value: &Value, label: &Label) -> Result<(), String> {
    let value = match value {
        Value::Disjunction { default: Some(d), .. } => d.as_ref(),
        other => other,
    };
    let (wanted, want) = match label {
        Label::Index(_) => (Kinds::LIST, "list"),
        _ => (Kinds::STRUCT, "struct"),
    };
    if matches!(value, Value::Top | Value::Incomplete(_)) || !value.kinds().and(wanted).is_empty() {
        return Ok(());
    }
    Err(format!(
        "invalid operand {name} (found {}, want {want})",
        value.kinds().name()
    ))
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
