//! The resolver: every identifier of the raw tree bound to what it names (a field of an
//! enclosing struct literal, a `let`, a package member, a builtin or a type).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc as Rc;

use super::{Raw, RawDecl, RawPart, RawStruct};
use crate::CompileError;
use crate::ast::*;

/// What a scope (one struct literal) declares: referenceable field names and lets.
#[derive(Default)]
struct Scope {
    fields: HashMap<Label, ()>,
    /// Name → (index, line).
    lets: HashMap<String, (usize, u32)>,
    /// Lets referenced so far: CUE refuses a let nothing refers to.
    used: RefCell<HashSet<String>>,
}

/// What an identifier in expression position stands for before selectors are applied.
enum Resolved {
    Expr(Expr),
    Package(String),
    Func(Func),
}

pub(super) struct Resolver {
    /// Bound name → package path.
    pub(super) imports: HashMap<String, String>,
}

impl Resolver {
    /// The file's top-level struct, resolved.
    pub(super) fn resolve_file(&self, raw: &RawStruct) -> Result<Rc<StructLit>, CompileError> {
        self.resolve_struct(raw, &mut Vec::new())
    }

    fn resolve_struct(&self, raw: &RawStruct, scopes: &mut Vec<Scope>) -> Result<Rc<StructLit>, CompileError> {
        let mut scope = Scope::default();
        let mut lit = StructLit::default();
        declare(raw, &mut scope, &mut lit)?;
        scopes.push(scope);
        let result = self.resolve_decls(raw, scopes, &mut lit);
        let scope = scopes.pop();
        result?;
        if let Some(scope) = scope {
            let used = scope.used.borrow();
            let unused = scope
                .lets
                .iter()
                .filter(|(name, _)| !used.contains(*name))
                .min_by_key(|(_, (_, line))| *line);
            if let Some((name, (_, line))) = unused {
                return Err(CompileError::syntax(
                    *line,
                    &format!("unreferenced alias or let clause {name}"),
                ));
            }
        }
        Ok(Rc::new(lit))
    }

    fn resolve_decls(&self, raw: &RawStruct, scopes: &mut Vec<Scope>, lit: &mut StructLit) -> Result<(), CompileError> {
        for decl in &raw.decls {
            match decl {
                RawDecl::Field { label, optional, value } => lit.decls.push(Decl::Field {
                    label: label.clone(),
                    optional: *optional,
                    value: self.resolve(value, scopes)?,
                }),
                RawDecl::Let { value, .. } => lit.lets.push(self.resolve(value, scopes)?),
                RawDecl::If { condition, body } => {
                    let condition = self.resolve(condition, scopes)?;
                    let body = self.resolve_struct(body, scopes)?;
                    lit.labels.extend(body.labels.iter().cloned());
                    lit.open |= body.open;
                    lit.decls.push(Decl::If { condition, body });
                }
                RawDecl::Ellipsis => lit.open = true,
                RawDecl::Embed(expr) => {
                    let expr = self.resolve(expr, scopes)?;
                    if let Expr::Struct(inner) = expr.as_ref() {
                        lit.labels.extend(inner.labels.iter().cloned());
                        lit.open |= inner.open;
                    }
                    lit.decls.push(Decl::Embed(expr));
                }
            }
        }
        Ok(())
    }

