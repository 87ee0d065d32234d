//! `loadgen cluster`: the load `scripts/cluster test` drives through the load balancer while it
//! kills a database node and a server instance, and the reckoning at the end, read from the table.
//!
//! Customers poll like the legacy page (one `AJ05comitajax.php` at a time, the next one second
//! after an answer; after an error too, as a person reloading the page would); the agent keeps
//! one `AJ04serve.php` stream open, reopened when it ends. Senders post at a fixed rate, every
//! other message to a customer (in turn) and the rest to the agent, each with a unique content.
//! After the sending time, clients keep reading until every message answered `OK` has arrived or
//! the drain time ends. Then every message of the run is looked up in the table (through the
//! first node that answers) and counted:
//!
//! - `sent`: attempts; `sent_ok`: answered `OK`; `fial`: anything else (`FIAL`, or the load
//!   balancer's 502 when an instance died holding the request: then it may or may not be stored,
//!   and the table says which);
//! - `delivered`: distinct messages some client received; `duplicated`: received more than once;
//! - `lost`: answered `OK` but not in the table, or flagged read with no client having it;
//! - `unread`: in the table, still unread at the end.
//! - `fial_stored` (in the detail, not the line): answered other than `OK` yet in the table, each
//!   printed with its answer. A `FIAL` among them breaks the send's promise and fails the run;
//!   a 502 or no answer promised nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_compat::http::{build_request, find, Exchange};
use mysql_async::prelude::Queryable;

use crate::kept::Kept;
use crate::{send_request, summary, Target};

/// The run's shape.
pub struct Plan {
    /// Sending time.
    pub seconds: u64,
    /// Sends per second, all senders together.
    pub rate: u32,
    /// Customers polling.
    pub customers: usize,
    /// Longest wait after sending for messages still on their way.
    pub drain_secs: u64,
    /// The cluster's nodes (`mysql://user@h1:p1,h2:p2/db`), for the reckoning.
    pub database_url: String,
    /// Reported as is.
    pub nodes: u32,
    /// Reported as is.
    pub instances: u32,
    /// A customer's pause between an answer and its next poll: the page's one second in the
    /// cluster test; none when measuring delivery to a poll that is already parked.
    pub pause: Duration,
    /// Customers keep one connection for all their polls, and sends reuse idle connections, as
    /// browsers keep theirs; otherwise every request opens its own.
    pub keep_alive: bool,
}

/// The line `scripts/cluster test` prints, fields in this order.
#[derive(serde::Serialize)]
struct Summary {
    nodes: u32,
    instances: u32,
    sent: usize,
    sent_ok: usize,
    fial: usize,
    delivered: usize,
    duplicated: usize,
    lost: usize,
    unread: usize,
    p50_ms: f64,
    p99_ms: f64,
}

/// How the run went, from the clients and the table.
pub struct Reckoning {
    /// The JSON line `scripts/cluster test` prints.
    pub line: String,
    /// Something was delivered, nothing lost or delivered twice, and no stored message answered `FIAL`.
    pub passed: bool,
    /// The counts and the latencies to customers' polls and to the agent stream apart.
    pub detail: serde_json::Value,
}

/// What clients received: content to when it arrived and through which instance.
#[derive(Default)]
struct Received {
    at: Mutex<HashMap<String, Vec<(Instant, String)>>>,
}

impl Received {
    fn note(&self, content: String, upstream: String) {
        self.at
            .lock()
            .expect("received lock")
            .entry(content)
            .or_default()
            .push((Instant::now(), upstream));
    }
}

/// The instance that answered, as the load balancer names it (`X-Chat-Upstream`), if it does.
fn upstream(exchange: &Exchange) -> String {
    exchange
        .head
        .as_ref()
        .and_then(|head| head.values("X-Chat-Upstream").next())
        .map(|value| String::from_utf8_lossy(value).into_owned())
        .unwrap_or_default()
}

/// One send: its content, when it went out, whether it went to the agent, and its answer once
/// it came.
struct Sent {
    content: String,
    at: Instant,
    to_agent: bool,
    outcome: Option<Answer>,
}

/// How a send was answered.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Ok,
    /// `FIAL`, another body, an error status, or no answer: what it was, for the report.
    Other(String),
}

/// Longest a single send may take before it counts as not answered.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a customer's poll waits: as long as the run (its end aborts it).
const POLL_WAIT: Duration = Duration::from_secs(3600);
/// Pause of the legacy page after an error before it tries again.
const PAGE_PAUSE: Duration = Duration::from_secs(1);

