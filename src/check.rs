//! `chat-server check`: the preflight an operator runs with the service's own flags before
//! switching traffic over. It connects as the service would (TLS included) and reports, in plain
//! words, what the service will find; the exit status is non-zero when anything would break it.
//!
//! Its queries are read-only diagnostics (information_schema, `EXPLAIN`, `COUNT(*)`) that the
//! service itself never runs, so they live here rather than in `store`, whose SQL is the
//! service's own path. Privileges are probed with `EXPLAIN` of the service's three kinds of
//! statement: MariaDB and MySQL check the statement's privileges for `EXPLAIN` without running
//! it, so nothing is written, even on MyISAM.

use std::fmt::Display;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use crate::config::Config;
use crate::error::Error;
use crate::site_settings;
use crate::store::dburl;

/// Columns the service reads or writes.
const REQUIRED_COLUMNS: [&str; 5] = ["mid", "rec", "pos", "content", "isread"];
/// Descriptors besides the customers' sockets: agents, the database pool, the listener, logs.
const SPARE_DESCRIPTORS: u64 = 64;
/// Length of the names the hardened mode issues (`admin` + 12 digits).
const HARDENED_NAME_LEN: u64 = 17;

/// How one finding bears on the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Note,
    Warn,
    Fail,
}

/// The findings so far.
#[derive(Debug, Default)]
struct Report {
    failures: usize,
}

impl Report {
    fn line(&mut self, level: Level, what: &str, text: impl Display) {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Note => "note",
            Level::Warn => "warn",
            Level::Fail => {
                self.failures += 1;
                "FAIL"
            }
        };
        println!("{tag}  {what}: {text}");
    }
}

/// Runs every check and prints the report; `true` when nothing would break the service.
pub async fn check(config: &Config) -> bool {
    let mut report = Report::default();
    println!("chat-server check: preflight with the given flags");
    match crate::site::Site::load(&config.site) {
        Ok(_) => report.line(Level::Ok, "site", config.site.display()),
        Err(err) => report.line(Level::Fail, "site", err),
    }
    descriptors(&mut report, config);
    let timeout = config.db_timeout().max(Duration::from_secs(5));
    match tokio::time::timeout(timeout * 4, database(&mut report, config, timeout)).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => report.line(Level::Fail, "database", err),
        Err(_) => report.line(
            Level::Fail,
            "database",
            format!("no answer within {:?}", timeout * 4),
        ),
    }
    match report.failures {
        0 => println!("result: ready; nothing found that would break the service"),
        n => println!("result: {n} problem(s) above would break the service"),
    }
    report.failures == 0
}

