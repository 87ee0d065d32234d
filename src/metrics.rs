//! Prometheus metrics, served at `/.chat-server/metrics` in the OpenMetrics text format by the
//! `prometheus-client` crate.
//!
//! One [`Metrics`] per server instance (tests run several in one process). Counters and
//! histograms are updated where the event happens (`delivery`, `routes`); gauges that mirror
//! state owned elsewhere (the hub, the unread index, the pool, the watcher) are read when scraped,
//! so they can never drift from what they describe.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The scrape's `Content-Type`: what `prometheus-client` writes (it ends with `# EOF`).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Messages whose send time is remembered for the delivery latency. At this many (customers who
/// left for good, messages another instance delivered), those older than [`FORGET_AFTER`] are
/// forgotten; if none is, new sends are counted but not timed until some are delivered.
const MAX_TIMED: usize = 100_000;
/// How long an undelivered message's send time is kept once [`MAX_TIMED`] is reached.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// Send times of messages not yet delivered by this instance.
#[derive(Debug, Default)]
struct SentAt {
    times: HashMap<u64, Instant>,
    /// Every timed id in the order it was sent, so the oldest are forgotten from the front
    /// without a pass over the map (ids already delivered are skipped there).
    order: VecDeque<(u64, Instant)>,
}

impl SentAt {
    fn insert(&mut self, mid: u64) {
        if self.times.len() >= MAX_TIMED {
            while let Some(&(old, at)) = self.order.front() {
                if at.elapsed() < FORGET_AFTER {
                    break;
                }
                self.order.pop_front();
                self.times.remove(&old);
            }
        }
        // Delivered ids leave `times` at once and `order` only from its front: bound both.
        if self.times.len() < MAX_TIMED && self.order.len() < 2 * MAX_TIMED {
            let now = Instant::now();
            self.times.insert(mid, now);
            self.order.push_back((mid, now));
        } else if self.order.len() >= 2 * MAX_TIMED {
            self.order.retain(|(mid, _)| self.times.contains_key(mid));
        }
    }
}

/// Every metric of one instance.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    waiting_polls: Gauge,
    agent_streams: Gauge,
    waiting_requests: Gauge,
    unread_indexed: Gauge,
    pool_in_use: Gauge,
    pool_connections: Gauge,
    watcher_lag: Gauge<f64, AtomicU64>,
    sent: Counter,
    delivered: Counter,
    send_failures: Counter,
    parked_refused: Counter,
    insert_commits: Counter,
    watcher_ticks: Counter,
    watcher_queries: Counter,
    push_binlog: Gauge,
    endpoint_to_php_reloads: Counter,
    endpoint_to_php_reload_failures: Counter,
    endpoints_on_php: Gauge,
    send_seconds: Histogram,
    delivery_seconds: Histogram,
    sent_at: Mutex<SentAt>,
    created: Instant,
}

/// State owned by other modules, read at scrape time.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// Requests parked on the hub (polls and idle agent streams).
    pub waiting_requests: usize,
    /// Unread rows in the in-memory index.
    pub unread_indexed: usize,
    /// Database connections checked out of the pool.
    pub pool_in_use: usize,
    /// Database connections open (in the pool or checked out).
    pub pool_connections: usize,
    /// Time since the watcher last finished a pass over the table.
    pub watcher_lag: Duration,
}

