//! The opt-in hardened mode, tried as an attacker would: over real sockets against a real server
//! and MariaDB. Every refused request is also shown to have changed nothing in the table.

use crate::support::*;
use base64::Engine;

const PASSWORD: &str = "correct horse";

fn basic(password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}"));
    format!("Basic {encoded}")
}

/// A raw request with any extra header lines.
fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        raw.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded; charset=UTF-8\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    raw.push_str("Connection: close\r\n\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// A send as the page makes it: same-origin `Origin`, the given cookie and optional credentials.
fn page_send(cookie: &str, auth: Option<&str>, body: &str) -> Vec<u8> {
    let mut headers = vec![("Cookie", cookie), ("Origin", "http://localhost")];
    if let Some(auth) = auth {
        headers.push(("Authorization", auth));
    }
    request("POST", "/AJsendmsg.php", &headers, body.as_bytes())
}

/// `name=value` of each Set-Cookie, without attributes.
fn cookie_pairs(response: &RawResponse) -> Vec<String> {
    response
        .header_all("set-cookie")
        .iter()
        .map(|cookie| cookie.split(';').next().unwrap_or_default().to_owned())
        .collect()
}

/// Opens the customer page as a newcomer; returns the `Cookie` header its identity makes.
async fn new_customer(server: &TestServer) -> (String, String) {
    let page = server.get("/AJ05customer.php", None).await;
    assert_eq!(page.status, 200);
    let cookies = cookie_pairs(&page);
    let name = cookies[0]
        .strip_prefix("username=")
        .unwrap_or_else(|| panic!("username first: {cookies:?}"))
        .to_owned();
    (name, cookies.join("; "))
}

async fn hardened(db: &TestDb, extra: &[&str]) -> TestServer {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    TestServer::start_with(db, |args| args.extend(extra)).await
}

#[tokio::test]
async fn the_agent_password_guards_the_agent_page_stream_and_every_admin_request() {
    let db = TestDb::with_schema().await;
    let server = hardened(&db, &["--agent-password", PASSWORD]).await;

    for path in ["/AJ04custserv.php", "/AJ04serve.php"] {
        for auth in [
            None,
            Some(basic("wrong")),
            Some(basic("").replace("admin", "x")),
        ] {
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| vec![("Authorization", a)])
                .unwrap_or_default();
            let response = server.send(request("GET", path, &headers, b"")).await;
            assert_eq!(response.status, 401, "{path} with {auth:?}");
            assert_eq!(
                response.header("www-authenticate").as_deref(),
                Some("Basic realm=\"chat agent\", charset=\"UTF-8\"")
            );
            assert!(response.header("set-cookie").is_none());
        }
    }
    let page = server
        .send(request(
            "GET",
            "/AJ04custserv.php",
            &[("Authorization", &basic(PASSWORD))],
            b"",
        ))
        .await;
    assert_eq!(page.status, 200);
    assert_eq!(cookie_pairs(&page), ["username=admin"]);

    // Sending or polling as `admin` without the credentials: refused, nothing written or taken.
    db.exec("INSERT INTO msg(rec,pos,content) VALUES('admin','admin555','for the agent')")
        .await;
    let sent = server
        .send(page_send(
            "username=admin",
            None,
            "rec=admin555&content=fake",
        ))
        .await;
    assert_eq!(sent.status, 401);
    let polled = server
        .send(request(
            "GET",
            "/AJ05comitajax.php",
            &[("Cookie", "username=admin")],
            b"",
        ))
        .await;
    assert_eq!(polled.status, 401);
    let rows = db.messages().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].4, 0, "the agent's message is still unread");

    let sent = server
        .send(page_send(
            "username=admin",
            Some(&basic(PASSWORD)),
            "rec=admin555&content=real",
        ))
        .await;
    assert_eq!((sent.status, sent.text().as_str()), (200, "OK"));
    server.stop().await;
}

#[tokio::test]
async fn signed_identities_refuse_forged_and_collation_twin_names() {
    let db = TestDb::with_schema().await;
    let server = hardened(&db, &["--cookie-secret", "s3cret"]).await;

    let page = server.get("/AJ05customer.php", None).await;
    let set_cookies = page.header_all("set-cookie");
    assert_eq!(set_cookies.len(), 2, "{set_cookies:?}");
    let name = set_cookies[0]
        .strip_prefix("username=")
        .expect("the unchanged username cookie first");
    assert!(
        name.len() == 17 && name[5..].bytes().all(|b| b.is_ascii_digit()),
        "admin + 12 digits: {name}"
    );
    assert!(
        !set_cookies[0].contains(';'),
        "username keeps the legacy's bare form"
    );
    assert!(
        set_cookies[1].starts_with("username_sig=")
            && set_cookies[1].ends_with("; HttpOnly; SameSite=Lax"),
        "{set_cookies:?}"
    );
    let own = cookie_pairs(&page).join("; ");

    // A returning customer keeps the identity (no Set-Cookie, as the legacy page).
    let again = server.get("/AJ05customer.php", Some(&own)).await;
    assert!(again.header("set-cookie").is_none());
    // A forged or unsigned one is replaced.
    let forged = server
        .get(
            "/AJ05customer.php",
            Some("username=admin124; username_sig=00"),
        )
        .await;
    assert!(!cookie_pairs(&forged)[0].ends_with("admin124"));

    // The owner's reply, and attempts to read it under the owner's name or a collation twin.
    db.exec(&format!(
        "INSERT INTO msg(rec,pos,content) VALUES('{name}','admin','private')"
    ))
    .await;
    let sig = cookie_pairs(&page)[1].clone();
    for cookie in [
        format!("username={name}"),
        format!("username={}", name.to_uppercase()),
        format!("username={name}%20; {sig}"),
        format!("username=ADMIN{}; {sig}", &name[5..]),
        format!("username={name}; username_sig=0123456789abcdef0123456789abcdef"),
    ] {
        let response = server.get("/AJ05comitajax.php", Some(&cookie)).await;
        assert_eq!(response.status, 403, "{cookie}");
        let sent = server
            .send(page_send(&cookie, None, "rec=admin&content=x"))
            .await;
        assert_eq!(sent.status, 403, "{cookie}");
    }
    let rows = db.messages().await;
    assert_eq!(
        (rows.len(), rows[0].4),
        (1, 0),
        "nothing written, nothing taken: {rows:?}"
    );

    let reply = server.get("/AJ05comitajax.php", Some(&own)).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.text().contains("\"content\":\"private\""),
        "{reply:?}"
    );
    let sent = server
        .send(page_send(&own, None, "rec=admin&content=hello"))
        .await;
    assert_eq!(sent.text(), "OK");
    server.stop().await;
}

