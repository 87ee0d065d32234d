//! The crate's one error type. Endpoints never show it to clients: they answer what PHP would
//! have answered (`FIAL`, a parked request) and log the cause.

use std::fmt;

/// Everything that can go wrong below the HTTP layer.
#[derive(Debug)]
pub enum Error {
    /// MySQL refused or failed a query, or the connection broke.
    Db(mysql_async::Error),
    /// A database operation took longer than `--db-timeout-ms`.
    DbTimeout,
    /// A transaction whose COMMIT went unanswered turned out not to have committed.
    NotCommitted,
    /// The task doing this request's database work ended without an answer (it panicked).
    Abandoned,
    /// The configuration cannot work (bad URL, unreadable site directory).
    Config(String),
}

impl Error {
    /// Whether the database certainly did not apply the statement: it answered with an error
    /// (a deadlock, a Galera certification conflict, a value too long). A timeout or a broken
    /// connection leaves the outcome unknown.
    pub fn is_definite(&self) -> bool {
        matches!(
            self,
            Error::Db(mysql_async::Error::Server(_)) | Error::NotCommitted
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Db(err) => write!(f, "database: {}", Redacted(err)),
            Error::DbTimeout => write!(f, "database: timed out"),
            Error::NotCommitted => write!(f, "database: the transaction did not commit"),
            Error::Abandoned => write!(f, "a database task ended without an answer"),
            Error::Config(msg) => write!(f, "configuration: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

/// MariaDB's "Table '…' doesn't exist".
const ER_NO_SUCH_TABLE: u16 = 1146;

/// A database error in mysql_async's words, less the user name MariaDB puts in its refusals.
pub struct Redacted<'a>(pub &'a mysql_async::Error);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            mysql_async::Error::Server(err) => {
                write!(
                    f,
                    "Server error: `ERROR {} ({}): {}'",
                    err.code,
                    err.state,
                    without_user(&err.message)
                )?;
                // A fresh database without the table is the commonest first-run mistake.
                if err.code == ER_NO_SUCH_TABLE {
                    write!(f, " (create it with sql/schema.sql)")?;
                }
                Ok(())
            }
            err => write!(f, "{err}"),
        }
    }
}

/// `message` with every `'name'@'host'` as `'…'@'host'`: MariaDB names the user in its refusals
/// ("Access denied for user 'chat'@'localhost'", "INSERT command denied to user …"), and a
/// credential never goes into a log line.
pub fn without_user(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("'@'") {
        let name_start = rest[..at].rfind('\'').map_or(0, |quote| quote + 1);
        out.push_str(&rest[..name_start]);
        out.push('…');
        out.push_str("'@'");
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    out
}

impl From<mysql_async::Error> for Error {
    fn from(err: mysql_async::Error) -> Self {
        Error::Db(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_no_user() {
        let err = Error::Db(mysql_async::Error::Server(mysql_async::ServerError {
            code: 1045,
            message: "Access denied for user 'chat'@'localhost' (using password: YES)".into(),
            state: "28000".into(),
        }));
        assert_eq!(
            err.to_string(),
            "database: Server error: `ERROR 1045 (28000): Access denied for user '…'@'localhost' \
             (using password: YES)'"
        );
        assert_eq!(
            without_user("INSERT command denied to user 'a'@'%' for table 'msg'"),
            "INSERT command denied to user '…'@'%' for table 'msg'"
        );
        assert_eq!(
            without_user("Table 'test.msg' doesn't exist"),
            "Table 'test.msg' doesn't exist"
        );
    }

    #[test]
    fn a_missing_table_says_how_to_make_it() {
        let err = Error::Db(mysql_async::Error::Server(mysql_async::ServerError {
            code: 1146,
            message: "Table 'test.msg' doesn't exist".into(),
            state: "42S02".into(),
        }));
        assert_eq!(
            err.to_string(),
            "database: Server error: `ERROR 1146 (42S02): Table 'test.msg' doesn't exist' \
             (create it with sql/schema.sql)"
        );
    }
}