/// Decrements a gauge when dropped: held for as long as a poll waits or a stream is open.
#[derive(Debug)]
pub struct Held(Gauge);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let counter = Counter::default();
            // prometheus-client appends `_total` to a counter's name.
            registry.register(name, help, counter.clone());
            counter
        };
        // 1 ms to about 65 s: a send is a few ms; a delivery waits for the recipient to poll.
        let histogram = |registry: &mut Registry, name: &str, help: &str| {
            let histogram = Histogram::new(exponential_buckets(0.001, 2.0, 17));
            registry.register(name, help, histogram.clone());
            histogram
        };
        let r = &mut registry;
        let waiting_polls = gauge(r, "chat_waiting_polls", "Customer long polls open now");
        let agent_streams = gauge(r, "chat_agent_streams", "Agent streams open now");
        let waiting_requests = gauge(
            r,
            "chat_waiting_requests",
            "Requests parked until a message may exist for them",
        );
        let unread_indexed = gauge(
            r,
            "chat_unread_indexed",
            "Unread rows in the in-memory index",
        );
        let pool_in_use = gauge(
            r,
            "chat_db_pool_in_use",
            "Database connections checked out of the pool",
        );
        let pool_connections = gauge(
            r,
            "chat_db_pool_connections",
            "Database connections open, idle or in use",
        );
        let watcher_lag = Gauge::<f64, AtomicU64>::default();
        r.register(
            "chat_watcher_lag_seconds",
            "Time since the watcher last finished a pass over the table",
            watcher_lag.clone(),
        );
        let sent = counter(r, "chat_messages_sent", "Messages stored by this instance");
        let delivered = counter(
            r,
            "chat_messages_delivered",
            "Messages handed to a client and committed read by this instance",
        );
        let send_failures = counter(
            r,
            "chat_send_failures",
            "Sends answered FIAL: the message was not stored",
        );
        let parked_refused = counter(
            r,
            "chat_parked_refused",
            "Polls and agent streams refused with 503 at a per-address or per-user ceiling",
        );
        let insert_commits = counter(
            r,
            "chat_insert_commits",
            "Transactions that stored sent messages: a batch of sends written together is one",
        );
        let watcher_ticks = counter(
            r,
            "chat_watcher_ticks",
            "Passes of the watcher over new rows (each is at least one query)",
        );
        let watcher_queries = counter(
            r,
            "chat_watcher_queries",
            "Queries the watcher ran: new rows, late commits, rescans",
        );
        let push_binlog = gauge(
            r,
            "chat_push_binlog",
            "1 while the binary log wakes the watcher (no polling), 0 while it ticks on its interval",
        );
        let endpoint_to_php_reloads = counter(
            r,
            "chat_endpoint_to_php_reloads",
            "SIGHUPs that re-read --endpoint-to-php-file and took its list",
        );
        let endpoint_to_php_reload_failures = counter(
            r,
            "chat_endpoint_to_php_reload_failures",
            "SIGHUPs whose --endpoint-to-php-file could not be used (the old list stayed)",
        );
        let endpoints_on_php = gauge(
            r,
            "chat_endpoints_on_php",
            "How many of the five reimplemented scripts go to PHP-FPM now",
        );
        let send_seconds = histogram(
            r,
            "chat_send_seconds",
            "Time to store one message (the INSERT and its COMMIT)",
        );
        let delivery_seconds = histogram(
            r,
            "chat_delivery_seconds",
            "From a message stored by this instance to its delivery by this instance",
        );
        Metrics {
            registry,
            waiting_polls,
            agent_streams,
            waiting_requests,
            unread_indexed,
            pool_in_use,
            pool_connections,
            watcher_lag,
            sent,
            delivered,
            send_failures,
            parked_refused,
            insert_commits,
            watcher_ticks,
            watcher_queries,
            push_binlog,
            endpoint_to_php_reloads,
            endpoint_to_php_reload_failures,
            endpoints_on_php,
            send_seconds,
            delivery_seconds,
            sent_at: Mutex::new(SentAt::default()),
            created: Instant::now(),
        }
    }

    /// A stored message: counts it, times the send, remembers when for its delivery latency.
    pub fn stored(&self, mid: u64, took: Duration) {
        self.sent.inc();
        self.send_seconds.observe(took.as_secs_f64());
        self.lock().insert(mid);
    }

    /// Transactions that stored messages, to compare with the messages stored.
    pub fn insert_commits(&self, commits: usize) {
        self.insert_commits.inc_by(commits as u64);
    }

    /// The watcher begins a pass over new rows.
    pub fn watcher_tick(&self) {
        self.watcher_ticks.inc();
    }

    /// The watcher ran a query.
    pub fn watcher_query(&self) {
        self.watcher_queries.inc();
    }

    /// What the rollback list keeps current: its good reloads, its refused ones, and how many
    /// scripts go to PHP.
    pub fn endpoint_to_php(&self) -> (Counter, Counter, Gauge) {
        (
            self.endpoint_to_php_reloads.clone(),
            self.endpoint_to_php_reload_failures.clone(),
            self.endpoints_on_php.clone(),
        )
    }

    /// The gauge the binlog follower keeps at 1 while it is live.
    pub fn push_binlog(&self) -> Gauge {
        self.push_binlog.clone()
    }

    /// A send answered `FIAL`.
    pub fn send_failed(&self, took: Duration) {
        self.send_failures.inc();
        self.send_seconds.observe(took.as_secs_f64());
    }

    /// A message handed over and committed read.
    pub fn delivered(&self, mid: u64) {
        self.delivered.inc();
        if let Some(at) = self.lock().times.remove(&mid) {
            self.delivery_seconds.observe(at.elapsed().as_secs_f64());
        }
    }

    /// Time since these metrics were created (the watcher's lag before its first pass).
    pub fn age(&self) -> Duration {
        self.created.elapsed()
    }

    /// A poll or stream refused at a parking ceiling; how many were, this one included.
    pub fn parked_refused(&self) -> u64 {
        self.parked_refused.inc() + 1
    }

    /// Counts an open customer poll until the returned guard drops.
    pub fn poll_open(&self) -> Held {
        self.waiting_polls.inc();
        Held(self.waiting_polls.clone())
    }

    /// Counts an open agent stream until the returned guard drops.
    pub fn stream_open(&self) -> Held {
        self.agent_streams.inc();
        Held(self.agent_streams.clone())
    }

    /// The text exposition, with the mirrored gauges set from `now`.
    pub fn render(&self, now: Snapshot) -> String {
        let gauge = |gauge: &Gauge, value: usize| {
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        gauge(&self.waiting_requests, now.waiting_requests);
        gauge(&self.unread_indexed, now.unread_indexed);
        gauge(&self.pool_in_use, now.pool_in_use);
        gauge(&self.pool_connections, now.pool_connections);
        self.watcher_lag.set(now.watcher_lag.as_secs_f64());
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SentAt> {
        // Single inserts and removes: a panic elsewhere cannot leave the map inconsistent.
        self.sent_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.parse().ok())
    }

    #[test]
    fn exposition_names_every_metric_the_operator_expects() {
        let metrics = Metrics::new();
        metrics.stored(7, Duration::from_millis(3));
        metrics.send_failed(Duration::from_millis(1));
        metrics.delivered(7);
        metrics.watcher_tick();
        metrics.watcher_query();
        assert_eq!(metrics.parked_refused(), 1);
        metrics.push_binlog().set(1);
        let _poll = metrics.poll_open();
        let text = metrics.render(Snapshot {
            waiting_requests: 2,
            unread_indexed: 5,
            pool_in_use: 1,
            pool_connections: 3,
            watcher_lag: Duration::from_millis(250),
        });
        assert_eq!(value(&text, "chat_waiting_polls"), Some(1.0));
        assert_eq!(value(&text, "chat_agent_streams"), Some(0.0));
        assert_eq!(value(&text, "chat_waiting_requests"), Some(2.0));
        assert_eq!(value(&text, "chat_unread_indexed"), Some(5.0));
        assert_eq!(value(&text, "chat_db_pool_in_use"), Some(1.0));
        assert_eq!(value(&text, "chat_watcher_lag_seconds"), Some(0.25));
        assert_eq!(value(&text, "chat_messages_sent_total"), Some(1.0));
        assert_eq!(value(&text, "chat_messages_delivered_total"), Some(1.0));
        assert_eq!(value(&text, "chat_send_failures_total"), Some(1.0));
        assert_eq!(value(&text, "chat_watcher_ticks_total"), Some(1.0));
        assert_eq!(value(&text, "chat_parked_refused_total"), Some(1.0));
        assert_eq!(value(&text, "chat_watcher_queries_total"), Some(1.0));
        assert_eq!(value(&text, "chat_push_binlog"), Some(1.0));
        assert_eq!(value(&text, "chat_send_seconds_count"), Some(2.0));
        assert_eq!(value(&text, "chat_delivery_seconds_count"), Some(1.0));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn send_times_stay_bounded_without_a_pass_per_send() {
        let mut sent = SentAt::default();
        for mid in 0..(MAX_TIMED as u64 + 10) {
            sent.insert(mid);
        }
        // Full of recent sends: later ones are counted elsewhere but not timed.
        assert_eq!((sent.times.len(), sent.order.len()), (MAX_TIMED, MAX_TIMED));
        // Deliveries empty the map; the order queue is compacted, not grown without end.
        sent.times.clear();
        for mid in 0..(3 * MAX_TIMED as u64) {
            sent.insert(1_000_000 + mid);
            sent.times.remove(&(1_000_000 + mid));
        }
        assert!(sent.order.len() <= 2 * MAX_TIMED, "{}", sent.order.len());
    }

    #[test]
    fn a_closed_poll_leaves_the_gauge() {
        let metrics = Metrics::new();
        drop(metrics.poll_open());
        let _stream = metrics.stream_open();
        let text = metrics.render(Snapshot {
            waiting_requests: 0,
            unread_indexed: 0,
            pool_in_use: 0,
            pool_connections: 0,
            watcher_lag: Duration::ZERO,
        });
        assert_eq!(value(&text, "chat_waiting_polls"), Some(0.0));
        assert_eq!(value(&text, "chat_agent_streams"), Some(1.0));
    }
}