#[tokio::test]
async fn new_names_are_unique_among_many_customers_arriving_together() {
    let db = TestDb::with_schema().await;
    let server = hardened(&db, &["--hardened"]).await;
    let pages = futures_util::future::join_all((0..300).map(|_| new_customer(&server))).await;
    let names: std::collections::HashSet<String> =
        pages.into_iter().map(|(name, _)| name).collect();
    assert_eq!(names.len(), 300);
    server.stop().await;
}

#[tokio::test]
async fn sends_come_only_from_own_pages_to_allowed_recipients_at_a_bounded_rate() {
    let db = TestDb::with_schema().await;
    let server = hardened(&db, &["--hardened", "--send-rate-per-minute", "3"]).await;
    let (_, cookie) = new_customer(&server).await;
    let body = b"rec=admin&content=x";
    let cross_site = [
        vec![("Cookie", cookie.as_str())],
        vec![
            ("Cookie", cookie.as_str()),
            ("Origin", "http://evil.example"),
        ],
        vec![("Cookie", cookie.as_str()), ("Origin", "null")],
        vec![
            ("Cookie", cookie.as_str()),
            ("Referer", "http://evil.example/x"),
        ],
    ];
    for headers in cross_site {
        let sent = server
            .send(request("POST", "/AJsendmsg.php", &headers, body))
            .await;
        assert_eq!(sent.status, 403, "{headers:?}");
    }
    let by_referer = server
        .send(request(
            "POST",
            "/AJsendmsg.php",
            &[
                ("Cookie", &cookie),
                ("Referer", "http://localhost/AJ05customer.php"),
            ],
            body,
        ))
        .await;
    assert_eq!(by_referer.text(), "OK");
    // A customer writing into another customer's replies (shown as the agent's words).
    let impersonation = server
        .send(page_send(&cookie, None, "rec=admin555&content=pay here"))
        .await;
    assert_eq!(impersonation.status, 403);
    // Three a minute: one used above, two more pass, the next is 429.
    for _ in 0..2 {
        assert_eq!(
            server
                .send(page_send(&cookie, None, "rec=admin&content=y"))
                .await
                .text(),
            "OK"
        );
    }
    let limited = server
        .send(page_send(&cookie, None, "rec=admin&content=z"))
        .await;
    assert_eq!(limited.status, 429);
    let (_, other) = new_customer(&server).await;
    let sent = server
        .send(page_send(&other, None, "rec=admin&content=w"))
        .await;
    assert_eq!(sent.text(), "OK", "the limit is per identity");
    assert_eq!(db.messages().await.len(), 4);
    server.stop().await;
}

#[tokio::test]
async fn messages_reach_the_pages_as_inert_text_and_the_table_unchanged() {
    let db = TestDb::with_schema().await;
    let server = hardened(&db, &["--hardened"]).await;
    let (name, cookie) = new_customer(&server).await;
    let payload = "<img src=x onerror=alert(1)>&'\"";
    db.exec(&format!(
        "INSERT INTO msg(rec,pos,content) VALUES('{name}','admin'');alert(1)//','{}')",
        payload.replace('\'', "''")
    ))
    .await;
    let reply = server.get("/AJ05comitajax.php", Some(&cookie)).await;
    let text = reply.text();
    assert!(
        text.contains(
            r#""pos":"adminalert1","content":"&lt;img src=x onerror=alert(1)&gt;&amp;&#39;&quot;""#
        ),
        "{text}"
    );
    let csp = reply.header("content-security-policy").expect("CSP");
    assert!(csp.contains("object-src 'none'") && csp.contains("connect-src 'self'"));
    assert_eq!(db.messages().await[0].3.as_deref(), Some(payload));
    server.stop().await;
}

#[tokio::test]
async fn the_default_mode_sends_none_of_the_hardened_headers() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    let page = server.get("/AJ05customer.php", None).await;
    assert_eq!(page.header_all("set-cookie").len(), 1);
    assert!(page.header("content-security-policy").is_none());
    let agent = server.get("/AJ04custserv.php", None).await;
    assert_eq!(agent.status, 200);
    server.stop().await;
}
