//! Parser and resolver: tokens → a raw tree → [`Expr`] with every identifier resolved.
//! Constructs outside the supported subset are refused here, naming the construct and line.

use std::collections::HashMap;
use std::sync::Arc as Rc;

use crate::CompileError;
use crate::ast::*;
use crate::lexer::{StrPart, Tok, Token, lex};

mod resolve;
use resolve::Resolver;

/// Deepest nesting of expressions and structs a policy may have (the evaluator recurses).
const MAX_NESTING: usize = 64;

/// A parsed file: its top-level struct literal.
pub fn parse_file(source: &str) -> Result<Rc<StructLit>, CompileError> {
    let tokens = lex(source)?;
    let mut parser = Parser {
        tokens: &tokens,
        pos: 0,
        depth: 0,
    };
    let imports = parser.header()?;
    let decls = parser.decls(None)?;
    let resolver = Resolver { imports };
    resolver.resolve_file(&RawStruct { decls })
}

/// A JSON value as an expression (the input a policy is unified with).
pub fn json_expr(value: &serde_json::Value) -> Result<Rc<Expr>, String> {
    use serde_json::Value;
    Ok(Rc::new(match value {
        Value::Null => Expr::Null,
        Value::Bool(b) => Expr::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Expr::Int(i.into()),
            (_, Some(u)) => Expr::Int(u.into()),
            _ => Expr::Float(n.as_f64().ok_or_else(|| format!("number {n} cannot be represented"))?),
        },
        Value::String(s) => Expr::Str(s.clone()),
        Value::Array(items) => Expr::List(items.iter().map(json_expr).collect::<Result<_, _>>()?, None),
        Value::Object(map) => {
            let mut lit = StructLit::default();
            for (key, value) in map {
                let label = Label::Field(key.clone());
                lit.labels.push(label.clone());
                lit.decls.push(Decl::Field {
                    label,
                    optional: false,
                    value: json_expr(value)?,
                });
            }
            Expr::Struct(Rc::new(lit))
        }
    }))
}

#[derive(Debug, Clone)]
enum Raw {
    Leaf(Expr),
    Interp(Vec<RawPart>),
    Ident(String, u32),
    Def(String, u32),
    Select(Box<Raw>, Label, u32),
    Index(Box<Raw>, Box<Raw>),
    Call(Box<Raw>, Vec<Raw>, u32),
    Not(Box<Raw>),
    Bound(BoundOp, Box<Raw>),
    Binary(BinOp, Box<Raw>, Box<Raw>),
    Unify(Box<Raw>, Box<Raw>),
    Disjunction(Vec<(Raw, bool)>),
    Default(Box<Raw>, u32),
    Struct(RawStruct),
    List(Vec<Raw>, Option<Box<Raw>>),
}

#[derive(Debug, Clone)]
enum RawPart {
    Lit(String),
    Expr(Raw),
}

#[derive(Debug, Clone, Default)]
struct RawStruct {
    decls: Vec<RawDecl>,
}

#[derive(Debug, Clone)]
enum RawDecl {
    Field { label: Label, optional: bool, value: Raw },
    Let { name: String, value: Raw, line: u32 },
    If { condition: Raw, body: RawStruct },
    Ellipsis,
    Embed(Raw),
}

struct Parser<'t> {
    tokens: &'t [Token],
    pos: usize,
    depth: usize,
}

impl<'t> Parser<'t> {
    fn peek(&self) -> &Tok {
        &self.tokens[self.pos.min(self.tokens.len() - 1)].tok
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        &self.tokens[(self.pos + ahead).min(self.tokens.len() - 1)].tok
    }

    fn line(&self) -> u32 {
        self.tokens[self.pos.min(self.tokens.len() - 1)].line
    }

    fn next(&mut self) -> Tok {
        let tok = self.peek().clone();
        self.pos += 1;
        tok
    }

    fn is(&self, punct: &str) -> bool {
        matches!(self.peek(), Tok::Punct(p) if *p == punct)
    }