/// Runs the load and the reckoning.
pub async fn run(target: &Target, plan: Plan) -> Reckoning {
    let prefix = format!("{}-", target.users);
    let received = Arc::new(Received::default());
    let stop = Arc::new(AtomicBool::new(false));
    let customers: Vec<String> = (0..plan.customers)
        .map(|i| format!("{}c{i}", target.users))
        .collect();
    let mut clients = tokio::task::JoinSet::new();
    for name in &customers {
        clients.spawn(customer(
            target.clone(),
            name.clone(),
            prefix.clone(),
            plan.pause,
            plan.keep_alive,
            received.clone(),
            stop.clone(),
        ));
    }
    clients.spawn(agent(
        target.clone(),
        prefix.clone(),
        received.clone(),
        stop.clone(),
    ));

    // Sends at a fixed rate, each in its own task so a slow answer does not slow the rate.
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let idle: Arc<Mutex<Vec<Kept>>> = Arc::default();
    let mut senders = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(plan.rate)));
    let until = Instant::now() + Duration::from_secs(plan.seconds);
    let mut seq = 0usize;
    while Instant::now() < until {
        tick.tick().await;
        let content = format!("{prefix}{seq}");
        let to_agent = !seq.is_multiple_of(2);
        let (recipient, sender) = if !to_agent {
            (
                customers[(seq / 2) % customers.len()].clone(),
                "admin".to_owned(),
            )
        } else {
            let customer = customers[(seq / 2) % customers.len()].clone();
            ("admin".to_owned(), customer)
        };
        let index = {
            let mut sent = sent.lock().expect("sent lock");
            sent.push(Sent {
                content: content.clone(),
                at: Instant::now(),
                to_agent,
                outcome: None,
            });
            sent.len() - 1
        };
        let (target, sent) = (target.clone(), sent.clone());
        let idle = plan.keep_alive.then(|| idle.clone());
        senders.spawn(async move {
            let answer = match idle {
                Some(idle) => send_kept(&target, &idle, &sender, &recipient, &content).await,
                None => send_as(&target, &sender, &recipient, &content).await,
            };
            sent.lock().expect("sent lock")[index].outcome = Some(answer);
        });
        seq += 1;
    }
    while senders.join_next().await.is_some() {}
    eprintln!("loadgen: {seq} sent; draining");

    // Wait for what is on its way.
    let drain_until = Instant::now() + Duration::from_secs(plan.drain_secs);
    while Instant::now() < drain_until {
        let missing = {
            let sent = sent.lock().expect("sent lock");
            let received = received.at.lock().expect("received lock");
            sent.iter()
                .filter(|s| s.outcome == Some(Answer::Ok) && !received.contains_key(&s.content))
                .count()
        };
        if missing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    // Parked polls and the stream have nothing left to receive; cut them.
    clients.abort_all();
    while clients.join_next().await.is_some() {}

    let table = read_table(&plan.database_url, &prefix).await;
    let sent = sent.lock().expect("sent lock");
    let received = received.at.lock().expect("received lock");
    let (mut sent_ok, mut fial, mut delivered, mut duplicated, mut lost, mut unread) =
        (0, 0, 0, 0, 0, 0);
    let (mut fial_stored, mut broken_fial) = (0, 0);
    let (mut samples, mut to_polls, mut to_stream) = (Vec::new(), Vec::new(), Vec::new());
    for Sent {
        content,
        at,
        to_agent,
        outcome,
    } in sent.iter()
    {
        let ok = *outcome == Some(Answer::Ok);
        if ok {
            sent_ok += 1;
        } else {
            fial += 1;
        }
        let arrivals = received.get(content).map_or(&[][..], Vec::as_slice);
        if let Some((first, _)) = arrivals.first() {
            delivered += 1;
            let latency = first.saturating_duration_since(*at);
            samples.push(latency);
            if *to_agent {
                to_stream.push(latency);
            } else {
                to_polls.push(latency);
            }
        }
        if arrivals.len() > 1 {
            duplicated += 1;
            let via: Vec<String> = arrivals
                .iter()
                .map(|(when, upstream)| {
                    format!("{upstream} after {:?}", when.saturating_duration_since(*at))
                })
                .collect();
            eprintln!(
                "loadgen: {content} arrived {} times: {via:?}",
                arrivals.len()
            );
        }
        match table.get(content) {
            None if ok => {
                lost += 1;
                eprintln!("loadgen: {content} answered OK but is not in the table");
            }
            Some(true) if arrivals.is_empty() => {
                lost += 1;
                eprintln!("loadgen: {content} is flagged read but no client got it");
            }
            Some(false) => unread += 1,
            Some(_) if !ok => {
                fial_stored += 1;
                if *outcome == Some(Answer::Other("FIAL".to_owned())) {
                    broken_fial += 1;
                }
                eprintln!("loadgen: {content} is stored but its send was answered {outcome:?}");
            }
            _ => {}
        }
    }
    let all = summary(&mut samples);
    let ms = |key: &str| all[key].as_f64().unwrap_or(0.0);
    let passed = lost == 0 && duplicated == 0 && broken_fial == 0 && delivered > 0;
    let one_decimal = |ms: f64| (ms * 10.0).round() / 10.0;
    let line = serde_json::to_string(&Summary {
        nodes: plan.nodes,
        instances: plan.instances,
        sent: sent.len(),
        sent_ok,
        fial,
        delivered,
        duplicated,
        lost,
        unread,
        p50_ms: one_decimal(ms("median")),
        p99_ms: one_decimal(ms("p99")),
    })
    .expect("a plain struct serializes");
    let detail = serde_json::json!({
        "rate": plan.rate, "keep_alive": plan.keep_alive, "seconds": plan.seconds, "customers": plan.customers,
        "sent": sent.len(), "sent_ok": sent_ok, "delivered": delivered,
        "duplicated": duplicated, "lost": lost, "unread": unread, "fial_stored": fial_stored,
        "poll_ms": summary(&mut to_polls), "stream_ms": summary(&mut to_stream),
    });
    Reckoning {
        line,
        passed,
        detail,
    }
}