    fn resolve(&self, raw: &Raw, scopes: &mut Vec<Scope>) -> Result<Rc<Expr>, CompileError> {
        Ok(Rc::new(match raw {
            Raw::Leaf(expr) => expr.clone(),
            Raw::Interp(parts) => Expr::Interp(
                parts
                    .iter()
                    .map(|part| match part {
                        RawPart::Lit(text) => Ok(Part::Lit(text.clone())),
                        RawPart::Expr(expr) => Ok(Part::Expr(self.resolve(expr, scopes)?)),
                    })
                    .collect::<Result<_, CompileError>>()?,
            ),
            Raw::Ident(..) | Raw::Def(..) | Raw::Select(..) => match self.resolve_path(raw, scopes)? {
                Resolved::Expr(expr) => expr,
                Resolved::Package(name) => {
                    return Err(CompileError::syntax(
                        line_of(raw),
                        &format!("package {name} used as a value"),
                    ));
                }
                Resolved::Func(func) => {
                    return Err(CompileError::unsupported(
                        line_of(raw),
                        &format!("{} used without calling it", func.name()),
                    ));
                }
            },
            Raw::Index(base, index) => Expr::Index(self.resolve(base, scopes)?, self.resolve(index, scopes)?),
            Raw::Call(callee, args, line) => {
                let Resolved::Func(func) = self.resolve_path(callee, scopes)? else {
                    return Err(CompileError::syntax(*line, "only builtin functions can be called"));
                };
                if args.len() != func.arity() {
                    return Err(CompileError::syntax(
                        *line,
                        &format!("{} takes {} arguments, got {}", func.name(), func.arity(), args.len()),
                    ));
                }
                let args = args.iter().map(|a| self.resolve(a, scopes)).collect::<Result<_, _>>()?;
                Expr::Call(func, args)
            }
            Raw::Not(inner) => Expr::Not(self.resolve(inner, scopes)?),
            Raw::Bound(op, inner) => Expr::Bound(*op, self.resolve(inner, scopes)?),
            Raw::Binary(op, a, b) => Expr::Binary(*op, self.resolve(a, scopes)?, self.resolve(b, scopes)?),
            Raw::Unify(a, b) => Expr::Unify(self.resolve(a, scopes)?, self.resolve(b, scopes)?),
            Raw::Disjunction(alternatives) => Expr::Disjunction(
                alternatives
                    .iter()
                    .map(|(alt, default)| Ok((self.resolve(alt, scopes)?, *default)))
                    .collect::<Result<_, CompileError>>()?,
            ),
            Raw::Default(_, line) => {
                return Err(CompileError::syntax(
                    *line,
                    "preference mark not allowed at this position",
                ));
            }
            Raw::Struct(raw) => Expr::Struct(self.resolve_struct(raw, scopes)?),
            Raw::List(items, rest) => Expr::List(
                items
                    .iter()
                    .map(|i| self.resolve(i, scopes))
                    .collect::<Result<_, _>>()?,
                rest.as_ref().map(|r| self.resolve(r, scopes)).transpose()?,
            ),
        }))
    }

    fn resolve_path(&self, raw: &Raw, scopes: &mut Vec<Scope>) -> Result<Resolved, CompileError> {
        match raw {
            Raw::Ident(name, line) => self.identifier(name, *line, scopes),
            Raw::Def(name, line) => {
                let label = Label::Def(name.clone());
                let depth = scopes.iter().rev().position(|s| s.fields.contains_key(&label));
                match depth {
                    Some(depth) => Ok(Resolved::Expr(Expr::Field { depth, label })),
                    None => Err(CompileError::syntax(*line, &format!("reference \"#{name}\" not found"))),
                }
            }
            Raw::Select(base, label, line) => match self.resolve_path(base, scopes)? {
                Resolved::Package(package) => package_member(&package, label, *line),
                Resolved::Func(func) => Err(CompileError::syntax(
                    *line,
                    &format!("cannot select from {}", func.name()),
                )),
                Resolved::Expr(base) => Ok(Resolved::Expr(Expr::Select(Rc::new(base), label.clone()))),
            },
            other => Ok(Resolved::Expr(Rc::unwrap_or_clone(self.resolve(other, scopes)?))),
        }
    }

