//! Each legacy URL over a real socket against the real MariaDB: status, headers and body bytes.

use crate::support::{TestDb, TestServer};

const HTML: &str = "text/html; charset=UTF-8";

/// What PHP prints of a page with one leading `<?php … ?>` block: everything after the `?>`,
/// which eats at most one newline (`\n`, `\r\n` or `\r`).
fn printed_html(file: &str) -> Vec<u8> {
    let source = std::fs::read(crate::support::legacy_site().join(file)).expect("bundled page");
    let end = source
        .windows(2)
        .position(|w| w == b"?>")
        .expect("the page has a PHP block")
        + 2;
    let rest = &source[end..];
    let rest = rest
        .strip_prefix(b"\r\n")
        .or_else(|| rest.strip_prefix(b"\n"))
        .or_else(|| rest.strip_prefix(b"\r"))
        .unwrap_or(rest);
    rest.to_vec()
}

#[tokio::test]
async fn agent_page_sets_admin_cookie_and_serves_the_page_html() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    let response = server
        .get("/AJ04custserv.php", Some("username=admin555"))
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header_all("set-cookie"), vec!["username=admin"]);
    assert_eq!(response.header("content-type").as_deref(), Some(HTML));
    assert_eq!(response.body, printed_html("AJ04custserv.php"));
    assert!(
        response.body.starts_with(b"<!DOCTYPE html"),
        "the ?> newline is eaten"
    );
    assert!(
        response
            .headers
            .iter()
            .any(|(name, _)| name == "Set-Cookie"),
        "title-case header names"
    );
    server.stop().await;
}

#[tokio::test]
async fn customer_page_gives_newcomers_a_three_digit_name_and_keeps_existing_ones() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    for cookie in [
        None,
        Some("username="),
        Some("username=0"),
        Some("username=%30"),
        Some("Username=admin123"),
    ] {
        let response = server.get("/AJ05customer.php", cookie).await;
        let set = response.header_all("set-cookie");
        assert_eq!(set.len(), 1, "{cookie:?}");
        let digits = set[0].strip_prefix("username=admin").expect("admin prefix");
        assert!(
            digits.len() == 3 && (100..=999).contains(&digits.parse::<u32>().expect("digits")),
            "{set:?}"
        );
        assert_eq!(response.body, printed_html("AJ05customer.php"));
        assert!(
            response.body.starts_with(b"\n<!DOCTYPE"),
            "one of the two newlines after ?> remains"
        );
    }
    for cookie in [
        "username=admin123",
        "username=00",
        "username=%20",
        "username[]=x",
        "username=; username=x; username=admin1",
    ] {
        let response = server.get("/AJ05customer.php", Some(cookie)).await;
        let expect_new = cookie.starts_with("username=;");
        assert_eq!(
            response.header("set-cookie").is_some(),
            expect_new,
            "{cookie}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn send_stores_what_php_decoded_and_answers_ok() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    // jQuery's encoding, then the agent page's raw unencoded body, then oddities.
    let bodies: [&[u8]; 6] = [
        b"rec=admin&content=%E4%BD%A0%E5%A5%BD+world",
        b"rec=admin123&content=a+b=c",
        b"rec=admin123&content=tom & jerry",
        b"content=it's \"quoted\" \\ '); DROP TABLE msg; --&rec=admin",
        b"rec[]=1&content=x",
        b"c%6fntent=encoded+key&rec=admin&rec=admin9",
    ];
    for body in bodies {
        let response = server
            .post_form("/AJsendmsg.php", Some("username=admin123"), body)
            .await;
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"OK"[..]),
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(response.header("content-type").as_deref(), Some(HTML));
        assert_eq!(response.header("set-cookie"), None);
    }
    let stored: Vec<(String, String, Option<String>)> = db
        .messages()
        .await
        .into_iter()
        .map(|(_, rec, pos, content, _)| (rec, pos, content))
        .collect();
    let expected = [
        ("admin", "admin123", "你好 world"),
        ("admin123", "admin123", "a b=c"),
        ("admin123", "admin123", "tom "),
        (
            "admin",
            "admin123",
            "it's \"quoted\" \\ '); DROP TABLE msg; --",
        ),
        ("Array", "admin123", "x"),
        ("admin9", "admin123", "encoded key"),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(r, p, c)| (r.to_string(), p.to_string(), Some(c.to_string())))
        .collect();
    assert_eq!(stored, expected);
    server.stop().await;
}

#[tokio::test]
async fn send_without_a_form_body_stores_empty_fields_as_php_does() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    let get = server.get("/AJsendmsg.php", None).await;
    assert_eq!(get.body, b"OK");
    let plain = server
        .send("POST /AJsendmsg.php HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nrec=a&content")
        .await;
    assert_eq!(plain.body, b"OK");
    let rows = db.messages().await;
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .all(|(_, rec, pos, content, isread)| rec.is_empty()
            && pos.is_empty()
            && content.as_deref() == Some("")
            && *isread == 0));
    server.stop().await;
}

