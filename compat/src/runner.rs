//! Runs one scenario against a server and its database and reports what happened: the
//! exchanges (with the outcome of every pending/await/read check) and the final `msg` table.
//! The recorder and the replay use this same code, so both sides are driven identically.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use mysql_async::prelude::Queryable;
use tokio::time::Instant;

use crate::http::{self, Exchange};
use crate::scenario::{CellValue, Request, Scenario, Step, DEFAULT_AWAIT_MS, DEFAULT_PENDING_MS};
use crate::CompatError;

/// Where to run a scenario: the server's base URL and the database its `msg` table lives in.
#[derive(Debug, Clone)]
pub struct Target {
    /// e.g. `http://127.0.0.1:8089` (a path prefix is allowed).
    pub base_url: String,
    /// mysql:// URL of the database holding `msg`; the runner drops and recreates the table.
    pub database_url: String,
}

/// The outcome of one check made on an exchange, in step order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// `pending`: true when the request was still without a response body at the deadline.
    Pending(bool),
    /// `request`/`await`: true when the complete response arrived in time.
    Complete(bool),
    /// `read`: true when the body reached `messages` `</script>` tags in time.
    Read {
        /// The number asked for.
        messages: usize,
        /// Whether it was reached.
        reached: bool,
    },
}

/// A response as far as the scenario read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedResponse {
    /// e.g. `HTTP/1.1`.
    pub version: String,
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header lines in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The complete body, or for a stream the body up to the last `read` step's cut.
    pub body: Vec<u8>,
    /// False for a stream that was cut after some messages.
    pub complete: bool,
}

/// One request of a scenario and what came back.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeRecord {
    /// The request's id in the scenario.
    pub id: String,
    /// Request method.
    pub method: String,
    /// Absolute URL the request went to.
    pub url: String,
    /// Header lines as sent, in order.
    pub request_headers: Vec<(String, Vec<u8>)>,
    /// Body as sent.
    pub request_body: Vec<u8>,
    /// When the request was sent.
    pub started: SystemTime,
    /// Milliseconds until the last byte the scenario read.
    pub elapsed_ms: f64,
    /// What was read; None when the scenario never waited for it (or nothing came).
    pub response: Option<RecordedResponse>,
    /// Outcome of every check on this exchange, in order.
    pub checks: Vec<Check>,
}

/// The final contents of `msg`: `SELECT * ... ORDER BY mid`, values as MySQL's text protocol
/// returned them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDump {
    /// Column names in table order.
    pub columns: Vec<String>,
    /// Rows in `mid` order.
    pub rows: Vec<Vec<CellValue>>,
}

/// Everything observed while running a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Scenario name.
    pub scenario: String,
    /// Exchanges in the order their requests were sent.
    pub exchanges: Vec<ExchangeRecord>,
    /// The table after the last step.
    pub table: TableDump,
}

struct Live {
    exchange: Exchange,
    start: Instant,
    /// Body length kept in the record (the cut of the last `read`).
    kept: Option<usize>,
    /// Record only a digest of the body.
    digest: bool,
}

/// Runs `scenario` against `target`: [`prepare`] then [`run_prepared`]. HTTP and check
/// failures are part of the outcome; only problems with the scenario itself, the database or
/// connecting are errors.
pub async fn run_scenario(scenario: &Scenario, target: &Target) -> Result<Outcome, CompatError> {
    prepare(scenario, &target.database_url).await?;
    run_prepared(scenario, target).await
}

/// Creates the scenario's `msg` table (dropping any old one) and inserts its initial rows.
/// Separate from [`run_prepared`] so a server that checks the table at start-up can be started
/// in between.
pub async fn prepare(scenario: &Scenario, database_url: &str) -> Result<(), CompatError> {
    scenario.validate()?;
    with_pool(database_url, |pool| async move {
        let mut conn = pool.get_conn().await.map_err(db_err("connect"))?;
        prepare_table(&mut conn, scenario).await
    })
    .await
}

/// Runs the steps of `scenario` against `target`, whose table [`prepare`] has set up, and
/// reads the final table.
pub async fn run_prepared(scenario: &Scenario, target: &Target) -> Result<Outcome, CompatError> {
    scenario.validate()?;
    let (authority, prefix) = http::split_base_url(&target.base_url)?;
    with_pool(&target.database_url, |pool| async move {
        run_with_pool(scenario, &authority, &prefix, &pool).await
    })
    .await
}

async fn with_pool<T, F, Fut>(database_url: &str, f: F) -> Result<T, CompatError>
where
    F: FnOnce(mysql_async::Pool) -> Fut,
    Fut: std::future::Future<Output = Result<T, CompatError>>,
{
    let opts = mysql_async::Opts::from_url(database_url)
        .map_err(|e| CompatError::Db(format!("database URL: {e}")))?;
    let pool = mysql_async::Pool::new(opts);
    let result = f(pool.clone()).await;
    // Disconnect even on error so no connection outlives the scenario's database.
    let _ = pool.disconnect().await;
    result
}

