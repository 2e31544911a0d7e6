//! Tokens of the CUE subset, with CUE's automatic comma insertion: a newline after an
//! identifier, keyword, literal, `)`, `]`, `}`, `?`, `...` or `_|_` ends a declaration.

use crate::CompileError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Ident(String),
    /// `#Name`
    Def(String),
    Int(i128),
    Float(f64),
    /// A double-quoted string: literal text and `\(…)` interpolations (their tokens).
    Str(Vec<StrPart>),
    Punct(&'static str),
    /// `_|_`
    Bottom,
    Comma,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StrPart {
    Lit(String),
    Interp(Vec<Token>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub line: u32,
}

/// Longest first, so `...` wins over `.` and `<=` over `<`.
const PUNCTS: [&str; 28] = [
    "...", "&&", "||", "==", "!=", "<=", ">=", "=~", "!~", "{", "}", "[", "]", "(", ")", ":", ",", ".", "?", "!", "&",
    "|", "=", "<", ">", "+", "*", "-",
];

/// Characters CUE has operators for that this subset refuses (division, attributes). A `-`
/// is a token, but the parser takes it only as the sign of a number literal.
const REFUSED_PUNCTS: [(&str, &str); 2] = [("/", "arithmetic with '/'"), ("@", "attributes (@…)")];

pub fn lex(source: &str) -> Result<Vec<Token>, CompileError> {
    let mut lexer = Lexer {
        chars: source.chars().collect(),
        pos: 0,
        line: 1,
    };
    let (mut tokens, stop) = lexer.tokens(false)?;
    if stop.is_some() {
        return Err(CompileError::syntax(lexer.line, "unexpected ')'"));
    }
    if ends_declaration(tokens.last()) {
        tokens.push(Token {
            tok: Tok::Comma,
            line: lexer.line,
        });
    }
    tokens.push(Token {
        tok: Tok::Eof,
        line: lexer.line,
    });
    Ok(tokens)
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: u32,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn starts_with(&self, text: &str) -> bool {
        text.chars().enumerate().all(|(i, c)| self.peek(i) == Some(c))
    }

    /// Tokens until the end, or (inside an interpolation) until the `)` that closes it.
    fn tokens(&mut self, interpolation: bool) -> Result<(Vec<Token>, Option<()>), CompileError> {
        let mut tokens: Vec<Token> = Vec::new();
        let mut depth = 0usize;
        while let Some(c) = self.peek(0) {
            if c == '\n' {
                if ends_declaration(tokens.last()) {
                    tokens.push(Token {
                        tok: Tok::Comma,
                        line: self.line,
                    });
                }
                self.line += 1;
                self.pos += 1;
                continue;
            }
            if c.is_whitespace() {
                self.pos += 1;
                continue;
            }
            if self.starts_with("//") {
                while self.peek(0).is_some_and(|c| c != '\n') {
                    self.pos += 1;
                }
                continue;
            }
            let line = self.line;
            let tok = if self.starts_with("_|_") {
                self.pos += 3;
                Tok::Bottom
            } else if c == '"' {
                self.string()?
            } else if c == '\'' {
                return Err(CompileError::unsupported(line, "byte literals ('…')"));
            } else if c == '#' && self.peek(1) == Some('"') {
                return Err(CompileError::unsupported(line, "raw strings (#\"…\"#)"));
            } else if c.is_ascii_digit() || (c == '.' && self.peek(1).is_some_and(|d| d.is_ascii_digit())) {
                self.number()?
            } else if c == '#' || c == '_' || c == '$' || c.is_alphabetic() {
                self.identifier()?
            } else if let Some(p) = PUNCTS.iter().find(|p| self.starts_with(p)) {
                if interpolation {
                    match *p {
                        "(" => depth += 1,
                        ")" if depth == 0 => {
                            self.pos += 1;
                            return Ok((tokens, Some(())));
                        }
                        ")" => depth -= 1,
                        _ => {}
                    }
                }
                self.pos += p.len();
                if *p == "," { Tok::Comma } else { Tok::Punct(p) }
            } else if let Some((_, what)) = REFUSED_PUNCTS.iter().find(|(p, _)| self.starts_with(p)) {
                return Err(CompileError::unsupported(line, what));
            } else {
                return Err(CompileError::syntax(line, &format!("illegal character {c:?}")));
            };
            tokens.push(Token { tok, line });
        }
        if interpolation {
            return Err(CompileError::syntax(self.line, "string interpolation not terminated"));
        }
        Ok((tokens, None))
    }

    fn identifier(&mut self) -> Result<Tok, CompileError> {
        let line = self.line;
        let start = self.pos;
        if self.peek(0) == Some('#') {
            self.pos += 1;
        }
        while self
            .peek(0)
            .is_some_and(|c| c == '_' || c == '$' || c == '#' || c.is_alphanumeric())
        {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        if text == "#" {
            return Err(CompileError::syntax(line, "illegal character '#'"));
        }
        if text.starts_with("_#") || text.starts_with("#_") || (text.starts_with('_') && text.len() > 1) {
            return Err(CompileError::unsupported(line, &format!("hidden fields ({text})")));
        }
        if text.chars().skip(1).any(|c| c == '#') {
            return Err(CompileError::syntax(line, &format!("illegal identifier {text}")));
        }
        Ok(match text.strip_prefix('#') {
            Some(name) => Tok::Def(name.to_string()),
            None => Tok::Ident(text),
        })
    }

    fn number(&mut self) -> Result<Tok, CompileError> {
        let line = self.line;
        let start = self.pos;
        if self.peek(0) == Some('0') && self.peek(1).is_some_and(|c| "xXoObB".contains(c)) {
            return Err(CompileError::unsupported(line, "non-decimal number literals"));
        }
        let mut float = false;
        while let Some(c) = self.peek(0) {
            if c.is_ascii_digit() || c == '_' {
                self.pos += 1;
            } else if c == '.' && self.peek(1).is_some_and(|d| d.is_ascii_digit()) && !float {
                float = true;
                self.pos += 1;
            } else if (c == 'e' || c == 'E')
                && (self.peek(1).is_some_and(|d| d.is_ascii_digit())
                    || (matches!(self.peek(1), Some('+' | '-')) && self.peek(2).is_some_and(|d| d.is_ascii_digit())))
            {
                float = true;
                self.pos += 2;
            } else {
                break;
            }
        }
        if self.peek(0).is_some_and(|c| c.is_alphabetic()) {
            return Err(CompileError::unsupported(line, "number multipliers (K, Mi, …)"));
        }
        let text: String = self.chars[start..self.pos].iter().filter(|c| **c != '_').collect();
        let bad = || CompileError::syntax(line, &format!("invalid number {text}"));
        if float {
            text.parse().map(Tok::Float).map_err(|_| bad())
        } else {
            text.parse().map(Tok::Int).map_err(|_| bad())
        }
    }

    fn string(&mut self) -> Result<Tok, CompileError> {
        let line = self.line;
        if self.starts_with("\"\"\"") {
            return Err(CompileError::unsupported(line, "multi-line strings (\"\"\")"));
        }
        self.pos += 1;
        let mut parts = Vec::new();
        let mut text = String::new();
        loop {
            let Some(c) = self.peek(0) else {
                return Err(CompileError::syntax(line, "string literal not terminated"));
            };
            self.pos += 1;
            match c {
                '"' => break,
                '\n' => return Err(CompileError::syntax(line, "string literal not terminated")),
                '\\' => {
                    if self.peek(0) == Some('(') {
                        self.pos += 1;
                        parts.push(StrPart::Lit(std::mem::take(&mut text)));
                        let (mut tokens, _) = self.tokens(true)?;
                        tokens.push(Token {
                            tok: Tok::Eof,
                            line: self.line,
                        });
                        parts.push(StrPart::Interp(tokens));
                    } else {
                        text.push(self.escape(line)?);
                    }
                }
                c => text.push(c),
            }
        }
        parts.push(StrPart::Lit(text));
        parts.retain(|p| !matches!(p, StrPart::Lit(t) if t.is_empty()));
        if parts.is_empty() {
            parts.push(StrPart::Lit(String::new()));
        }
        Ok(Tok::Str(parts))
    }

    fn escape(&mut self, line: u32) -> Result<char, CompileError> {
        let c = self
            .peek(0)
            .ok_or_else(|| CompileError::syntax(line, "string literal not terminated"))?;
        self.pos += 1;
        let simple = match c {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            '/' => Some('/'),
            _ => None,
        };
        if let Some(s) = simple {
            return Ok(s);
        }
        let digits = match c {
            'u' => 4,
            'U' => 8,
            _ => return Err(CompileError::syntax(line, &format!("unknown escape sequence \\{c}"))),
        };
        let hex: String = (0..digits).filter_map(|i| self.peek(i)).collect();
        self.pos += digits;
        u32::from_str_radix(&hex, 16)
            .ok()
            .filter(|_| hex.len() == digits)
            .and_then(char::from_u32)
            .ok_or_else(|| CompileError::syntax(line, "invalid unicode escape"))
    }
}

fn ends_declaration(last: Option<&Token>) -> bool {
    match last.map(|t| &t.tok) {
        Some(Tok::Ident(_) | Tok::Def(_) | Tok::Int(_) | Tok::Float(_) | Tok::Str(_) | Tok::Bottom) => true,
        Some(Tok::Punct(p)) => matches!(*p, ")" | "]" | "}" | "?" | "..."),
        _ => false,
    }
}
