//! `--php-fpm` against the real thing: the same scripts on the same PHP-FPM 8.2 pool, once behind
//! Debian's nginx 1.22 (`include snippets/fastcgi-php.conf`, its own files) and once behind the
//! server, and the answers compared byte for byte: status line, headers, framing, body.
//!
//! What is normalised, and why:
//! - `Date` and `Server` (nginx's version, our nothing) are left out; so is `Connection`, which
//!   nginx writes on every keep-alive answer and hyper only when it closes.
//! - Header names are compared lower-case: hyper writes every name title-cased, nginx passes PHP's
//!   spelling (`x-lower`). Values and order are compared as sent.
//! - The framing (chunked, a length, or until close) is compared as a word, not by where its line
//!   sits in the head, and chunked bodies de-chunked: where nginx cuts its chunks is not part of
//!   what a browser sees. When output arrives is checked separately (flush tests).
//! - In `$_SERVER`: the times, the ports of each connection (`REMOTE_PORT`, `SERVER_PORT`) differ
//!   by nature and are masked, line by line.
//! - nginx's pages print `nginx/1.22.1` where ours print `chat-server`.
//!
//! php-fpm8.2 and nginx must be installed (`scripts/setup` installs them); the tests fail, with
//! that said, when they are not. Each test starts its own php-fpm and nginx in a temporary
//! directory and stops them by their pids.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::php_fpm::{id, stop_process, PhpFpm, Pool};
use crate::support::process::{complete_body, content_of, exchange_from};
use crate::support::{get_request, legacy_site, wait_until, within, TestDb, TestServer, DEADLINE};
use chat_compat::http::Exchange;
use tokio::time::Instant;

const FPM: &str = "/usr/sbin/php-fpm8.2";
const NGINX: &str = "/usr/sbin/nginx";
const NGINX_SIGNATURE: &str = "<center>nginx/1.22.1</center>";
const SNIPPET: &str = "/etc/nginx/snippets/fastcgi-php.conf";

/// Scripts that wait for the test: each polls for `release-<t>` next to it (5 s at most), so a
/// test decides when PHP goes on instead of sleeping.
const SCRIPTS: &[(&str, &str)] = &[
    ("server.php", "<?php var_export($_SERVER);\n"),
    (
        "headers.php",
        "<?php header('X-One: 1'); header('x-lower: 2'); setcookie('a', '1'); setcookie('b', '2 3'); echo 'hi';\n",
    ),
    ("notfound.php", "<?php http_response_code(404); echo 'nope';\n"),
    ("custom.php", "<?php header('HTTP/1.1 299 Fine Indeed'); echo 'x';\n"),
    ("location.php", "<?php header('Location: /x');\n"),
    ("nocontent.php", "<?php http_response_code(204); echo 'x';\n"),
    ("notmodified.php", "<?php http_response_code(304);\n"),
    ("empty.php", "<?php\n"),
    ("bare.php", "<?php header('HTTP/1.1 299'); echo 'x';\n"),
    ("interleaved.php", "<?php setcookie('a', '1'); header('X-Mid: 1'); setcookie('b', '2');\n"),
    ("pool.php", "<?php echo getenv('POOL');\n"),
    ("big.php", "<?php echo str_repeat('0123456789abcdef', 5 * 65536);\n"),
    ("post.php", "<?php echo file_get_contents('php://input');\n"),
    ("sub/inner.php", "<?php echo $_SERVER['SCRIPT_NAME'], ' ', $_SERVER['PATH_INFO'];\n"),
    (
        "flush.php",
        "<?php $f = __DIR__ . '/release-' . basename($_GET['t']); echo \"first\\n\"; ob_flush(); flush(); for ($i = 0; $i < 500 && !file_exists($f); $i++) usleep(10000); echo \"second\\n\";\n",
    ),
    (
        "unbuffered.php",
        "<?php header('X-Accel-Buffering: no'); $f = __DIR__ . '/release-' . basename($_GET['t']); echo \"first\\n\"; ob_flush(); flush(); for ($i = 0; $i < 500 && !file_exists($f); $i++) usleep(10000); echo \"second\\n\";\n",
    ),
    (
        "slow.php",
        "<?php $f = __DIR__ . '/release-' . basename($_GET['t']); for ($i = 0; $i < 500 && !file_exists($f); $i++) usleep(10000); echo 'late';\n",
    ),
    (
        "stall.php",
        "<?php $f = __DIR__ . '/release-' . basename($_GET['t']); echo str_repeat('s', 20000); ob_flush(); flush(); for ($i = 0; $i < 500 && !file_exists($f); $i++) usleep(10000); echo 'end';\n",
    ),
    // As slow.php, but waits up to a minute: long enough for a thousand polls and sends.
    (
        "held.php",
        "<?php $f = __DIR__ . '/release-' . basename($_GET['t']); for ($i = 0; $i < 6000 && !file_exists($f); $i++) usleep(10000); echo 'late';\n",
    ),
    // Stands in for the reimplemented send endpoint, to show a rollback reaches PHP.
    ("AJsendmsg.php", "<?php echo 'sent by PHP';\n"),
];