    fn eat(&mut self, punct: &str) -> bool {
        let found = self.is(punct);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect(&mut self, punct: &str) -> Result<(), CompileError> {
        if self.eat(punct) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("expected '{punct}'")))
        }
    }

    fn unexpected(&self, want: &str) -> CompileError {
        let found = match self.peek() {
            Tok::Ident(name) => format!("identifier {name}"),
            Tok::Def(name) => format!("#{name}"),
            Tok::Int(i) => i.to_string(),
            Tok::Float(f) => f.to_string(),
            Tok::Str(_) => "string".into(),
            Tok::Punct(p) => format!("'{p}'"),
            Tok::Bottom => "_|_".into(),
            Tok::Comma => "newline or ','".into(),
            Tok::Eof => "end of file".into(),
        };
        CompileError::syntax(self.line(), &format!("{want}, found {found}"))
    }

    fn skip_commas(&mut self) {
        while matches!(self.peek(), Tok::Comma) {
            self.pos += 1;
        }
    }

    fn nest(&mut self) -> Result<(), CompileError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(CompileError::syntax(self.line(), "nesting too deep"));
        }
        Ok(())
    }

    /// `package` clause (ignored) and imports: the names they bind.
    fn header(&mut self) -> Result<HashMap<String, String>, CompileError> {
        let mut imports = HashMap::new();
        self.skip_commas();
        if matches!(self.peek(), Tok::Ident(k) if k == "package") && matches!(self.peek_at(1), Tok::Ident(_)) {
            self.pos += 2;
        }
        loop {
            self.skip_commas();
            let is_import = matches!(self.peek(), Tok::Ident(k) if k == "import")
                && !matches!(self.peek_at(1), Tok::Punct(":" | "?"));
            if !is_import {
                return Ok(imports);
            }
            self.pos += 1;
            if self.eat("(") {
                loop {
                    self.skip_commas();
                    if self.eat(")") {
                        break;
                    }
                    self.import_spec(&mut imports)?;
                }
            } else {
                self.import_spec(&mut imports)?;
            }
        }
    }

    fn import_spec(&mut self, imports: &mut HashMap<String, String>) -> Result<(), CompileError> {
        let line = self.line();
        let alias = match self.peek() {
            Tok::Ident(name) => {
                let name = name.clone();
                self.pos += 1;
                Some(name)
            }
            _ => None,
        };
        let Tok::Str(parts) = self.next() else {
            return Err(CompileError::syntax(line, "expected an import path"));
        };
        let [StrPart::Lit(path)] = parts.as_slice() else {
            return Err(CompileError::syntax(line, "expected an import path"));
        };
        if !matches!(path.as_str(), "list" | "strings" | "struct" | "time") {
            return Err(CompileError::unsupported(
                line,
                &format!("import {path:?} (supported: \"list\", \"strings\", \"struct\", \"time\")"),
            ));
        }
        imports.insert(alias.unwrap_or_else(|| path.clone()), path.clone());
        Ok(())
    }

    /// Declarations until `}` (when `close` is given) or the end of the file.
    fn decls(&mut self, close: Option<&str>) -> Result<Vec<RawDecl>, CompileError> {
        let mut decls = Vec::new();
        loop {
            match (self.peek(), close) {
                (Tok::Eof, None) => return Ok(decls),
                (Tok::Punct(p), Some(c)) if *p == c => {
                    self.pos += 1;
                    return Ok(decls);
                }
                (Tok::Eof, Some(_)) => return Err(self.unexpected("expected '}'")),
                _ => {}
            }
            decls.push(self.decl()?);
            self.separator(close.unwrap_or(""), "expected ',' or newline")?;
        }
    }

    /// After an element: one `,` (or the newline that stands for it), unless `close` follows.
    fn separator(&mut self, close: &str, want: &str) -> Result<(), CompileError> {
        if self.is(close) || matches!(self.peek(), Tok::Eof) && close.is_empty() {
            return Ok(());
        }
        if !self.eat_comma() {
            return Err(self.unexpected(want));
        }
        Ok(())
    }

    fn eat_comma(&mut self) -> bool {
        let found = matches!(self.peek(), Tok::Comma);
        if found {
            self.pos += 1;
        }
        found
    }

    fn decl(&mut self) -> Result<RawDecl, CompileError> {
        let line = self.line();
        if self.eat("...") {
            if !matches!(self.peek(), Tok::Comma) && !self.is("}") {
                return Err(CompileError::unsupported(
                    line,
                    "pattern constraints (...T in a struct)",
                ));
            }
            return Ok(RawDecl::Ellipsis);
        }
        let keyword_label = matches!(self.peek_at(1), Tok::Punct(":"))
            || (matches!(self.peek_at(1), Tok::Punct("?" | "!")) && matches!(self.peek_at(2), Tok::Punct(":")));
        if let Tok::Ident(word) = self.peek().clone()
            && !keyword_label
        {
            match word.as_str() {
                "let" => {
                    self.pos += 1;
                    let Tok::Ident(name) = self.next() else {
                        return Err(CompileError::syntax(line, "expected a name after let"));
                    };
                    self.expect("=")?;
                    let value = self.expr()?;
                    return Ok(RawDecl::Let { name, value, line });
                }
                "if" => {
                    self.pos += 1;
                    let condition = self.expr()?;
                    self.expect("{")?;
                    self.nest()?;
                    let body = RawStruct {
                        decls: self.decls(Some("}"))?,
                    };
                    self.depth -= 1;
                    return Ok(RawDecl::If { condition, body });
                }
                "for" => return Err(CompileError::unsupported(line, "for comprehensions")),
                "import" | "package" => {
                    return Err(CompileError::syntax(
                        line,
                        &format!("{word} must come first in the file"),
                    ));
                }
                _ => {}
            }
        }
        if self.is("[") {
            return Err(CompileError::unsupported(line, "pattern constraints ([…]: T)"));
        }
        if matches!(self.peek(), Tok::Ident(_)) && matches!(self.peek_at(1), Tok::Punct("=")) {
            return Err(CompileError::unsupported(line, "aliases (X=…)"));
        }
        if self.is("(") && self.is_dynamic_label() {
            return Err(CompileError::unsupported(line, "dynamic labels ((…): T)"));
        }
        if let Some(label) = self.label() {
            return self.field(label, line);
        }
        Ok(RawDecl::Embed(self.expr()?))
    }

    /// Whether `(` starts a dynamic label `(expr): value` rather than an embedded expression.
    fn is_dynamic_label(&self) -> bool {
        let mut depth = 0;
        for (i, token) in self.tokens[self.pos..].iter().enumerate() {
            match &token.tok {
                Tok::Punct("(") => depth += 1,
                Tok::Punct(")") => {
                    depth -= 1;
                    if depth == 0 {
                        return matches!(self.peek_at(i + 1), Tok::Punct(":" | "?"));
                    }
                }
                Tok::Eof => return false,
                _ => {}
            }
        }
        false
    }

    /// A label, if the tokens here are `label:`, `label?:` or `label!:`.
    fn label(&mut self) -> Option<Label> {
        let label = match self.peek() {
            Tok::Ident(name) => Label::Field(name.clone()),
            Tok::Def(name) => Label::Def(name.clone()),
            Tok::Str(parts) => match parts.as_slice() {
                [StrPart::Lit(text)] => Label::Field(text.clone()),
                _ => return None,
            },
            _ => return None,
        };
        match self.peek_at(1) {
            Tok::Punct(":") => {}
            Tok::Punct("?" | "!") if matches!(self.peek_at(2), Tok::Punct(":")) => {}
            Tok::Punct("=") => return None,
            _ => return None,
        }
        self.pos += 1;
        Some(label)
    }

    fn field(&mut self, label: Label, line: u32) -> Result<RawDecl, CompileError> {
        let optional = self.eat("?");
        if self.eat("!") {
            return Err(CompileError::unsupported(line, "required fields (label!: …)"));
        }
        self.expect(":")?;
        let next_line = self.line();
        let value = if let Some(inner) = self.label() {
            // `a: b: c` is `a: {b: c}`.
            self.nest()?;
            let decl = self.field(inner, next_line)?;
            self.depth -= 1;
            Raw::Struct(RawStruct { decls: vec![decl] })
        } else {
            self.expr()?
        };
        if self.is("@") {
            return Err(CompileError::unsupported(line, "attributes (@…)"));
        }
        Ok(RawDecl::Field { label, optional, value })
    }

    fn expr(&mut self) -> Result<Raw, CompileError> {
        self.nest()?;
        let expr = self.binary(1);
        self.depth -= 1;
        expr
    }

    /// Precedence climbing over CUE's levels: `|` < `&` < `||` < `&&` < comparisons < `+`.
    fn binary(&mut self, level: u8) -> Result<Raw, CompileError> {
        if level > 6 {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        loop {
            let line = self.line();
            let op = match (level, self.peek()) {
                (1, Tok::Punct("|")) => "|",
                (2, Tok::Punct("&")) => "&",
                (3, Tok::Punct("||")) => "||",
                (4, Tok::Punct("&&")) => "&&",
                (5, Tok::Punct(p @ ("==" | "!=" | "<" | "<=" | ">" | ">=" | "=~" | "!~"))) => p,
                (6, Tok::Punct("+")) => "+",
                (6, Tok::Punct("-")) => return Err(CompileError::unsupported(line, "arithmetic with '-'")),
                (6, Tok::Punct("*")) => return Err(CompileError::unsupported(line, "arithmetic with '*'")),
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.binary(level + 1)?;
            left = match op {
                "|" => {
                    let mut alternatives = match left {
                        Raw::Disjunction(alternatives) => alternatives,
                        other => vec![disjunct(other)],
                    };
                    alternatives.push(disjunct(right));
                    Raw::Disjunction(alternatives)
                }
                "&" => Raw::Unify(Box::new(left), Box::new(right)),
                _ => Raw::Binary(binary_op(op), Box::new(left), Box::new(right)),
            };
        }
    }

    fn unary(&mut self) -> Result<Raw, CompileError> {
        let line = self.line();
        let bound = match self.peek() {
            Tok::Punct("<") => Some(BoundOp::Lt),
            Tok::Punct("<=") => Some(BoundOp::Le),
            Tok::Punct(">") => Some(BoundOp::Gt),
            Tok::Punct(">=") => Some(BoundOp::Ge),
            Tok::Punct("!=") => Some(BoundOp::Ne),
            Tok::Punct("=~") => Some(BoundOp::Match),
            Tok::Punct("!~") => Some(BoundOp::NotMatch),
            _ => None,
        };
        if let Some(op) = bound {
            self.pos += 1;
            return Ok(Raw::Bound(op, Box::new(self.unary()?)));
        }
        if self.eat("!") {
            return Ok(Raw::Not(Box::new(self.unary()?)));
        }
        if self.eat("*") {
            return Ok(Raw::Default(Box::new(self.unary()?), line));
        }
        if self.eat("-") {
            return match self.next() {
                Tok::Int(i) => Ok(Raw::Leaf(Expr::Int(-i))),
                Tok::Float(f) => Ok(Raw::Leaf(Expr::Float(-f))),
                _ => Err(CompileError::unsupported(
                    line,
                    "arithmetic with '-' (only negative number literals)",
                )),
            };
        }
        if self.eat("+") {
            return Err(CompileError::unsupported(line, "unary '+'"));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Raw, CompileError> {
        let mut expr = self.operand()?;
        loop {
            let line = self.line();
            if self.eat(".") {
                let label = match self.next() {
                    Tok::Ident(name) => Label::Field(name),
                    Tok::Def(name) => Label::Def(name),
                    Tok::Str(parts) => match parts.as_slice() {
                        [StrPart::Lit(text)] => Label::Field(text.clone()),
                        _ => return Err(CompileError::syntax(line, "expected a selector")),
                    },
                    _ => return Err(CompileError::syntax(line, "expected a selector")),
                };
                expr = Raw::Select(Box::new(expr), label, line);
            } else if self.eat("[") {
                let index = self.expr()?;
                if self.is(":") {
                    return Err(CompileError::unsupported(line, "slices (x[a:b])"));
                }
                self.expect("]")?;
                expr = Raw::Index(Box::new(expr), Box::new(index));
            } else if self.eat("(") {
                let mut args = Vec::new();
                loop {
                    if self.eat(")") {
                        break;
                    }
                    args.push(self.expr()?);
                    self.separator(")", "expected ',' or ')'")?;
                }
                expr = Raw::Call(Box::new(expr), args, line);
            } else {
                return Ok(expr);
            }
        }
    }

    fn operand(&mut self) -> Result<Raw, CompileError> {
        let line = self.line();
        match self.next() {
            Tok::Int(i) => Ok(Raw::Leaf(Expr::Int(i))),
            Tok::Float(f) => Ok(Raw::Leaf(Expr::Float(f))),
            Tok::Bottom => Ok(Raw::Leaf(Expr::Bottom)),
            Tok::Str(parts) => self.string(parts),
            Tok::Ident(name) => match name.as_str() {
                "for" => Err(CompileError::unsupported(line, "for comprehensions")),
                "if" | "let" => Err(CompileError::unsupported(
                    line,
                    &format!("'{name}' inside an expression"),
                )),
                _ => Ok(Raw::Ident(name, line)),
            },
            Tok::Def(name) => Ok(Raw::Def(name, line)),
            Tok::Punct("(") => {
                let expr = self.expr()?;
                self.skip_commas();
                self.expect(")")?;
                Ok(expr)
            }
            Tok::Punct("{") => {
                self.nest()?;
                let decls = self.decls(Some("}"))?;
                self.depth -= 1;
                Ok(Raw::Struct(RawStruct { decls }))
            }
            Tok::Punct("[") => self.list(),
            _ => {
                self.pos -= 1;
                Err(self.unexpected("expected an expression"))
            }
        }
    }

    fn string(&mut self, parts: Vec<StrPart>) -> Result<Raw, CompileError> {
        if let [StrPart::Lit(text)] = parts.as_slice() {
            return Ok(Raw::Leaf(Expr::Str(text.clone())));
        }
        let mut raw = Vec::new();
        for part in parts {
            match part {
                StrPart::Lit(text) => raw.push(RawPart::Lit(text)),
                StrPart::Interp(tokens) => {
                    let mut inner = Parser {
                        tokens: &tokens,
                        pos: 0,
                        depth: self.depth,
                    };
                    let expr = inner.expr()?;
                    if !matches!(inner.peek(), Tok::Eof) {
                        return Err(inner.unexpected("expected ')' closing the interpolation"));
                    }
                    raw.push(RawPart::Expr(expr));
                }
            }
        }
        Ok(Raw::Interp(raw))
    }

    fn list(&mut self) -> Result<Raw, CompileError> {
        self.nest()?;
        let mut items = Vec::new();
        let mut rest = None;
        loop {
            if self.eat("]") {
                break;
            }
            if rest.is_some() {
                return Err(self.unexpected("expected ']' after '...'"));
            }
            if self.eat("...") {
                rest = Some(Box::new(if matches!(self.peek(), Tok::Comma) || self.is("]") {
                    Raw::Leaf(Expr::Top)
                } else {
                    self.expr()?
                }));
            } else {
                items.push(self.expr()?);
            }
            self.separator("]", "expected ',' or ']'")?;
        }
        self.depth -= 1;
        Ok(Raw::List(items, rest))
    }
}

fn disjunct(raw: Raw) -> (Raw, bool) {
    match raw {
        Raw::Default(inner, _) => (*inner, true),
        other => (other, false),
    }
}

fn binary_op(op: &str) -> BinOp {
    match op {
        "==" => BinOp::Eq,
        "!=" => BinOp::Ne,
        "<" => BinOp::Lt,
        "<=" => BinOp::Le,
        ">" => BinOp::Gt,
        ">=" => BinOp::Ge,
        "=~" => BinOp::Match,
        "!~" => BinOp::NotMatch,
        "&&" => BinOp::And,
        "||" => BinOp::Or,
        _ => BinOp::Add,
    }
}
