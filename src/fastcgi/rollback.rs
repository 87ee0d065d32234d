//! Which of the five reimplemented scripts go to PHP-FPM instead (the rollback), and changing that
//! while the server runs.
//!
//! `--endpoint-to-php` names scripts for the life of the process. `--endpoint-to-php-file` names
//! a file whose list is added to them: read at start-up (a bad file stops the start) and again on
//! every SIGHUP. A restart would answer every parked long poll `503`, and the legacy customer page
//! never polls again after an error, so a restart ends every open chat; a SIGHUP ends none.
//!
//! The list is one atomic byte, read once per request by the router: a request keeps the route
//! it was given when it arrived, whatever happens to the list afterwards. A poll parked on this
//! server stays parked here after its script moved to PHP, and still gets what PHP stores (the
//! watcher or the binlog sees every writer).
//!
//! A file that cannot be read or names something else than the five on SIGHUP changes nothing:
//! the old list stays and the error names the line. A good one is logged with the new list.
//! SIGHUP is handled whatever the flags, so it never ends the server.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::error::Error;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::site::Endpoint;

/// A set of the five endpoints, one bit each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Set(u8);

impl Set {
    fn bit(endpoint: Endpoint) -> u8 {
        1 << endpoint as u8
    }

    /// This set with `endpoint` in it.
    pub fn with(self, endpoint: Endpoint) -> Set {
        Set(self.0 | Set::bit(endpoint))
    }

    /// Whether `endpoint` is in it.
    pub fn contains(self, endpoint: Endpoint) -> bool {
        self.0 & Set::bit(endpoint) != 0
    }

    /// Both sets together.
    pub fn union(self, other: Set) -> Set {
        Set(self.0 | other.0)
    }

    /// The file names, in `Endpoint::NAMES` order.
    pub fn names(self) -> Vec<&'static str> {
        Endpoint::NAMES
            .into_iter()
            .filter(|name| Endpoint::named(name).is_some_and(|endpoint| self.contains(endpoint)))
            .collect()
    }
}

/// The names, comma-separated, or `none`: what the log lines show.
impl std::fmt::Display for Set {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.names().join(", ") {
            names if names.is_empty() => f.write_str("none"),
            names => f.write_str(&names),
        }
    }
}

impl FromIterator<Endpoint> for Set {
    fn from_iter<I: IntoIterator<Item = Endpoint>>(endpoints: I) -> Set {
        endpoints.into_iter().fold(Set::default(), Set::with)
    }
}

/// A line of the file that names none of the five.
#[derive(Debug, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based.
    pub number: usize,
    /// The line without its comment, trimmed.
    pub text: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}: {:?} is not one of {}",
            self.number,
            self.text,
            Endpoint::NAMES.join(", ")
        )
    }
}

/// The file's list: one script name a line; `#` starts a comment; blank lines are skipped.
pub fn parse(text: &str) -> Result<Set, BadLine> {
    let mut set = Set::default();
    for (index, line) in text.lines().enumerate() {
        let name = line.split('#').next().unwrap_or_default().trim();
        if name.is_empty() {
            continue;
        }
        match Endpoint::named(name) {
            Some(endpoint) => set = set.with(endpoint),
            None => {
                return Err(BadLine {
                    number: index + 1,
                    text: name.to_owned(),
                })
            }
        }
    }
    Ok(set)
}

/// What goes to PHP now, and where the changeable part of it comes from.
#[derive(Debug)]
pub struct ToPhp {
    /// `--endpoint-to-php`: on PHP until the process ends.
    fixed: Set,
    /// `--endpoint-to-php-file`.
    file: Option<PathBuf>,
    /// `fixed` and the file's last good list.
    current: AtomicU8,
    reloads: Counter,
    failures: Counter,
    on_php: Gauge,
}

impl ToPhp {
    /// The flag's list and the file's, read now; a file that cannot be used stops the start.
    pub fn new(fixed: Set, file: Option<PathBuf>, meters: &Metrics) -> Result<ToPhp, Error> {
        let (reloads, failures, on_php) = meters.endpoint_to_php();
        let to_php = ToPhp {
            fixed,
            file,
            current: AtomicU8::new(fixed.0),
            reloads,
            failures,
            on_php,
        };
        if let Some(path) = &to_php.file {
            let listed = read(path).map_err(|reason| {
                Error::Config(format!(
                    "--endpoint-to-php-file {}: {reason}",
                    path.display()
                ))
            })?;
            to_php.set(fixed.union(listed));
        }
        to_php.on_php.set(to_php.now().names().len() as i64);
        Ok(to_php)
    }

    /// What goes to PHP at this moment.
    pub fn now(&self) -> Set {
        // Relaxed: the byte is the whole state, nothing else is published with it.
        Set(self.current.load(Ordering::Relaxed))
    }

    /// Whether `endpoint` goes to PHP at this moment.
    pub fn takes(&self, endpoint: Endpoint) -> bool {
        self.now().contains(endpoint)
    }

