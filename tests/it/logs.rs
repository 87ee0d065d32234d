//! Logs as an operator's shipper sees them: the real binary, stdout not a terminal, `--log-format
//! json`: one JSON object a line, no colour codes, and the request id on every line about a
//! request (here: a request's answer, and a refusal by the hardened mode).

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command};

use crate::support::*;

struct Server {
    child: Child,
    addr: SocketAddr,
    log: tempfile::NamedTempFile,
}

impl Server {
    async fn start(db: &TestDb, format: &str) -> Server {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|probe| probe.local_addr())
            .expect("a free port");
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(["--listen", &addr.to_string(), "--database-url", &db.url])
            .args(["--site", legacy_site().to_str().expect("utf8 path")])
            .args(["--log-format", format, "--hardened"])
            .env("RUST_LOG", "chat_server=debug")
            .stdout(log.reopen().expect("log handle"))
            .spawn()
            .expect("start chat-server");
        let server = Server { child, addr, log };
        server.wait_for_log("serving").await;
        server
    }

    fn text(&self) -> String {
        std::fs::read_to_string(self.log.path()).expect("read log")
    }

    async fn wait_for_log(&self, wanted: &str) -> String {
        self.wait_for(wanted, |text| text.contains(wanted)).await
    }

    async fn wait_for(&self, wanted: &str, done: impl Fn(&str) -> bool) -> String {
        eventually(DEADLINE, &format!("{wanted:?} in the log"), || {
            let text = self.text();
            std::future::ready(match done(&text) {
                true => Ok(text),
                false => Err(format!("\n{text}")),
            })
        })
        .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn json_lines_carry_the_request_id_and_no_colour() {
    let db = TestDb::with_schema().await;
    let server = Server::start(&db, "json").await;
    let page = RawResponse::exchange(
        server.addr,
        b"GET /AJ05customer.php HTTP/1.1\r\nHost: x\r\nX-Request-Id: nginx-4f2a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(page.status, 200);
    let refused = RawResponse::exchange(
        server.addr,
        &form_request(
            "/AJsendmsg.php",
            Some("username=admin1"),
            b"rec=admin&content=x",
        ),
    )
    .await;
    assert_eq!(refused.status, 403);
    let text = server
        .wait_for("both answers and the refusal", |text| {
            text.matches("\"answered\"").count() >= 2
                && text.contains("refused by the hardened mode")
        })
        .await;
    assert!(!text.contains('\u{1b}'), "no colour codes off a terminal");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
        })
        .collect();
    let about_requests: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| {
            let message = line["fields"]["message"].as_str().unwrap_or_default();
            message == "answered" || message == "refused by the hardened mode"
        })
        .collect();
    assert!(about_requests.len() >= 3, "{text}");
    for line in &about_requests {
        assert_eq!(line["span"]["name"], "request", "{line}");
        assert!(line["span"]["request_id"].is_string(), "{line}");
    }
    let page_line = about_requests
        .iter()
        .find(|line| line["span"]["path"] == "/AJ05customer.php")
        .expect("the page's line");
    assert_eq!(
        page_line["span"]["request_id"], "nginx-4f2a",
        "the proxy's id is kept"
    );
    let refusal = about_requests
        .iter()
        .find(|line| line["fields"]["message"] == "refused by the hardened mode")
        .expect("the refusal");
    let answer = about_requests
        .iter()
        .find(|line| {
            line["fields"]["message"] == "answered" && line["span"]["path"] == "/AJsendmsg.php"
        })
        .expect("the send's answer");
    assert_eq!(refusal["span"]["request_id"], answer["span"]["request_id"]);
    assert_eq!(answer["fields"]["status"], 403);
}

#[tokio::test]
async fn text_lines_off_a_terminal_have_no_colour_and_name_the_request() {
    let db = TestDb::with_schema().await;
    let server = Server::start(&db, "text").await;
    RawResponse::exchange(server.addr, &get_request("/AJ05customer.php", None)).await;
    let text = server.wait_for_log("answered").await;
    assert!(
        !text.contains('\u{1b}'),
        "no colour codes off a terminal:\n{text}"
    );
    let answered = text
        .lines()
        .find(|line| line.contains("answered"))
        .expect("answered line");
    assert!(
        answered.contains("request{request_id=") && answered.contains("path=/AJ05customer.php"),
        "{answered}"
    );
}

/// Without `--php-fpm`, the start-up log names the docroot's `.php` files that are not run, so
/// the operator learns it before switching over (the bundled site: only `AJconn.php`).
#[tokio::test]
async fn the_start_up_log_names_the_php_files_that_are_not_run() {
    let db = TestDb::with_schema().await;
    let server = Server::start(&db, "json").await;
    let text = server.text();
    let line = text
        .lines()
        .find(|line| line.contains("--php-fpm would run them"))
        .unwrap_or_else(|| panic!("no line about .php files not run:\n{text}"));
    let line: serde_json::Value = serde_json::from_str(line).expect("JSON");
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["fields"]["files"], "AJconn.php", "{line}");
}
