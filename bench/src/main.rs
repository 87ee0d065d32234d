//! Load generator for BENCHMARKS.md: drives any server that speaks the legacy chat's URLs (this
//! one, or the legacy PHP behind nginx) over raw HTTP/1.1 and prints one JSON line per run.
//!
//! ```text
//! cargo run --release -p chat-bench -- --target 127.0.0.1:8080 latency --rounds 30
//! cargo run --release -p chat-bench -- --target 127.0.0.1:8080 sends --seconds 10 --concurrency 16
//! cargo run --release -p chat-bench -- --target 127.0.0.1:8080 sends --concurrency 64 --keep-alive
//! cargo run --release -p chat-bench -- --target 127.0.0.1:8080 waiters --count 20000 --hold-secs 10
//! cargo run --release -p chat-bench -- --target 127.0.0.1:23380 cluster --seconds 60 --rate 40 \
//!     --customers 40 --database-url mysql://root@127.0.0.1:23301,127.0.0.1:23302/test
//! cargo run --release -p chat-bench -- --target 127.0.0.1:8080 rate --rate 2000 --customers 1000 \
//!     --seconds 10 --database-url mysql://root@127.0.0.1:3306/test
//! cargo run --release -p chat-bench -- --target 127.0.0.1:8080 stream --messages 50000 \
//!     --database-url mysql://root@127.0.0.1:3306/test
//! cargo run --release -p chat-bench -- --target 127.0.0.1:8080 other-writer --rounds 50 \
//!     --database-url mysql://root@127.0.0.1:3306/test
//! ```
//!
//! `latency --send-target` polls on `--target` and sends through another instance: the
//! cross-instance latency (the receiving instance learns of the row through its watcher).
//! `cluster` is the load of `scripts/cluster test` (see `cluster.rs`); `rate` is the same load on
//! one server with customers that poll again at once, so each message finds its poll parked, and
//! it reports latencies to the polls and to the agent stream apart. `stream` and `other-writer`
//! write rows straight into the table (see `direct.rs`).
//!
//! `waiters` opens one long poll per simulated customer, holds them (print `holding` on stderr so a
//! script can sample the server meanwhile), then sends each customer one message and measures how
//! long each took to arrive. Requests go through the compat suite's raw HTTP/1.1 client
//! (`chat_compat::http`), one connection each; `sends --keep-alive` and `rate --keep-alive` keep
//! connections open between requests instead, as browsers do (`kept.rs`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_compat::http::{build_request, find, Exchange};
use clap::{Parser, Subcommand};

mod cluster;
mod direct;
mod kept;