fn require_installed() {
    for (path, what) in [
        (FPM, "php8.2-fpm"),
        (NGINX, "nginx"),
        (SNIPPET, "nginx's Debian snippets"),
    ] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: these tests run the real {what}; run scripts/setup (it installs php8.2-fpm and nginx-light)"
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// php-fpm and nginx in front of it, in a temporary directory.
struct Php {
    fpm: PhpFpm,
    nginx: Option<Child>,
    /// Where nginx listens.
    nginx_addr: SocketAddr,
    /// The same php-fpm's second pool, on TCP.
    fpm_tcp: String,
}

impl Php {
    /// Starts both; `directives` go into nginx's `location ~ \.php$` after Debian's snippet.
    async fn start(directives: &str) -> Php {
        require_installed();
        let fpm_port = free_port();
        let mut unix = Pool::socket("test", 6);
        unix.lines = "env[POOL] = unix".into();
        let tcp = Pool {
            name: "tcp",
            workers: 2,
            port: Some(fpm_port),
            lines: "env[POOL] = tcp".into(),
        };
        let fpm = PhpFpm::start(&[unix, tcp], |site| {
            std::fs::create_dir_all(site.join("sub")).expect("site");
            for (name, source) in SCRIPTS {
                std::fs::write(site.join(name), source).expect("script");
            }
        })
        .await;
        let run = fpm.scratch().join("nginx");
        std::fs::create_dir_all(&run).expect("run dir");
        // nginx resolves `include` next to its configuration: point at Debian's own files.
        std::os::unix::fs::symlink("/etc/nginx/snippets", run.join("snippets")).expect("link");
        std::os::unix::fs::symlink("/etc/nginx/fastcgi.conf", run.join("fastcgi.conf"))
            .expect("link");
        let [user, group] = ["-un", "-gn"].map(id);
        let port = free_port();
        let run_s = run.display();
        std::fs::write(
            run.join("nginx.conf"),
            format!(
                "user {user} {group};\nworker_processes 1;\npid {run_s}/nginx.pid;\nerror_log {run_s}/nginx-error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n  include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n  access_log off;\n  client_body_temp_path {run_s}/body;\n  fastcgi_temp_path {run_s}/fastcgi;\n  server {{\n    listen 127.0.0.1:{port};\n    root {};\n    location ~ \\.php$ {{\n      include snippets/fastcgi-php.conf;\n      fastcgi_pass unix:{};\n      {directives}\n    }}\n  }}\n}}\n",
                fpm.site().display(),
                fpm.socket()
            ),
        )
        .expect("nginx.conf");
        let nginx = Command::new(NGINX)
            .arg("-c")
            .arg(run.join("nginx.conf"))
            .arg("-p")
            .arg(&run)
            .arg("-e")
            .arg(run.join("nginx-error.log"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let php = Php {
            fpm,
            nginx: Some(nginx),
            nginx_addr: format!("127.0.0.1:{port}").parse().expect("addr"),
            fpm_tcp: format!("127.0.0.1:{fpm_port}"),
        };
        let addr = php.nginx_addr;
        wait_until("nginx to listen", || {
            std::net::TcpStream::connect(addr).is_ok()
        })
        .await;
        php
    }

    fn site(&self) -> PathBuf {
        self.fpm.site()
    }

    fn socket(&self) -> String {
        self.fpm.socket()
    }

    /// Lets the scripts waiting on `token` go on.
    fn release(&self, token: &str) {
        std::fs::write(self.site().join(format!("release-{token}")), "").expect("release");
    }

    /// Stops php-fpm (TERM to its master, by pid) and waits for it to exit.
    fn stop_fpm(&mut self) {
        self.fpm.stop();
    }

    /// The server on the same site, sending `.php` to this php-fpm, with `extra` flags.
    async fn server(&self, db: &TestDb, extra: &[&str]) -> TestServer {
        let site = self.site().display().to_string();
        let socket = self.socket();
        let extra: Vec<String> = extra.iter().map(|arg| arg.to_string()).collect();
        TestServer::start_with(db, move |args| {
            args.extend(["--site".into(), site, "--php-fpm".into(), socket]);
            args.extend(extra);
        })
        .await
    }
}

impl Drop for Php {
    fn drop(&mut self) {
        if let Some(nginx) = self.nginx.take() {
            stop_process(nginx);
        }
    }
}

/// An answer, normalised as the module documentation says.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status_line: String,
    framing: String,
    headers: Vec<(String, String)>,
    body: String,
}

async fn exchange(addr: SocketAddr, raw: &[u8]) -> Exchange {
    Exchange::send(&addr.to_string(), raw, raw.starts_with(b"HEAD "))
        .await
        .unwrap_or_else(|err| panic!("request to {addr}: {err}"))
}

async fn finish(mut exchange: Exchange) -> Answer {
    let done = exchange
        .read_until(Instant::now() + DEADLINE, |x| x.complete)
        .await
        .expect("read");
    assert!(done, "the answer did not complete within {DEADLINE:?}");
    let head = exchange.head.clone().expect("head");
    let raw_body = String::from_utf8_lossy(&exchange.body);
    // nginx's signature is one byte longer than ours.
    let signed = raw_body.matches(NGINX_SIGNATURE).count();
    let framing = if let Some(length) = head.values("content-length").next() {
        let length: usize = String::from_utf8_lossy(length).parse().expect("a length");
        format!("length {}", length - signed)
    } else if head.values("transfer-encoding").next().is_some() {
        "chunked".to_owned()
    } else {
        "until close".to_owned()
    };
    let headers = head
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                String::from_utf8_lossy(value).into_owned(),
            )
        })
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                "date" | "server" | "connection" | "content-length" | "transfer-encoding"
            )
        })
        .collect();
    let body = raw_body
        .replace(NGINX_SIGNATURE, "<center>chat-server</center>")
        .split('\n')
        .map(mask)
        .collect::<Vec<_>>()
        .join("\n");
    Answer {
        status_line: format!("{} {} {}", head.version, head.status, head.reason),
        framing,
        headers,
        body,
    }
}

