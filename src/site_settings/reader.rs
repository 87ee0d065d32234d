//! Statements and expressions: what each statement of the file says, handed to
//! [`State`](super::meaning::State) in order; the failure branches (`if`, `catch`, `or die`) that
//! only report and stop are read and set aside.

use super::lexer::{Tok, Token};
use super::meaning::State;
use super::{refusal, Refusal};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expr {
    Str(String),
    Interpolated,
    Int(u64),
    Var(String),
    /// A bare name: a constant, or `true`/`false`/`null`.
    Const(String),
    ClassConst(String),
    /// A function call (name lower-cased).
    Call(String, Vec<Expr>),
    /// `new Class(…)` (name lower-cased).
    New(String, Vec<Expr>),
    /// `$object->name(…)` (name lower-cased).
    Method(Box<Expr>, String, Vec<Expr>),
    /// `$object->name`.
    Property,
    /// An array literal, with the names it mentions.
    Array(Vec<String>),
    /// `a . b`.
    Concat,
    /// `!a`.
    Not,
    /// `a or b`, `a || b` (and `and`/`&&`).
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    /// A string literal's value, or the reason this is not one (`what` names the argument).
    pub(super) fn literal(&self, what: &str, line: usize) -> Result<&str, Refusal> {
        let reason = match self {
            Expr::Str(text) => return Ok(text),
            _ if self.is_null() => format!("{what} is null, which takes php.ini's default"),
            Expr::Var(name) => format!("{what} is the variable ${name}, which is not followed"),
            Expr::Const(name) | Expr::ClassConst(name) => {
                format!("{what} is the constant {name}, which is not followed")
            }
            Expr::Call(name, _) => format!("{what} is computed by {name}()"),
            Expr::Concat => format!("{what} is a concatenation, not a plain literal"),
            Expr::Interpolated => format!("{what} is a double-quoted string with a `$`"),
            _ => format!("{what} is not a plain string literal"),
        };
        Err(refusal(line, reason))
    }

    /// `null` (the argument's default).
    pub(super) fn is_null(&self) -> bool {
        matches!(self, Expr::Const(name) if name.eq_ignore_ascii_case("null"))
    }
}

/// Statements that may fill a failure branch: they change no setting.
pub(super) const REPORTING: [&str; 6] =
    ["die", "exit", "echo", "print", "trigger_error", "error_log"];

/// Calls that change no setting.
pub(super) const IGNORED: [&str; 4] = [
    "error_reporting",
    "date_default_timezone_set",
    "header",
    "mysqli_report",
];

pub(super) struct Reader<'t> {
    tokens: &'t [Token],
    at: usize,
    state: State,
}

impl<'t> Reader<'t> {
    /// A reader at the first token.
    pub(super) fn new(tokens: &'t [Token]) -> Reader<'t> {
        Reader {
            tokens,
            at: 0,
            state: State::default(),
        }
    }

    /// Every statement, in order; what they set.
    pub(super) fn read(mut self) -> Result<State, Refusal> {
        while !self.done() {
            self.statement(false)?;
        }
        Ok(self.state)
    }

    fn done(&self) -> bool {
        self.at >= self.tokens.len()
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at).map(|token| &token.tok)
    }

    fn line(&self) -> usize {
        self.tokens
            .get(self.at)
            .or_else(|| self.tokens.last())
            .map_or(1, |token| token.line)
    }