    fn set(&self, set: Set) {
        self.current.store(set.0, Ordering::Relaxed);
        self.on_php.set(set.names().len() as i64);
    }

    /// Reads the file again: a good list replaces the old one, a bad one changes nothing. Both
    /// are logged, and counted (`chat_endpoint_to_php_reloads_total`, `…_reload_failures_total`).
    pub fn reload(&self) {
        let Some(path) = &self.file else {
            return;
        };
        match read(path) {
            Ok(listed) => {
                let set = self.fixed.union(listed);
                let before = self.now();
                self.set(set);
                // Counted once the list is in place: whoever sees the count sees the new list.
                self.reloads.inc();
                tracing::info!(
                    file = %path.display(),
                    to_php = %set,
                    was = %before,
                    "the endpoints that go to PHP-FPM were re-read"
                );
            }
            Err(reason) => {
                self.failures.inc();
                tracing::error!(
                    file = %path.display(),
                    %reason,
                    kept = %self.now(),
                    "the endpoint file was not used; the endpoints that go to PHP-FPM stay as they were"
                );
            }
        }
    }
}

/// Re-reads the rollback file on every SIGHUP until `stop`. The handler is installed before this
/// returns and whatever the flags, so a SIGHUP (`systemctl reload`, or one sent to the wrong
/// process) never ends the server and its parked polls; without a file it is logged and ignored.
pub fn follow_sighup(
    to_php: Option<std::sync::Arc<ToPhp>>,
    stop: Shutdown,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|err| Error::Config(format!("cannot handle SIGHUP: {err}")))?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                received = hangups.recv() => match (received, &to_php) {
                    (None, _) => return,
                    (Some(()), Some(to_php)) if to_php.file.is_some() => to_php.reload(),
                    (Some(()), _) => tracing::warn!(
                        "SIGHUP: nothing to re-read (it re-reads --endpoint-to-php-file, with --php-fpm)"
                    ),
                },
                () = stop.wait() => return,
            }
        }
    }))
}

/// The file's list, or why it cannot be used.
fn read(path: &Path) -> Result<Set, String> {
    let text = std::fs::read_to_string(path).map_err(|err| err.to_string())?;
    parse(&text).map_err(|bad| bad.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_lists_names_with_comments_and_blank_lines() {
        let text = "# rolled back on Tuesday\n\n  AJsendmsg.php  # the send\nAJ04serve.php\r\nAJsendmsg.php\n";
        let set = parse(text).expect("a good file");
        assert_eq!(set.names(), ["AJsendmsg.php", "AJ04serve.php"]);
        assert!(set.contains(Endpoint::Send) && !set.contains(Endpoint::Poll));
        assert_eq!(parse("# nothing\n\n").expect("empty"), Set::default());
        assert_eq!(Set::default().to_string(), "none");
        assert_eq!(set.to_string(), "AJsendmsg.php, AJ04serve.php");
    }

    #[test]
    fn a_bad_line_is_named_by_its_number() {
        let bad = parse("AJsendmsg.php\n\najsendmsg.php\n").expect_err("case matters, as in URLs");
        assert_eq!(
            bad,
            BadLine {
                number: 3,
                text: "ajsendmsg.php".into()
            }
        );
        assert!(bad.to_string().starts_with(
            "line 3: \"ajsendmsg.php\" is not one of AJ04custserv.php, AJ05customer.php"
        ));
        assert!(parse("AJconn.php").is_err(), "only the five");
    }

    #[test]
    fn the_flag_stays_and_the_file_comes_and_goes() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("to-php");
        std::fs::write(&file, "AJsendmsg.php\n").expect("write");
        let meters = Metrics::new();
        let fixed: Set = [Endpoint::Stream].into_iter().collect();
        let to_php = ToPhp::new(fixed, Some(file.clone()), &meters).expect("a good file");
        assert!(to_php.takes(Endpoint::Send) && to_php.takes(Endpoint::Stream));

        std::fs::write(&file, "AJ05comitajax.php\nnot-a-script.php\n").expect("write");
        to_php.reload();
        assert_eq!(
            to_php.now().names(),
            ["AJsendmsg.php", "AJ04serve.php"],
            "a bad file keeps the old list"
        );
        std::fs::remove_file(&file).expect("remove");
        to_php.reload();
        assert!(to_php.takes(Endpoint::Send), "so does a missing one");

        std::fs::write(&file, "# all back\n").expect("write");
        to_php.reload();
        assert_eq!(to_php.now().names(), ["AJ04serve.php"], "the flag's stay");
        assert_eq!(
            (
                to_php.reloads.get(),
                to_php.failures.get(),
                to_php.on_php.get()
            ),
            (1, 2, 1)
        );

        std::fs::write(&file, "AJsendmsg.php\nAJsendmsg\n").expect("write");
        let refused = ToPhp::new(Set::default(), Some(file), &meters).expect_err("bad at start");
        assert!(
            refused.to_string().contains("line 2: \"AJsendmsg\""),
            "{refused}"
        );
    }
}
