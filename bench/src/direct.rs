//! Modes whose messages are written straight into the table, as another writer would (the legacy
//! PHP during a migration, another instance, a script): the server learns of them only through
//! its watcher, so these measure delivery alone, without the cost of `AJsendmsg.php`.
//!
//! - `stream`: one agent stream; many rows for `admin` inserted in large INSERTs; how fast the
//!   stream hands them over.
//! - `waiters --insert-via`: every parked poll woken by one row of a single INSERT.
//! - `other-writer`: one customer's poll is parked; one row is inserted; time until the poll
//!   answers. Repeated, at random moments of the watcher's cycle.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use crate::cluster::{open_stream, read_stream};
use crate::{answer, open_poll, summary, Target};

/// Rows per INSERT in `stream`.
const ROWS_PER_INSERT: usize = 1000;

/// Longest `stream` waits for its rows after the last INSERT.
const STREAM_DRAIN: Duration = Duration::from_secs(120);

/// `stream`: `messages` rows for `admin` inserted while the agent stream is open; the stream's
/// rate from the first INSERT to the last row received.
pub async fn stream_rate(
    target: &Target,
    database_url: &str,
    messages: usize,
) -> serde_json::Value {
    let prefix = format!("{}-stream-", target.users);
    let mut stream = open_stream(target).await.expect("open the agent stream");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reader_prefix = prefix.clone();
    let reader = tokio::spawn(async move {
        read_stream(&mut stream, &reader_prefix, |content, _| {
            let _ = tx.send((content, Instant::now()));
        })
        .await;
    });
    // The stream sends nothing until its first message, so give it a moment to reach its wait.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut conn = connect(database_url).await;
    let started = Instant::now();
    for chunk_start in (0..messages).step_by(ROWS_PER_INSERT) {
        let rows: Vec<String> = (chunk_start..messages.min(chunk_start + ROWS_PER_INSERT))
            .map(|i| format!("('admin', 'bench', '{prefix}{i}', 0)"))
            .collect();
        conn.query_drop(format!(
            "INSERT INTO msg (rec, pos, content, isread) VALUES {}",
            rows.join(",")
        ))
        .await
        .expect("insert rows");
    }
    let inserted_secs = started.elapsed().as_secs_f64();

    let mut seen = std::collections::HashSet::new();
    let (mut first, mut last, mut duplicated) = (None, None, 0usize);
    while seen.len() < messages {
        match tokio::time::timeout(STREAM_DRAIN, rx.recv()).await {
            Ok(Some((content, at))) => {
                first.get_or_insert(at);
                last = Some(at);
                if !seen.insert(content) {
                    duplicated += 1;
                }
            }
            _ => break,
        }
    }
    reader.abort();
    let secs = last.map_or(0.0, |last| last.duration_since(started).as_secs_f64());
    serde_json::json!({
        "mode": "stream", "messages": messages, "received": seen.len(), "duplicated": duplicated,
        "inserted_secs": inserted_secs, "all_received_secs": secs,
        "first_after_ms": first.map_or(0.0, |f| f.duration_since(started).as_secs_f64() * 1000.0),
        "per_second": if secs > 0.0 { seen.len() as f64 / secs } else { 0.0 },
    })
}

/// `other-writer`: a parked poll, a row inserted directly, time until the poll answers.
pub async fn other_writer(target: &Target, database_url: &str, rounds: usize) -> serde_json::Value {
    let mut conn = connect(database_url).await;
    let mut samples = Vec::new();
    for round in 0..rounds {
        let user = format!("{}o{round}", target.users);
        let poll = open_poll(target, &user).await;
        // A random moment of the watcher's cycle, and long enough for the poll to be parked.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(100..400))).await;
        let started = Instant::now();
        conn.exec_drop(
            "INSERT INTO msg (rec, pos, content, isread) VALUES (?, 'writer', 'direct', 0)",
            (&user,),
        )
        .await
        .expect("insert a row");
        let (_, body) = answer(poll).await;
        samples.push(started.elapsed());
        assert!(
            chat_compat::http::find(&body, b"direct").is_some(),
            "unexpected poll answer {:?}",
            String::from_utf8_lossy(&body)
        );
    }
    serde_json::json!({ "mode": "other_writer", "rounds": rounds, "ms": summary(&mut samples) })
}

/// One INSERT of one row per user (`content` for each): the burst of `waiters --insert-via`.
pub async fn insert_one_each(database_url: &str, users: &[String], content: &str) {
    let rows: Vec<String> = users
        .iter()
        .map(|user| format!("('{user}', 'writer', '{content}', 0)"))
        .collect();
    connect(database_url)
        .await
        .query_drop(format!(
            "INSERT INTO msg (rec, pos, content, isread) VALUES {}",
            rows.join(",")
        ))
        .await
        .expect("insert the burst");
}

async fn connect(database_url: &str) -> mysql_async::Conn {
    let opts = mysql_async::Opts::from_url(database_url).expect("database URL");
    mysql_async::Conn::new(opts)
        .await
        .expect("connect to the database")
}
