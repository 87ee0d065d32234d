//! Long poll and agent stream: instant wake-ups, once-only delivery, order, vanished clients,
//! other writers, several instances, database outages and shutdown.

use std::time::Duration;

use crate::support::{get_request, within, DbProxy, ResponseReader, TestDb, TestServer, DEADLINE};

fn insert(rec: &str, pos: &str, content: &str) -> String {
    format!("INSERT INTO msg (rec, pos, content) VALUES ('{rec}', '{pos}', '{content}')")
}

#[tokio::test]
async fn poll_answers_the_oldest_unread_row_as_php_json_and_marks_it_read() {
    let db = TestDb::with_schema().await;
    db.exec(&insert("admin1", "admin", "first </b>")).await;
    db.exec(&insert("admin2", "admin", "not yours")).await;
    db.exec(&insert("admin1", "admin", "中文")).await;
    let server = TestServer::start(&db).await;
    let first = server
        .get("/AJ05comitajax.php", Some("username=admin1"))
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("content-type").as_deref(),
        Some("text/html; charset=UTF-8")
    );
    assert_eq!(
        first.text(),
        r#"{"mid":"1","rec":"admin1","pos":"admin","content":"first <\/b>","isread":"0"}"#
    );
    let second = server
        .get("/AJ05comitajax.php", Some("username=admin1"))
        .await;
    assert_eq!(
        second.text(),
        r#"{"mid":"3","rec":"admin1","pos":"admin","content":"\u4e2d\u6587","isread":"0"}"#
    );
    let read: Vec<i64> = db.messages().await.into_iter().map(|row| row.4).collect();
    assert_eq!(read, vec![1, 0, 1]);
    server.stop().await;
}

#[tokio::test]
async fn poll_renders_every_column_of_the_operators_table_null_included() {
    let db = TestDb::create().await;
    db.exec("CREATE TABLE msg (mid INT AUTO_INCREMENT PRIMARY KEY, rec VARCHAR(20), pos VARCHAR(20), content VARCHAR(255), isread INT DEFAULT 0, sent DATETIME DEFAULT '2012-01-01 10:00:00', price DECIMAL(5,2) DEFAULT 1.50) ENGINE=MyISAM").await;
    db.exec("INSERT INTO msg (rec, pos, content) VALUES ('admin7', NULL, NULL)")
        .await;
    let server = TestServer::start(&db).await;
    let response = server
        .get("/AJ05comitajax.php", Some("username=admin7"))
        .await;
    assert_eq!(
        response.text(),
        r#"{"mid":"1","rec":"admin7","pos":null,"content":null,"isread":"0","sent":"2012-01-01 10:00:00","price":"1.50"}"#
    );
    server.stop().await;
}

#[tokio::test]
async fn a_waiting_poll_wakes_on_send_at_once() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    let mut poll = ResponseReader::open(
        server.addr,
        &get_request("/AJ05comitajax.php", Some("username=admin42")),
    )
    .await;
    server.wait_for_waiters("admin42", 1).await;
    let sent = server
        .post_form(
            "/AJsendmsg.php",
            Some("username=admin"),
            b"rec=admin42&content=hello",
        )
        .await;
    assert_eq!(sent.body, b"OK");
    let response = within(DEADLINE, "poll answer", poll.read_response()).await;
    assert_eq!(
        response.text(),
        r#"{"mid":"1","rec":"admin42","pos":"admin","content":"hello","isread":"0"}"#
    );
    server.wait_for_waiters("admin42", 0).await;
    server.stop().await;
}