async fn run_with_pool(
    scenario: &Scenario,
    authority: &str,
    prefix: &str,
    pool: &mysql_async::Pool,
) -> Result<Outcome, CompatError> {
    let mut conn = pool.get_conn().await.map_err(db_err("connect"))?;

    let mut records: Vec<ExchangeRecord> = Vec::new();
    let mut live: HashMap<String, Live> = HashMap::new();
    for step in &scenario.steps {
        match step {
            Step::Request(req) | Step::Open(req) => {
                let (record, exchange) = send(req, authority, prefix).await?;
                records.push(record);
                let mut entry = Live {
                    exchange,
                    start: Instant::now(),
                    kept: None,
                    digest: req.digest_body,
                };
                if let Step::Request(_) = step {
                    let timeout = Duration::from_millis(req.timeout_ms.unwrap_or(DEFAULT_AWAIT_MS));
                    let done = entry.exchange.finish(timeout).await?;
                    note(&mut records, &req.id, &entry, Check::Complete(done));
                }
                live.insert(req.id.clone(), entry);
            }
            Step::Sql(sql) => {
                conn.query_drop(sql.as_str())
                    .await
                    .map_err(db_err("sql step"))?;
            }
            Step::Pending { id, ms } => {
                let entry = live_entry(&mut live, id)?;
                let deadline =
                    Instant::now() + Duration::from_millis(ms.unwrap_or(DEFAULT_PENDING_MS));
                let answered = entry
                    .exchange
                    .read_until(deadline, |x| x.complete || !x.body.is_empty())
                    .await?;
                push_check(&mut records, id, Check::Pending(!answered));
            }
            Step::Await { id, ms } => {
                let entry = live_entry(&mut live, id)?;
                let done = entry
                    .exchange
                    .finish(Duration::from_millis(ms.unwrap_or(DEFAULT_AWAIT_MS)))
                    .await?;
                entry.kept = None;
                let entry = &live[id];
                note(&mut records, id, entry, Check::Complete(done));
            }
            Step::Read { id, messages, ms } => {
                let entry = live_entry(&mut live, id)?;
                let deadline =
                    Instant::now() + Duration::from_millis(ms.unwrap_or(DEFAULT_AWAIT_MS));
                let wanted = *messages;
                let reached = entry
                    .exchange
                    .read_until(deadline, |x| cut_after_messages(&x.body, wanted).is_some())
                    .await?;
                entry.kept = Some(
                    cut_after_messages(&entry.exchange.body, wanted)
                        .unwrap_or(entry.exchange.body.len()),
                );
                let entry = &live[id];
                note(
                    &mut records,
                    id,
                    entry,
                    Check::Read {
                        messages: wanted,
                        reached,
                    },
                );
            }
        }
    }
    let table = dump_table(&mut conn).await?;
    drop(conn);
    // Closing the sockets ends streams and polls still open on the server side.
    drop(live);
    Ok(Outcome {
        scenario: scenario.name.clone(),
        exchanges: records,
        table,
    })
}

fn live_entry<'a>(
    live: &'a mut HashMap<String, Live>,
    id: &str,
) -> Result<&'a mut Live, CompatError> {
    live.get_mut(id)
        .ok_or_else(|| CompatError::Scenario(format!("no open request {id:?}")))
}

/// Byte length of `body` up to and including its `n`-th `</script>`, if it has that many.
pub fn cut_after_messages(body: &[u8], n: usize) -> Option<usize> {
    const TAG: &[u8] = b"</script>";
    if n == 0 {
        return Some(0);
    }
    let mut seen = 0;
    let mut at = 0;
    while let Some(i) = http::find(&body[at..], TAG) {
        at += i + TAG.len();
        seen += 1;
        if seen == n {
            return Some(at);
        }
    }
    None
}

fn push_check(records: &mut [ExchangeRecord], id: &str, check: Check) {
    if let Some(r) = records.iter_mut().find(|r| r.id == id) {
        r.checks.push(check);
    }
}

/// Stores the response as read so far (complete, or cut by a `read`) and the check's outcome.
fn note(records: &mut [ExchangeRecord], id: &str, live: &Live, check: Check) {
    let Some(record) = records.iter_mut().find(|r| r.id == id) else {
        return;
    };
    record.checks.push(check);
    record.elapsed_ms = live.start.elapsed().as_secs_f64() * 1000.0;
    let x = &live.exchange;
    record.response = x.head.as_ref().map(|head| {
        let (body, complete) = match live.kept {
            Some(cut) if !(x.complete && cut == x.body.len()) => (x.body[..cut].to_vec(), false),
            _ if x.complete => (x.body.clone(), true),
            _ => (x.body.clone(), false),
        };
        RecordedResponse {
            version: head.version.clone(),
            status: head.status,
            reason: head.reason.clone(),
            headers: head.headers.clone(),
            body: if live.digest {
                crate::scenario::body_digest(&body)
            } else {
                body
            },
            complete,
        }
    });
}

