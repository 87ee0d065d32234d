//! The site's own database settings: what its `AJconn.php` connects to, read without running PHP.
//!
//! With no `--database-url`, the server uses the settings the legacy site already has, so an
//! operator who drops it onto a docroot changes nothing. The file is read, never run: a small
//! tokenizer (the inertness judge in `php::script` says whether code may print, it yields no
//! tokens) and an allowlist of statements. Whatever the allowlist does not cover is refused with
//! the line and the reason, never guessed: a variable, a constant, an `include`, a concatenation,
//! a function call, a heredoc, a conditional connection.
//!
//! What is followed, with PHP's own meaning:
//!
//! - `mysql_connect('host', 'user', 'password')` (and `mysql_pconnect`): `host:3307` is a port,
//!   `host:/path/sock` a socket; the host `localhost` means the Unix socket (mysqlnd and libmysql
//!   both do that, case-insensitively), any other host TCP on 3306 unless a port is given;
//! - `mysqli_connect('host', 'user', 'password', 'db', port, 'socket')` and `new mysqli(…)`: a
//!   `p:` prefix (persistent) is dropped; mysqli reads no port from the host (`host:3307` does not
//!   connect under PHP), so a colon in its host is refused;
//! - `new PDO('mysql:host=…;port=…;dbname=…;charset=…;unix_socket=…', 'user', 'password')`: the
//!   host defaults to `localhost`, which again means the socket; options naming `MYSQL_ATTR_*`
//!   (an init command, a second socket) are refused, other options (the error mode) ignored;
//! - `mysql_select_db('db')`, `mysqli_select_db($link, 'db')`, `->select_db('db')` and
//!   `USE db` through `mysql_query`/`mysqli_query`/`->query`/`->exec`; the last one wins;
//! - `SET NAMES cs` through the same, and `mysql_set_charset`/`mysqli_set_charset`/
//!   `->set_charset`;
//! - `or die(…)`, and `if (…) { … }` / `try { … } catch (…) { … }` whose failure branch only
//!   reports and stops (`die`, `exit`, `echo`, `print`, `trigger_error`, `error_log`), since
//!   they change nothing when the connection works; `error_reporting`,
//!   `date_default_timezone_set`, `header`, `mysqli_report` and PDO's `setAttribute` are ignored.
//!
//! The socket PHP uses for `localhost` is a compile-time default unless php.ini names one. The
//! default here is [`DEFAULT_SOCKET`], Debian's and MariaDB's packages' path (Debian builds PHP
//! with it); a site whose PHP used another one names it in the file or uses `--database-url`.
//!
//! Charset: the server speaks utf8mb4, a superset of the legacy's `SET NAMES utf8` in which emoji
//! survive; `--legacy-charset` speaks `utf8` exactly as PHP did. So a file's `utf8`, `utf8mb3` or
//! `utf8mb4` is accepted and logged, and any other charset (`gbk`, `latin1`) is refused: the
//! bytes would be stored differently than under PHP.
//!
//! The user and the password never leave [`SiteSettings`] except in [`SiteSettings::url`]: the
//! log line says where they came from, not what they are, and no refusal quotes a string literal.

use std::fmt;
use std::path::Path;

use crate::config::Config;
use crate::error::Error;
use crate::php::script::find_open_tag;

/// The file read from the site's docroot.
pub const FILE: &str = "AJconn.php";

/// The Unix socket PHP connects to for the host `localhost` when the file names none.
pub const DEFAULT_SOCKET: &str = "/run/mysqld/mysqld.sock";

/// MySQL's port when the file names none (`mysql.default_port` unset).
const DEFAULT_PORT: u16 = 3306;

/// Larger than any connection file; a bigger one is not read.
const MAX_FILE_BYTES: u64 = 256 * 1024;

/// The database URL: `--database-url` when given, else the one the site's `AJconn.php` names
/// (logged with where each setting came from, never the user or the password).
pub fn database_url(config: &Config) -> Result<String, Error> {
    if let Some(url) = &config.database_url {
        return Ok(url.clone());
    }
    let path = config.site.join(FILE);
    let settings = load(&path)?;
    tracing::info!(
        "database settings from {}: {}",
        path.display(),
        settings.describe()
    );
    tracing::info!("{}", settings.charset_note(config.legacy_charset));
    Ok(settings.url())
}

/// Reads and parses the file at `path`.
fn load(path: &Path) -> Result<SiteSettings, Error> {
    let refuse = |reason: String| {
        Error::Config(format!(
            "no --database-url (DATABASE_URL), and {}: {reason}",
            path.display()
        ))
    };
    let size = std::fs::metadata(path)
        .map_err(|err| refuse(format!("cannot be read ({err})")))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(refuse(format!("{size} bytes is too large to be read")));
    }
    let source = std::fs::read(path).map_err(|err| refuse(format!("cannot be read ({err})")))?;
    parse(&source).map_err(|refusal| {
        refuse(format!(
            "{refusal}; the settings cannot be read with certainty, so give --database-url"
        ))
    })
}

/// What the file connects to.
#[derive(Clone, PartialEq, Eq)]
pub struct SiteSettings {
    /// Where the database server is.
    pub server: Sourced<Server>,
    /// The user name.
    pub user: Sourced<String>,
    /// The password (`""` for none).
    pub password: Sourced<String>,
    /// The database selected.
    pub database: Sourced<String>,
    /// The connection charset the file sets, if any (`utf8`, `utf8mb3` or `utf8mb4`).
    pub names: Option<Sourced<String>>,
}

