//! Load generator for BENCHMARKS.md: drives any server that speaks the legacy chat's URLs (this
//! one, or the legacy PHP behind nginx) over raw HTTP/1.1 and prints one JSON line per run.
//!
//! ```text
//! cargo run --release --example loadgen -- --target 127.0.0.1:8080 latency --rounds 30
//! cargo run --release --example loadgen -- --target 127.0.0.1:8080 sends --seconds 10 --concurrency 16
//! cargo run --release --example loadgen -- --target 127.0.0.1:8080 waiters --count 20000 --hold-secs 10
//! ```
//!
//! `waiters` opens one long poll per simulated customer, holds them (print `holding` on stderr so a
//! script can sample the server meanwhile), then sends each customer one message and measures how
//! long each took to arrive. Source addresses rotate over 127.0.0.x so more than one port range of
//! connections fits.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

#[derive(Parser)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    target: SocketAddr,
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
    },
    /// Closed-loop sends (AJsendmsg.php) for a while.
    Sends {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Many customers wait at once; then each gets one message.
    Waiters {
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 10)]
        hold_secs: u64,
        #[arg(long, default_value_t = 32)]
        send_concurrency: usize,
    },
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let line = match args.mode {
        Mode::Latency { rounds } => latency(&args, rounds).await,
        Mode::Sends {
            seconds,
            concurrency,
        } => sends(&args, seconds, concurrency).await,
        Mode::Waiters {
            count,
            hold_secs,
            send_concurrency,
        } => waiters(&args, count, hold_secs, send_concurrency).await,
    };
    println!("{line}");
}

async fn latency(args: &Args, rounds: usize) -> serde_json::Value {
    let mut samples = Vec::new();
    for round in 0..rounds {
        let user = format!("{}l{round}", args.users);
        let poll = open_poll(args, &user, 0).await;
        // Send at a random moment of the legacy's one-second polling cycle, so its latency is
        // sampled over the whole cycle rather than at one phase of it (at least 100 ms, so the
        // poll has reached its wait on either server).
        tokio::time::sleep(Duration::from_millis(fastrand::u64(100..1100))).await;
        let started = Instant::now();
        let answer = send(args, &user, "ping").await;
        assert_eq!(answer, b"OK", "send failed");
        let body = read_response(poll).await;
        samples.push(started.elapsed());
        assert!(
            contains(&body, b"ping"),
            "unexpected poll answer {:?}",
            String::from_utf8_lossy(&body)
        );
    }
    serde_json::json!({ "mode": "latency", "rounds": rounds, "ms": summary(&mut samples) })
}

async fn sends(args: &Args, seconds: u64, concurrency: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let args = Args {
            mode: Mode::Latency { rounds: 0 },
            users: args.users.clone(),
            base_path: args.base_path.clone(),
            ..*args
        };
        workers.spawn(async move {
            let mut samples = Vec::new();
            let mut failed = 0usize;
            while Instant::now() < deadline {
                let started = Instant::now();
                if send(&args, &format!("{}s{worker}", args.users), "load").await != b"OK" {
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
        "mode": "sends", "seconds": seconds, "concurrency": concurrency, "requests": requests,
        "failed": failed, "per_second": requests as f64 / seconds as f64, "ms": summary(&mut samples)
    })
}

async fn waiters(
    args: &Args,
    count: usize,
    hold_secs: u64,
    send_concurrency: usize,
) -> serde_json::Value {
    let opened = Instant::now();
    let mut polls = Vec::with_capacity(count);
    for i in 0..count {
        polls.push(open_poll(args, &format!("{}w{i}", args.users), i).await);
    }
    let open_secs = opened.elapsed().as_secs_f64();
    eprintln!("holding {count} waiters");
    tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    eprintln!("delivering");
    // Every poll reads its answer concurrently; sends go out with bounded concurrency.
    let sent_at = std::sync::Arc::new(std::sync::Mutex::new(vec![None::<Instant>; count]));
    let mut readers = tokio::task::JoinSet::new();
    for (i, poll) in polls.into_iter().enumerate() {
        readers.spawn(async move {
            let body = tokio::time::timeout(Duration::from_secs(120), read_response(poll))
                .await
                .ok();
            (
                i,
                Instant::now(),
                body.is_some_and(|b| contains(&b, b"hello")),
            )
        });
    }
    let started = Instant::now();
    let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(send_concurrency));
    let mut senders = tokio::task::JoinSet::new();
    for i in 0..count {
        let permit = semaphore.clone().acquire_owned().await.expect("semaphore");
        let args = Args {
            mode: Mode::Latency { rounds: 0 },
            users: args.users.clone(),
            base_path: args.base_path.clone(),
            ..*args
        };
        let sent_at = sent_at.clone();
        senders.spawn(async move {
            sent_at.lock().expect("lock")[i] = Some(Instant::now());
            let ok = send(&args, &format!("{}w{i}", args.users), "hello").await == b"OK";
            drop(permit);
            ok
        });
    }
    let mut send_failures = 0;
    while let Some(ok) = senders.join_next().await {
        send_failures += usize::from(!ok.expect("sender"));
    }
    let mut samples = Vec::new();
    let mut delivered = 0;
    while let Some(result) = readers.join_next().await {
        let (i, arrived, ok) = result.expect("reader");
        if ok {
            delivered += 1;
            if let Some(sent) = sent_at.lock().expect("lock")[i] {
                samples.push(arrived.saturating_duration_since(sent));
            }
        }
    }
    serde_json::json!({
        "mode": "waiters", "count": count, "open_secs": open_secs, "delivered": delivered,
        "send_failures": send_failures, "deliver_all_secs": started.elapsed().as_secs_f64(),
        "ms": summary(&mut samples)
    })
}

async fn connect(target: SocketAddr, index: usize) -> TcpStream {
    // 127.0.0.1, .2, … each give another range of ephemeral ports.
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (index / 20_000) as u8));
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(source, 0))
        .expect("bind source address");
    socket.connect(target).await.expect("connect")
}

async fn open_poll(args: &Args, user: &str, index: usize) -> TcpStream {
    let mut stream = connect(args.target, index).await;
    let request = format!(
        "GET {}/AJ05comitajax.php HTTP/1.1\r\nHost: bench\r\nCookie: username={user}\r\nConnection: close\r\n\r\n",
        args.base_path
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write poll");
    stream
}

async fn send(args: &Args, recipient: &str, content: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(args.target).await.expect("connect");
    let body = format!("rec={recipient}&content={content}");
    let request = format!(
        "POST {}/AJsendmsg.php HTTP/1.1\r\nHost: bench\r\nCookie: username=admin\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        args.base_path,
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write send");
    body_of(read_response(stream).await)
}

/// Reads until the server closes (every request says `Connection: close`).
async fn read_response(mut stream: TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    raw
}

/// The body of a close-delimited or Content-Length response (chunked is not used here).
fn body_of(raw: Vec<u8>) -> Vec<u8> {
    match raw.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => dechunk_if_needed(&raw[..end], raw[end + 4..].to_vec()),
        None => Vec::new(),
    }
}

fn dechunk_if_needed(head: &[u8], body: Vec<u8>) -> Vec<u8> {
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    if !head.contains("transfer-encoding: chunked") {
        return body;
    }
    let mut out = Vec::new();
    let mut rest = &body[..];
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..line_end]).trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
        rest = &rest[(start + size + 2).min(rest.len())..];
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
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