#[tokio::test]
async fn send_answers_fial_when_the_insert_fails() {
    let db = TestDb::with_schema().await;
    db.exec("ALTER TABLE msg MODIFY rec VARCHAR(5) NOT NULL DEFAULT ''")
        .await;
    let server = TestServer::start(&db).await;
    // Strict mode refuses a too-long value, as it refused the legacy's INSERT.
    let response = server
        .post_form(
            "/AJsendmsg.php",
            Some("username=admin1"),
            b"rec=admin123&content=hi",
        )
        .await;
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"FIAL"[..])
    );
    assert!(db.messages().await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn emoji_survive_a_utf8mb4_table_and_fail_on_a_utf8_one_as_under_php() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    let ok = server
        .post_form(
            "/AJsendmsg.php",
            Some("username=admin1"),
            "rec=admin2&content=hi 😀".as_bytes(),
        )
        .await;
    assert_eq!(ok.body, b"OK");
    let poll = server
        .get("/AJ05comitajax.php", Some("username=admin2"))
        .await;
    assert!(
        poll.text().contains(r#""content":"hi \ud83d\ude00""#),
        "{}",
        poll.text()
    );
    db.exec("DELETE FROM msg").await;
    db.exec("ALTER TABLE msg CONVERT TO CHARACTER SET utf8")
        .await;
    let refused = server
        .post_form(
            "/AJsendmsg.php",
            Some("username=admin1"),
            "rec=admin2&content=😀".as_bytes(),
        )
        .await;
    assert_eq!(refused.body, b"FIAL");
    server.stop().await;
}

#[tokio::test]
async fn other_files_static_php_text_and_nothing_outside_the_docroot() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    let conn = server.get("/AJconn.php", None).await;
    assert_eq!(
        (conn.status, conn.body.len()),
        (200, 0),
        "AJconn.php prints nothing, never its source"
    );
    assert_eq!(conn.header("content-type").as_deref(), Some(HTML));
    assert_eq!(server.get("/nope.php", None).await.status, 404);
    // nginx 1.22 refuses a path above the root with 400 (scripts/diff-raw, docs/nginx-front.md).
    assert_eq!(server.get("/../Cargo.toml", None).await.status, 400);
    assert_eq!(server.get("/%2e%2e/Cargo.toml", None).await.status, 400);
    assert_eq!(server.get("/", None).await.status, 403);
    let health = server.get("/.chat-server/health", None).await;
    assert_eq!((health.status, health.body.as_slice()), (200, &b"ok\n"[..]));
    server.stop().await;
}

#[tokio::test]
async fn static_files_are_served_with_nginx_types_for_get_only() {
    let db = TestDb::with_schema().await;
    let site = tempdir_with(&[
        ("jquery.js", b"/* js */"),
        ("AJconn.php", b"<?php /* inert */ ?>\nhidden?"),
        ("set.php", b"<?php $x=1; ?>\nhidden?"),
    ]);
    let site_arg = site.path().to_str().expect("utf8").to_string();
    let server = TestServer::start_with(&db, |args| args.extend(["--site".into(), site_arg])).await;
    let js = server.get("/jquery.js", None).await;
    assert_eq!((js.status, js.body.as_slice()), (200, &b"/* js */"[..]));
    assert_eq!(
        js.header("content-type").as_deref(),
        Some("application/javascript")
    );
    assert_eq!(
        server.post_form("/jquery.js", None, b"a=1").await.status,
        405
    );
    assert_eq!(server.get("/AJconn.php", None).await.body, b"hidden?");
    // Code that does something is not run, and its text is not served as if it were all.
    let declined = server.get("/set.php", None).await;
    assert_eq!((declined.status, declined.body.as_slice()), (200, &b""[..]));
    assert_eq!(
        server.get("/AJsendmsg.php", None).await.status,
        404,
        "a script missing from the docroot is not served"
    );
    server.stop().await;
}

#[tokio::test]
async fn site_under_a_base_path() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start_with(&db, |args| {
        args.extend(["--base-path".into(), "/chat/".into()])
    })
    .await;
    assert_eq!(
        server
            .post_form(
                "/chat/AJsendmsg.php",
                Some("username=a1"),
                b"rec=x&content=y"
            )
            .await
            .body,
        b"OK"
    );
    assert_eq!(server.get("/AJsendmsg.php", None).await.status, 404);
    assert_eq!(server.get("/chat/AJ04custserv.php", None).await.status, 200);
    server.stop().await;
}