/// The soft limit on open files against one socket per waiting customer.
fn descriptors(report: &mut Report, config: &Config) {
    let needed = config.expected_customers + config.db_pool_max as u64 + SPARE_DESCRIPTORS;
    match open_files_limit() {
        Some(soft) if soft >= needed => report.line(
            Level::Ok,
            "file descriptors",
            format!(
                "soft limit {soft}, enough for {} customers (one socket each) plus {} spare",
                config.expected_customers,
                needed - config.expected_customers
            ),
        ),
        Some(soft) => report.line(
            Level::Fail,
            "file descriptors",
            format!(
                "soft limit {soft} < {needed} needed for {} customers (one socket each, plus the \
                 pool and spare); raise it (systemd: LimitNOFILE=, shell: ulimit -n) or lower \
                 --expected-customers",
                config.expected_customers
            ),
        ),
        None => report.line(
            Level::Warn,
            "file descriptors",
            "could not read the limit from /proc/self/limits",
        ),
    }
}

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits` (Linux), without unsafe code.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files(&limits)
}

fn parse_open_files(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(u64::MAX),
        number => number.parse().ok(),
    }
}

async fn database(report: &mut Report, config: &Config, timeout: Duration) -> Result<(), Error> {
    let opts = dburl::opts_from_url(&site_settings::database_url(config)?)?;
    let host = match opts.socket() {
        Some(socket) => format!("socket {socket}"),
        None => format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port()),
    };
    let database = opts.db_name().map(str::to_owned).unwrap_or_default();
    let mut conn = tokio::time::timeout(timeout, Conn::new(opts))
        .await
        .map_err(|_| Error::Config(format!("cannot connect to {host} within {timeout:?}")))?
        .map_err(|err| {
            // Through our own error's words, which leave out the user name.
            Error::Config(format!("cannot connect to {host}: {}", Error::Db(err)))
        })?;
    let version: Option<String> = conn.query_first("SELECT VERSION()").await?;
    let cipher: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await?;
    let tls = match cipher.map(|(_, cipher)| cipher).filter(|c| !c.is_empty()) {
        Some(cipher) => format!("TLS ({cipher})"),
        None => "no TLS".to_owned(),
    };
    report.line(
        Level::Ok,
        "database",
        format!(
            "connected to {host}, database `{database}`, server {}, {tls}",
            version.unwrap_or_default()
        ),
    );
    if !table(report, &mut conn, config).await? {
        return Ok(());
    }
    privileges(report, &mut conn).await?;
    binary_log(report, &mut conn).await?;
    let _ = conn.disconnect().await;
    Ok(())
}

/// Columns, engine, charset, rows, unread rows, and the optional index; `false` without a table.
async fn table(report: &mut Report, conn: &mut Conn, config: &Config) -> Result<bool, Error> {
    let found: Option<(String, Option<String>)> = conn
        .query_first(
            "SELECT ENGINE, TABLE_COLLATION FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'msg'",
        )
        .await?;
    let Some((engine, collation)) = found else {
        report.line(
            Level::Fail,
            "table msg",
            "not found in this database (create it with sql/schema.sql)",
        );
        return Ok(false);
    };
    let columns: Vec<Row> = conn
        .query(
            "SELECT COLUMN_NAME, COLUMN_TYPE, EXTRA, CHARACTER_MAXIMUM_LENGTH \
             FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'msg' ORDER BY ORDINAL_POSITION",
        )
        .await?;
    let columns: Vec<(String, String, String, Option<u64>)> = columns
        .into_iter()
        .filter_map(|row| mysql_async::from_row_opt(row).ok())
        .collect();
    let listed: Vec<String> = columns
        .iter()
        .map(|(name, kind, extra, _)| match extra.is_empty() {
            true => format!("{name} {kind}"),
            false => format!("{name} {kind} {extra}"),
        })
        .collect();
    let missing: Vec<&str> = REQUIRED_COLUMNS
        .iter()
        .copied()
        .filter(|wanted| !columns.iter().any(|(name, ..)| name == wanted))
        .collect();
    match missing.is_empty() {
        true => report.line(Level::Ok, "columns", listed.join(", ")),
        false => report.line(
            Level::Fail,
            "columns",
            format!("missing {} (has {})", missing.join(", "), listed.join(", ")),
        ),
    }
    let auto = columns
        .iter()
        .any(|(name, _, extra, _)| name == "mid" && extra.contains("auto_increment"));
    if missing.is_empty() && !auto {
        report.line(
            Level::Fail,
            "columns",
            "mid is not AUTO_INCREMENT: sends cannot learn their id",
        );
    }
    let hardened = config.hardened_mode();
    for (name, _, _, length) in &columns {
        let short = length.is_some_and(|length| length < HARDENED_NAME_LEN);
        if hardened && (name == "rec" || name == "pos") && short {
            report.line(
                Level::Fail,
                "columns",
                format!("{name} holds fewer than the {HARDENED_NAME_LEN} characters of the names the hardened mode issues"),
            );
        }
    }
    let engine_level = match engine.eq_ignore_ascii_case("InnoDB") {
        true => Level::Ok,
        false => Level::Warn,
    };
    let engine_text = match engine_level {
        Level::Ok => engine.clone(),
        _ => format!("{engine} (works; claims are released explicitly instead of rolled back, and a crash mid-claim can leave a message read)"),
    };
    report.line(engine_level, "engine", engine_text);
    let collation = collation.unwrap_or_default();
    match collation.starts_with("utf8mb4") {
        true => report.line(Level::Ok, "charset", collation),
        false => report.line(
            Level::Warn,
            "charset",
            format!(
                "{collation}: emoji and other 4-byte characters are refused (FIAL), as under PHP"
            ),
        ),
    }
    let rows: Option<u64> = conn.query_first("SELECT COUNT(*) FROM msg").await?;
    let unread: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM msg WHERE isread = 0")
        .await?;
    report.line(
        Level::Note,
        "rows",
        format!(
            "{} in msg, {} unread (each loaded into the in-memory unread index at start-up)",
            rows.unwrap_or(0),
            unread.unwrap_or(0)
        ),
    );
    let indexed: Vec<Row> = conn
        .query("SHOW INDEX FROM msg WHERE Column_name IN ('rec', 'isread') AND Seq_in_index = 1")
        .await?;
    let index_text = match indexed.is_empty() {
        true => "no index on rec or isread. Not required: claims use the server's in-memory unread index (a primary-key lookup each); the optional sql/migrations/001_unread_index.sql only shortens the start-up and rescan scans of a large table",
        false => "an index starts with rec or isread (not required: claims use the in-memory unread index; it shortens the start-up and rescan scans)",
    };
    report.line(Level::Note, "unread lookup", index_text);
    Ok(true)
}

/// SELECT, INSERT and UPDATE on `msg`, each probed with `EXPLAIN` (nothing runs).
async fn privileges(report: &mut Report, conn: &mut Conn) -> Result<(), Error> {
    let probes = [
        ("SELECT", "EXPLAIN SELECT * FROM msg WHERE mid = 0"),
        (
            "INSERT",
            "EXPLAIN INSERT INTO msg (rec, pos, content) VALUES ('', '', '')",
        ),
        ("UPDATE", "EXPLAIN UPDATE msg SET isread = 1 WHERE mid = 0"),
    ];
    let mut missing = Vec::new();
    for (privilege, probe) in probes {
        match conn.query_drop(probe).await {
            Ok(()) => {}
            // ER_TABLEACCESS_DENIED_ERROR, ER_COLUMNACCESS_DENIED_ERROR
            Err(mysql_async::Error::Server(err)) if err.code == 1142 || err.code == 1143 => {
                missing.push(privilege);
            }
            Err(err) => return Err(err.into()),
        }
    }
    match missing.is_empty() {
        true => report.line(Level::Ok, "privileges", "SELECT, INSERT and UPDATE on msg"),
        false => report.line(
            Level::Fail,
            "privileges",
            format!(
                "missing {} on msg (GRANT SELECT, INSERT, UPDATE ON <database>.msg TO <user>)",
                missing.join(", ")
            ),
        ),
    }
    Ok(())
}

/// Whether a binary log exists and could be followed: `--push auto` then wakes the watcher from
/// it instead of a timer. Optional either way: without it the watcher ticks on its interval.
async fn binary_log(report: &mut Report, conn: &mut Conn) -> Result<(), Error> {
    let row: Option<(i64, Option<String>)> = conn
        .query_first("SELECT @@log_bin, @@binlog_format")
        .await?;
    let (enabled, format) = row.unwrap_or((0, None));
    let format = format.unwrap_or_default();
    let text = match (enabled != 0, format.eq_ignore_ascii_case("ROW")) {
        (false, _) => "off: the watcher polls the table (--watch-interval-ms); with log_bin and binlog_format=ROW, --push auto would follow the binlog instead".to_owned(),
        (true, true) => "on, ROW format: --push auto follows it (the user also needs REPLICATION SLAVE and REPLICATION CLIENT), so the watcher runs no query while nothing is written".to_owned(),
        (true, false) => format!("on, {format} format: push needs ROW; the watcher polls the table (--watch-interval-ms)"),
    };
    report.line(Level::Note, "binary log", text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_open_files_limit_is_read_from_proc() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63704                63704                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_files(limits), Some(1024));
        assert_eq!(
            parse_open_files("Max open files unlimited unlimited files"),
            Some(u64::MAX)
        );
        assert_eq!(parse_open_files("nothing"), None);
        assert!(open_files_limit().is_some(), "this is Linux");
    }
}