#[derive(Parser)]
struct Args {
    /// Server address (`host:port`).
    #[arg(long, default_value = "127.0.0.1:8080")]
    target: String,
    /// URL prefix of the site.
    #[arg(long, default_value = "")]
    base_path: String,
    /// Prefix of the simulated customers' names (a run's own, so runs do not mix).
    #[arg(long, default_value = "bench")]
    users: String,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// One customer waits; one message is sent; time until the poll answers. Repeated.
    Latency {
        #[arg(long, default_value_t = 30)]
        rounds: usize,
        /// Send through this `host:port` instead of `--target` (another instance).
        #[arg(long)]
        send_target: Option<String>,
    },
    /// Closed-loop sends (AJsendmsg.php) for a while.
    Sends {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Each client keeps its connection open between sends, as a browser does, instead of
        /// one connection per send.
        #[arg(long)]
        keep_alive: bool,
    },
    /// Many customers wait at once; then each gets one message.
    Waiters {
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 10)]
        hold_secs: u64,
        #[arg(long, default_value_t = 32)]
        send_concurrency: usize,
        /// Wake them all with one multi-row INSERT through this database instead of sends (a
        /// burst from another writer).
        #[arg(long)]
        insert_via: Option<String>,
    },
    /// Customers, an agent stream and senders at a fixed rate through a load balancer; ends
    /// with the reckoning from the table (exit status 1 when a message was lost or duplicated).
    Cluster {
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Sends per second (half to customers, half to the agent).
        #[arg(long, default_value_t = 40)]
        rate: u32,
        #[arg(long, default_value_t = 40)]
        customers: usize,
        /// Longest wait after the sends for messages still on their way.
        #[arg(long, default_value_t = 30)]
        drain_secs: u64,
        /// The database nodes (`mysql://user@host1:port1,host2:port2/db`), read at the end.
        #[arg(long)]
        database_url: String,
        /// Reported in the JSON line.
        #[arg(long, default_value_t = 3)]
        nodes: u32,
        /// Reported in the JSON line.
        #[arg(long, default_value_t = 3)]
        instances: u32,
    },
    /// The cluster load on one server: customers poll again at once, the agent stream is open,
    /// senders send at a fixed rate; latencies to polls and to the stream, and the reckoning.
    Rate {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 500)]
        rate: u32,
        #[arg(long, default_value_t = 1000)]
        customers: usize,
        /// The server's database, read at the end.
        #[arg(long)]
        database_url: String,
        /// Customers keep their connection open between polls and sends reuse open
        /// connections, as browsers do, instead of one connection per request.
        #[arg(long)]
        keep_alive: bool,
    },
    /// One agent stream; rows for it inserted straight into the table; its rate.
    Stream {
        #[arg(long, default_value_t = 50_000)]
        messages: usize,
        #[arg(long)]
        database_url: String,
    },
    /// A parked poll; a row inserted straight into the table; time until it answers. Repeated.
    OtherWriter {
        #[arg(long, default_value_t = 50)]
        rounds: usize,
        #[arg(long)]
        database_url: String,
    },
}

/// Where requests go and as whom; cheap to clone into tasks.
#[derive(Clone)]
struct Target {
    authority: String,
    base_path: String,
    users: String,
}

/// No single answer may take longer than this.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let target = Target {
        authority: args.target,
        base_path: args.base_path,
        users: args.users,
    };
    let line = match args.mode {
        Mode::Latency {
            rounds,
            send_target,
        } => latency(&target, rounds, send_target).await,
        Mode::Sends {
            seconds,
            concurrency,
            keep_alive,
        } => sends(&target, seconds, concurrency, keep_alive).await,
        Mode::Waiters {
            count,
            hold_secs,
            send_concurrency,
            insert_via,
        } => {
            let line = waiters(&target, count, hold_secs, send_concurrency, insert_via).await;
            println!("{line}");
            // A burst that measured only part of its polls must not pass for a full one.
            if line["delivered"] != count {
                eprintln!(
                    "waiters: {} of {count} polls delivered ({} refused with 503: a per-address \
                     ceiling? the server's --max-polls-per-address must exceed {count})",
                    line["delivered"], line["refused"]
                );
                std::process::exit(1);
            }
            return;
        }
        Mode::Cluster {
            seconds,
            rate,
            customers,
            drain_secs,
            database_url,
            nodes,
            instances,
        } => {
            let plan = cluster::Plan {
                seconds,
                rate: rate.max(1),
                customers: customers.max(1),
                drain_secs,
                database_url,
                nodes,
                instances,
                pause: Duration::from_secs(1),
                keep_alive: false,
            };
            let reckoning = cluster::run(&target, plan).await;
            println!("{}", reckoning.line);
            if !reckoning.passed {
                std::process::exit(1);
            }
            return;
        }
        Mode::Rate {
            seconds,
            rate,
            customers,
            database_url,
            keep_alive,
        } => {
            let plan = cluster::Plan {
                seconds,
                rate: rate.max(1),
                customers: customers.max(1),
                drain_secs: 30,
                database_url,
                nodes: 1,
                instances: 1,
                pause: Duration::ZERO,
                keep_alive,
            };
            let reckoning = cluster::run(&target, plan).await;
            let mut line = reckoning.detail;
            line["mode"] = "rate".into();
            println!("{line}");
            if !reckoning.passed {
                std::process::exit(1);
            }
            return;
        }
        Mode::Stream {
            messages,
            database_url,
        } => direct::stream_rate(&target, &database_url, messages).await,
        Mode::OtherWriter {
            rounds,
            database_url,
        } => direct::other_writer(&target, &database_url, rounds).await,
    };
    println!("{line}");
}

