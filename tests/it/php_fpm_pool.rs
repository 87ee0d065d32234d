//! What `--php-fpm` holds while requests wait on a small PHP-FPM pool:
//!
//! - FPM workers: each idle kept-open connection holds one, so once our traffic stops they must
//!   be closed, or another client sharing the pool (nginx during a migration) waits for ever.
//!   The other client here is a bare FastCGI request straight to the pool's socket, as nginx
//!   sends one.
//! - Memory: bodies waiting for a worker are kept as nginx keeps them, 16k in memory and the
//!   rest in a temporary file, so many parallel uploads do not add up in memory.
//!
//! php-fpm8.2 must be installed (`scripts/setup`); each test starts its own in a temporary
//! directory and stops it by its pid.

use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::support::php_fpm::{PhpFpm, Pool};
use crate::support::process::ServerProcess;
use crate::support::{eventually, wait_until, within, RawResponse, TestDb, TestServer, DEADLINE};

/// Workers in the pool, and our connections to it.
const WORKERS: usize = 2;

/// A PHP-FPM pool of [`WORKERS`] static workers, alone in a temporary directory.
struct SmallPool {
    fpm: PhpFpm,
}

impl SmallPool {
    async fn start() -> SmallPool {
        let fpm = PhpFpm::start(&[Pool::socket("pool", WORKERS)], |site| {
            // Says it started, then waits (5 s at most) for the test to let it finish.
            std::fs::write(
                site.join("hold.php"),
                "<?php $t = basename($_GET['t']); touch(__DIR__ . \"/started-$t\"); for ($i = 0; $i < 500 && !file_exists(__DIR__ . '/release'); $i++) usleep(10000); echo 'held';\n",
            )
            .expect("hold.php");
            std::fs::write(site.join("hello.php"), "<?php echo 'hello';\n").expect("hello.php");
            // Waits for the test (5 s at most), then says what arrived.
            std::fs::write(
                site.join("upload.php"),
                "<?php for ($i = 0; $i < 500 && !file_exists(__DIR__ . '/release'); $i++) usleep(10000); $in = file_get_contents('php://input'); echo strlen($in), ' ', md5($in);\n",
            )
            .expect("upload.php");
        })
        .await;
        SmallPool { fpm }
    }

    fn site(&self) -> std::path::PathBuf {
        self.fpm.site()
    }

    fn socket(&self) -> String {
        self.fpm.socket()
    }

    /// Our server in front of the pool, with as many connections as it has workers, and
    /// `--php-fpm-idle-ms` if given.
    async fn server(&self, db: &TestDb, idle_ms: Option<&str>) -> TestServer {
        let site = self.site().display().to_string();
        let socket = self.socket();
        let idle = idle_ms.map(|ms| ["--php-fpm-idle-ms".to_owned(), ms.to_owned()]);
        TestServer::start_with(db, move |args| {
            args.extend([
                "--site".into(),
                site,
                "--php-fpm".into(),
                socket,
                "--php-fpm-connections".into(),
                WORKERS.to_string(),
            ]);
            args.extend(idle.into_iter().flatten());
        })
        .await
    }

    /// [`WORKERS`] requests through `server` at once, so that it opens as many connections,
    /// each answered; then they are idle.
    async fn use_every_worker(&self, server: &TestServer) {
        let site = self.site();
        let _ = std::fs::remove_file(site.join("release"));
        let paths: Vec<String> = (0..WORKERS).map(|n| format!("/hold.php?t={n}")).collect();
        let requests: Vec<_> = paths.iter().map(|path| server.get(path, None)).collect();
        let all = futures_util::future::join_all(requests);
        let release = async {
            wait_until("every worker to run hold.php", || {
                (0..WORKERS).all(|n| site.join(format!("started-{n}")).exists())
            })
            .await;
            std::fs::write(site.join("release"), "").expect("release");
        };
        let (answers, ()) = tokio::join!(all, release);
        for answer in answers {
            assert_eq!((answer.status, answer.text()), (200, "held".to_owned()));
        }
        for n in 0..WORKERS {
            let _ = std::fs::remove_file(site.join(format!("started-{n}")));
        }
    }

    /// Another client's request: `hello.php`, straight to the pool as nginx sends it (without
    /// keeping the connection); PHP's output.
    async fn direct_request(socket: String, script: std::path::PathBuf) -> Vec<u8> {
        let mut stream = UnixStream::connect(socket)
            .await
            .expect("connect to php-fpm");
        let mut request = Vec::new();
        // FCGI_BEGIN_REQUEST: the responder role, connection not kept.
        push(&mut request, 1, &[0, 1, 0, 0, 0, 0, 0, 0]);
        let mut params = Vec::new();
        for (name, value) in [
            ("SCRIPT_FILENAME", script.display().to_string()),
            ("REQUEST_METHOD", "GET".to_owned()),
        ] {
            params.extend([name.len() as u8, value.len() as u8]);
            params.extend(name.bytes().chain(value.bytes()));
        }
        push(&mut request, 4, &params);
        push(&mut request, 4, &[]);
        push(&mut request, 5, &[]);
        stream.write_all(&request).await.expect("send");
        let mut stdout = Vec::new();
        loop {
            let mut header = [0; 8];
            stream.read_exact(&mut header).await.expect("a record");
            let length = usize::from(u16::from_be_bytes([header[4], header[5]]));
            let mut content = vec![0; length + usize::from(header[6])];
            stream.read_exact(&mut content).await.expect("its content");
            match header[1] {
                6 => stdout.extend_from_slice(&content[..length]),
                3 => return stdout,
                _ => {}
            }
        }
    }
}

