//! The rollback without a restart (`--endpoint-to-php-file` and SIGHUP), on the real legacy PHP:
//! php-fpm 8.2 running the unchanged `AJsendmsg.php` and `AJ05comitajax.php` with the `mysql_*`
//! shim, as `compat/legacy-up` runs them, and the real binary signalled by its pid.
//!
//! What must hold across a flip and back: polls parked on the server stay parked and get what
//! PHP stores; a request keeps the route it arrived on; every message is stored once and
//! delivered once, in order. Who stored a message is told by `chat_messages_sent_total` (ours
//! only), who delivered it by `chat_messages_delivered_total`.

use std::path::PathBuf;

use tokio::task::JoinHandle;

use crate::support::php_fpm::PhpFpm;
use crate::support::process::{complete_body, content_of, exchange_from, ServerProcess};
use crate::support::DEADLINE;
use crate::support::{eventually, form_request, get_request, within, RawResponse, TestDb};

const SENT: &str = "chat_messages_sent_total";
const DELIVERED: &str = "chat_messages_delivered_total";
const RELOADS: &str = "chat_endpoint_to_php_reloads_total";
const REFUSED: &str = "chat_endpoint_to_php_reload_failures_total";
const ON_PHP: &str = "chat_endpoints_on_php";

/// The server (fields drop in order: it goes first), the legacy PHP beside it, their database.
struct Rig {
    server: ServerProcess,
    php: PhpFpm,
    /// The `--endpoint-to-php-file`.
    file: PathBuf,
    db: TestDb,
}

impl Rig {
    /// Everything started, the file holding `listed`.
    async fn start(listed: &str) -> Rig {
        let db = TestDb::with_schema().await;
        let php = PhpFpm::legacy(&db).await;
        let file = php.scratch().join("endpoint-to-php");
        std::fs::write(&file, listed).expect("the endpoint file");
        let site = php.site().display().to_string();
        let socket = php.socket();
        let path = file.display().to_string();
        let server = ServerProcess::start(
            &db.url,
            &[
                "--site",
                &site,
                "--php-fpm",
                &socket,
                "--endpoint-to-php-file",
                &path,
            ],
        )
        .await;
        Rig {
            server,
            php,
            file,
            db,
        }
    }

    async fn metric(&self, name: &str) -> u64 {
        self.server
            .metric(name)
            .await
            .unwrap_or_else(|| panic!("no {name} in the metrics"))
    }

    /// Waits until `name` reads `want`.
    async fn metric_is(&self, name: &str, want: u64) {
        eventually(DEADLINE, &format!("{name} = {want}"), || async move {
            match self.server.metric(name).await {
                Some(seen) if seen == want => Ok(()),
                seen => Err(format!("{seen:?}")),
            }
        })
        .await
    }

    /// Writes `listed` to the file, sends SIGHUP, and waits until the server took it.
    async fn flip(&self, listed: &str, on_php: u64) {
        let reloads = self.metric(RELOADS).await;
        std::fs::write(&self.file, listed).expect("the endpoint file");
        self.server.hang_up();
        self.metric_is(RELOADS, reloads + 1).await;
        assert_eq!(self.metric(ON_PHP).await, on_php, "after {listed:?}");
    }

    /// The agent (`admin`) sends `content` to `to`; the answer's body.
    async fn send(&self, to: &str, content: &str) -> String {
        let body = format!("rec={to}&content={content}");
        let request = form_request("/AJsendmsg.php", Some("username=admin"), body.as_bytes());
        let answer = RawResponse::exchange(self.server.addr, &request).await;
        assert_eq!(
            (answer.status, answer.text()),
            (200, "OK".to_owned()),
            "send {content:?}; PHP's errors: {}",
            self.php.errors()
        );
        answer.text()
    }

    /// A long poll of `user`, read to its end (or [`crate::support::process::HANG`]).
    fn poll(&self, user: &str) -> JoinHandle<Option<Vec<u8>>> {
        let request = get_request("/AJ05comitajax.php", Some(&format!("username={user}")));
        tokio::spawn(exchange_from(None, self.server.addr, request))
    }

    /// A poll of `user` parked on the server (waits until it is).
    async fn park(&self, user: &str) -> JoinHandle<Option<Vec<u8>>> {
        let parked = self.metric("chat_waiting_polls").await;
        let poll = self.poll(user);
        self.metric_is("chat_waiting_polls", parked + 1).await;
        poll
    }