/// The user and the password stay out of debug output too.
impl fmt::Debug for SiteSettings {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SiteSettings")
            .field("server", &self.server)
            .field("user", &"..")
            .field("password", &"..")
            .field("database", &self.database)
            .field("names", &self.names)
            .finish()
    }
}

/// Where the database server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    /// TCP to a host name or IPv4 address.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// A Unix socket (the host was `localhost`).
    Socket {
        /// The socket's path.
        path: String,
        /// Whether the path is [`DEFAULT_SOCKET`] because the file named none.
        default: bool,
    },
}

/// A setting and the statement it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Where it was read.
    pub from: Origin,
}

/// A statement of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// 1-based line.
    pub line: usize,
    /// What set it, e.g. `mysql_connect()`.
    pub by: &'static str,
}

impl fmt::Display for Origin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "line {}, {}", self.line, self.by)
    }
}

/// Why the file cannot be read with certainty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The line of the statement, when there is one.
    pub line: Option<usize>,
    /// What is there that is not followed. Never quotes a string of the file.
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(formatter, "line {line}: {}", self.reason),
            None => formatter.write_str(&self.reason),
        }
    }
}

impl SiteSettings {
    /// The `mysql_async` URL for these settings (it holds the credentials: never log it).
    /// TCP turns `prefer_socket` off: PHP's `127.0.0.1` stays TCP (and `'user'@'127.0.0.1'`).
    pub fn url(&self) -> String {
        let mut url = format!("mysql://{}", encode(&self.user.value));
        if !self.password.value.is_empty() {
            url.push(':');
            url.push_str(&encode(&self.password.value));
        }
        let database = encode(&self.database.value);
        match &self.server.value {
            Server::Tcp { host, port } => {
                url.push_str(&format!("@{host}:{port}/{database}?prefer_socket=false"));
            }
            Server::Socket { path, .. } => {
                url.push_str(&format!("@localhost/{database}?socket={}", encode(path)));
            }
        }
        url
    }

    /// Every setting but the credentials, with where it came from.
    pub fn describe(&self) -> String {
        let server = match &self.server.value {
            Server::Tcp { host, port } => format!("TCP {host}:{port}"),
            Server::Socket {
                path,
                default: true,
            } => format!("Unix socket {path}, PHP's default for localhost"),
            Server::Socket { path, .. } => format!("Unix socket {path}"),
        };
        let names = match &self.names {
            Some(names) => format!("names {} ({})", names.value, names.from),
            None => "no names set".to_owned(),
        };
        format!(
            "server {server} ({}); database {} ({}); {names}; user and password ({}), not logged",
            self.server.from, self.database.value, self.database.from, self.password.from
        )
    }

