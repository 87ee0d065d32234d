//! Push from the binlog (`--push`), on a real MariaDB with the binary log on: a private mariadbd
//! the tests start themselves (the shared server's log_bin stays off), one shared by the tests
//! of this file, each test in its own database; the restart test has one of its own.

use std::time::Duration;

use crate::support::mariadb::PrivateMariaDb;
use crate::support::{
    eventually, get_request, within, ResponseReader, TestDb, TestServer, DEADLINE,
};
use clap::Parser;
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// The private binlog-enabled server most tests share.
static SHARED: OnceCell<PrivateMariaDb> = OnceCell::const_new();

async fn shared() -> &'static PrivateMariaDb {
    SHARED.get_or_init(PrivateMariaDb::start).await
}

fn insert(rec: &str, content: &str) -> String {
    format!("INSERT INTO msg (rec, pos, content) VALUES ('{rec}', 'other', '{content}')")
}

/// A gauge or counter from the server's metrics.
async fn metric(server: &TestServer, name: &str) -> u64 {
    let text = server.get("/.chat-server/metrics", None).await.text();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

/// Waits until the metric `name` reads `value`.
async fn wait_for_metric(server: &TestServer, name: &str, value: u64) {
    eventually(DEADLINE, &format!("{name} to read {value}"), || async {
        match metric(server, name).await {
            read if read == value => Ok(()),
            read => Err(read.to_string()),
        }
    })
    .await
}

/// Parks a poll for `rec`, has another writer insert a row for it, and returns how long the poll
/// took to answer after the INSERT.
async fn other_writer_wakes(
    server: &TestServer,
    db: &TestDb,
    rec: &str,
    content: &str,
) -> Duration {
    let cookie = format!("username={rec}");
    let mut poll = ResponseReader::open(
        server.addr,
        &get_request("/AJ05comitajax.php", Some(&cookie)),
    )
    .await;
    server.wait_for_waiters(rec, 1).await;
    db.exec(&insert(rec, content)).await;
    let written = Instant::now();
    let response = poll.read_response().await;
    let took = written.elapsed();
    assert!(
        response.text().contains(content),
        "the poll answered {:?}",
        response.text()
    );
    took
}

fn push(mode: &'static str, interval_ms: &'static str) -> impl FnOnce(&mut Vec<String>) {
    move |args| {
        args.extend(
            ["--push", mode, "--watch-interval-ms", interval_ms]
                .map(String::from)
                .to_vec(),
        );
    }
}

#[tokio::test]
async fn a_row_inserted_by_another_writer_wakes_a_parked_poll_through_the_binlog() {
    let db = TestDb::with_schema_on(&shared().await.base_url).await;
    // A one-minute tick: only the binlog can explain a wake within the second.
    let server = TestServer::start_with(&db, push("binlog", "60000")).await;
    wait_for_metric(&server, "chat_push_binlog", 1).await;
    for round in 0..3 {
        let took = other_writer_wakes(&server, &db, "admin1", &format!("hello {round}")).await;
        assert!(took < Duration::from_secs(1), "woken after {took:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn an_idle_instance_runs_no_polling_query_in_push_mode_and_does_in_watcher_mode() {
    let db = TestDb::with_schema_on(&shared().await.base_url).await;
    let pushed = TestServer::start_with(&db, push("binlog", "50")).await;
    let polled = TestServer::start_with(&db, push("watcher", "50")).await;
    wait_for_metric(&pushed, "chat_push_binlog", 1).await;
    wait_for_metric(&polled, "chat_push_binlog", 0).await;
    // The window is the measurement, not a synchronisation: nothing is written during it.
    let before = (
        metric(&pushed, "chat_watcher_queries_total").await,
        metric(&polled, "chat_watcher_queries_total").await,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = (
        metric(&pushed, "chat_watcher_queries_total").await,
        metric(&polled, "chat_watcher_queries_total").await,
    );
    assert_eq!(after.0, before.0, "push mode polled while idle");
    assert!(
        after.1 >= before.1 + 10,
        "watcher mode ticks every 50 ms: {before:?} -> {after:?}"
    );
    pushed.stop().await;
    polled.stop().await;
}

#[tokio::test]
async fn this_instances_own_sends_wake_no_watcher_tick_in_push_mode() {
    let db = TestDb::with_schema_on(&shared().await.base_url).await;
    let server = TestServer::start_with(&db, push("binlog", "60000")).await;
    wait_for_metric(&server, "chat_push_binlog", 1).await;
    let before = metric(&server, "chat_watcher_ticks_total").await;
    for round in 0..20 {
        let body = format!("rec=admin6&content=own{round}");
        let answer = server
            .post_form("/AJsendmsg.php", None, body.as_bytes())
            .await;
        assert_eq!(answer.text(), "OK");
    }
    // Another writer's row after them: once its tick has run, every own row's event (written
    // to the binlog before it) has been read too.
    other_writer_wakes(&server, &db, "admin7", "from elsewhere").await;
    let after = metric(&server, "chat_watcher_ticks_total").await;
    // One tick for the other writer's row, perhaps one more if it was not visible yet, perhaps
    // one for the stream having gone live; not one per send.
    assert!(
        after - before <= 4,
        "20 own sends and one other writer's row took {} ticks",
        after - before
    );
    server.stop().await;
}

#[tokio::test]
async fn auto_falls_back_to_the_watcher_where_log_bin_is_off_and_still_delivers() {
    // The shared test server (TEST_MYSQL_URL) runs with log_bin off.
    let db = TestDb::with_schema().await;
    let server = TestServer::start_with(&db, push("auto", "50")).await;
    assert_eq!(metric(&server, "chat_push_binlog").await, 0);
    other_writer_wakes(&server, &db, "admin2", "by the timer").await;
    server.stop().await;
}

#[tokio::test]
async fn a_user_without_replication_privileges_gets_the_watcher_in_auto_and_a_refusal_in_binlog() {
    let mariadb = shared().await;
    let db = TestDb::with_schema_on(&mariadb.base_url).await;
    let user = format!("plain_{}", std::process::id());
    db.exec(&format!("CREATE USER IF NOT EXISTS '{user}'@'%'"))
        .await;
    db.exec(&format!(
        "GRANT ALL PRIVILEGES ON `{}`.* TO '{user}'@'%'",
        db.name
    ))
    .await;
    let url = format!("mysql://{user}@127.0.0.1:{}/{}", mariadb.port(), db.name);
    let server = TestServer::start_on_url(&url, push("auto", "50")).await;
    assert_eq!(metric(&server, "chat_push_binlog").await, 0);
    other_writer_wakes(&server, &db, "admin3", "without the binlog").await;
    server.stop().await;

    let config = chat_server::Config::parse_from([
        "chat-server",
        "--database-url",
        &url,
        "--site",
        crate::support::legacy_site().to_str().expect("utf8 path"),
        "--push",
        "binlog",
    ]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let refused = within(
        DEADLINE,
        "the refusal",
        chat_server::run(listener, config, std::future::pending()),
    )
    .await
    .expect_err("--push binlog without the privilege must not start");
    assert!(refused.to_string().contains("--push binlog"), "{refused}");
    db.exec(&format!("DROP USER '{user}'@'%'")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_continues_when_the_follower_is_killed_and_when_mariadb_restarts() {
    let mut mariadb = PrivateMariaDb::start().await;
    let db = TestDb::with_schema_on(&mariadb.base_url).await;
    let server = TestServer::start_with(&db, push("binlog", "200")).await;
    wait_for_metric(&server, "chat_push_binlog", 1).await;

    // The follower's connection killed: the watcher ticks on its interval, the follower comes
    // back, and push carries on.
    let mut admin = db.conn().await;
    let dump: u64 = mysql_async::prelude::Queryable::query_first(
        &mut admin,
        "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'",
    )
    .await
    .expect("processlist")
    .expect("the follower's dump");
    mysql_async::prelude::Queryable::query_drop(&mut admin, format!("KILL {dump}"))
        .await
        .expect("kill");
    drop(admin);
    other_writer_wakes(&server, &db, "admin4", "after the kill").await;
    wait_for_metric(&server, "chat_push_binlog", 1).await;
    let took = other_writer_wakes(&server, &db, "admin4", "pushed again").await;
    assert!(took < Duration::from_secs(1), "woken after {took:?}");

    // The whole server restarted: the same, with every pooled connection gone too.
    mariadb.restart().await;
    other_writer_wakes(&server, &db, "admin5", "after the restart").await;
    wait_for_metric(&server, "chat_push_binlog", 1).await;
    let took = other_writer_wakes(&server, &db, "admin5", "pushed after the restart").await;
    assert!(took < Duration::from_secs(1), "woken after {took:?}");
    server.stop().await;
    drop(db);
}