    /// The content of the message a poll of the server's own was answered with.
    async fn delivered(&self, poll: JoinHandle<Option<Vec<u8>>>) -> String {
        let raw = within(DEADLINE, "a poll's answer", poll)
            .await
            .expect("poll task")
            .expect("connected");
        let body = complete_body(&raw).unwrap_or_else(|| {
            panic!(
                "not a whole 200 answer: {:?}",
                String::from_utf8_lossy(&raw)
            )
        });
        content_of(&body)
    }

    /// The table's rows as `(rec, pos, content, isread)`, in id order.
    async fn rows(&self) -> Vec<(String, String, String, i64)> {
        self.db
            .messages()
            .await
            .into_iter()
            .map(|(_, rec, pos, content, isread)| (rec, pos, content.unwrap_or_default(), isread))
            .collect()
    }
}

/// The flip: a customer's poll parked on the server, `AJsendmsg.php` moved to PHP by
/// SIGHUP, sends stored by PHP reach that poll and the next ones, then back: sends stored by the
/// server again. Each message is one row and one delivery, in the order sent.
#[tokio::test]
async fn sends_flipped_to_php_and_back_reach_the_parked_poll_once_each() {
    let rig = Rig::start("# nothing on PHP yet\n").await;
    assert_eq!(rig.metric(ON_PHP).await, 0);
    let poll = rig.park("cust").await;
    rig.send("cust", "m1").await;
    assert_eq!(rig.delivered(poll).await, "m1");
    assert_eq!(rig.metric(SENT).await, 1, "m1 stored by the server");

    let poll = rig.park("cust").await;
    rig.flip("AJsendmsg.php  # rolled back\n", 1).await;
    rig.server.wait_for_waiting(1).await;
    rig.send("cust", "m2").await;
    assert_eq!(
        rig.delivered(poll).await,
        "m2",
        "PHP's row reached the parked poll"
    );
    // Two more while nobody waits: they wait unread, and come one poll each, in order.
    rig.send("cust", "m3").await;
    rig.send("cust", "m4").await;
    assert_eq!(
        rig.metric(SENT).await,
        1,
        "m2..m4 stored by PHP, not by the server"
    );
    for wanted in ["m3", "m4"] {
        assert_eq!(rig.delivered(rig.poll("cust")).await, wanted);
    }

    let poll = rig.park("cust").await;
    rig.flip("# all back\n", 0).await;
    rig.send("cust", "m5").await;
    assert_eq!(rig.delivered(poll).await, "m5");
    assert_eq!(rig.metric(SENT).await, 2, "m5 stored by the server again");

    // Nothing doubled: every row is one message read once, and a further poll has nothing to
    // get until the next message.
    let last = rig.park("cust").await;
    rig.metric_is(DELIVERED, 5).await;
    let expected: Vec<_> = (1..=5)
        .map(|n| ("cust".into(), "admin".into(), format!("m{n}"), 1))
        .collect();
    assert_eq!(rig.rows().await, expected);
    assert!(
        !last.is_finished(),
        "a poll with nothing left for it was answered"
    );
    rig.send("cust", "m6").await;
    assert_eq!(rig.delivered(last).await, "m6");
}

/// A poll parked before its own script moved to PHP stays on the server and is answered by it;
/// a poll that arrives after the flip runs on PHP (the legacy loop), and both get their message.
#[tokio::test]
async fn a_poll_parked_before_its_script_moved_to_php_stays_on_the_server() {
    let rig = Rig::start("").await;
    let ours = rig.park("before").await;
    rig.flip("AJ05comitajax.php\n", 1).await;
    let addr = rig.server.addr;
    let request = get_request("/AJ05comitajax.php", Some("username=after"));
    let on_php = tokio::spawn(async move { RawResponse::exchange(addr, &request).await });
    rig.send("after", "for the new poll").await;
    let answered = within(DEADLINE, "PHP's poll", on_php)
        .await
        .expect("poll task");
    assert_eq!(content_of(&answered.body), "for the new poll");
    // The server's own poll answers with a Content-Length; PHP's output passes through chunked,
    // as nginx passes it. (The delivery counter cannot tell at this point: the server counts a
    // delivery at its COMMIT, which may come a moment after the bytes.)
    assert_eq!(
        answered.header("Transfer-Encoding").as_deref(),
        Some("chunked"),
        "the new poll was answered by PHP, not by the server: {:?}",
        answered.headers
    );
    assert_eq!(
        rig.metric("chat_waiting_polls").await,
        1,
        "the old one still waits here"
    );
    rig.send("before", "for the old poll").await;
    assert_eq!(rig.delivered(ours).await, "for the old poll");
    let read: Vec<_> = rig.rows().await.into_iter().map(|row| row.3).collect();
    assert_eq!(read, [1, 1]);
    rig.metric_is(DELIVERED, 1).await;
}