    fn identifier(&self, name: &str, line: u32, scopes: &[Scope]) -> Result<Resolved, CompileError> {
        let label = Label::Field(name.to_string());
        for (depth, scope) in scopes.iter().rev().enumerate() {
            if let Some((index, _)) = scope.lets.get(name) {
                scope.used.borrow_mut().insert(name.to_string());
                return Ok(Resolved::Expr(Expr::Let { depth, index: *index }));
            }
            if scope.fields.contains_key(&label) {
                return Ok(Resolved::Expr(Expr::Field { depth, label }));
            }
        }
        if let Some(package) = self.imports.get(name) {
            return Ok(Resolved::Package(package.clone()));
        }
        let expr = match name {
            "null" => Expr::Null,
            "true" => Expr::Bool(true),
            "false" => Expr::Bool(false),
            "_" => Expr::Top,
            "string" => Expr::Kind(Kinds::STRING),
            "int" => Expr::Kind(Kinds::INT),
            "float" => Expr::Kind(Kinds::FLOAT),
            "number" => Expr::Kind(Kinds::NUMBER),
            "bool" => Expr::Kind(Kinds::BOOL),
            "bytes" => Expr::Kind(Kinds::BYTES),
            "len" => return Ok(Resolved::Func(Func::Len)),
            "close" => return Ok(Resolved::Func(Func::Close)),
            "and" | "or" | "div" | "mod" | "quo" | "rem" => {
                return Err(CompileError::unsupported(line, &format!("the builtin {name}")));
            }
            _ => return Err(CompileError::syntax(line, &format!("reference {name:?} not found"))),
        };
        Ok(Resolved::Expr(expr))
    }
}

fn package_member(package: &str, label: &Label, line: u32) -> Result<Resolved, CompileError> {
    let Label::Field(member) = label else {
        return Err(CompileError::syntax(line, &format!("{package} has no member {label}")));
    };
    let func = match (package, member.as_str()) {
        ("list", "Contains") => Func::ListContains,
        ("list", "MinItems") => Func::ListMinItems,
        ("list", "MaxItems") => Func::ListMaxItems,
        ("strings", "Join") => Func::StringsJoin,
        ("strings", "HasPrefix") => Func::StringsHasPrefix,
        ("strings", "HasSuffix") => Func::StringsHasSuffix,
        ("strings", "Contains") => Func::StringsContains,
        ("struct", "MinFields") => Func::StructMinFields,
        ("struct", "MaxFields") => Func::StructMaxFields,
        ("time", "Parse") => Func::TimeParse,
        ("time", "Format") => Func::TimeFormat,
        ("time", "Time") => Func::TimeTime,
        ("time", "RFC3339") => return Ok(Resolved::Expr(Expr::Str(crate::builtins::RFC3339.into()))),
        ("time", "RFC3339Nano") => return Ok(Resolved::Expr(Expr::Str(crate::builtins::RFC3339_NANO.into()))),
        _ => {
            return Err(CompileError::unsupported(line, &format!("{package}.{member}")));
        }
    };
    Ok(Resolved::Func(func))
}

/// Records what `raw` declares: fields (for references and closedness) and lets.
fn declare(raw: &RawStruct, scope: &mut Scope, lit: &mut StructLit) -> Result<(), CompileError> {
    for decl in &raw.decls {
        match decl {
            RawDecl::Field { label, .. } => {
                if !lit.labels.contains(label) {
                    lit.labels.push(label.clone());
                }
                scope.fields.insert(label.clone(), ());
            }
            RawDecl::Let { name, line, .. } if scope.lets.contains_key(name) => {
                return Err(CompileError::syntax(*line, &format!("let {name} declared twice")));
            }
            RawDecl::Let { name, line, .. } => {
                scope.lets.insert(name.clone(), (scope.lets.len(), *line));
            }
            _ => {}
        }
    }
    Ok(())
}

fn line_of(raw: &Raw) -> u32 {
    match raw {
        Raw::Ident(_, line) | Raw::Def(_, line) | Raw::Select(_, _, line) | Raw::Call(_, _, line) => *line,
        _ => 0,
    }
}