/// One customer page: a poll at a time, `pause` between them.
async fn customer(
    target: Target,
    name: String,
    prefix: String,
    pause: Duration,
    keep_alive: bool,
    received: Arc<Received>,
    stop: Arc<AtomicBool>,
) {
    let mut cookie = vec![("Cookie".to_owned(), format!("username={name}").into_bytes())];
    if keep_alive {
        cookie.push(("Connection".to_owned(), b"keep-alive".to_vec()));
    }
    let path = format!("{}/AJ05comitajax.php", target.base_path);
    let request = build_request("GET", &path, &target.authority, &cookie, b"");
    let mut kept = keep_alive.then(|| Kept::new(&target.authority));
    while !stop.load(Ordering::Relaxed) {
        // The poll waits as long as nothing comes; the run's end aborts it.
        let answer = match &mut kept {
            Some(kept) => kept
                .request(&request, POLL_WAIT)
                .await
                .map(|(status, body)| (status, body, String::new()))
                .ok(),
            None => poll_once(&target, &request).await,
        };
        match answer {
            Some((200, body, upstream)) => {
                if let Some(content) = content_of(&body) {
                    if content.starts_with(&prefix) {
                        received.note(content, upstream);
                    }
                }
                tokio::time::sleep(pause).await;
            }
            _ => tokio::time::sleep(PAGE_PAUSE).await,
        }
    }
}

/// One poll on its own connection: status, body and upstream once it is whole.
async fn poll_once(target: &Target, request: &[u8]) -> Option<(u16, Vec<u8>, String)> {
    let mut poll = Exchange::send(&target.authority, request, false)
        .await
        .ok()?;
    if !poll.finish(POLL_WAIT).await.unwrap_or(false) {
        return None;
    }
    let status = poll.head.as_ref().map_or(0, |head| head.status);
    let upstream = upstream(&poll);
    Some((status, std::mem::take(&mut poll.body), upstream))
}

/// The agent page's iframe: one stream, reopened when it ends.
async fn agent(target: Target, prefix: String, received: Arc<Received>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = open_stream(&target).await else {
            tokio::time::sleep(PAGE_PAUSE).await;
            continue;
        };
        read_stream(&mut stream, &prefix, |content, upstream| {
            received.note(content, upstream)
        })
        .await;
        tokio::time::sleep(PAGE_PAUSE).await;
    }
}

/// Opens the agent page's stream (`AJ04serve.php` as `admin`).
pub async fn open_stream(target: &Target) -> Result<Exchange, chat_compat::CompatError> {
    let cookie = vec![("Cookie".to_owned(), b"username=admin".to_vec())];
    let path = format!("{}/AJ04serve.php", target.base_path);
    let request = build_request("GET", &path, &target.authority, &cookie, b"");
    Exchange::send(&target.authority, &request, false).await
}

