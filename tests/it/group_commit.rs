//! Group commit: sends that arrive together share one INSERT and one COMMIT, yet each is answered
//! as PHP answered it alone, each row gets its own id, and each recipient gets its own message.

use crate::support::*;
use futures_util::future::join_all;

/// `name`'s value in the metrics text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .parse::<f64>()
        .expect("a number") as u64
}

async fn send(server: &TestServer, to: &str, content: &str) -> Vec<u8> {
    let body = format!("rec={to}&content={content}");
    let response = server
        .post_form("/AJsendmsg.php", Some("username=agent7"), body.as_bytes())
        .await;
    assert_eq!(response.status, 200);
    response.body
}

#[tokio::test]
async fn concurrent_sends_share_commits_and_each_reaches_its_own_recipient() {
    let db = TestDb::with_schema().await;
    // Ids that do not start at 1, so an id computed from the wrong base would show.
    db.exec("ALTER TABLE msg AUTO_INCREMENT = 1000").await;
    let server = TestServer::start(&db).await;
    const SENDS: usize = 300;
    let answers = join_all((0..SENDS).map(|i| {
        let server = &server;
        async move { send(server, &format!("c{i}"), &format!("m{i}")).await }
    }))
    .await;
    assert!(answers.iter().all(|answer| answer == b"OK"));

    let metrics = server.get("/.chat-server/metrics", None).await.text();
    let sent = metric(&metrics, "chat_messages_sent_total");
    let commits = metric(&metrics, "chat_insert_commits_total");
    assert_eq!(sent, SENDS as u64);
    assert!(
        commits < sent,
        "{SENDS} concurrent sends took {commits} commits: none were batched"
    );

    let stored = db.messages().await;
    assert_eq!(stored.len(), SENDS);
    for (mid, rec, pos, content, isread) in &stored {
        let i = rec.strip_prefix('c').expect("a customer");
        assert_eq!(
            content.as_deref(),
            Some(format!("m{i}").as_str()),
            "row {mid}"
        );
        assert_eq!((pos.as_str(), *isread), ("agent7", 0));
    }
    // Each recipient's poll claims its own row through the id the batch reported.
    let polls = join_all((0..SENDS).map(|i| {
        let server = &server;
        async move {
            let cookie = format!("username=c{i}");
            let poll = within(
                DEADLINE,
                "a poll",
                server.get("/AJ05comitajax.php", Some(&cookie)),
            )
            .await;
            (i, poll.text())
        }
    }))
    .await;
    for (i, text) in polls {
        assert!(
            text.contains(&format!(r#""rec":"c{i}""#))
                && text.contains(&format!(r#""content":"m{i}""#)),
            "c{i} got {text}"
        );
    }
    assert!(db.messages().await.iter().all(|row| row.4 == 1));
    server.stop().await;
}

#[tokio::test]
async fn a_refused_send_fails_alone_and_its_neighbours_are_stored() {
    let db = TestDb::with_schema().await;
    db.exec("ALTER TABLE msg MODIFY rec VARCHAR(5) NOT NULL DEFAULT ''")
        .await;
    let server = TestServer::start(&db).await;
    // Every fifth recipient is too long for the column: strict mode refuses it, which fails any
    // multi-row INSERT it is part of.
    let recipient = |i: usize| {
        if i.is_multiple_of(5) {
            format!("long{i:04}")
        } else {
            format!("c{i}")
        }
    };
    let answers = join_all((0..200).map(|i| {
        let server = &server;
        async move { (i, send(server, &recipient(i), &format!("m{i}")).await) }
    }))
    .await;
    for (i, answer) in &answers {
        let wanted: &[u8] = if i.is_multiple_of(5) { b"FIAL" } else { b"OK" };
        assert_eq!(answer, wanted, "send {i}");
    }
    let mut stored: Vec<String> = db.messages().await.into_iter().map(|row| row.1).collect();
    stored.sort();
    let mut expected: Vec<String> = (0..200)
        .filter(|i: &usize| !i.is_multiple_of(5))
        .map(recipient)
        .collect();
    expected.sort();
    assert_eq!(stored, expected);
    server.stop().await;
}
