//! The site's own database settings: what its `AJconn.php` connects to, read without running PHP.
//!
//! With no `--database-url`, the server uses the settings the legacy site already has, so an
//! operator who drops it onto a docroot changes nothing. The file is read, never run: a small
//! tokenizer (the inertness judge in `php::script` says whether code may print, it yields no
//! tokens) and an allowlist of statements. Whatever the allowlist does not cover is refused with
//! the line and the reason, never guessed: a variable, a constant, an `include`, a concatenation,
//! a function call, a heredoc, a conditional connection.
//!
//! `lexer` makes the tokens, `reader` the statements and expressions, `meaning` what PHP does
//! with them; this file holds the settings, the URL built from them and the start-up log line.
//!
//! What is followed, with PHP's own meaning:
//!
//! - `mysql_connect('host', 'user', 'password')` (and `mysql_pconnect`): `host:3307` is a port,
//!   `host:/path/sock` a socket (`:/path/sock` too); the host `localhost` means the Unix socket,
//!   whatever port is given (mysqlnd compares the name case-insensitively), any other host TCP on
//!   3306 unless a port is given;
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
//! Also refused, as not certain: fewer than three connection arguments, `null` or an empty host
//! (php.ini's defaults), a second connection, a call on anything but the connection, SQL other
//! than `USE` and `SET NAMES`, no database selected, and what PHP itself would not compile.
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
//! log line says where they came from, not what they are, and a refusal quotes no string of the
//! file but a charset's name.

use std::fmt;
use std::path::Path;

use crate::config::Config;
use crate::error::Error;

mod lexer;
mod meaning;
mod reader;
#[cfg(test)]
mod tests;

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
    let tokens = lexer::lex(source)?;
    reader::Reader::new(&tokens).read()?.finish()
}

fn refusal(line: usize, reason: impl Into<String>) -> Refusal {
    Refusal {
        line: Some(line),
        reason: reason.into(),
    }
}
