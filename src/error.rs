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
            Error::Db(err) => write!(f, "database: {err}"),
            Error::DbTimeout => write!(f, "database: timed out"),
            Error::NotCommitted => write!(f, "database: the transaction did not commit"),
            Error::Abandoned => write!(f, "a database task ended without an answer"),
            Error::Config(msg) => write!(f, "configuration: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<mysql_async::Error> for Error {
    fn from(err: mysql_async::Error) -> Self {
        Error::Db(err)
    }
}