async fn send(
    req: &Request,
    authority: &str,
    prefix: &str,
) -> Result<(ExchangeRecord, Exchange), CompatError> {
    let body = req.body_bytes()?;
    let headers = req.header_bytes()?;
    let target = format!("{prefix}{}", req.path);
    let bytes = http::build_request(&req.method, &target, authority, &headers, &body);
    let record = ExchangeRecord {
        id: req.id.clone(),
        method: req.method.clone(),
        url: format!("http://{authority}{target}"),
        request_headers: http::sent_headers(authority, &headers, &body),
        request_body: body,
        started: SystemTime::now(),
        elapsed_ms: 0.0,
        response: None,
        checks: Vec::new(),
    };
    let exchange = Exchange::send(authority, &bytes, req.method == "HEAD").await?;
    Ok((record, exchange))
}

async fn prepare_table(
    conn: &mut mysql_async::Conn,
    scenario: &Scenario,
) -> Result<(), CompatError> {
    conn.query_drop("DROP TABLE IF EXISTS msg")
        .await
        .map_err(db_err("drop msg"))?;
    for statement in scenario.table.create_statements()? {
        conn.query_drop(statement)
            .await
            .map_err(db_err("create msg"))?;
    }
    insert_rows(conn, scenario).await
}

/// Like [`prepare`], but keeps the existing `msg` table (its columns and its id counter):
/// deletes every row, moves the id counter to `next_id` and inserts the scenario's rows. For a
/// server that stays up across many cases (`chat-compat fuzz`): it follows new rows by id, so
/// ids must only grow, which recreating the table would break.
pub async fn prepare_in_place(
    scenario: &Scenario,
    database_url: &str,
    next_id: u64,
) -> Result<(), CompatError> {
    scenario.validate()?;
    with_pool(database_url, |pool| async move {
        let mut conn = pool.get_conn().await.map_err(db_err("connect"))?;
        conn.query_drop("DELETE FROM msg")
            .await
            .map_err(db_err("empty msg"))?;
        conn.query_drop(format!("ALTER TABLE msg AUTO_INCREMENT = {next_id}"))
            .await
            .map_err(db_err("move the id counter"))?;
        insert_rows(&mut conn, scenario).await
    })
    .await
}

async fn insert_rows(conn: &mut mysql_async::Conn, scenario: &Scenario) -> Result<(), CompatError> {
    for row in &scenario.rows {
        let columns: Vec<&str> = row.keys().map(String::as_str).collect();
        let marks = vec!["?"; columns.len()].join(", ");
        let sql = format!("INSERT INTO msg ({}) VALUES ({marks})", columns.join(", "));
        let mut params = Vec::new();
        for value in row.values() {
            params.push(match value.to_bytes()? {
                None => mysql_async::Value::NULL,
                Some(b) => mysql_async::Value::Bytes(b),
            });
        }
        conn.exec_drop(sql, mysql_async::Params::Positional(params))
            .await
            .map_err(db_err("insert initial row"))?;
    }
    Ok(())
}

/// Reads the whole `msg` table through the text protocol (values as the bytes MySQL sends).
///
/// A locking read: it waits for claims still committing (the server sends a message's COMMIT
/// and its bytes together, so the answer can reach us first) and reads what they committed.
pub async fn dump_table(conn: &mut mysql_async::Conn) -> Result<TableDump, CompatError> {
    let mut result = conn
        .query_iter("SELECT * FROM msg ORDER BY mid LOCK IN SHARE MODE")
        .await
        .map_err(db_err("dump msg"))?;
    let columns: Vec<String> = result
        .columns_ref()
        .iter()
        .map(|c| c.name_str().into_owned())
        .collect();
    let rows: Vec<mysql_async::Row> = result.collect().await.map_err(db_err("dump msg"))?;
    let rows = rows
        .into_iter()
        .map(|row| {
            // `Row::unwrap_raw` hands over the values (None only for one already taken).
            row.unwrap_raw()
                .into_iter()
                .map(|v| match v.unwrap_or(mysql_async::Value::NULL) {
                    mysql_async::Value::NULL => CellValue::Null,
                    mysql_async::Value::Bytes(b) => CellValue::from_bytes(Some(&b)),
                    // The text protocol only yields bytes and NULL; keep anything else readable.
                    other => CellValue::Text(other.as_sql(true)),
                })
                .collect()
        })
        .collect();
    Ok(TableDump { columns, rows })
}

fn db_err(what: &'static str) -> impl Fn(mysql_async::Error) -> CompatError {
    move |e| CompatError::Db(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_cut_counts_script_tags_from_the_start() {
        let body = b"<script>a</script><script>b</script><scr";
        assert_eq!(cut_after_messages(body, 1), Some(18));
        assert_eq!(cut_after_messages(body, 2), Some(36));
        assert_eq!(cut_after_messages(body, 3), None);
    }
}