/// A file that names something else keeps the old list (the error names the line); so does a
/// missing one. At start-up the same file stops the start.
#[tokio::test]
async fn a_bad_file_keeps_the_old_list() {
    let rig = Rig::start("AJsendmsg.php\n").await;
    assert_eq!(rig.metric(ON_PHP).await, 1);
    std::fs::write(&rig.file, "# typo below\nAJsendmsg.php\nAJsendmsg\n").expect("write");
    rig.server.hang_up();
    rig.metric_is(REFUSED, 1).await;
    let log = rig.server.log_text();
    let complaint = log
        .lines()
        .find(|line| line.contains("ERROR") && line.contains("the endpoint file was not used"))
        .unwrap_or_else(|| panic!("no error logged:\n{log}"));
    assert!(
        complaint.contains("line 3: ") && complaint.contains("AJsendmsg"),
        "{complaint}"
    );
    std::fs::remove_file(&rig.file).expect("remove");
    rig.server.hang_up();
    rig.metric_is(REFUSED, 2).await;
    assert_eq!(rig.metric(RELOADS).await, 0);
    assert_eq!(rig.metric(ON_PHP).await, 1);
    rig.send("cust", "still on PHP").await;
    assert_eq!(rig.metric(SENT).await, 0, "the send still went to PHP");
    assert_eq!(rig.rows().await.len(), 1);

    std::fs::write(&rig.file, "AJnope.php\n").expect("write");
    let said = tempfile::NamedTempFile::new().expect("log file");
    let mut refused = std::process::Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--listen", "127.0.0.1:0", "--database-url", &rig.db.url])
        .args(["--site", &rig.php.site().display().to_string()])
        .args(["--php-fpm", &rig.php.socket(), "--endpoint-to-php-file"])
        .arg(&rig.file)
        .stdout(said.reopen().expect("log handle"))
        .spawn()
        .expect("start chat-server");
    let status = eventually(DEADLINE, "the refused start to exit", || {
        std::future::ready(match refused.try_wait() {
            Ok(Some(status)) => Ok(status),
            _ => Err("running".to_owned()),
        })
    })
    .await;
    let said = std::fs::read_to_string(said.path()).expect("its log");
    assert!(!status.success(), "{said}");
    assert!(
        said.contains("line 1: ") && said.contains("AJnope.php"),
        "{said}"
    );
}

/// SIGHUP never ends the server (a restart would end every open chat): without a file to re-read
/// it is logged and ignored, and a parked poll is still answered.
#[tokio::test]
async fn a_sighup_without_a_file_is_ignored() {
    let db = TestDb::with_schema().await;
    let server = ServerProcess::start(&db.url, &[]).await;
    let request = get_request("/AJ05comitajax.php", Some("username=cust"));
    let poll = tokio::spawn(exchange_from(None, server.addr, request));
    server.wait_for_waiting(1).await;
    server.hang_up();
    eventually(DEADLINE, "the SIGHUP to be logged", || {
        let log = server.log_text();
        std::future::ready(match log.contains("SIGHUP: nothing to re-read") {
            true => Ok(()),
            false => Err(log),
        })
    })
    .await;
    server.wait_for_waiting(1).await;
    db.exec("INSERT INTO msg (rec, pos, content) VALUES ('cust', 'admin', 'still here')")
        .await;
    let raw = within(DEADLINE, "the poll's answer", poll)
        .await
        .expect("poll task")
        .expect("connected");
    assert_eq!(
        content_of(&complete_body(&raw).expect("a whole answer")),
        "still here"
    );
}
