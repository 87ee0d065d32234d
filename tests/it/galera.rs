//! Exactly-once claims across the nodes of a real MariaDB Galera cluster: two instances, each
//! on its own node, both with polls parked for the same customer; rows written through a third
//! node reach both watchers at once, so both claim each row concurrently. Every row must reach
//! exactly one poll and end read.
//!
//! Needs the cluster of `scripts/cluster up`; `scripts/cluster test` runs it as
//! `TEST_MYSQL_URL=mysql://root@127.0.0.1:23301 GALERA_NODES=127.0.0.1:23301,127.0.0.1:23302,127.0.0.1:23303
//! cargo test --test galera -- --ignored`. Without `GALERA_NODES` it fails loudly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{TestDb, TestServer, DEADLINE};
use chat_compat::http::{build_request, Exchange};
use mysql_async::prelude::Queryable;
use tokio::time::Instant;

const ROWS: usize = 60;
const POLLS_PER_INSTANCE: usize = 2;

fn nodes() -> Vec<String> {
    std::env::var("GALERA_NODES")
        .expect("GALERA_NODES=host:port,host:port,host:port (scripts/cluster up) must be set")
        .split(',')
        .map(str::to_owned)
        .collect()
}

/// A customer page's polls against one instance, re-polling at once; what they received.
async fn poller(addr: String, got: Arc<Mutex<Vec<String>>>, stop: Arc<AtomicBool>) {
    let cookie = vec![("Cookie".to_owned(), b"username=bob".to_vec())];
    let request = build_request("GET", "/AJ05comitajax.php", &addr, &cookie, b"");
    while !stop.load(Ordering::Relaxed) {
        let mut poll = Exchange::send(&addr, &request, false)
            .await
            .expect("open a poll");
        if poll
            .finish(Duration::from_secs(3600))
            .await
            .unwrap_or(false)
        {
            let row: serde_json::Value =
                serde_json::from_slice(&poll.body).expect("a poll answers a JSON row");
            let content = row["content"].as_str().expect("content").to_owned();
            got.lock().expect("lock").push(content);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Galera cluster: scripts/cluster test runs it"]
async fn concurrent_claims_of_one_row_on_two_nodes_deliver_it_once() {
    let nodes = nodes();
    assert!(nodes.len() >= 3, "three nodes expected, got {nodes:?}");
    let db = TestDb::with_schema().await;
    let url = |node: &str| format!("mysql://root@{node}/{}?prefer_socket=false", db.name);
    let first = TestServer::start_on_url(&url(&nodes[0]), |_| {}).await;
    let second = TestServer::start_on_url(&url(&nodes[1]), |_| {}).await;
    let got = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut polls = tokio::task::JoinSet::new();
    for server in [&first, &second] {
        for _ in 0..POLLS_PER_INSTANCE {
            polls.spawn(poller(
                server.addr.to_string(),
                Arc::clone(&got),
                Arc::clone(&stop),
            ));
        }
    }
    first.wait_for_waiters("bob", POLLS_PER_INSTANCE).await;
    second.wait_for_waiters("bob", POLLS_PER_INSTANCE).await;

    // Another writer on a third node: both instances learn of each row by their watcher.
    let mut writer = mysql_async::Conn::from_url(url(&nodes[2]))
        .await
        .expect("connect to the third node");
    for i in 0..ROWS {
        writer
            .exec_drop(
                "INSERT INTO msg (rec, pos, content) VALUES ('bob', 'admin', ?)",
                (format!("row{i}"),),
            )
            .await
            .expect("insert");
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..60))).await;
    }
    let deadline = Instant::now() + DEADLINE * 3;
    while got.lock().expect("lock").len() < ROWS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    polls.abort_all();

    let mut counts: HashMap<String, usize> = HashMap::new();
    for content in got.lock().expect("lock").iter() {
        *counts.entry(content.clone()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(counts.len(), ROWS, "every row delivered");
    writer
        .query_drop("SET SESSION wsrep_sync_wait = 1")
        .await
        .expect("sync wait");
    let unread: u64 = writer
        .query_first("SELECT COUNT(*) FROM msg WHERE isread = 0")
        .await
        .expect("count")
        .expect("a count");
    assert_eq!(unread, 0, "every delivered row is flagged read");
    writer.disconnect().await.expect("disconnect");
    first.stop().await;
    second.stop().await;
}