    fn next(&mut self) -> Option<Tok> {
        let tok = self.peek().cloned();
        self.at += 1;
        tok
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(name)) if name.eq_ignore_ascii_case(keyword))
    }

    fn expect(&mut self, wanted: Tok, what: &str) -> Result<(), Refusal> {
        let line = self.line();
        match self.next() {
            Some(tok) if tok == wanted => Ok(()),
            _ => Err(refusal(
                line,
                format!("expected {what}: code this reader does not follow"),
            )),
        }
    }

    /// One statement; in a failure branch (`reporting`) only [`REPORTING`] statements.
    fn statement(&mut self, reporting: bool) -> Result<(), Refusal> {
        let line = self.line();
        if self.peek() == Some(&Tok::End) {
            self.at += 1;
            return Ok(());
        }
        for keyword in ["include", "include_once", "require", "require_once"] {
            if self.is_keyword(keyword) {
                return Err(refusal(
                    line,
                    format!("{keyword} of another file, whose settings are not followed"),
                ));
            }
        }
        if self.is_keyword("if") {
            return self.conditional();
        }
        if self.is_keyword("try") {
            return self.try_catch(reporting);
        }
        if self.is_keyword("echo") || self.is_keyword("print") {
            if !reporting {
                return Err(refusal(line, "prints something outside a failure branch"));
            }
            while !matches!(self.peek(), Some(Tok::End) | None) {
                if self.peek() == Some(&Tok::Punct(b'}')) {
                    break;
                }
                self.at += 1;
            }
            return self.end_of_statement();
        }
        let target = match (self.peek(), self.tokens.get(self.at + 1).map(|t| &t.tok)) {
            (Some(Tok::Var(name)), Some(Tok::Punct(b'='))) => {
                let name = name.clone();
                self.at += 2;
                Some(name)
            }
            _ => None,
        };
        let expr = self.expr()?;
        self.end_of_statement()?;
        if reporting {
            return match &expr {
                Expr::Call(name, _) if REPORTING.contains(&name.as_str()) => Ok(()),
                _ => Err(refusal(
                    line,
                    "a failure branch does more than report and stop",
                )),
            };
        }
        self.state.apply(target, expr, line)
    }

    fn end_of_statement(&mut self) -> Result<(), Refusal> {
        match self.peek() {
            // `;`, or `?>`, which stands for one.
            Some(Tok::End) => {
                self.at += 1;
                Ok(())
            }
            None => Err(refusal(
                self.line(),
                "the file ends inside a statement, which PHP does not compile",
            )),
            _ => Err(refusal(
                self.line(),
                "an expression this reader does not follow",
            )),
        }
    }

    /// `if (…) branch [else branch]`: each branch may only report and stop.
    fn conditional(&mut self) -> Result<(), Refusal> {
        self.at += 1;
        self.expect(Tok::Punct(b'('), "`(` after `if`")?;
        self.expr()?;
        self.expect(Tok::Punct(b')'), "`)` closing the condition")?;
        self.branch()?;
        if self.is_keyword("else") {
            self.at += 1;
            self.branch()?;
        }
        Ok(())
    }

    /// `try { … } catch (Class $e) { … }`: the `try` block is read as usual, the `catch` may only
    /// report and stop.
    fn try_catch(&mut self, reporting: bool) -> Result<(), Refusal> {
        self.at += 1;
        self.block(reporting)?;
        let line = self.line();
        if !self.is_keyword("catch") {
            return Err(refusal(line, "a `try` without a `catch`"));
        }
        self.at += 1;
        self.expect(Tok::Punct(b'('), "`(` after `catch`")?;
        while matches!(
            self.peek(),
            Some(Tok::Ident(_) | Tok::Var(_) | Tok::Punct(b'|'))
        ) {
            self.at += 1;
        }
        self.expect(Tok::Punct(b')'), "`)` closing the `catch`")?;
        self.block(true)?;
        if self.is_keyword("catch") || self.is_keyword("finally") {
            return Err(refusal(
                self.line(),
                "more than one `catch`, or a `finally`",
            ));
        }
        Ok(())
    }

    fn branch(&mut self) -> Result<(), Refusal> {
        match self.peek() {
            Some(Tok::Punct(b'{')) => self.block(true),
            _ => self.statement(true),
        }
    }

    fn block(&mut self, reporting: bool) -> Result<(), Refusal> {
        self.expect(Tok::Punct(b'{'), "`{`")?;
        while self.peek() != Some(&Tok::Punct(b'}')) {
            if self.done() {
                return Err(refusal(self.line(), "a block that is never closed"));
            }
            self.statement(reporting)?;
        }
        self.at += 1;
        Ok(())
    }

    /// `a [. b …] [or|and|\|\||&& c]`.
    fn expr(&mut self) -> Result<Expr, Refusal> {
        let mut expr = self.unary()?;
        while self.peek() == Some(&Tok::Punct(b'.')) {
            self.at += 1;
            self.unary()?;
            expr = Expr::Concat;
        }
        if self.is_keyword("or") || self.is_keyword("and") || self.peek() == Some(&Tok::Logical) {
            self.at += 1;
            let rest = self.expr()?;
            expr = Expr::Or(Box::new(expr), Box::new(rest));
        }
        Ok(expr)
    }

    fn unary(&mut self) -> Result<Expr, Refusal> {
        match self.peek() {
            // `@` only silences warnings.
            Some(Tok::Punct(b'@')) => {
                self.at += 1;
                self.unary()
            }
            Some(Tok::Punct(b'!')) => {
                self.at += 1;
                self.unary()?;
                Ok(Expr::Not)
            }
            _ => {
                let mut expr = self.primary()?;
                while self.peek() == Some(&Tok::Arrow) {
                    self.at += 1;
                    let line = self.line();
                    let Some(Tok::Ident(name)) = self.next() else {
                        return Err(refusal(line, "`->` without a name"));
                    };
                    expr = match self.peek() {
                        Some(Tok::Punct(b'(')) => {
                            Expr::Method(Box::new(expr), name.to_ascii_lowercase(), self.args()?)
                        }
                        _ => Expr::Property,
                    };
                }
                Ok(expr)
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, Refusal> {
        let line = self.line();
        let unknown = || refusal(line, "an expression this reader does not follow");
        match self.next().ok_or_else(unknown)? {
            Tok::Str(text) => Ok(Expr::Str(text)),
            Tok::Interpolated => Ok(Expr::Interpolated),
            Tok::Int(number) => Ok(Expr::Int(number)),
            Tok::Var(name) => Ok(Expr::Var(name)),
            Tok::Punct(b'(') => {
                let inner = self.expr()?;
                self.expect(Tok::Punct(b')'), "`)`")?;
                Ok(inner)
            }
            Tok::Punct(b'[') => self.array(b']'),
            Tok::Ident(name) => {
                let lower = name.to_ascii_lowercase();
                if lower == "new" {
                    let Some(Tok::Ident(class)) = self.next() else {
                        return Err(unknown());
                    };
                    let args = match self.peek() {
                        Some(Tok::Punct(b'(')) => self.args()?,
                        _ => Vec::new(),
                    };
                    return Ok(Expr::New(class.to_ascii_lowercase(), args));
                }
                if lower == "array" && self.peek() == Some(&Tok::Punct(b'(')) {
                    self.at += 1;
                    return self.array(b')');
                }
                match self.peek() {
                    Some(Tok::Punct(b'(')) => Ok(Expr::Call(lower, self.args()?)),
                    Some(Tok::DoubleColon) => {
                        self.at += 1;
                        match self.next() {
                            Some(Tok::Ident(constant)) => {
                                Ok(Expr::ClassConst(format!("{name}::{constant}")))
                            }
                            _ => Err(unknown()),
                        }
                    }
                    // `die` and `exit` without parentheses.
                    _ if lower == "die" || lower == "exit" => Ok(Expr::Call(lower, Vec::new())),
                    _ => Ok(Expr::Const(name)),
                }
            }
            _ => Err(unknown()),
        }
    }

    /// `( expr, … )`.
    fn args(&mut self) -> Result<Vec<Expr>, Refusal> {
        self.expect(Tok::Punct(b'('), "`(`")?;
        let mut args = Vec::new();
        while self.peek() != Some(&Tok::Punct(b')')) {
            args.push(self.expr()?);
            match self.peek() {
                Some(Tok::Punct(b',')) => self.at += 1,
                Some(Tok::Punct(b')')) => {}
                _ => {
                    return Err(refusal(
                        self.line(),
                        "an argument this reader does not follow",
                    ))
                }
            }
        }
        self.at += 1;
        Ok(args)
    }

    /// An array literal after its opening bracket: its names, up to `close`.
    fn array(&mut self, close: u8) -> Result<Expr, Refusal> {
        let mut names = Vec::new();
        let mut depth = 0usize;
        loop {
            let line = self.line();
            match self.next() {
                None | Some(Tok::End) => {
                    return Err(refusal(line, "an array that is never closed"))
                }
                Some(Tok::Punct(b'(' | b'[')) => depth += 1,
                Some(Tok::Punct(byte @ (b')' | b']'))) => {
                    if depth == 0 {
                        return match byte == close {
                            true => Ok(Expr::Array(names)),
                            false => Err(refusal(line, "mismatched brackets")),
                        };
                    }
                    depth -= 1;
                }
                Some(Tok::Ident(name)) => names.push(name),
                Some(_) => {}
            }
        }
    }
}
