//! The error of the compatibility tools: what stops them, as opposed to a difference (a result).

use std::fmt;
use std::path::{Path, PathBuf};

/// What can stop the compatibility tools (as opposed to a difference, which is a result).
#[derive(Debug)]
pub enum CompatError {
    /// A scenario file is malformed or inconsistent.
    Scenario(String),
    /// Connecting to or talking HTTP with the server failed.
    Http(String),
    /// The database could not be prepared or read.
    Db(String),
    /// A HAR or table file is malformed.
    Har(String),
    /// Reading or writing a file failed.
    Io(PathBuf, std::io::Error),
    /// Recording produced something that cannot serve as a reference.
    Recording(String),
}

impl CompatError {
    pub(crate) fn io(path: &Path, err: std::io::Error) -> CompatError {
        CompatError::Io(path.to_owned(), err)
    }
}

impl fmt::Display for CompatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompatError::Scenario(m) => write!(f, "scenario: {m}"),
            CompatError::Http(m) => write!(f, "http: {m}"),
            CompatError::Db(m) => write!(f, "database: {m}"),
            CompatError::Har(m) => write!(f, "recording file: {m}"),
            CompatError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            CompatError::Recording(m) => write!(f, "recording: {m}"),
        }
    }
}

impl std::error::Error for CompatError {}