/// One FastCGI record of request 1.
fn push(out: &mut Vec<u8>, kind: u8, content: &[u8]) {
    let length = u16::try_from(content.len()).expect("a short record");
    out.extend([1, kind, 0, 1]);
    out.extend(length.to_be_bytes());
    out.extend([0, 0]);
    out.extend_from_slice(content);
}

/// Our connections use every worker of the pool. Kept idle a minute, they starve another
/// client until our server stops (the situation the idle time exists for); with the default
/// idle time, the other client gets a worker within the deadline while our server still runs.
#[tokio::test]
async fn once_our_traffic_stops_another_client_gets_a_worker() {
    let db = TestDb::with_schema().await;
    let pool = SmallPool::start().await;
    let hello = pool.site().join("hello.php");

    let server = pool.server(&db, Some("60000")).await;
    pool.use_every_worker(&server).await;
    let mut starved = tokio::spawn(SmallPool::direct_request(pool.socket(), hello.clone()));
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut starved)
            .await
            .is_err(),
        "another client got a worker while our idle connections held them all"
    );
    server.stop().await;
    let answer = within(DEADLINE, "the starved request", starved)
        .await
        .expect("the request task");
    assert!(answer.ends_with(b"hello"), "{answer:?}");

    let server = pool.server(&db, None).await;
    pool.use_every_worker(&server).await;
    let answer = within(
        DEADLINE,
        "another client's request while our server runs",
        SmallPool::direct_request(pool.socket(), hello),
    )
    .await;
    assert!(answer.ends_with(b"hello"), "{answer:?}");
    let still = server.get("/hello.php", None).await;
    assert_eq!((still.status, still.text()), (200, "hello".to_owned()));
    server.stop().await;
}

/// Uploads at once, each of a megabyte (the default `client_max_body_size`).
const UPLOADS: usize = 24;
const UPLOAD_BYTES: usize = 1024 * 1024;

/// An upload of `body` to `upload.php`, with a length or (`chunked`) in 64k chunks.
fn upload_request(body: &[u8], chunked: bool) -> Vec<u8> {
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {}", body.len())
    };
    let mut raw = format!(
        "POST /upload.php HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n{framing}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    if !chunked {
        raw.extend_from_slice(body);
        return raw;
    }
    for chunk in body.chunks(65536) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    raw
}

/// `VmHWM` (the most resident memory so far) of a process, in bytes.
fn peak_memory(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb * 1024
}

/// The unlinked temporary files a process holds open.
fn spooled_bodies(pid: u32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    let temp = std::env::temp_dir();
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| {
            target.starts_with(&temp) && target.to_string_lossy().ends_with(" (deleted)")
        })
        .count()
}

/// Megabyte uploads, some chunked, all waiting at once for a pool of two workers: each waits in
/// a temporary file, the server's memory grows by far less than the uploads it holds, and PHP
/// gets every body whole.
#[tokio::test]
async fn parallel_uploads_wait_in_files_not_in_memory() {
    let db = TestDb::with_schema().await;
    let pool = SmallPool::start().await;
    let site = pool.site().display().to_string();
    let socket = pool.socket();
    let connections = WORKERS.to_string();
    let server = ServerProcess::start(
        &db.url,
        &[
            "--site",
            &site,
            "--php-fpm",
            &socket,
            "--php-fpm-connections",
            &connections,
        ],
    )
    .await;
    let pid = server.pid();
    let release = pool.site().join("release");
    std::fs::write(&release, "").expect("release");
    let small = RawResponse::exchange(server.addr, &upload_request(b"warm", false)).await;
    assert_eq!(small.text(), format!("4 {}", md5_hex(b"warm")));
    std::fs::remove_file(&release).expect("hold again");
    let before = peak_memory(pid);

    let body: Vec<u8> = (0..UPLOAD_BYTES).map(|n| (n % 253) as u8).collect();
    let requests: Vec<Vec<u8>> = (0..UPLOADS)
        .map(|n| upload_request(&body, n % 3 == 0))
        .collect();
    let uploads = futures_util::future::join_all(
        requests
            .iter()
            .map(|raw| RawResponse::exchange(server.addr, raw)),
    );
    let held = async {
        eventually(DEADLINE * 3, "every upload in a temporary file", || {
            let spooled = spooled_bodies(pid);
            std::future::ready(if spooled >= UPLOADS {
                Ok(())
            } else {
                Err(format!("{spooled} files"))
            })
        })
        .await;
        let grown = peak_memory(pid).saturating_sub(before);
        std::fs::write(&release, "").expect("release");
        grown
    };
    let (answers, grown) = tokio::join!(uploads, held);
    assert!(
        grown < UPLOADS * UPLOAD_BYTES / 2,
        "the server's peak memory grew by {grown} bytes holding {UPLOADS} uploads of {UPLOAD_BYTES}"
    );
    let expected = format!("{UPLOAD_BYTES} {}", md5_hex(&body));
    for answer in answers {
        assert_eq!((answer.status, answer.text()), (200, expected.clone()));
    }
}

/// PHP's `md5()` of `data`, from PHP itself (no MD5 in the test's dependencies).
fn md5_hex(data: &[u8]) -> String {
    let mut php = Command::new("php8.2")
        .args(["-r", "echo md5(stream_get_contents(STDIN));"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("php8.2");
    std::io::Write::write_all(&mut php.stdin.take().expect("stdin"), data).expect("write");
    let output = php.wait_with_output().expect("php8.2's answer");
    String::from_utf8(output.stdout).expect("hex")
}