/// A form past 16k waits in a temporary file (as nginx's `client_body_buffer_size`) and is read
/// back whole for the reimplemented script, with a length or chunked.
#[tokio::test]
async fn a_form_past_the_body_buffer_is_read_back_whole() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start(&db).await;
    let content = "z".repeat(40_000);
    let body = format!("rec=admin&content={content}");
    let response = server
        .post_form("/AJsendmsg.php", Some("username=admin123"), body.as_bytes())
        .await;
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"OK"[..])
    );
    let mut raw = b"POST /AJsendmsg.php HTTP/1.1\r\nHost: x\r\nCookie: username=admin123\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for chunk in body.as_bytes().chunks(7_000) {
        raw.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend(chunk);
        raw.extend(b"\r\n");
    }
    raw.extend(b"0\r\n\r\n");
    assert_eq!(server.send(raw).await.body, b"OK");
    let stored: Vec<_> = db
        .messages()
        .await
        .into_iter()
        .map(|(_, _, _, stored, _)| stored)
        .collect();
    assert_eq!(stored, [Some(content.clone()), Some(content)]);
    server.stop().await;
}

#[tokio::test]
async fn oversized_bodies_get_413_and_store_nothing() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start_with(&db, |args| {
        args.extend(["--max-body-bytes".into(), "100".into()])
    })
    .await;
    let body = format!("rec=admin&content={}", "x".repeat(200));
    assert_eq!(
        server
            .post_form("/AJsendmsg.php", None, body.as_bytes())
            .await
            .status,
        413
    );
    let chunked = "POST /AJsendmsg.php HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nc8\r\n";
    let mut raw = chunked.as_bytes().to_vec();
    raw.extend(format!("{}\r\n0\r\n\r\n", "y".repeat(200)).as_bytes());
    assert_eq!(server.send(raw).await.status, 413);
    assert!(db.messages().await.is_empty());
    server.stop().await;
}

/// A docroot holding `files`, removed when the value is dropped (also when the test fails).
fn tempdir_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp site");
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).expect("temp file");
    }
    dir
}

#[tokio::test]
async fn legacy_charset_refuses_emoji_even_on_a_utf8mb4_table_as_php_did() {
    let db = TestDb::with_schema().await;
    let server = TestServer::start_with(&db, |args| args.push("--legacy-charset".into())).await;
    let chinese = server
        .post_form(
            "/AJsendmsg.php",
            Some("username=admin1"),
            "rec=admin2&content=中文".as_bytes(),
        )
        .await;
    assert_eq!(chinese.body, b"OK");
    let emoji = server
        .post_form(
            "/AJsendmsg.php",
            Some("username=admin1"),
            "rec=admin2&content=😀".as_bytes(),
        )
        .await;
    assert_eq!(emoji.body, b"FIAL");
    assert_eq!(db.messages().await.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn php5_mode_decodes_plus_in_cookies_and_sends_no_charset() {
    let db = TestDb::with_schema().await;
    let server =
        TestServer::start_with(&db, |args| args.extend(["--php".into(), "5".into()])).await;
    let sent = server
        .post_form(
            "/AJsendmsg.php",
            Some("username=a+b"),
            b"rec=admin&content=x",
        )
        .await;
    assert_eq!(sent.header("content-type").as_deref(), Some("text/html"));
    assert_eq!(db.messages().await[0].2, "a b");
    server.stop().await;
}

#[tokio::test]
async fn static_files_stream_and_answer_ranges_and_validators_as_nginx() {
    // Larger than one read chunk, so the body arrives in several frames.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let site = tempdir_with(&[("big.bin", &big), ("AJconn.php", b"")]);
    let db = TestDb::with_schema().await;
    let server = TestServer::start_with(&db, |args| {
        args.extend(["--site".into(), site.path().to_string_lossy().into_owned()]);
    })
    .await;
    let whole = server.get("/big.bin", None).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, big);
    assert_eq!(whole.header("accept-ranges").as_deref(), Some("bytes"));
    let etag = whole.header("etag").expect("ETag");
    let last_modified = whole.header("last-modified").expect("Last-Modified");
    assert!(etag.ends_with(&format!("-{:x}\"", big.len())), "{etag}");

    let with = |header: String| {
        format!("GET /big.bin HTTP/1.1\r\nHost: h\r\n{header}\r\nConnection: close\r\n\r\n")
    };
    let part = server.send(with("Range: bytes=10-19".into())).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, big[10..20]);
    assert_eq!(
        part.header("content-range").as_deref(),
        Some("bytes 10-19/300000")
    );
    let beyond = server.send(with("Range: bytes=400000-".into())).await;
    assert_eq!(beyond.status, 416);
    assert_eq!(
        beyond.header("content-range").as_deref(),
        Some("bytes */300000")
    );
    assert!(beyond
        .text()
        .contains("416 Requested Range Not Satisfiable"));
    for validator in [
        format!("If-Modified-Since: {last_modified}"),
        format!("If-None-Match: {etag}"),
    ] {
        let unchanged = server.send(with(validator)).await;
        assert_eq!(unchanged.status, 304);
        assert!(unchanged.body.is_empty());
    }
    let stale = server.send(with("If-Match: \"other\"".into())).await;
    assert_eq!(stale.status, 412);
    server.stop().await;
}