    /// What the server speaks, and how that compares with the file.
    fn charset_note(&self, legacy_charset: bool) -> String {
        let spoken = match legacy_charset {
            true => "connection charset: the server speaks utf8 (--legacy-charset)",
            false => "connection charset: the server speaks utf8mb4 (--legacy-charset speaks utf8)",
        };
        match &self.names {
            Some(names) => format!("{spoken}; the site's file sets names {}", names.value),
            None => format!("{spoken}; the site's file sets none (PHP took the server's default)"),
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(byte));
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Reads the settings out of an `AJconn.php`, or says why it cannot.
pub fn parse(source: &[u8]) -> Result<SiteSettings, Refusal> {
    let tokens = lex(source)?;
    let mut reader = Reader {
        tokens: &tokens,
        at: 0,
        state: State::default(),
    };
    while !reader.done() {
        reader.statement(false)?;
    }
    reader.state.finish()
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A string literal with nothing to interpolate, unescaped.
    Str(String),
    /// A double-quoted string with `$` or `\` in it: its value is not followed.
    Interpolated,
    Int(u64),
    /// `$name`, without the `$`.
    Var(String),
    /// A name (function, constant, class, keyword), a leading `\` dropped.
    Ident(String),
    Punct(u8),
    /// `->`
    Arrow,
    /// `::`
    DoubleColon,
    /// `=>`
    DoubleArrow,
    /// `||` or `&&`
    Logical,
    /// `;`, or `?>` which stands for one.
    End,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    tok: Tok,
    line: usize,
}

/// Splits the code of `source` into tokens; text outside `<?php … ?>` is skipped (it is output,
/// not settings).
fn lex(source: &[u8]) -> Result<Vec<Token>, Refusal> {
    let newlines: Vec<usize> = source
        .iter()
        .enumerate()
        .filter_map(|(at, byte)| (*byte == b'\n').then_some(at))
        .collect();
    let line_at = |at: usize| newlines.partition_point(|&newline| newline < at) + 1;
    let mut tokens = Vec::new();
    let mut at = 0;
    while let Some((start, len)) = find_open_tag(&source[at..]) {
        if len == 3 {
            return Err(refusal(line_at(at + start), "`<?=` prints a value"));
        }
        at += start + len;
        at = lex_code(source, at, &line_at, &mut tokens)?;
    }
    Ok(tokens)
}

/// Lexes from `at` to `?>` or the end; returns where the text after it starts.
fn lex_code(
    source: &[u8],
    mut at: usize,
    line_at: &impl Fn(usize) -> usize,
    tokens: &mut Vec<Token>,
) -> Result<usize, Refusal> {
    let ident = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_' || byte >= 0x80;
    while at < source.len() {
        let line = line_at(at);
        let byte = source[at];
        let next = source.get(at + 1).copied();
        let mut push = |tok| tokens.push(Token { tok, line });
        match (byte, next) {
            (b' ' | b'\t' | b'\r' | b'\n', _) => at += 1,
            (b'?', Some(b'>')) => {
                push(Tok::End);
                return Ok(at + 2);
            }
            (b'#', Some(b'[')) => return Err(refusal(line, "an attribute (`#[`)")),
            (b'#', _) | (b'/', Some(b'/')) => {
                // A line comment ends at the line's end or at `?>`, which it does not swallow.
                while at < source.len() && source[at] != b'\n' && !source[at..].starts_with(b"?>") {
                    at += 1;
                }
            }
            (b'/', Some(b'*')) => match find(&source[at + 2..], b"*/") {
                Some(end) => at += 2 + end + 2,
                None => return Err(refusal(line, "a comment that is never closed")),
            },
            (b'\'', _) => {
                let (text, end) = single_quoted(source, at + 1)
                    .ok_or_else(|| refusal(line, "a string that is never closed"))?;
                push(Tok::Str(utf8(text, line)?));
                at = end;
            }
            (b'"', _) => {
                let end = find(&source[at + 1..], b"\"")
                    .map(|end| at + 1 + end)
                    .filter(|&end| !source[at + 1..end].contains(&b'\\'))
                    .ok_or_else(|| {
                        refusal(
                            line,
                            "a double-quoted string with escapes (use single quotes)",
                        )
                    })?;
                let text = &source[at + 1..end];
                push(match text.contains(&b'$') {
                    true => Tok::Interpolated,
                    false => Tok::Str(utf8(text.to_vec(), line)?),
                });
                at = end + 1;
            }
            (b'<', Some(b'<')) if source[at..].starts_with(b"<<<") => {
                return Err(refusal(line, "a heredoc or nowdoc"));
            }
            (b'`', _) => return Err(refusal(line, "a shell command in backticks")),
            (b'$', Some(first)) if ident(first) && !first.is_ascii_digit() => {
                let end = (at + 1..source.len())
                    .find(|&i| !ident(source[i]))
                    .unwrap_or(source.len());
                push(Tok::Var(utf8(source[at + 1..end].to_vec(), line)?));
                at = end;
            }
            (b'0'..=b'9', _) => {
                let end = (at..source.len())
                    .find(|&i| !ident(source[i]) && source[i] != b'.')
                    .unwrap_or(source.len());
                let number = std::str::from_utf8(&source[at..end])
                    .ok()
                    .and_then(|digits| digits.parse().ok())
                    .ok_or_else(|| refusal(line, "a number that is not a plain decimal"))?;
                push(Tok::Int(number));
                at = end;
            }
            (b'\\', Some(first)) | (first, Some(_) | None)
                if ident(first) && !first.is_ascii_digit() =>
            {
                let start = if byte == b'\\' { at + 1 } else { at };
                let end = (start..source.len())
                    .find(|&i| !ident(source[i]) && source[i] != b'\\')
                    .unwrap_or(source.len());
                push(Tok::Ident(utf8(source[start..end].to_vec(), line)?));
                at = end;
            }
            (b'-', Some(b'>')) => {
                push(Tok::Arrow);
                at += 2;
            }
            (b':', Some(b':')) => {
                push(Tok::DoubleColon);
                at += 2;
            }
            (b'=', Some(b'>')) => {
                push(Tok::DoubleArrow);
                at += 2;
            }
            (b'|', Some(b'|')) | (b'&', Some(b'&')) => {
                push(Tok::Logical);
                at += 2;
            }
            (b';', _) => {
                push(Tok::End);
                at += 1;
            }
            (byte, _) => {
                push(Tok::Punct(byte));
                at += 1;
            }
        }
    }
    Ok(at)
}

/// A single-quoted string's value (only `\'` and `\\` are escapes) and the offset after it.
fn single_quoted(source: &[u8], mut at: usize) -> Option<(Vec<u8>, usize)> {
    let mut text = Vec::new();
    while let Some(&byte) = source.get(at) {
        match (byte, source.get(at + 1)) {
            (b'\'', _) => return Some((text, at + 1)),
            (b'\\', Some(&escaped @ (b'\\' | b'\''))) => {
                text.push(escaped);
                at += 2;
            }
            (byte, _) => {
                text.push(byte);
                at += 1;
            }
        }
    }
    None
}

fn utf8(bytes: Vec<u8>, line: usize) -> Result<String, Refusal> {
    String::from_utf8(bytes).map_err(|_| refusal(line, "text that is not UTF-8"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn refusal(line: usize, reason: impl Into<String>) -> Refusal {
    Refusal {
        line: Some(line),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Expressions

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
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
    fn literal(&self, what: &str, line: usize) -> Result<&str, Refusal> {
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
    fn is_null(&self) -> bool {
        matches!(self, Expr::Const(name) if name.eq_ignore_ascii_case("null"))
    }
}

/// Statements that may fill a failure branch: they change no setting.
const REPORTING: [&str; 6] = ["die", "exit", "echo", "print", "trigger_error", "error_log"];

/// Calls that change no setting.
const IGNORED: [&str; 4] = [
    "error_reporting",
    "date_default_timezone_set",
    "header",
    "mysqli_report",
];

struct Reader<'t> {
    tokens: &'t [Token],
    at: usize,
    state: State,
}

impl Reader<'_> {
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
            None => Ok(()),
            // The last statement of a `{ … }` block needs its `;`, but `?>` is one.
            Some(Tok::End) => {
                self.at += 1;
                Ok(())
            }
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

// ---------------------------------------------------------------------------------------------
// Meaning

/// Which API the connection was opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Mysql,
    Mysqli,
    Pdo,
}

#[derive(Debug)]
struct Connection {
    api: Api,
    /// The variable holding it, if assigned.
    var: Option<String>,
    server: Sourced<Server>,
    user: Sourced<String>,
    password: Sourced<String>,
}

#[derive(Debug, Default)]
struct State {
    connection: Option<Connection>,
    database: Option<Sourced<String>>,
    names: Option<Sourced<String>>,
}

impl State {
    fn apply(&mut self, target: Option<String>, expr: Expr, line: usize) -> Result<(), Refusal> {
        let expr = match expr {
            // `… or die(…)`: the right side runs only when the left failed.
            Expr::Or(left, right) => match *right {
                Expr::Call(name, _) if REPORTING.contains(&name.as_str()) => *left,
                _ => return Err(refusal(line, "a condition this reader does not follow")),
            },
            expr => expr,
        };
        match expr {
            Expr::Call(name, args) => self.call(target, &name, &args, line),
            Expr::New(class, args) => match class.as_str() {
                "mysqli" => self.connect_mysqli(target, "new mysqli()", &args, line),
                "pdo" => self.connect_pdo(target, &args, line),
                _ => Err(refusal(
                    line,
                    format!("new {class}(), which is not followed"),
                )),
            },
            Expr::Method(object, name, args) => self.method(&object, &name, &args, line),
            _ => match target {
                Some(var) => Err(refusal(
                    line,
                    format!("sets the variable ${var}; variables are not followed"),
                )),
                None => Err(refusal(line, "a statement this reader does not follow")),
            },
        }
    }

    fn call(
        &mut self,
        target: Option<String>,
        name: &str,
        args: &[Expr],
        line: usize,
    ) -> Result<(), Refusal> {
        match name {
            "mysql_connect" | "mysql_pconnect" => self.connect_mysql(target, args, line),
            "mysqli_connect" => self.connect_mysqli(target, "mysqli_connect()", args, line),
            "mysql_query" => {
                self.link(Api::Mysql, args.get(1), name, line)?;
                self.query(args.first(), "mysql_query()", line)
            }
            "mysqli_query" => {
                self.link(Api::Mysqli, args.first(), name, line)?;
                self.query(args.get(1), "mysqli_query()", line)
            }
            "mysql_select_db" => {
                self.link(Api::Mysql, args.get(1), name, line)?;
                self.select(args.first(), "mysql_select_db()", line)
            }
            "mysqli_select_db" => {
                self.link(Api::Mysqli, args.first(), name, line)?;
                self.select(args.get(1), "mysqli_select_db()", line)
            }
            "mysql_set_charset" => {
                self.link(Api::Mysql, args.get(1), name, line)?;
                self.charset(args.first(), "mysql_set_charset()", line)
            }
            "mysqli_set_charset" => {
                self.link(Api::Mysqli, args.first(), name, line)?;
                self.charset(args.get(1), "mysqli_set_charset()", line)
            }
            "define" => Err(refusal(
                line,
                "define() makes a constant; constants are not followed",
            )),
            name if IGNORED.contains(&name) => Ok(()),
            name => Err(refusal(
                line,
                format!("calls {name}(), which is not followed"),
            )),
        }
    }

    fn method(
        &mut self,
        object: &Expr,
        name: &str,
        args: &[Expr],
        line: usize,
    ) -> Result<(), Refusal> {
        let api = self.connection.as_ref().map(|connection| connection.api);
        let apis: &[Api] = match name {
            "query" => &[Api::Mysqli, Api::Pdo],
            "exec" | "setattribute" => &[Api::Pdo],
            "select_db" | "set_charset" => &[Api::Mysqli],
            _ => {
                return Err(refusal(
                    line,
                    format!("calls ->{name}(), which is not followed"),
                ))
            }
        };
        match (object, &self.connection) {
            (Expr::Var(var), Some(connection))
                if connection.var.as_ref() == Some(var)
                    && api.is_some_and(|a| apis.contains(&a)) => {}
            _ => {
                return Err(refusal(
                    line,
                    format!("->{name}() on something other than the connection"),
                ))
            }
        }
        match name {
            "query" | "exec" => self.query(args.first(), "->query()", line),
            "select_db" => self.select(args.first(), "->select_db()", line),
            "set_charset" => self.charset(args.first(), "->set_charset()", line),
            _ => Ok(()),
        }
    }

    /// The connection argument of an ext/mysql or mysqli function: it must be the connection.
    fn link(&self, api: Api, link: Option<&Expr>, name: &str, line: usize) -> Result<(), Refusal> {
        let Some(connection) = &self.connection else {
            return Err(refusal(line, format!("{name}() before any connection")));
        };
        let same = match link {
            // ext/mysql uses the last connection opened.
            None => api == Api::Mysql,
            Some(Expr::Var(var)) => connection.var.as_ref() == Some(var),
            Some(_) => false,
        };
        match same && connection.api == api {
            true => Ok(()),
            false => Err(refusal(
                line,
                format!("{name}() on something other than the connection"),
            )),
        }
    }

    fn connect(&mut self, connection: Connection, line: usize) -> Result<(), Refusal> {
        if self.connection.is_some() {
            return Err(refusal(line, "a second connection"));
        }
        self.connection = Some(connection);
        Ok(())
    }

    /// `mysql_connect('host[:port|:/socket]', 'user', 'password'[, new_link[, flags]])`.
    fn connect_mysql(
        &mut self,
        var: Option<String>,
        args: &[Expr],
        line: usize,
    ) -> Result<(), Refusal> {
        const BY: &str = "mysql_connect()";
        let [host, user, password, ..] = args else {
            return Err(refusal(
                line,
                "mysql_connect() with fewer than three arguments takes php.ini's defaults",
            ));
        };
        let boolean = |expr: &Expr| {
            matches!(expr, Expr::Const(name)
                if name.eq_ignore_ascii_case("true") || name.eq_ignore_ascii_case("false"))
        };
        if args.len() > 3 && !boolean(&args[3]) {
            return Err(refusal(
                line,
                "mysql_connect()'s fourth argument is not true or false",
            ));
        }
        if args.len() > 4 {
            return Err(refusal(
                line,
                "mysql_connect()'s client flags are not followed",
            ));
        }
        let host = host.literal("mysql_connect()'s host", line)?;
        // ext/mysql: after the first `:`, a path is a socket, else a port (then maybe `:socket`).
        let (name, port, socket) = match host.split_once(':') {
            None => (host, None, None),
            Some((name, socket)) if socket.starts_with('/') => (name, None, Some(socket)),
            Some((name, rest)) => {
                let (port, socket) = match rest.split_once(':') {
                    Some((port, socket)) => (port, Some(socket)),
                    None => (rest, None),
                };
                let port = port.parse::<u16>().map_err(|_| {
                    refusal(
                        line,
                        "mysql_connect()'s host has a port that is not a number",
                    )
                })?;
                (name, Some(port), socket)
            }
        };
        if name.is_empty() && socket.is_none() {
            return Err(refusal(
                line,
                "mysql_connect()'s host is empty, which takes php.ini's default host",
            ));
        }
        let server = server(name, port, socket, line)?;
        let connection = Connection {
            api: Api::Mysql,
            var,
            server: Sourced {
                value: server,
                from: Origin { line, by: BY },
            },
            user: sourced(user.literal("mysql_connect()'s user", line)?, line, BY),
            password: sourced(
                password.literal("mysql_connect()'s password", line)?,
                line,
                BY,
            ),
        };
        self.connect(connection, line)
    }

    /// `mysqli_connect('host', 'user', 'password'[, 'db'[, port[, 'socket']]])`.
    fn connect_mysqli(
        &mut self,
        var: Option<String>,
        by: &'static str,
        args: &[Expr],
        line: usize,
    ) -> Result<(), Refusal> {
        let [host, user, password, rest @ ..] = args else {
            return Err(refusal(
                line,
                format!("{by} with fewer than three arguments takes php.ini's defaults"),
            ));
        };
        if rest.len() > 3 {
            return Err(refusal(line, format!("{by} with more than six arguments")));
        }
        let host = host.literal(&format!("{by}'s host"), line)?;
        let host = host.strip_prefix("p:").unwrap_or(host);
        if host.is_empty() {
            return Err(refusal(
                line,
                format!("{by}'s host is empty, which takes php.ini's default host"),
            ));
        }
        if host.contains(':') {
            return Err(refusal(
                line,
                format!("{by}'s host has a `:`, which mysqli does not read as a port"),
            ));
        }
        let optional = |index: usize, what: &str| -> Result<Option<&str>, Refusal> {
            match rest.get(index) {
                None => Ok(None),
                Some(expr) if expr.is_null() => Ok(None),
                Some(expr) => expr.literal(&format!("{by}'s {what}"), line).map(Some),
            }
        };
        let database = optional(0, "database")?;
        let port = match rest.get(1) {
            None => None,
            Some(expr) if expr.is_null() => None,
            Some(Expr::Int(port)) => Some(
                u16::try_from(*port)
                    .map_err(|_| refusal(line, format!("{by}'s port is out of range")))?,
            ),
            Some(expr) => Some(
                expr.literal(&format!("{by}'s port"), line)?
                    .parse()
                    .map_err(|_| refusal(line, format!("{by}'s port is not a number")))?,
            ),
        };
        let socket = optional(2, "socket")?;
        let connection = Connection {
            api: Api::Mysqli,
            var,
            server: Sourced {
                value: server(host, port, socket, line)?,
                from: Origin { line, by },
            },
            user: sourced(user.literal(&format!("{by}'s user"), line)?, line, by),
            password: sourced(
                password.literal(&format!("{by}'s password"), line)?,
                line,
                by,
            ),
        };
        self.connect(connection, line)?;
        if let Some(database) = database.filter(|database| !database.is_empty()) {
            self.database = Some(sourced(database, line, by));
        }
        Ok(())
    }

    /// `new PDO('mysql:key=value;…', 'user'[, 'password'[, options]])`.
    fn connect_pdo(
        &mut self,
        var: Option<String>,
        args: &[Expr],
        line: usize,
    ) -> Result<(), Refusal> {
        const BY: &str = "new PDO()";
        let [dsn, user, rest @ ..] = args else {
            return Err(refusal(line, "new PDO() without a user"));
        };
        let dsn = dsn.literal("new PDO()'s DSN", line)?;
        let Some(pairs) = dsn.strip_prefix("mysql:") else {
            return Err(refusal(line, "new PDO()'s DSN is not a `mysql:` one"));
        };
        let password = match rest.first() {
            None => "",
            Some(expr) if expr.is_null() => "",
            Some(expr) => expr.literal("new PDO()'s password", line)?,
        };
        match rest.get(1) {
            None => {}
            Some(Expr::Array(names)) => {
                if let Some(name) = names.iter().find(|name| name.contains("MYSQL_ATTR")) {
                    return Err(refusal(
                        line,
                        format!("new PDO()'s options set {name}, which is not followed"),
                    ));
                }
            }
            Some(_) => {
                return Err(refusal(
                    line,
                    "new PDO()'s options are not an array literal",
                ))
            }
        }
        if rest.len() > 2 {
            return Err(refusal(line, "new PDO() with more than four arguments"));
        }
        let (mut host, mut port, mut socket) = ("localhost", None, None);
        let (mut database, mut charset) = (None, None);
        for pair in pairs.split(';').filter(|pair| !pair.trim().is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key.trim() {
                "host" => host = value,
                "port" => {
                    port = Some(value.parse().map_err(|_| {
                        refusal(line, "new PDO()'s DSN has a port that is not a number")
                    })?);
                }
                "unix_socket" => socket = Some(value),
                "dbname" => database = Some(value),
                "charset" => charset = Some(value),
                _ => {}
            }
        }
        let connection = Connection {
            api: Api::Pdo,
            var,
            server: Sourced {
                value: server(host, port, socket, line)?,
                from: Origin { line, by: BY },
            },
            user: sourced(user.literal("new PDO()'s user", line)?, line, BY),
            password: sourced(password, line, BY),
        };
        self.connect(connection, line)?;
        if let Some(database) = database.filter(|database| !database.is_empty()) {
            self.database = Some(sourced(database, line, BY));
        }
        if let Some(charset) = charset {
            self.names = Some(sourced(names(charset, line)?, line, "new PDO()'s charset"));
        }
        Ok(())
    }

    /// `USE db` or `SET NAMES cs`; no other statement is followed.
    fn query(&mut self, sql: Option<&Expr>, by: &'static str, line: usize) -> Result<(), Refusal> {
        let sql = sql
            .ok_or_else(|| refusal(line, format!("{by} without a statement")))?
            .literal(&format!("{by}'s statement"), line)?;
        let sql = sql.trim().trim_end_matches(';').trim_end();
        let words: Vec<&str> = sql.split_whitespace().collect();
        match words.as_slice() {
            [word, database] if word.eq_ignore_ascii_case("use") => {
                let database = database.trim_matches('`');
                self.database = Some(sourced(database, line, by));
                Ok(())
            }
            [set, names_word, charset, collate @ ..]
                if set.eq_ignore_ascii_case("set")
                    && names_word.eq_ignore_ascii_case("names")
                    && (collate.is_empty()
                        || (collate.len() == 2 && collate[0].eq_ignore_ascii_case("collate"))) =>
            {
                let charset = charset.trim_matches(|c| c == '\'' || c == '"' || c == '`');
                self.names = Some(sourced(names(charset, line)?, line, by));
                Ok(())
            }
            _ => Err(refusal(
                line,
                format!("{by} runs a statement other than USE or SET NAMES"),
            )),
        }
    }

    fn select(
        &mut self,
        name: Option<&Expr>,
        by: &'static str,
        line: usize,
    ) -> Result<(), Refusal> {
        let name = name
            .ok_or_else(|| refusal(line, format!("{by} without a database")))?
            .literal(&format!("{by}'s database"), line)?;
        self.database = Some(sourced(name, line, by));
        Ok(())
    }

    fn charset(
        &mut self,
        name: Option<&Expr>,
        by: &'static str,
        line: usize,
    ) -> Result<(), Refusal> {
        let name = name
            .ok_or_else(|| refusal(line, format!("{by} without a charset")))?
            .literal(&format!("{by}'s charset"), line)?;
        self.names = Some(sourced(names(name, line)?, line, by));
        Ok(())
    }

    fn finish(self) -> Result<SiteSettings, Refusal> {
        let Some(connection) = self.connection else {
            return Err(Refusal {
                line: None,
                reason: "no mysql_connect(), mysqli_connect(), new mysqli() or new PDO()".into(),
            });
        };
        let Some(database) = self.database else {
            return Err(Refusal {
                line: None,
                reason: "no database is selected (mysql_select_db(), USE, mysqli's fourth \
                         argument or PDO's dbname)"
                    .into(),
            });
        };
        Ok(SiteSettings {
            server: connection.server,
            user: connection.user,
            password: connection.password,
            database,
            names: self.names,
        })
    }
}

fn sourced(value: &str, line: usize, by: &'static str) -> Sourced<String> {
    Sourced {
        value: value.to_owned(),
        from: Origin { line, by },
    }
}

/// Where PHP connects for a host, port and socket: `localhost` is the socket, and so is an empty
/// host beside a socket (ext/mysql's `':/path.sock'`).
fn server(
    host: &str,
    port: Option<u16>,
    socket: Option<&str>,
    line: usize,
) -> Result<Server, Refusal> {
    if host.is_empty() || host.eq_ignore_ascii_case("localhost") {
        return Ok(match socket.filter(|socket| !socket.is_empty()) {
            Some(path) => Server::Socket {
                path: path.to_owned(),
                default: false,
            },
            None => Server::Socket {
                path: DEFAULT_SOCKET.to_owned(),
                default: true,
            },
        });
    }
    let plain = host
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'-');
    if !plain {
        return Err(refusal(
            line,
            "the host is not a plain host name or IPv4 address",
        ));
    }
    Ok(Server::Tcp {
        host: host.to_owned(),
        port: port.unwrap_or(DEFAULT_PORT),
    })
}

/// A charset the server can speak for the file: utf8 (utf8mb3) or utf8mb4.
fn names(charset: &str, line: usize) -> Result<&str, Refusal> {
    match ["utf8", "utf8mb3", "utf8mb4"]
        .iter()
        .any(|known| charset.eq_ignore_ascii_case(known))
    {
        true => Ok(charset),
        false => Err(refusal(
            line,
            format!(
                "the connection charset {charset}: the server speaks utf8mb4, or utf8 with \
                 --legacy-charset, and would store other bytes than PHP did"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(source: &str) -> SiteSettings {
        parse(source.as_bytes()).unwrap_or_else(|refusal| panic!("refused: {refusal}"))
    }

    fn refused(source: &str) -> Refusal {
        let refusal = parse(source.as_bytes()).expect_err("must be refused");
        for secret in ["s3cret", "dbhost.internal"] {
            assert!(!refusal.reason.contains(secret), "{refusal}");
        }
        refusal
    }

    fn socket(path: &str, default: bool) -> Server {
        Server::Socket {
            path: path.to_owned(),
            default,
        }
    }

    #[test]
    fn the_bundled_file_is_root_on_the_default_socket_database_test() {
        let source = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/compat/legacy-site/AJconn.php"
        ))
        .expect("bundled AJconn.php");
        let settings = parse(&source).expect("the bundled file is read");
        assert_eq!(settings.server.value, socket(DEFAULT_SOCKET, true));
        assert_eq!(
            settings.server.from,
            Origin {
                line: 4,
                by: "mysql_connect()"
            }
        );
        assert_eq!(settings.user.value, "root");
        assert_eq!(settings.password.value, "");
        assert_eq!(settings.database.value, "test");
        assert_eq!(
            settings.database.from,
            Origin {
                line: 5,
                by: "mysql_query()"
            }
        );
        assert_eq!(
            settings.names.as_ref().map(|n| n.value.as_str()),
            Some("utf8")
        );
        assert_eq!(
            settings.url(),
            "mysql://root@localhost/test?socket=%2Frun%2Fmysqld%2Fmysqld.sock"
        );
    }

    #[test]
    fn mysqli_connect_with_four_arguments_and_a_failure_branch() {
        let settings = settings(
            "<?php\n\
             $conn = mysqli_connect(\"dbhost.internal\", 'chat', 's3cret', 'chatdb');\n\
             if (!$conn) {\n    die(\"Connection failed: \" . mysqli_connect_error());\n}\n\
             mysqli_set_charset($conn, 'utf8mb4');\n",
        );
        assert_eq!(
            settings.server.value,
            Server::Tcp {
                host: "dbhost.internal".into(),
                port: 3306
            }
        );
        assert_eq!(
            (
                settings.user.value.as_str(),
                settings.password.value.as_str()
            ),
            ("chat", "s3cret")
        );
        assert_eq!(settings.database.value, "chatdb");
        assert_eq!(
            settings.database.from,
            Origin {
                line: 2,
                by: "mysqli_connect()"
            }
        );
        assert_eq!(settings.names.as_ref().map(|n| n.from.line), Some(6));
        let url = settings.url();
        assert_eq!(
            url,
            "mysql://chat:s3cret@dbhost.internal:3306/chatdb?prefer_socket=false"
        );
        assert!(!settings.describe().contains("s3cret") && !settings.describe().contains("chat:"));
        assert!(!format!("{settings:?}").contains("s3cret"));
    }

    #[test]
    fn pdo_with_a_dsn_in_a_try_block() {
        let settings = settings(
            "<?php\ntry {\n  $pdo = new PDO('mysql:host=127.0.0.1;port=3307;dbname=chat;charset=utf8mb4', 'u', 'p@ss;/w');\n  \
             $pdo->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION);\n\
             } catch (PDOException $e) {\n  echo \"Connection failed: \" . $e->getMessage();\n}\n",
        );
        assert_eq!(
            settings.server.value,
            Server::Tcp {
                host: "127.0.0.1".into(),
                port: 3307
            }
        );
        assert_eq!(settings.database.value, "chat");
        assert_eq!(
            settings.names.as_ref().map(|n| n.value.as_str()),
            Some("utf8mb4")
        );
        let opts = mysql_async::Opts::from_url(&settings.url()).expect("a valid URL");
        assert_eq!(opts.user(), Some("u"));
        assert_eq!(opts.pass(), Some("p@ss;/w"));
        assert_eq!(opts.tcp_port(), 3307);
        assert!(!opts.prefer_socket());
    }

    #[test]
    fn mysql_connect_with_a_port_and_mysql_select_db() {
        let settings = settings(
            "<?php\n$link = mysql_connect('127.0.0.1:3306', 'root', 's3cret') or die('Could not connect: ' . mysql_error());\n\
             mysql_select_db('test', $link) or die('no db');\nmysql_query(\"SET NAMES 'utf8'\");\n?>\n",
        );
        assert_eq!(
            settings.server.value,
            Server::Tcp {
                host: "127.0.0.1".into(),
                port: 3306
            }
        );
        assert_eq!(
            settings.database.from,
            Origin {
                line: 3,
                by: "mysql_select_db()"
            }
        );
        assert_eq!(
            settings.names.as_ref().map(|n| n.value.as_str()),
            Some("utf8")
        );
    }

    #[test]
    fn php_host_forms_map_to_sockets_and_ports() {
        let server = |host: &str| {
            settings(&format!(
                "<?php mysql_connect('{host}','r',''); mysql_select_db('t');"
            ))
            .server
            .value
        };
        assert_eq!(server("LocalHost"), socket(DEFAULT_SOCKET, true));
        assert_eq!(
            server("localhost:/tmp/my.sock"),
            socket("/tmp/my.sock", false)
        );
        assert_eq!(server(":/tmp/my.sock"), socket("/tmp/my.sock", false));
        assert_eq!(server("localhost:3307"), socket(DEFAULT_SOCKET, true));
        assert_eq!(
            server("db:3307"),
            Server::Tcp {
                host: "db".into(),
                port: 3307
            }
        );
        let mysqli = settings("<?php $m = new mysqli('localhost','r','','t', null, '/s.sock');");
        assert_eq!(mysqli.server.value, socket("/s.sock", false));
        let pdo = settings("<?php $p = new PDO('mysql:dbname=t', 'r');");
        assert_eq!(pdo.server.value, socket(DEFAULT_SOCKET, true));
        assert_eq!(pdo.password.value, "");
    }

    #[test]
    fn variables_are_refused() {
        let refusal = refused(
            "<?php\n$host = 'dbhost.internal';\n$conn = mysql_connect($host, 'root', 's3cret');\nmysql_select_db('test');\n",
        );
        assert_eq!(refusal.line, Some(2), "{refusal}");
        assert!(refusal.reason.contains("$host"), "{refusal}");
        let refusal = refused("<?php $conn = mysql_connect('localhost', $user, 's3cret');");
        assert!(refusal.reason.contains("variable $user"), "{refusal}");
    }

    #[test]
    fn an_included_config_file_is_refused() {
        let refusal = refused("<?php\nrequire_once 'config.php';\n$conn = mysql_connect(DB_HOST, DB_USER, DB_PASS);\n");
        assert_eq!(refusal.line, Some(2));
        assert!(refusal.reason.contains("require_once"), "{refusal}");
        let refusal = refused("<?php include(__DIR__ . '/db.php');");
        assert!(refusal.reason.contains("include"), "{refusal}");
    }

    #[test]
    fn defined_constants_are_refused() {
        let refusal = refused("<?php\ndefine('DB_HOST', 'dbhost.internal');\nmysql_connect(DB_HOST, 'root', 's3cret');\n");
        assert_eq!(refusal.line, Some(2));
        assert!(refusal.reason.contains("define()"), "{refusal}");
        let refusal = refused("<?php mysql_connect(DB_HOST, 'root', 's3cret');");
        assert!(refusal.reason.contains("constant DB_HOST"), "{refusal}");
    }

    #[test]
    fn anything_else_not_a_plain_literal_is_refused() {
        for (source, says) in [
            ("<?php mysql_connect('local' . 'host', 'r', 's3cret');", "concatenation"),
            ("<?php mysql_connect(getenv('DB_HOST'), 'r', 's3cret');", "getenv()"),
            ("<?php mysql_connect(\"$h\", 'r', 's3cret');", "`$`"),
            ("<?php mysql_connect(<<<EOT\ndbhost.internal\nEOT, 'r', 's3cret');", "heredoc"),
            ("<?php mysql_connect('localhost', 'r');", "php.ini"),
            ("<?php mysql_connect('localhost','r','s3cret'); mysql_select_db('a'); mysql_connect('h','r','');", "second connection"),
            ("<?php mysql_connect('localhost','r','s3cret');", "no database"),
            ("<?php mysql_connect('localhost','r',''); mysql_query('set names gbk'); mysql_select_db('t');", "gbk"),
            ("<?php mysql_connect('localhost','r',''); mysql_query('SET sql_mode=\"\"');", "other than USE"),
            ("<?php if ($x) { mysql_connect('localhost','r','s3cret'); }", "failure branch"),
            ("<?php $m = mysqli_connect('dbhost.internal:3307','r','s3cret','t');", "`:`"),
            ("<?php $p = new PDO('mysql:host=h;dbname=t','r','s3cret',[PDO::MYSQL_ATTR_INIT_COMMAND => 'SET NAMES latin1']);", "MYSQL_ATTR_INIT_COMMAND"),
            ("<?php $m = mysqli_connect('h','r','s3cret','t'); $other->query('use x');", "other than the connection"),
            ("no code at all", "no mysql_connect"),
            ("<?php mysql_connect('', 'r', 's3cret');", "php.ini's default host"),
            ("<?php $m = mysqli_connect('h', null, 's3cret', 't');", "null"),
            ("<?php mysql_connect('h', 'r', 's3cret', FLAGS);", "true or false"),
        ] {
            let refusal = refused(source);
            assert!(refusal.reason.contains(says), "{source}: {refusal}");
        }
    }

    #[test]
    fn comments_and_text_outside_code_are_skipped() {
        let settings = settings(
            "\u{feff}<?php\n/* old: mysql_connect('x','y','z'); */\n# note\n// mysql_select_db('old');\n\
             mysql_connect('localhost','root',''); // ?>\n<?php mysql_query('use `chat`');",
        );
        assert_eq!(settings.database.value, "chat");
        assert_eq!(settings.database.from.line, 6);
    }

    #[test]
    fn the_url_encodes_what_a_url_cannot_hold() {
        let settings = settings(
            "<?php mysql_connect('localhost:/var/run/my sql.sock','us@r','a:b/c?d#e%f g'); mysql_select_db('t');",
        );
        let opts = mysql_async::Opts::from_url(&settings.url()).expect("a valid URL");
        assert_eq!(opts.user(), Some("us@r"));
        assert_eq!(opts.pass(), Some("a:b/c?d#e%f g"));
        assert_eq!(opts.socket(), Some("/var/run/my sql.sock"));
        assert_eq!(opts.db_name(), Some("t"));
    }
}