/// Reads an agent stream until it ends, giving `note` the content of every message of this run
/// (starting with `prefix`) as soon as its `<script>` is complete.
pub async fn read_stream(
    stream: &mut Exchange,
    prefix: &str,
    mut note: impl FnMut(String, String),
) {
    const OPEN: &[u8] = b"parent.window.comet(";
    const CLOSE: &[u8] = b");</script>";
    let mut parsed = 0;
    loop {
        let seen = parsed;
        let more = stream
            .read_until(
                tokio::time::Instant::now() + Duration::from_secs(3600),
                |x| find(&x.body[seen..], CLOSE).is_some(),
            )
            .await;
        // Every complete `<script>` so far.
        while let Some(close) = find(&stream.body[parsed..], CLOSE) {
            let script = &stream.body[parsed..parsed + close];
            let content =
                find(script, OPEN).and_then(|open| content_of(&script[open + OPEN.len()..]));
            if let Some(content) = content.filter(|c| c.starts_with(prefix)) {
                note(content, upstream(stream));
            }
            parsed += close + CLOSE.len();
        }
        if !matches!(more, Ok(true)) {
            return;
        }
    }
}

/// The `content` of a `json_encode`d row.
fn content_of(json: &[u8]) -> Option<String> {
    let row: serde_json::Value = serde_json::from_slice(json).ok()?;
    row.get("content")?.as_str().map(str::to_owned)
}

/// Every row of the run: content to whether it is flagged read, through the first node that
/// answers, after it applied every write committed anywhere (`wsrep_sync_wait`).
async fn read_table(url: &str, prefix: &str) -> HashMap<String, bool> {
    let (scheme_user, rest) = url.split_once('@').expect("database URL with user@");
    let (hosts, tail) = rest.split_once('/').expect("database URL with /db");
    for host in hosts.split(',') {
        let node = format!("{scheme_user}@{host}/{tail}");
        let Ok(opts) = mysql_async::Opts::from_url(&node) else {
            continue;
        };
        let rows = async {
            let mut conn = mysql_async::Conn::new(opts).await?;
            conn.query_drop("SET SESSION wsrep_sync_wait = 1").await?;
            let rows: Vec<(String, i64)> = conn
                .exec(
                    "SELECT content, isread FROM msg WHERE content LIKE CONCAT(?, '%')",
                    (prefix,),
                )
                .await?;
            conn.disconnect().await?;
            Ok::<_, mysql_async::Error>(rows)
        };
        match tokio::time::timeout(Duration::from_secs(10), rows).await {
            Ok(Ok(rows)) => {
                return rows
                    .into_iter()
                    .map(|(content, isread)| (content, isread != 0))
                    .collect()
            }
            Ok(Err(err)) => eprintln!("loadgen: reading the table through {host}: {err}"),
            Err(_) => eprintln!("loadgen: reading the table through {host}: timed out"),
        }
    }
    panic!("no database node answered; cannot count the run");
}

/// One send as `sender` on an idle kept connection (or a new one), given back after an answer.
async fn send_kept(
    target: &Target,
    idle: &Mutex<Vec<Kept>>,
    sender: &str,
    recipient: &str,
    content: &str,
) -> Answer {
    let taken = idle.lock().expect("idle lock").pop();
    let mut kept = taken.unwrap_or_else(|| Kept::new(&target.authority));
    let request = send_request(target, sender, recipient, content, true);
    let answer = match kept.request(&request, SEND_TIMEOUT).await {
        Ok((200, body)) if body == b"OK" => Answer::Ok,
        Ok((200, body)) => Answer::Other(String::from_utf8_lossy(&body).into_owned()),
        Ok((status, _)) => Answer::Other(format!("status {status}")),
        Err(err) => Answer::Other(format!("no whole answer: {err}")),
    };
    // A connection that failed is closed inside; the Kept reconnects on its next request.
    idle.lock().expect("idle lock").push(kept);
    answer
}

/// One send as `sender`, through the load balancer; the answer's body (empty when none).
async fn send_as(target: &Target, sender: &str, recipient: &str, content: &str) -> Answer {
    let request = send_request(target, sender, recipient, content, false);
    let Ok(mut exchange) = Exchange::send(&target.authority, &request, false).await else {
        return Answer::Other("no connection".to_owned());
    };
    let finished = exchange.finish(SEND_TIMEOUT).await;
    let status = exchange.head.as_ref().map_or(0, |head| head.status);
    match finished {
        Ok(true) if status == 200 && exchange.body == b"OK" => Answer::Ok,
        Ok(true) if status == 200 => {
            Answer::Other(String::from_utf8_lossy(&exchange.body).into_owned())
        }
        Ok(true) => Answer::Other(format!("status {status} via {}", upstream(&exchange))),
        _ => Answer::Other(format!("no whole answer in {SEND_TIMEOUT:?}")),
    }
}
