//! The HTTP layer as the legacy's nginx 1.22 + PHP-FPM 8.2 behaved, through real sockets and
//! the real MariaDB: what it accepted reaches the scripts byte for byte, what it refused gets
//! its answer, and what a connection may make the server hold is bounded as nginx bounds it.
//! Every expected answer was first observed on the real nginx with `scripts/diff-raw`.

use crate::support::{within, TestDb, TestServer, DEADLINE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOO_LARGE: &str = "<html>\r\n<head><title>400 Request Header Or Cookie Too Large</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>Request Header Or Cookie Too Large</center>\r\n<hr><center>chat-server</center>\r\n</body>\r\n</html>\r\n";

fn bad_request() -> String {
    "<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<hr><center>chat-server</center>\r\n</body>\r\n</html>\r\n".into()
}

fn multipart_send(cookie: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (disposition, value) in parts {
        body.extend_from_slice(
            format!("--XyZ\r\nContent-Disposition: form-data; {disposition}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--XyZ--\r\n");
    let mut raw = format!(
        "POST /AJsendmsg.php HTTP/1.1\r\nHost: h\r\nCookie: {cookie}\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend(body);
    raw
}

#[tokio::test]
async fn multipart_form_posts_are_stored_as_php_read_them() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    let sent = server
        .send(multipart_send(
            "username=admin",
            &[
                ("name=\"rec\"", b"admin123"),
                ("name=content", "hello 中文\r\nline".as_bytes()),
                ("name=\"content\"; filename=\"x.txt\"", b"not a field"),
            ],
        ))
        .await;
    assert_eq!((sent.status, sent.body.as_slice()), (200, &b"OK"[..]));
    let arrays = server
        .send(multipart_send(
            "username=admin",
            &[("name=\"rec[]\"", b"1"), ("name=\"content\"", b"c")],
        ))
        .await;
    assert_eq!(arrays.body, b"OK");
    let rows = db.messages().await;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2.as_str(), rows[0].3.as_deref()),
        ("admin123", "admin", Some("hello 中文\r\nline"))
    );
    assert_eq!(rows[1].1, "Array");
    server.stop().await;
}

#[tokio::test]
async fn header_bytes_reach_php_as_nginx_passed_them() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    for cookie in [&b"username=a\x7f"[..], b"username=x&\t", b"username=b\x01c"] {
        let body = b"rec=r&content=c";
        let mut raw = b"POST /AJsendmsg.php?x=>&y=\"q\" HTTP/1.1\r\nHost: h\r\nCookie: ".to_vec();
        raw.extend_from_slice(cookie);
        raw.extend_from_slice(
            format!(
                "\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        raw.extend_from_slice(body);
        let sent = server.send(raw).await;
        assert_eq!(
            (sent.status, sent.text().as_str()),
            (200, "OK"),
            "{cookie:?}"
        );
    }
    let mut conn = db.conn().await;
    let senders: Vec<Vec<u8>> = mysql_async::prelude::Queryable::query(
        &mut conn,
        "SELECT CAST(pos AS BINARY) FROM msg ORDER BY mid",
    )
    .await
    .expect("senders");
    assert_eq!(
        senders,
        vec![b"a\x7f".to_vec(), b"x&\t".to_vec(), b"b\x01c".to_vec()]
    );
    // Two Cookie lines: PHP-FPM behind nginx 1.22 sees only the last one.
    let page = server
        .send(b"GET /AJ05customer.php HTTP/1.1\r\nHost: h\r\nCookie: username=admin1\r\nCookie: x=1\r\nConnection: close\r\n\r\n")
        .await;
    assert!(
        page.header("set-cookie").is_some(),
        "the first line is not seen"
    );
    server.stop().await;
}

#[tokio::test]
async fn requests_nginx_refused_get_its_answer() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    let long_cookie = format!("Cookie: {}\r\n", "a".repeat(8183));
    let cases: Vec<(Vec<u8>, u16, String)> = vec![
        (
            format!("GET /AJ05customer.php HTTP/1.1\r\nHost: h\r\n{long_cookie}\r\n").into_bytes(),
            400,
            TOO_LARGE.into(),
        ),
        (b"get / HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(), 400, bad_request()),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400, bad_request()),
        (b"GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n".to_vec(), 400, bad_request()),
        (
            b"POST /AJsendmsg.php HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n".to_vec(),
            400,
            bad_request(),
        ),
        (
            b"POST /AJsendmsg.php HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            400,
            bad_request(),
        ),
        (
            b"POST /AJsendmsg.php HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nrec=1\r\n0\r\n\r\n".to_vec(),
            400,
            bad_request(),
        ),
        (
            b"POST /AJsendmsg.php HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n".to_vec(),
            501,
            "<html>\r\n<head><title>501 Not Implemented</title></head>\r\n<body>\r\n<center><h1>501 Not Implemented</h1></center>\r\n<hr><center>chat-server</center>\r\n</body>\r\n</html>\r\n".into(),
        ),
        (
            format!("GET /?{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(8190)).into_bytes(),
            414,
            "<html>\r\n<head><title>414 Request-URI Too Large</title></head>\r\n<body>\r\n<center><h1>414 Request-URI Too Large</h1></center>\r\n<hr><center>chat-server</center>\r\n</body>\r\n</html>\r\n".into(),
        ),
    ];
    for (raw, status, page) in cases {
        let response = server.send(&raw).await;
        let shown = String::from_utf8_lossy(&raw[..raw.len().min(60)]).into_owned();
        assert_eq!(response.status, status, "{shown}");
        assert_eq!(response.text(), page, "{shown}");
        assert_eq!(
            response.header("content-type").as_deref(),
            Some("text/html")
        );
        assert_eq!(response.header("connection").as_deref(), Some("close"));
    }
    assert!(
        db.messages().await.is_empty(),
        "no refused request stored anything"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_endless_header_is_cut_off_at_nginx_buffer_sizes() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: h\r\nCookie: ")
        .await
        .expect("write");
    // nginx refuses once a line cannot fit an 8k buffer: the answer must come long before
    // 64 KiB were sent, and the server must close.
    let mut sent = 0;
    let refused = within(DEADLINE, "refusal", async {
        let chunk = [b'a'; 1024];
        while sent < 64 * 1024 {
            if stream.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        answer
    })
    .await;
    let text = String::from_utf8_lossy(&refused);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert!(text.ends_with(TOO_LARGE), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn kept_alive_pipelined_and_chunked_requests_are_answered_in_order() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    let raw = b"POST /AJsendmsg.php HTTP/1.1\r\nHost: h\r\nCookie: username=admin\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n5;ext\r\nrec=1\r\na\r\n&content=x\r\n0\r\nTrailer: t\r\n\r\nGET /AJ04custserv.php HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    // Both answers on one connection, read to its close (the shared client reads one response
    // per connection, so the two are split here).
    let both = within(
        DEADLINE,
        "both answers",
        crate::support::process::exchange_from(None, server.addr, raw.to_vec()),
    )
    .await
    .expect("connected");
    let text = String::from_utf8_lossy(&both);
    let second = text.find("HTTP/1.1 200").and_then(|first| {
        text[first + 1..]
            .find("HTTP/1.1 200")
            .map(|at| first + 1 + at)
    });
    let second = second.unwrap_or_else(|| panic!("two answers: {text}"));
    let (first, second) = text.split_at(second);
    assert!(first.ends_with("\r\n\r\nOK"), "{first}");
    assert!(
        second.contains("\r\nSet-Cookie: username=admin\r\n"),
        "{second}"
    );
    let rows = db.messages().await;
    assert_eq!((rows[0].1.as_str(), rows[0].3.as_deref()), ("1", Some("x")));
    server.stop().await;
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    let body = b"rec=admin5&content=after+continue";
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(
            format!(
                "POST /AJsendmsg.php HTTP/1.1\r\nHost: h\r\nCookie: username=admin\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .expect("head");
    let mut interim = [0u8; 25];
    within(DEADLINE, "100 Continue", stream.read_exact(&mut interim))
        .await
        .expect("interim response");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(body).await.expect("body");
    let mut rest = Vec::new();
    within(DEADLINE, "final answer", stream.read_to_end(&mut rest))
        .await
        .expect("answer");
    assert!(rest.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(rest.ends_with(b"\r\n\r\nOK"));
    assert_eq!(db.messages().await[0].3.as_deref(), Some("after continue"));
    server.stop().await;
}

#[tokio::test]
async fn links_to_dot_files_are_not_served() {
    let db = TestDb::with_schema().await;
    let dir = std::env::temp_dir().join(format!(
        "chat-site-links-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(dir.join(".git")).expect("site");
    std::fs::write(dir.join(".env"), b"DB_PASSWORD=secret").expect(".env");
    std::fs::write(dir.join(".git/config"), b"[core]").expect(".git");
    std::fs::write(dir.join("ok.txt"), b"fine").expect("ok.txt");
    std::os::unix::fs::symlink(".env", dir.join("env.txt")).expect("link");
    std::os::unix::fs::symlink(".git", dir.join("gitlink")).expect("link");
    std::os::unix::fs::symlink("ok.txt", dir.join("alias.txt")).expect("link");
    let site = dir.to_str().expect("utf8").to_string();
    let server = TestServer::start_with(&db, |args| args.extend(["--site".into(), site])).await;
    assert_eq!(server.get("/env.txt", None).await.status, 404);
    assert_eq!(server.get("/gitlink/config", None).await.status, 404);
    let alias = server.get("/alias.txt", None).await;
    assert_eq!((alias.status, alias.body.as_slice()), (200, &b"fine"[..]));
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_client_that_leaves_mid_head_is_dropped_quietly() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost:")
            .await
            .expect("partial head");
    }
    // The server keeps serving others.
    let page = server.get("/AJ04custserv.php", None).await;
    assert_eq!(page.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn head_refusals_have_no_body_and_other_methods_on_a_directory_are_405() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    // nginx knows the method before it refuses the rest, and answers HEAD without a body.
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"HEAD / HTTP/2.0\r\nHost: h\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    within(DEADLINE, "refusal", stream.read_to_end(&mut answer))
        .await
        .expect("read");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 505 "), "{text}");
    assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "headers only: {text}");
    let options = server
        .send(b"OPTIONS / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(options.status, 405);
    let post = server
        .send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(post.status, 403);
    // HTTP/1.0 answers say they close, as nginx's do.
    let old = server.send(b"GET /AJ04custserv.php HTTP/1.0\r\n\r\n").await;
    assert_eq!(old.header("connection").as_deref(), Some("close"));
    server.stop().await;
}
