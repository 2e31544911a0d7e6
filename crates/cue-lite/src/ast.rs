//! The compiled form of a policy: expressions with every identifier resolved (to a field of an
//! enclosing struct, a `let`, a builtin or a type), so evaluation never looks names up.

use std::fmt;
use std::sync::Arc as Rc;

/// A field's label. `Index` labels list elements (never written in a policy).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Label {
    Field(String),
    Def(String),
    Index(usize),
}

impl Label {
    pub fn is_definition(&self) -> bool {
        matches!(self, Label::Def(_))
    }
}

impl fmt::Display for Label {
    /// As CUE prints a path element: identifiers bare, other strings quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Field(name) if is_identifier(name) => f.write_str(name),
            Label::Field(name) => write!(f, "{}", crate::value::quote(name)),
            Label::Def(name) => write!(f, "#{name}"),
            Label::Index(i) => write!(f, "{i}"),
        }
    }
}

pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
}

/// Basic types, as a set of kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds(pub u8);

impl Kinds {
    pub const NULL: Kinds = Kinds(1);
    pub const BOOL: Kinds = Kinds(2);
    pub const INT: Kinds = Kinds(4);
    pub const FLOAT: Kinds = Kinds(8);
    pub const STRING: Kinds = Kinds(16);
    pub const BYTES: Kinds = Kinds(32);
    pub const LIST: Kinds = Kinds(64);
    pub const STRUCT: Kinds = Kinds(128);
    pub const NUMBER: Kinds = Kinds(4 | 8);
    pub const ALL: Kinds = Kinds(255);

    pub fn and(self, other: Kinds) -> Kinds {
        Kinds(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// CUE's name for the set (`int`, `number`, `string`, `int|string`, …).
    pub fn name(self) -> String {
        const NAMES: [(Kinds, &str); 8] = [
            (Kinds::NULL, "null"),
            (Kinds::BOOL, "bool"),
            (Kinds::NUMBER, "number"),
            (Kinds::INT, "int"),
            (Kinds::FLOAT, "float"),
            (Kinds::STRING, "string"),
            (Kinds::BYTES, "bytes"),
            (Kinds::LIST, "list"),
        ];
        if self == Kinds::ALL {
            return "_".into();
        }
        let mut left = self.0;
        let mut names = Vec::new();
        for (kinds, name) in NAMES {
            if left & kinds.0 == kinds.0 {
                names.push(name);
                left &= !kinds.0;
            }
        }
        if left & Kinds::STRUCT.0 != 0 {
            names.push("struct");
        }
        names.join("|")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundOp {
    Lt,
    Le,
    Gt,
    Ge,
    Ne,
    Match,
    NotMatch,
}

impl BoundOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BoundOp::Lt => "<",
            BoundOp::Le => "<=",
            BoundOp::Gt => ">",
            BoundOp::Ge => ">=",
            BoundOp::Ne => "!=",
            BoundOp::Match => "=~",
            BoundOp::NotMatch => "!~",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Match,
    NotMatch,
    And,
    Or,
    Add,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Match => "=~",
            BinOp::NotMatch => "!~",
            BinOp::And => "&&",
            BinOp::Or => "||",
            BinOp::Add => "+",
        }
    }
}

/// The builtins of the supported packages (and `len`, `close`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Len,
    Close,
    ListContains,
    ListMinItems,
    ListMaxItems,
    StringsJoin,
    StringsHasPrefix,
    StringsHasSuffix,
    StringsContains,
    StructMinFields,
    StructMaxFields,
    TimeParse,
    TimeFormat,
    TimeTime,
}

impl Func {
    /// `package.Name`, as CUE names it in messages.
    pub fn name(self) -> &'static str {
        match self {
            Func::Len => "len",
            Func::Close => "close",
            Func::ListContains => "list.Contains",
            Func::ListMinItems => "list.MinItems",
            Func::ListMaxItems => "list.MaxItems",
            Func::StringsJoin => "strings.Join",
            Func::StringsHasPrefix => "strings.HasPrefix",
            Func::StringsHasSuffix => "strings.HasSuffix",
            Func::StringsContains => "strings.Contains",
            Func::StructMinFields => "struct.MinFields",
            Func::StructMaxFields => "struct.MaxFields",
            Func::TimeParse => "time.Parse",
            Func::TimeFormat => "time.Format",
            Func::TimeTime => "time.Time",
        }
    }

    pub fn arity(self) -> usize {
        match self {
            Func::TimeTime => 0,
            Func::Len
            | Func::Close
            | Func::ListMinItems
            | Func::ListMaxItems
            | Func::StructMinFields
            | Func::StructMaxFields
            | Func::TimeFormat => 1,
            _ => 2,
        }
    }

    /// Functions that, like CUE's validators, constrain the value they are unified with
    /// instead of computing one.
    pub fn is_validator(self) -> bool {
        matches!(
            self,
            Func::ListMinItems
                | Func::ListMaxItems
                | Func::StructMinFields
                | Func::StructMaxFields
                | Func::TimeFormat
                | Func::TimeTime
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Interp(Vec<Part>),
    Top,
    Bottom,
    Kind(Kinds),
    /// A field declared by the struct literal `depth` scopes up.
    Field {
        depth: usize,
        label: Label,
    },
    /// A `let` of the struct literal `depth` scopes up.
    Let {
        depth: usize,
        index: usize,
    },
    Select(Rc<Expr>, Label),
    Index(Rc<Expr>, Rc<Expr>),
    Call(Func, Vec<Rc<Expr>>),
    Not(Rc<Expr>),
    Bound(BoundOp, Rc<Expr>),
    Binary(BinOp, Rc<Expr>, Rc<Expr>),
    /// `a & b`
    Unify(Rc<Expr>, Rc<Expr>),
    /// `a | *b | c`: alternatives and whether each is marked default.
    Disjunction(Vec<(Rc<Expr>, bool)>),
    Struct(Rc<StructLit>),
    /// Elements, and the type of the elements after them (`...T`), if the list is open.
    List(Vec<Rc<Expr>>, Option<Rc<Expr>>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Lit(String),
    Expr(Rc<Expr>),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct StructLit {
    pub decls: Vec<Decl>,
    pub lets: Vec<Rc<Expr>>,
    /// Every label this literal can contribute (its fields, those of its `if` bodies and
    /// embedded literals): what a closed struct allows.
    pub labels: Vec<Label>,
    /// It has `...`.
    pub open: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decl {
    Field {
        label: Label,
        optional: bool,
        value: Rc<Expr>,
    },
    If {
        condition: Rc<Expr>,
        body: Rc<StructLit>,
    },
    Embed(Rc<Expr>),
}