async fn latency(target: &Target, rounds: usize, send_target: Option<String>) -> serde_json::Value {
    let sender = Target {
        authority: send_target.unwrap_or_else(|| target.authority.clone()),
        ..target.clone()
    };
    let mut samples = Vec::new();
    for round in 0..rounds {
        let user = format!("{}l{round}", target.users);
        let poll = open_poll(target, &user).await;
        // Send at a random moment of the legacy's one-second polling cycle, so its latency is
        // sampled over the whole cycle rather than at one phase of it (at least 100 ms, so the
        // poll has reached its wait on either server).
        tokio::time::sleep(Duration::from_millis(fastrand::u64(100..1100))).await;
        let started = Instant::now();
        assert_eq!(send(&sender, &user, "ping").await, b"OK", "send failed");
        let (_, body) = answer(poll).await;
        samples.push(started.elapsed());
        assert!(
            find(&body, b"ping").is_some(),
            "unexpected poll answer {:?}",
            String::from_utf8_lossy(&body)
        );
    }
    serde_json::json!({
        "mode": "latency", "rounds": rounds, "poll_via": target.authority,
        "send_via": sender.authority, "ms": summary(&mut samples)
    })
}

async fn sends(
    target: &Target,
    seconds: u64,
    concurrency: usize,
    keep_alive: bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let target = target.clone();
        workers.spawn(async move {
            let (mut samples, mut failed) = (Vec::new(), 0usize);
            let recipient = format!("{}s{worker}", target.users);
            let mut kept = keep_alive.then(|| kept::Kept::new(&target.authority));
            while Instant::now() < deadline {
                let started = Instant::now();
                let answer = match &mut kept {
                    Some(kept) => kept
                        .request(
                            &send_request(&target, "admin", &recipient, "load", true),
                            ANSWER_TIMEOUT,
                        )
                        .await
                        .map(|(_, body)| body)
                        .unwrap_or_default(),
                    None => send(&target, &recipient, "load").await,
                };
                if answer != b"OK" {
                    failed += 1;
                }
                samples.push(started.elapsed());
            }
            (samples, failed)
        });
    }
    let (mut samples, mut failed) = (Vec::new(), 0);
    while let Some(result) = workers.join_next().await {
        let (s, f) = result.expect("worker");
        samples.extend(s);
        failed += f;
    }
    let requests = samples.len();
    serde_json::json!({
        "mode": "sends", "seconds": seconds, "concurrency": concurrency, "keep_alive": keep_alive,
        "requests": requests,
        "failed": failed, "per_second": requests as f64 / seconds as f64, "ms": summary(&mut samples)
    })
}

async fn waiters(
    target: &Target,
    count: usize,
    hold_secs: u64,
    send_concurrency: usize,
    insert_via: Option<String>,
) -> serde_json::Value {
    let opened = Instant::now();
    let mut polls = Vec::with_capacity(count);
    for i in 0..count {
        polls.push(open_poll(target, &format!("{}w{i}", target.users)).await);
    }
    let open_secs = opened.elapsed().as_secs_f64();
    eprintln!("holding {count} waiters");
    tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    eprintln!("delivering");
    // Every poll reads its answer concurrently; sends go out with bounded concurrency.
    let sent_at = Arc::new(Mutex::new(vec![None::<Instant>; count]));
    let mut readers = tokio::task::JoinSet::new();
    for (i, poll) in polls.into_iter().enumerate() {
        readers.spawn(async move {
            let (status, body) = answer(poll).await;
            (i, Instant::now(), status, find(&body, b"hello").is_some())
        });
    }
    let started = Instant::now();
    let send_failures = match insert_via {
        Some(url) => {
            let users: Vec<String> = (0..count)
                .map(|i| format!("{}w{i}", target.users))
                .collect();
            direct::insert_one_each(&url, &users, "hello").await;
            sent_at.lock().expect("lock").fill(Some(started));
            0
        }
        None => send_each(target, count, send_concurrency, &sent_at).await,
    };
    let (mut samples, mut delivered, mut refused) = (Vec::new(), 0, 0);
    let mut last_arrival = started;
    while let Some(result) = readers.join_next().await {
        let (i, arrived, status, ok) = result.expect("reader");
        refused += usize::from(status == Some(503));
        if ok {
            delivered += 1;
            last_arrival = last_arrival.max(arrived);
            if let Some(sent) = sent_at.lock().expect("lock")[i] {
                samples.push(arrived.saturating_duration_since(sent));
            }
        }
    }
    let deliver_all_secs = last_arrival.duration_since(started).as_secs_f64();
    serde_json::json!({
        "mode": "waiters", "count": count, "open_secs": open_secs, "delivered": delivered,
        "refused": refused, "send_failures": send_failures, "deliver_all_secs": deliver_all_secs,
        "ms": summary(&mut samples)
    })
}