#[tokio::test]
async fn two_waiters_for_one_user_share_messages_never_duplicate_them() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    let request = get_request("/AJ05comitajax.php", Some("username=admin5"));
    let mut tab_a = ResponseReader::open(server.addr, &request).await;
    let mut tab_b = ResponseReader::open(server.addr, &request).await;
    server.wait_for_waiters("admin5", 2).await;
    server
        .post_form("/AJsendmsg.php", None, b"rec=admin5&content=one")
        .await;
    // Exactly one tab gets it; the other keeps waiting until the second message.
    let first = tokio::select! {
        response = tab_a.read_response() => (response, &mut tab_b),
        response = tab_b.read_response() => (response, &mut tab_a),
    };
    let (got_one, other) = first;
    assert!(got_one.text().contains(r#""content":"one""#));
    assert!(
        other.is_silent_for(Duration::from_millis(300)).await,
        "the other tab must not get a copy"
    );
    server
        .post_form("/AJsendmsg.php", None, b"rec=admin5&content=two")
        .await;
    let got_two = within(DEADLINE, "second tab", other.read_response()).await;
    assert!(got_two.text().contains(r#""content":"two""#));
    server.stop().await;
}

#[tokio::test]
async fn a_row_inserted_by_another_writer_is_delivered() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    let mut poll = ResponseReader::open(
        server.addr,
        &get_request("/AJ05comitajax.php", Some("username=admin8")),
    )
    .await;
    server.wait_for_waiters("admin8", 1).await;
    db.exec(&insert("admin8", "legacy-php", "from elsewhere"))
        .await;
    let response = within(DEADLINE, "watcher wake-up", poll.read_response()).await;
    assert!(
        response.text().contains(r#""content":"from elsewhere""#),
        "{}",
        response.text()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_row_that_commits_after_a_newer_one_is_still_delivered() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await; // returns once the watcher has its starting mark
    let mut slow_writer = db.conn().await;
    use mysql_async::prelude::Queryable;
    slow_writer.query_drop("BEGIN").await.expect("begin");
    slow_writer
        .query_drop(insert("admin3", "slow", "late commit"))
        .await
        .expect("insert in transaction");
    db.exec(&insert("admin4", "fast", "committed first")).await; // gets the higher id, visible first
    let mut poll = ResponseReader::open(
        server.addr,
        &get_request("/AJ05comitajax.php", Some("username=admin3")),
    )
    .await;
    server.wait_for_waiters("admin3", 1).await;
    let fast = server
        .get("/AJ05comitajax.php", Some("username=admin4"))
        .await;
    assert!(
        fast.text().contains(r#""mid":"2""#),
        "id 2 is visible before id 1: {}",
        fast.text()
    );
    slow_writer.query_drop("COMMIT").await.expect("commit");
    let response = within(DEADLINE, "late row", poll.read_response()).await;
    assert!(
        response.text().contains(r#""content":"late commit""#),
        "{}",
        response.text()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_waiter_whose_client_left_claims_nothing() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    let gone = ResponseReader::open(
        server.addr,
        &get_request("/AJ05comitajax.php", Some("username=admin6")),
    )
    .await;
    server.wait_for_waiters("admin6", 1).await;
    drop(gone);
    server.wait_for_waiters("admin6", 0).await;
    db.exec(&insert("admin6", "admin", "for the next page load"))
        .await;
    let next = server
        .get("/AJ05comitajax.php", Some("username=admin6"))
        .await;
    assert!(
        next.text().contains("for the next page load"),
        "{}",
        next.text()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_head_request_does_not_lose_the_message_it_claimed() {
    let db = TestDb::with_schema().await;
    db.exec(&insert("admin9", "admin", "keep me")).await;
    let server = TestServer::start(&db).await;
    let mut head = ResponseReader::open(server.addr, b"HEAD /AJ05comitajax.php HTTP/1.1\r\nHost: x\r\nCookie: username=admin9\r\nConnection: close\r\n\r\n").await;
    assert_eq!(
        within(DEADLINE, "HEAD answer", head.read_head()).await.0,
        200
    );
    let get = server
        .get("/AJ05comitajax.php", Some("username=admin9"))
        .await;
    assert!(get.text().contains("keep me"), "{}", get.text());
    server.stop().await;
}

#[tokio::test]
async fn two_instances_on_one_database_deliver_across_instances() {
    let db = TestDb::with_schema().await;
    let a = TestServer::start(&db).await;
    let b = TestServer::start(&db).await;
    let mut poll = ResponseReader::open(
        a.addr,
        &get_request("/AJ05comitajax.php", Some("username=admin11")),
    )
    .await;
    let mut stream = ResponseReader::open(b.addr, &get_request("/AJ04serve.php", None)).await;
    a.wait_for_waiters("admin11", 1).await;
    b.wait_for_waiters("admin", 1).await;
    assert_eq!(
        b.post_form(
            "/AJsendmsg.php",
            Some("username=admin"),
            b"rec=admin11&content=via+b"
        )
        .await
        .body,
        b"OK"
    );
    assert_eq!(
        a.post_form(
            "/AJsendmsg.php",
            Some("username=admin11"),
            b"rec=admin&content=via+a"
        )
        .await
        .body,
        b"OK"
    );
    let answer = within(DEADLINE, "poll on A", poll.read_response()).await;
    assert!(
        answer.text().contains(r#""content":"via b""#),
        "{}",
        answer.text()
    );
    let (status, _) = stream.read_head().await;
    assert_eq!(status, 200);
    let chunk = within(DEADLINE, "stream on B", stream.read_chunk())
        .await
        .expect("a chunk");
    assert!(String::from_utf8_lossy(&chunk).contains(r#""content":"via a""#));
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn agent_stream_writes_script_chunks_in_order() {
    let db = TestDb::with_schema().await;
    db.exec(&insert("admin", "admin100", "queued a/b")).await;
    let server = TestServer::start(&db).await;
    let mut stream = ResponseReader::open(server.addr, &get_request("/AJ04serve.php", None)).await;
    let (status, headers) = stream.read_head().await;
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(n, v)| n == "Transfer-Encoding" && v == b"chunked"));
    assert!(headers
        .iter()
        .any(|(n, v)| n == "Content-Type" && v == b"text/html; charset=UTF-8"));
    let first = within(DEADLINE, "queued message", stream.read_chunk())
        .await
        .expect("chunk");
    assert_eq!(
        String::from_utf8(first).expect("ascii"),
        r#"<script type="text/javascript">parent.window.comet({"mid":"1","rec":"admin","pos":"admin100","content":"queued a\/b","isread":"0"});</script>"#
    );
    for n in 2..=4 {
        server
            .post_form(
                "/AJsendmsg.php",
                Some("username=admin100"),
                format!("rec=admin&content=m{n}").as_bytes(),
            )
            .await;
    }
    // Messages that arrive while a chunk is being written share the next one.
    let mut text = String::new();
    while !text.contains(r#""content":"m4""#) {
        let chunk = within(DEADLINE, "live message", stream.read_chunk())
            .await
            .expect("chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let at = |n: u32| {
        text.find(&format!(r#""content":"m{n}""#))
            .expect("each once")
    };
    assert!(at(2) < at(3) && at(3) < at(4), "in order: {text}");
    assert_eq!(text.matches("parent.window.comet(").count(), 3, "{text}");
    server.stop().await;
}

#[tokio::test]
async fn agent_stream_drains_a_backlog_in_few_claims_in_order() {
    let db = TestDb::with_schema().await;
    const BACKLOG: usize = 600;
    let values = (0..BACKLOG)
        .map(|n| format!("('admin', 'c{n}', 'm{n}')"))
        .collect::<Vec<_>>()
        .join(",");
    db.exec(&format!(
        "INSERT INTO msg (rec, pos, content) VALUES {values}"
    ))
    .await;
    let server = TestServer::start(&db).await;
    let mut stream = ResponseReader::open(server.addr, &get_request("/AJ04serve.php", None)).await;
    stream.read_head().await;
    let mut chunks = 0;
    let mut text = String::new();
    while text.matches("parent.window.comet(").count() < BACKLOG {
        let chunk = within(DEADLINE, "the backlog", stream.read_chunk())
            .await
            .expect("chunk");
        chunks += 1;
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let order: Vec<usize> = text
        .split(r#""content":"m"#)
        .skip(1)
        .map(|rest| rest[..rest.find('"').expect("quote")].parse().expect("n"))
        .collect();
    assert_eq!(
        order,
        (0..BACKLOG).collect::<Vec<_>>(),
        "each once, oldest first"
    );
    assert!(chunks <= 3, "{BACKLOG} messages took {chunks} chunks");
    let rows = db.messages().await;
    assert!(rows.iter().all(|row| row.4 == 1), "all flagged read");
    server.stop().await;
}

#[tokio::test]
async fn messages_sent_after_the_agent_left_wait_for_the_next_stream() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    let mut stream = ResponseReader::open(server.addr, &get_request("/AJ04serve.php", None)).await;
    stream.read_head().await;
    server.wait_for_waiters("admin", 1).await;
    drop(stream);
    server.wait_for_waiters("admin", 0).await;
    server
        .post_form(
            "/AJsendmsg.php",
            Some("username=admin200"),
            b"rec=admin&content=while+away",
        )
        .await;
    assert_eq!(db.messages().await[0].4, 0, "nobody was there to read it");
    let mut again = ResponseReader::open(server.addr, &get_request("/AJ04serve.php", None)).await;
    again.read_head().await;
    let chunk = within(DEADLINE, "message on reload", again.read_chunk())
        .await
        .expect("chunk");
    assert!(String::from_utf8_lossy(&chunk).contains("while away"));
    server.stop().await;
}

#[tokio::test]
async fn while_mysql_is_down_sends_fail_fast_and_waiters_resume_when_it_returns() {
    let db = TestDb::with_schema().await;
    let proxy = DbProxy::start().await;
    let server = TestServer::start_on_url(&proxy.url_for(&db), |_| {}).await;
    assert_eq!(
        server
            .post_form("/AJsendmsg.php", None, b"rec=admin12&content=before")
            .await
            .body,
        b"OK"
    );
    assert!(server
        .get("/AJ05comitajax.php", Some("username=admin12"))
        .await
        .text()
        .contains("before"));

    proxy.cut().await;
    let started = std::time::Instant::now();
    let failed = server
        .post_form("/AJsendmsg.php", None, b"rec=admin12&content=during")
        .await;
    assert_eq!(failed.body, b"FIAL");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "FIAL took {:?}",
        started.elapsed()
    );
    let mut poll = ResponseReader::open(
        server.addr,
        &get_request("/AJ05comitajax.php", Some("username=admin12")),
    )
    .await;
    server.wait_for_waiters("admin12", 1).await;
    // Written by another writer while this server cannot reach the database.
    db.exec(&insert("admin12", "admin", "after the outage"))
        .await;
    assert!(poll.is_silent_for(Duration::from_millis(200)).await);

    proxy.restore().await;
    let response = within(DEADLINE, "poll after the outage", poll.read_response()).await;
    assert!(
        response.text().contains("after the outage"),
        "{}",
        response.text()
    );
    assert_eq!(
        server
            .post_form("/AJsendmsg.php", None, b"rec=admin12&content=again")
            .await
            .body,
        b"OK"
    );
    server.stop().await;
}

#[tokio::test]
async fn shutdown_releases_parked_polls_and_streams() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    let mut poll = ResponseReader::open(
        server.addr,
        &get_request("/AJ05comitajax.php", Some("username=admin13")),
    )
    .await;
    let mut stream = ResponseReader::open(server.addr, &get_request("/AJ04serve.php", None)).await;
    server.wait_for_waiters("admin13", 1).await;
    server.wait_for_waiters("admin", 1).await;
    let addr = server.addr;
    server.stop().await;
    assert_eq!(
        within(DEADLINE, "poll released", poll.read_response())
            .await
            .status,
        503
    );
    stream.read_head().await;
    assert_eq!(
        within(DEADLINE, "stream ended", stream.read_chunk()).await,
        None
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn the_watcher_follows_a_truncated_table() {
    let db = TestDb::with_schema().await;
    for n in 0..5 {
        db.exec(&insert("old", "admin", &format!("old {n}"))).await;
    }
    let server = TestServer::start(&db).await;
    db.exec("TRUNCATE TABLE msg").await;
    let mut poll = ResponseReader::open(
        server.addr,
        &get_request("/AJ05comitajax.php", Some("username=admin14")),
    )
    .await;
    server.wait_for_waiters("admin14", 1).await;
    // Id 1 again, far below where the watcher stood.
    db.exec(&insert("admin14", "other-writer", "after truncate"))
        .await;
    let response = within(DEADLINE, "poll after TRUNCATE", poll.read_response()).await;
    assert!(
        response.text().contains(r#""mid":"1""#),
        "{}",
        response.text()
    );
    server.stop().await;
}

#[tokio::test]
async fn the_first_send_after_mysql_returns_does_not_fail_on_a_stale_connection() {
    let db = TestDb::with_schema().await;
    let proxy = DbProxy::start().await;
    let server = TestServer::start_on_url(&proxy.url_for(&db), |_| {}).await;
    // Several sends at once leave several pooled connections behind.
    let sends: Vec<_> = (0..6)
        .map(|n| {
            server.post_form(
                "/AJsendmsg.php",
                None,
                format!("rec=a&content={n}").into_bytes().leak(),
            )
        })
        .collect();
    for answer in futures_util::future::join_all(sends).await {
        assert_eq!(answer.body, b"OK");
    }
    // Every pooled connection dies with the "old server"; the pool must notice on checkout
    // (mysql_async checks an idle connection for EOF before handing it out).
    proxy.cut().await;
    proxy.restore().await;
    let answer = server
        .post_form("/AJsendmsg.php", None, b"rec=a&content=after")
        .await;
    assert_eq!(answer.body, b"OK");
    assert_eq!(db.messages().await.len(), 7);
    server.stop().await;
}

/// The rows `rec = ?` finds for `name` under the table's own collation, by content, oldest first:
/// what the legacy's `where rec='…'` streamed or polled.
async fn contents_mariadb_finds(db: &TestDb, name: &str) -> Vec<String> {
    use mysql_async::prelude::Queryable;
    let mut conn = db.conn().await;
    conn.exec(
        "SELECT content FROM msg WHERE rec = ? ORDER BY mid",
        (name,),
    )
    .await
    .expect("select")
}

/// Reads the agent stream until every one of `wanted` arrived; the contents in arrival order.
async fn stream_until(stream: &mut ResponseReader, wanted: &[String]) -> Vec<String> {
    let mut text = String::new();
    while !wanted
        .iter()
        .all(|content| text.contains(&format!(r#""content":"{content}""#)))
    {
        let chunk = within(DEADLINE, "the look-alikes' rows", stream.read_chunk())
            .await
            .unwrap_or_else(|| panic!("stream ended; so far {text}"));
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text.split(r#""content":""#)
        .skip(1)
        .map(|rest| rest[..rest.find('"').expect("quote")].to_owned())
        .collect()
}

#[tokio::test]
async fn recipients_match_as_the_tables_collation_compares_them() {
    // The agent's rows are those MariaDB calls `admin`: case, accents and trailing spaces fold
    // under the usual collations, leading spaces and other names do not. Rows written before the
    // start (the scan), by another writer (the watcher) and by a send (our own insert) alike.
    let lookalikes = ["ADMIN", "Admin ", "admín", " admin", "admin2", "ádmín  "];
    for charset in ["utf8mb3", "utf8mb4", "latin1"] {
        let db = TestDb::create().await;
        db.exec(&format!(
            "CREATE TABLE msg (mid INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             rec VARCHAR(64) NOT NULL DEFAULT '', pos VARCHAR(64) NOT NULL DEFAULT '', \
             content TEXT, isread TINYINT NOT NULL DEFAULT 0) DEFAULT CHARSET={charset}"
        ))
        .await;
        for (n, rec) in lookalikes.iter().enumerate() {
            db.exec(&insert(rec, "c", &format!("before{n}"))).await;
        }
        let server = TestServer::start(&db).await;
        let mut stream =
            ResponseReader::open(server.addr, &get_request("/AJ04serve.php", None)).await;
        stream.read_head().await;
        for (n, rec) in lookalikes.iter().enumerate() {
            db.exec(&insert(rec, "c", &format!("other{n}"))).await;
            let sent = server
                .post_form(
                    "/AJsendmsg.php",
                    Some("username=c"),
                    format!("rec={}&content=sent{n}", rec.replace(' ', "+")).as_bytes(),
                )
                .await;
            assert_eq!(sent.text(), "OK");
        }
        let wanted = contents_mariadb_finds(&db, "admin").await;
        assert_eq!(
            wanted.len(),
            12,
            "{charset}: MariaDB's own count: {wanted:?}"
        );
        let streamed = stream_until(&mut stream, &wanted).await;
        assert_eq!(streamed, wanted, "{charset}: each once, oldest first");
        // And a customer's poll: `admin2` finds its own row and nothing of the agent's.
        let polled = server
            .get("/AJ05comitajax.php", Some("username=ADMIN2"))
            .await;
        assert!(
            polled.text().contains(r#""content":"before4""#),
            "{charset}: {}",
            polled.text()
        );
        let unread: Vec<String> = db
            .messages()
            .await
            .into_iter()
            .filter(|row| row.4 == 0)
            .map(|row| row.1)
            .collect();
        assert_eq!(
            unread.len(),
            5,
            "{charset}: ` admin` ×3, `admin2` ×2 left: {unread:?}"
        );
        server.stop().await;
    }
}

/// A server whose watcher ticks only every 5 s (or when asked), once it watches: another
/// writer's row is then known only if something asks the watcher to catch up.
async fn with_a_slow_watcher(db: &TestDb) -> TestServer {
    let server = TestServer::start_with(db, |args| {
        args.extend(["--watch-interval-ms".into(), "5000".into()]);
    })
    .await;
    crate::support::wait_until("the watcher", || server.hub.is_watching()).await;
    server
}

/// `AJsendmsg.php` from `sender` to `to`, which must answer `OK`.
async fn send_ok(server: &TestServer, sender: &str, to: &str, content: &str) {
    let sent = server
        .post_form(
            "/AJsendmsg.php",
            Some(&format!("username={sender}")),
            format!("rec={to}&content={content}").as_bytes(),
        )
        .await;
    assert_eq!(sent.text(), "OK", "{content}");
}

#[tokio::test]
async fn another_writers_older_row_is_answered_before_a_newer_row_of_ours() {
    // The legacy answered the oldest unread row by id. A row this instance writes is indexed at
    // once, another writer's only when the watcher reads it; a poll right after both must still
    // get the older one. The watcher's interval is long here, so only catching up can order them.
    let db = TestDb::with_schema().await;
    let server = with_a_slow_watcher(&db).await;
    for round in 0..3 {
        let customer = format!("admin12{round}");
        db.exec(&insert(&customer, "admin", &format!("first{round}")))
            .await;
        send_ok(&server, "admin", &customer, &format!("second{round}")).await;
        for wanted in ["first", "second"] {
            let polled = server
                .get("/AJ05comitajax.php", Some(&format!("username={customer}")))
                .await;
            assert!(
                polled
                    .text()
                    .contains(&format!(r#""content":"{wanted}{round}""#)),
                "round {round}: wanted {wanted}, got {}",
                polled.text()
            );
        }
    }
    // The agent stream likewise.
    db.exec(&insert("admin", "c1", "first-agent")).await;
    send_ok(&server, "c2", "admin", "second-agent").await;
    let mut stream = ResponseReader::open(server.addr, &get_request("/AJ04serve.php", None)).await;
    stream.read_head().await;
    let wanted = ["first-agent".to_owned(), "second-agent".to_owned()];
    assert_eq!(stream_until(&mut stream, &wanted).await, wanted);
    server.stop().await;
}

#[tokio::test]
async fn a_deleted_rows_stale_entry_does_not_let_a_newer_row_overtake() {
    // The index keeps an entry for a row another writer deleted until a claim finds it gone. The
    // agent stream's claim, which picks several rows, picks it with newer ones and must still let
    // the watcher catch up below the newest.
    let db = TestDb::with_schema().await;
    let server = with_a_slow_watcher(&db).await;
    send_ok(&server, "c", "admin", "stale").await;
    send_ok(&server, "c", "dave", "nudge").await;
    // Dave's poll has the watcher read up to here, the stale row included.
    let nudged = server
        .get("/AJ05comitajax.php", Some("username=dave"))
        .await;
    assert!(nudged.text().contains("nudge"), "{}", nudged.text());
    db.exec("DELETE FROM msg WHERE content = 'stale'").await;
    db.exec(&insert("admin", "c", "first")).await;
    send_ok(&server, "c", "admin", "second").await;
    let mut stream = ResponseReader::open(server.addr, &get_request("/AJ04serve.php", None)).await;
    stream.read_head().await;
    let wanted = ["first".to_owned(), "second".to_owned()];
    assert_eq!(stream_until(&mut stream, &wanted).await, wanted);
    server.stop().await;
}
