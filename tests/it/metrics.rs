//! `/.chat-server/metrics`: every gauge, counter and histogram an operator scrapes, driven by real
//! polls, streams, sends and a cut database.

use crate::support::*;

async fn scrape(server: &TestServer) -> String {
    let response = server.get("/.chat-server/metrics", None).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    response.text()
}

fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .parse()
        .unwrap_or_else(|err| panic!("{name}: {err}"))
}

/// Scrapes until `name` has `wanted`, or fails at the deadline showing the last scrape.
async fn wait_for_metric(server: &TestServer, name: &str, wanted: f64) -> String {
    eventually(DEADLINE, &format!("{name} to reach {wanted}"), || async {
        let text = scrape(server).await;
        match value(&text, name) == wanted {
            true => Ok(text),
            false => Err(format!("\n{text}")),
        }
    })
    .await
}

#[tokio::test]
async fn polls_streams_sends_and_deliveries_are_counted() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    let text = scrape(&server).await;
    for name in [
        "chat_waiting_polls",
        "chat_agent_streams",
        "chat_waiting_requests",
        "chat_db_pool_in_use",
        "chat_db_pool_connections",
        "chat_watcher_lag_seconds",
        "chat_messages_sent_total",
        "chat_messages_delivered_total",
        "chat_send_failures_total",
        "chat_send_seconds_count",
        "chat_delivery_seconds_count",
    ] {
        value(&text, name);
    }
    assert!(
        value(&text, "chat_watcher_lag_seconds") < 5.0,
        "the watcher runs every 50 ms:\n{text}"
    );

    let mut poll = ResponseReader::open(
        server.addr,
        &get_request("/AJ05comitajax.php", Some("username=admin321")),
    )
    .await;
    server.wait_for_waiters("admin321", 1).await;
    let mut stream = ResponseReader::open(server.addr, &get_request("/AJ04serve.php", None)).await;
    stream.read_head().await;
    let text = wait_for_metric(&server, "chat_agent_streams", 1.0).await;
    assert_eq!(value(&text, "chat_waiting_polls"), 1.0);

    let sent = server
        .post_form(
            "/AJsendmsg.php",
            Some("username=admin"),
            b"rec=admin321&content=hi",
        )
        .await;
    assert_eq!(sent.text(), "OK");
    let answer = poll.read_response().await;
    assert!(answer.text().contains("\"content\":\"hi\""), "{answer:?}");
    let text = wait_for_metric(&server, "chat_messages_delivered_total", 1.0).await;
    assert_eq!(value(&text, "chat_messages_sent_total"), 1.0);
    assert_eq!(value(&text, "chat_send_seconds_count"), 1.0);
    assert_eq!(value(&text, "chat_delivery_seconds_count"), 1.0);
    wait_for_metric(&server, "chat_waiting_polls", 0.0).await;

    drop(stream);
    wait_for_metric(&server, "chat_agent_streams", 0.0).await;
    server.stop().await;
}

#[tokio::test]
async fn a_send_the_database_refuses_counts_as_a_failure() {
    let db = TestDb::with_schema().await;
    let proxy = DbProxy::start().await;
    let server = TestServer::start_on_url(&proxy.url_for(&db), |_| {}).await;
    proxy.cut().await;
    let sent = server
        .post_form(
            "/AJsendmsg.php",
            Some("username=admin123"),
            b"rec=admin&content=x",
        )
        .await;
    assert_eq!(sent.text(), "FIAL");
    let text = scrape(&server).await;
    assert_eq!(value(&text, "chat_send_failures_total"), 1.0);
    assert_eq!(value(&text, "chat_messages_sent_total"), 0.0);
    proxy.restore().await;
    server.stop().await;
}