/// Masks the `$_SERVER` lines that differ between two connections by nature.
fn mask(line: &str) -> String {
    for key in [
        "REQUEST_TIME_FLOAT",
        "REQUEST_TIME",
        "REMOTE_PORT",
        "SERVER_PORT",
    ] {
        if line.starts_with(&format!("  '{key}' => ")) {
            return format!("  '{key}' => (masked),");
        }
    }
    line.to_owned()
}

async fn answer(addr: SocketAddr, raw: &[u8]) -> Answer {
    finish(exchange(addr, raw).await).await
}

/// Both answers to `raw`, which must be equal.
async fn same(php: &Php, server: &TestServer, raw: &[u8]) -> Answer {
    let mut nginx = answer(php.nginx_addr, raw).await;
    let mut ours = answer(server.addr, raw).await;
    if raw.windows(10).any(|w| w == b" HTTP/1.0\r") {
        // nginx answers `HTTP/1.1` to everyone; hyper (the whole server, not this pass-through)
        // answers in the request's version. Framing and body are still compared.
        for answer in [&mut nginx, &mut ours] {
            answer.status_line = answer.status_line.replacen("HTTP/1.0 ", "HTTP/1.1 ", 1);
        }
    }
    assert_eq!(
        ours,
        nginx,
        "the server (left) and nginx (right) differ for {:?}",
        String::from_utf8_lossy(&raw[..raw.len().min(200)])
    );
    ours
}

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: php.test\r\nUser-Agent: t\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

