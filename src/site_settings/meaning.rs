//! What each statement means to PHP: a connection (mysql, mysqli, PDO) and where it goes, the
//! database selected, the connection charset; at the end, the settings or why there are none.

use super::reader::{Expr, IGNORED, REPORTING};
use super::{
    refusal, Origin, Refusal, Server, SiteSettings, Sourced, DEFAULT_PORT, DEFAULT_SOCKET,
};

/// What a procedural call on the connection does with its value.
#[derive(Debug, Clone, Copy)]
enum Linked {
    Query,
    Select,
    Charset,
}

/// The procedural calls on a connection: name, API, what they do, how the settings name them.
const LINKED: [(&str, Api, Linked, &str); 6] = [
    ("mysql_query", Api::Mysql, Linked::Query, "mysql_query()"),
    ("mysqli_query", Api::Mysqli, Linked::Query, "mysqli_query()"),
    (
        "mysql_select_db",
        Api::Mysql,
        Linked::Select,
        "mysql_select_db()",
    ),
    (
        "mysqli_select_db",
        Api::Mysqli,
        Linked::Select,
        "mysqli_select_db()",
    ),
    (
        "mysql_set_charset",
        Api::Mysql,
        Linked::Charset,
        "mysql_set_charset()",
    ),
    (
        "mysqli_set_charset",
        Api::Mysqli,
        Linked::Charset,
        "mysqli_set_charset()",
    ),
];

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
pub(super) struct State {
    connection: Option<Connection>,
    database: Option<Sourced<String>>,
    names: Option<Sourced<String>>,
}

impl State {
    pub(super) fn apply(
        &mut self,
        target: Option<String>,
        expr: Expr,
        line: usize,
    ) -> Result<(), Refusal> {
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

    /// A procedural call on the connection ([`LINKED`]): `mysql_*` takes the link last,
    /// `mysqli_*` first.
    fn linked_call(&mut self, name: &str, args: &[Expr], line: usize) -> Result<(), Refusal> {
        let &(_, api, action, by) = LINKED
            .iter()
            .find(|linked| linked.0 == name)
            .expect("the caller matched a LINKED name");
        let (link, value) = match api {
            Api::Mysqli => (args.first(), args.get(1)),
            _ => (args.get(1), args.first()),
        };
        self.link(api, link, name, line)?;
        match action {
            Linked::Query => self.query(value, by, line),
            Linked::Select => self.select(value, by, line),
            Linked::Charset => self.charset(value, by, line),
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
            name if LINKED.iter().any(|linked| linked.0 == name) => {
                self.linked_call(name, args, line)
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

    pub(super) fn finish(self) -> Result<SiteSettings, Refusal> {
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