/// Sends waiter `i` its message, `concurrency` at a time, noting when each went out; the number
/// of sends not answered `OK`.
async fn send_each(
    target: &Target,
    count: usize,
    concurrency: usize,
    sent_at: &Arc<Mutex<Vec<Option<Instant>>>>,
) -> usize {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut senders = tokio::task::JoinSet::new();
    for i in 0..count {
        let permit = semaphore.clone().acquire_owned().await.expect("semaphore");
        let (target, sent_at) = (target.clone(), sent_at.clone());
        senders.spawn(async move {
            sent_at.lock().expect("lock")[i] = Some(Instant::now());
            let ok = send(&target, &format!("{}w{i}", target.users), "hello").await == b"OK";
            drop(permit);
            ok
        });
    }
    let mut send_failures = 0;
    while let Some(ok) = senders.join_next().await {
        send_failures += usize::from(!ok.expect("sender"));
    }
    send_failures
}

async fn open_poll(target: &Target, user: &str) -> Exchange {
    let cookie = vec![("Cookie".to_owned(), format!("username={user}").into_bytes())];
    let path = format!("{}/AJ05comitajax.php", target.base_path);
    let request = build_request("GET", &path, &target.authority, &cookie, b"");
    Exchange::send(&target.authority, &request, false)
        .await
        .expect("open poll")
}

/// The page's `AJsendmsg.php` POST as `sender`, on a connection closed after it unless
/// `keep_alive`.
fn send_request(
    target: &Target,
    sender: &str,
    recipient: &str,
    content: &str,
    keep_alive: bool,
) -> Vec<u8> {
    let mut headers = vec![
        (
            "Cookie".to_owned(),
            format!("username={sender}").into_bytes(),
        ),
        (
            "Content-Type".to_owned(),
            b"application/x-www-form-urlencoded".to_vec(),
        ),
    ];
    if keep_alive {
        headers.push(("Connection".to_owned(), b"keep-alive".to_vec()));
    }
    let path = format!("{}/AJsendmsg.php", target.base_path);
    let body = format!("rec={recipient}&content={content}");
    build_request("POST", &path, &target.authority, &headers, body.as_bytes())
}

async fn send(target: &Target, recipient: &str, content: &str) -> Vec<u8> {
    let request = send_request(target, "admin", recipient, content, false);
    answer(
        Exchange::send(&target.authority, &request, false)
            .await
            .expect("send"),
    )
    .await
    .1
}

/// The whole body of an answer (empty when none came within [`ANSWER_TIMEOUT`]).
/// The response's status, if one came, and its body once complete (else empty).
async fn answer(mut exchange: Exchange) -> (Option<u16>, Vec<u8>) {
    let complete = matches!(exchange.finish(ANSWER_TIMEOUT).await, Ok(true));
    let status = exchange.head.as_ref().map(|head| head.status);
    (status, if complete { exchange.body } else { Vec::new() })
}

fn summary(samples: &mut [Duration]) -> serde_json::Value {
    samples.sort();
    let at = |q: f64| {
        if samples.is_empty() {
            return 0.0;
        }
        let index = ((samples.len() - 1) as f64 * q).round() as usize;
        samples[index].as_secs_f64() * 1000.0
    };
    serde_json::json!({ "median": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": at(1.0), "n": samples.len() })
}
