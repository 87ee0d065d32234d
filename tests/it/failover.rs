//! Failover between database nodes (`--database-url mysql://…@node1,node2/db`): two cuttable
//! proxies in front of the test MariaDB play two nodes of one cluster. The instance moves to the
//! next node within a few seconds of losing its own, keeps parked polls parked, answers every
//! send `OK` (stored) or `FIAL` (not stored), reports 503 on its health probe while no node
//! answers, and moves back when the first node returns.

use std::time::Duration;

use crate::support::{
    eventually, get_request, DbProxy, ResponseReader, TestDb, TestServer, DEADLINE,
};
use tokio::time::Instant;

const HEALTH: &str = "/.chat-server/health";

/// Sends `content` to bob; the answer's body.
async fn send(server: &TestServer, content: &str) -> String {
    server
        .post_form(
            "/AJsendmsg.php",
            Some("username=admin"),
            format!("rec=bob&content={content}").as_bytes(),
        )
        .await
        .text()
}

/// Sends until one answers `OK`, keeping every answer; how long that took.
async fn send_until_ok(
    server: &TestServer,
    label: &str,
    answers: &mut Vec<(String, String)>,
) -> Duration {
    let started = Instant::now();
    for attempt in 0.. {
        let content = format!("{label}{attempt}");
        let answer = send(server, &content).await;
        let ok = answer == "OK";
        answers.push((content, answer));
        if ok {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no send answered OK within {DEADLINE:?} ({label})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unreachable!()
}

async fn wait_for_health(server: &TestServer, status: u16) -> Duration {
    let started = Instant::now();
    eventually(DEADLINE, &format!("health to answer {status}"), || async {
        match server.get(HEALTH, None).await.status {
            answered if answered == status => Ok(()),
            answered => Err(answered.to_string()),
        }
    })
    .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_node_moves_the_instance_to_the_next_and_back_keeping_parked_polls() {
    let db = TestDb::with_schema().await;
    let (first, second) = (DbProxy::start().await, DbProxy::start().await);
    let url = format!(
        "mysql://root@{},{}/{}?prefer_socket=false",
        first.addr, second.addr, db.name
    );
    let server = TestServer::start_on_url(&url, |_| {}).await;
    assert_eq!(server.get(HEALTH, None).await.status, 200);
    let mut answers = Vec::new();

    // The node in use goes away while bob's poll is parked.
    let mut poll = ResponseReader::open(
        server.addr,
        &get_request("/AJ05comitajax.php", Some("username=bob")),
    )
    .await;
    server.wait_for_waiters("bob", 1).await;
    first.cut().await;
    let switched = send_until_ok(&server, "switch", &mut answers).await;
    assert!(
        switched < Duration::from_secs(5),
        "took {switched:?} to store through the second node"
    );
    let delivered = poll.read_response().await;
    assert_eq!(delivered.status, 200);
    assert!(
        delivered.text().contains("\"content\":\"switch"),
        "the parked poll got {:?}",
        delivered.text()
    );
    assert_eq!(server.get(HEALTH, None).await.status, 200);

    // No node at all: unhealthy, and sends are refused, not half-stored.
    second.cut().await;
    wait_for_health(&server, 503).await;
    let refused = send(&server, "nobody").await;
    answers.push(("nobody".into(), refused.clone()));
    assert_eq!(refused, "FIAL");

    // The first node returns: healthy again, storing through it.
    first.restore().await;
    wait_for_health(&server, 200).await;
    send_until_ok(&server, "back", &mut answers).await;
    // And it is the first node in use: cutting the second again changes nothing.
    second.restore().await;
    // A probe round stops at the first node that answers, so two probes of the first one mean
    // the monitor has had a whole round, with the second node back, to move (wrongly).
    let probes = first.connections();
    eventually(DEADLINE, "two probe rounds", || {
        let seen = first.connections() - probes;
        std::future::ready((seen >= 2).then_some(()).ok_or(format!("{seen} probes")))
    })
    .await;
    second.cut().await;
    assert_eq!(send(&server, "still-first").await, "OK");
    answers.push(("still-first".into(), "OK".into()));

    // Every answer was OK (and stored) or FIAL (and not stored).
    let stored: Vec<String> = db
        .messages()
        .await
        .into_iter()
        .filter_map(|(_, _, _, content, _)| content)
        .collect();
    for (content, answer) in &answers {
        match answer.as_str() {
            "OK" => assert!(
                stored.contains(content),
                "{content} answered OK, not stored"
            ),
            "FIAL" => assert!(!stored.contains(content), "{content} answered FIAL, stored"),
            other => panic!("{content} answered {other:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_while_the_only_database_is_away() {
    let db = TestDb::with_schema().await;
    let proxy = DbProxy::start().await;
    let server = TestServer::start_on_url(&proxy.url_for(&db), |_| {}).await;
    assert_eq!(server.get(HEALTH, None).await.text(), "ok\n");
    proxy.cut().await;
    let noticed = wait_for_health(&server, 503).await;
    assert!(
        noticed < Duration::from_secs(3),
        "took {noticed:?} to report 503"
    );
    proxy.restore().await;
    wait_for_health(&server, 200).await;
    server.stop().await;
}