#[tokio::test]
async fn scripts_answer_as_behind_nginx() {
    let php = Php::start("").await;
    let db = TestDb::with_schema().await;
    let server = php.server(&db, &["--php-fpm-connections", "2"]).await;

    let seen = same(
        &php,
        &server,
        b"GET /server.php/p/i.php?q=1&r=%20 HTTP/1.1\r\nHost: php.test\r\nX-A: 1\r\nX-A: 2\r\nCookie: a=1\r\nCookie: b=2\r\nx_ignored: 1\r\nAuthorization: Basic YWRtaW46cHc=\r\nContent-Type: text/x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        seen.body.contains("'PATH_INFO' => '/p/i.php'"),
        "{}",
        seen.body
    );
    assert!(seen.body.contains("'REMOTE_USER' => 'admin'"));
    assert!(seen.body.contains("'HTTP_COOKIE' => 'b=2'"));

    let seen = same(&php, &server, &get("/headers.php")).await;
    assert_eq!(seen.framing, "chunked");
    assert_eq!(
        seen.headers
            .iter()
            .filter(|(name, _)| name == "set-cookie")
            .count(),
        2
    );
    let seen = same(&php, &server, &get("/notfound.php")).await;
    assert_eq!(seen.status_line, "HTTP/1.1 404 Not Found");
    let seen = same(&php, &server, &get("/custom.php")).await;
    assert_eq!(seen.status_line, "HTTP/1.1 299 Fine Indeed");
    let seen = same(&php, &server, &get("/location.php")).await;
    assert_eq!(seen.status_line, "HTTP/1.1 302 Found");
    same(&php, &server, &get("/empty.php")).await;
    // `Status: 299` alone: nginx writes `HTTP/1.1 299`, hyper `HTTP/1.1 299 ` (it always puts a
    // space before the reason); the parsed status lines agree.
    let seen = same(&php, &server, &get("/bare.php")).await;
    assert_eq!(seen.status_line, "HTTP/1.1 299 ");
    // hyper keeps the lines of one name together (its header map), where nginx keeps PHP's order
    // across names: `a`, `X-Mid`, `b` leave as `a`, `b`, `X-Mid`. The order within a name holds.
    let mut nginx = answer(php.nginx_addr, &get("/interleaved.php")).await;
    let mut ours = answer(server.addr, &get("/interleaved.php")).await;
    for answer in [&mut nginx, &mut ours] {
        answer.headers.sort_by(|a, b| a.0.cmp(&b.0));
    }
    assert_eq!(ours, nginx);
    same(&php, &server, &get("/nocontent.php")).await;
    same(&php, &server, &get("/notmodified.php")).await;
    same(
        &php,
        &server,
        b"HEAD /headers.php HTTP/1.1\r\nHost: php.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    same(&php, &server, &get("/sub/inner.php/x.php")).await;
    same(&php, &server, &get("/missing.php")).await;
    same(
        &php,
        &server,
        b"GET /server.php HTTP/1.0\r\nHost: php.test\r\n\r\n",
    )
    .await;

    let seen = same(&php, &server, &get("/big.php")).await;
    assert_eq!(seen.body.len(), 5 * 1024 * 1024);

    let body = "a=1&b=%20".repeat(1000);
    let post = format!(
        "POST /post.php HTTP/1.1\r\nHost: php.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let seen = same(&php, &server, post.as_bytes()).await;
    assert_eq!(seen.body, body);
    same(
        &php,
        &server,
        b"POST /server.php HTTP/1.1\r\nHost: php.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    )
    .await;
    // A body PHP never reads, under an answer larger than any socket buffer: the request must
    // not wait on PHP reading while PHP waits on us reading.
    let unread = format!(
        "POST /big.php HTTP/1.1\r\nHost: php.test\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        1024 * 1024,
        "x".repeat(1024 * 1024)
    );
    let seen = same(&php, &server, unread.as_bytes()).await;
    assert_eq!(seen.body.len(), 5 * 1024 * 1024);
    let too_big = format!(
        "POST /post.php HTTP/1.1\r\nHost: php.test\r\nContent-Length: {}\r\n\r\n",
        1024 * 1024 + 1
    );
    let seen = same(&php, &server, too_big.as_bytes()).await;
    assert_eq!(seen.status_line, "HTTP/1.1 413 Request Entity Too Large");

    server.stop().await;
}

/// Requests `script` (which prints a line, flushes, waits for its release, prints another) and
/// checks whether the first line (and the head) arrived before the release.
async fn check_flush(php: &Php, name: &str, addr: SocketAddr, script: &str, early: bool) {
    let token = format!("{script}-{name}-{early}");
    let mut exchange = exchange(addr, &get(&format!("/{script}?t={token}"))).await;
    if early {
        let first = exchange
            .read_until(Instant::now() + DEADLINE, |x| x.body.len() >= 6)
            .await
            .expect("read");
        assert!(
            first,
            "{name} {script}: the flushed line did not arrive while PHP waits"
        );
        assert_eq!(exchange.body, b"first\n", "{name} {script}");
        assert!(!exchange.complete, "{name} {script}");
    } else {
        let arrived = exchange
            .read_until(Instant::now() + Duration::from_millis(300), |x| {
                x.head.is_some()
            })
            .await
            .expect("read");
        assert!(
            !arrived,
            "{name} {script}: buffered output (or its head) left before the end"
        );
    }
    php.release(&token);
    let done = finish(exchange).await;
    assert_eq!(done.body, "first\nsecond\n", "{name} {script}");
}

/// nginx buffers PHP's output: what PHP flushes leaves only at the end (or once 8k are
/// waiting), head included. With `X-Accel-Buffering: no` each flush leaves at once.
#[tokio::test]
async fn flushed_output_leaves_when_nginx_would_let_it() {
    let php = Php::start("").await;
    let db = TestDb::with_schema().await;
    let server = php.server(&db, &[]).await;
    for (name, addr) in [("nginx", php.nginx_addr), ("server", server.addr)] {
        check_flush(&php, name, addr, "flush.php", false).await;
        check_flush(&php, name, addr, "unbuffered.php", true).await;
    }
    server.stop().await;
}

/// `fastcgi_buffering off` (as the legacy's nginx had it for the agent stream) and
/// `--fastcgi-buffering off`: every flush leaves at once.
#[tokio::test]
async fn with_buffering_off_every_flush_leaves_at_once() {
    let php = Php::start("fastcgi_buffering off;").await;
    let db = TestDb::with_schema().await;
    let server = php.server(&db, &["--fastcgi-buffering", "off"]).await;
    for (name, addr) in [("nginx", php.nginx_addr), ("server", server.addr)] {
        check_flush(&php, name, addr, "flush.php", true).await;
    }
    same(&php, &server, &get("/headers.php")).await;
    server.stop().await;
}

/// `--php-fpm host:port` reaches a TCP pool as a socket path reaches a Unix one.
#[tokio::test]
async fn php_fpm_on_tcp_answers_the_same() {
    let php = Php::start("").await;
    let db = TestDb::with_schema().await;
    let server = php.server(&db, &["--php-fpm", &php.fpm_tcp]).await;
    let pool = answer(server.addr, &get("/pool.php")).await;
    assert_eq!(pool.body, "tcp");
    let seen = same(&php, &server, &get("/headers.php")).await;
    assert_eq!(seen.body, "hi");
    same(&php, &server, &get("/notfound.php")).await;
    server.stop().await;
}

/// `--endpoint-to-php AJsendmsg.php` sends the reimplemented send endpoint to PHP; without it
/// the server answers it natively.
#[tokio::test]
async fn a_rolled_back_endpoint_runs_on_php() {
    let php = Php::start("").await;
    let db = TestDb::with_schema().await;
    let native = php.server(&db, &[]).await;
    let answered = answer(native.addr, &get("/AJsendmsg.php")).await;
    assert_ne!(answered.body, "sent by PHP");
    native.stop().await;
    let rolled_back = php
        .server(&db, &["--endpoint-to-php", "AJsendmsg.php"])
        .await;
    let seen = same(&php, &rolled_back, &get("/AJsendmsg.php")).await;
    assert_eq!(seen.body, "sent by PHP");
    rolled_back.stop().await;
}

/// A script slower than `fastcgi_read_timeout` gets nginx's 504; a stopped php-fpm its 502.
#[tokio::test]
async fn php_fpm_slow_or_down_gets_nginx_pages() {
    // Long enough that PHP's first output is never late on a loaded machine (each case below
    // waits it out once per side).
    let mut php = Php::start("fastcgi_read_timeout 1000ms;").await;
    let db = TestDb::with_schema().await;
    let server = php
        .server(&db, &["--fastcgi-read-timeout-ms", "1000"])
        .await;
    for (name, addr) in [("nginx", php.nginx_addr), ("server", server.addr)] {
        let token = format!("slow-{name}");
        let seen = answer(addr, &get(&format!("/slow.php?t={token}"))).await;
        php.release(&token);
        assert_eq!(seen.status_line, "HTTP/1.1 504 Gateway Time-out", "{name}");
    }
    let nginx = answer(php.nginx_addr, &get("/slow.php?t=x")).await;
    php.release("x");
    let ours = answer(server.addr, &get("/slow.php?t=y")).await;
    php.release("y");
    assert_eq!(ours, nginx);

    // PHP-FPM silent past the timeout after the head was sent: the connection is closed before
    // the end of the body, so the client cannot take the truncated answer for a whole one.
    // Before 8k were buffered, too: nginx has passed the head on, so it sends that, and loses
    // the line in its partly filled buffer.
    for (name, addr) in [("nginx", php.nginx_addr), ("server", server.addr)] {
        let token = format!("flush-{name}");
        let mut stalled = exchange(addr, &get(&format!("/flush.php?t={token}"))).await;
        let complete = stalled
            .read_until(Instant::now() + DEADLINE, |x| x.complete)
            .await
            .expect("read");
        php.release(&token);
        assert!(!complete && stalled.closed(), "{name}: cut");
        assert_eq!(
            stalled.head.as_ref().map(|head| head.status),
            Some(200),
            "{name}"
        );
        assert_eq!(stalled.body, b"", "{name}");
    }
    for (name, addr) in [("nginx", php.nginx_addr), ("server", server.addr)] {
        let token = format!("stall-{name}");
        let mut stalled = exchange(addr, &get(&format!("/stall.php?t={token}"))).await;
        let complete = stalled
            .read_until(Instant::now() + DEADLINE, |x| x.complete)
            .await
            .expect("read");
        php.release(&token);
        assert!(!complete, "{name}: a truncated answer looked whole");
        assert!(stalled.closed(), "{name}: the connection stayed open");
        let head = stalled.head.as_ref().expect("the head was sent");
        assert_eq!(head.status, 200, "{name}");
        assert!(
            stalled.body.len() >= 8192,
            "{name}: {} bytes",
            stalled.body.len()
        );
    }

    // A kept-open connection from before the stop must not hide it.
    same(&php, &server, &get("/empty.php")).await;
    php.stop_fpm();
    let seen = same(&php, &server, &get("/empty.php")).await;
    assert_eq!(seen.status_line, "HTTP/1.1 502 Bad Gateway");
    server.stop().await;
}

/// More requests at once than `--php-fpm-connections` wait for a connection instead of failing,
/// and are all answered once PHP goes on (the bound itself is `upstream`'s unit test).
#[tokio::test]
async fn more_requests_than_connections_wait_their_turn() {
    let php = Php::start("").await;
    let db = TestDb::with_schema().await;
    let server = php.server(&db, &["--php-fpm-connections", "2"]).await;
    let mut waiting = Vec::new();
    for _ in 0..6 {
        waiting.push(exchange(server.addr, &get("/slow.php?t=crowd")).await);
    }
    php.release("crowd");
    for exchange in waiting {
        let seen = finish(exchange).await;
        assert_eq!(
            (seen.status_line.as_str(), seen.body.as_str()),
            ("HTTP/1.1 200 OK", "late")
        );
    }
    server.stop().await;
}

/// PHP-FPM's pool exhausted (each of its six workers held by a slow script through our six
/// connections, two more requests queued for one) does not touch the chat: 1,000 polls park,
/// 1,000 sends store, and each poll gets its message while the PHP requests still wait; those
/// are answered once PHP goes on.
#[tokio::test]
async fn a_busy_php_pool_leaves_the_chat_answering() {
    let php = Php::start("").await;
    for script in ["AJ05comitajax.php", "AJ04serve.php"] {
        std::fs::copy(legacy_site().join(script), php.site().join(script)).expect("copy");
    }
    let db = TestDb::with_schema().await;
    // As many connections as the pool has workers (`pm.max_children = 6`), and no per-address
    // ceiling: every poll comes from this one address.
    let server = php
        .server(
            &db,
            &["--php-fpm-connections", "6", "--max-polls-per-address", "0"],
        )
        .await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(exchange(server.addr, &get("/held.php?t=busy")).await);
    }
    const POLLS: usize = 1_000;
    let polls: Vec<_> = (0..POLLS)
        .map(|i| {
            let request = get_request("/AJ05comitajax.php", Some(&format!("username=busy{i}")));
            tokio::spawn(exchange_from(None, server.addr, request))
        })
        .collect();
    wait_until("every poll parked", || server.hub.waiting() == POLLS).await;
    // The pool really is exhausted: PHP's own front gets no worker either.
    let mut beside = exchange(php.nginx_addr, &get("/pool.php")).await;
    let served = beside
        .read_until(Instant::now() + Duration::from_millis(200), |x| {
            x.head.is_some()
        })
        .await
        .expect("read");
    assert!(!served, "a PHP-FPM worker was free");
    for i in 0..POLLS {
        let sent = server
            .post_form(
                "/AJsendmsg.php",
                Some("username=admin"),
                format!("rec=busy{i}&content=m{i}").as_bytes(),
            )
            .await;
        assert_eq!(sent.text(), "OK", "send {i}");
    }
    for (i, poll) in polls.into_iter().enumerate() {
        let raw = within(DEADLINE, "a poll's answer", poll)
            .await
            .expect("poll task")
            .expect("connected");
        let body = complete_body(&raw).expect("a whole answer");
        assert_eq!(content_of(&body), format!("m{i}"));
    }
    for (n, waiting) in held.iter_mut().enumerate() {
        // Buffered, as behind nginx: nothing of a PHP answer leaves before the script ends.
        let answered = waiting
            .read_until(Instant::now() + Duration::from_millis(20), |x| {
                x.head.is_some()
            })
            .await
            .expect("read");
        assert!(!answered, "PHP request {n} was answered before PHP went on");
    }
    php.release("busy");
    for waiting in held {
        assert_eq!(finish(waiting).await.body, "late");
    }
    assert_eq!(finish(beside).await.body, "unix");
    server.stop().await;
}

/// A client that leaves in the middle of a large PHP answer frees its FastCGI connection: with
/// one connection allowed, the next request is answered.
#[tokio::test]
async fn a_client_leaving_mid_download_frees_its_connection() {
    let php = Php::start("").await;
    let db = TestDb::with_schema().await;
    let server = php.server(&db, &["--php-fpm-connections", "1"]).await;
    for _ in 0..3 {
        let mut leaving = exchange(server.addr, &get("/big.php")).await;
        let started = leaving
            .read_until(Instant::now() + DEADLINE, |x| x.body.len() >= 100_000)
            .await
            .expect("read");
        assert!(started, "the download started");
        drop(leaving);
        let next = answer(server.addr, &get("/pool.php")).await;
        assert_eq!(
            (next.status_line.as_str(), next.body.as_str()),
            ("HTTP/1.1 200 OK", "unix")
        );
    }
    server.stop().await;
}

#[test]
fn the_normaliser_masks_only_what_differs_by_nature() {
    assert_eq!(
        mask("  'REMOTE_PORT' => '40422',"),
        "  'REMOTE_PORT' => (masked),"
    );
    assert_eq!(
        mask("  'REQUEST_TIME' => 1,"),
        "  'REQUEST_TIME' => (masked),"
    );
    for kept in [
        "  'REMOTE_ADDR' => '127.0.0.1',",
        "  'HTTP_X_REMOTE_PORT' => '1',",
        "late",
    ] {
        assert_eq!(mask(kept), kept);
    }
}
