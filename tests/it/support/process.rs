//! The server as a process of its own, so a test can SIGKILL, SIGTERM or SIGHUP it, read its log
//! and start it again on the same port, and a raw client that never panics on a cut connection: what a browser holds
//! when the server dies under it.

use std::net::SocketAddr;
use std::process::{Child, Command};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::{eventually, get_request, legacy_site, DEADLINE};

/// A `chat-server` child process.
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    args: Vec<String>,
    database_url: String,
    /// Its stdout: warnings and errors, and `fastcgi`'s information lines (the rollback list).
    log: tempfile::NamedTempFile,
}

impl ServerProcess {
    /// Starts the binary on a free port against `database_url`, with `extra` flags.
    pub async fn start(database_url: &str, extra: &[&str]) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let args: Vec<String> = extra.iter().map(|arg| arg.to_string()).collect();
        Self::start_at(addr, database_url, args).await
    }

    async fn start_at(addr: SocketAddr, database_url: &str, args: Vec<String>) -> ServerProcess {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args([
                "--listen",
                &addr.to_string(),
                "--database-url",
                database_url,
            ])
            .args(["--site", legacy_site().to_str().expect("utf8 path")])
            .args(["--watch-interval-ms", "50", "--max-polls-per-address", "0"])
            .args(&args)
            .env("RUST_LOG", "warn,chat_server::fastcgi=info")
            .stdout(log.reopen().expect("log handle"))
            .spawn()
            .expect("start chat-server");
        let server = ServerProcess {
            child,
            addr,
            args,
            database_url: database_url.to_owned(),
            log,
        };
        let started = &server;
        eventually(DEADLINE, "the server's metrics", || async move {
            let metric = started.metric("chat_waiting_requests").await;
            metric.map(drop).ok_or_else(|| "no answer".to_owned())
        })
        .await;
        server
    }

    /// Its process id, to look at it in `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The same server started again on the same port (after a kill or a stop).
    pub async fn restart(self) -> ServerProcess {
        let (addr, url, args) = (self.addr, self.database_url.clone(), self.args.clone());
        drop(self);
        Self::start_at(addr, &url, args).await
    }

    /// A gauge or counter from `/.chat-server/metrics`; `None` while it does not answer.
    pub async fn metric(&self, name: &str) -> Option<u64> {
        let raw =
            exchange_from(None, self.addr, get_request("/.chat-server/metrics", None)).await?;
        let body = complete_body(&raw)?;
        String::from_utf8_lossy(&body)
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))?
            .parse()
            .ok()
    }

    /// Waits until exactly `count` requests are parked.
    pub async fn wait_for_waiting(&self, count: u64) {
        eventually(
            DEADLINE * 3,
            &format!("{count} parked requests"),
            || async move {
                match self.metric("chat_waiting_requests").await {
                    Some(parked) if parked == count => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await
    }

    /// What it has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).expect("read the server's log")
    }

    /// SIGHUP, as `systemctl reload` would send it.
    pub fn hang_up(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(status.success(), "SIGHUP delivered");
    }

    /// SIGKILL: no drain, no rollback from our side; only MySQL's own cleanup.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, as `docker compose stop` sends it; returns once the process has exited.
    pub fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "SIGTERM delivered");
        self.child.wait().expect("exited after draining");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One exchange read to the end of the connection (requests say `Connection: close`), from the
/// local address `local` if given; `None` when it could not even connect or write. A parked poll
/// may wait a long while for its message, but not for ever: past [`HANG`] the read ends with what
/// came, so a server that never answers fails the test instead of hanging it.
pub async fn exchange_from(local: Option<&str>, addr: SocketAddr, raw: Vec<u8>) -> Option<Vec<u8>> {
    let mut stream = connect_from(local, addr).await?;
    stream.write_all(&raw).await.ok()?;
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(HANG, stream.read_to_end(&mut bytes)).await;
    Some(bytes)
}

/// The longest any raw read of these helpers waits.
pub const HANG: std::time::Duration = std::time::Duration::from_secs(120);

/// A connection from the local address `local` (any of 127.0.0.0/8), or the default.
pub async fn connect_from(local: Option<&str>, addr: SocketAddr) -> Option<TcpStream> {
    match local {
        None => TcpStream::connect(addr).await.ok(),
        Some(ip) => {
            let socket = TcpSocket::new_v4().ok()?;
            socket.bind(format!("{ip}:0").parse().ok()?).ok()?;
            socket.connect(addr).await.ok()
        }
    }
}

/// The body of a complete `200` response with a Content-Length, or `None` for anything else or
/// anything cut short.
pub fn complete_body(raw: &[u8]) -> Option<Vec<u8>> {
    let split = chat_compat::http::find(raw, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("Content-Length: "))?
        .trim()
        .parse()
        .ok()?;
    let body = &raw[split + 4..];
    (body.len() == length).then(|| body.to_vec())
}

/// The `content` of a poll's JSON answer, or of a stream's `comet(…)` argument.
pub fn content_of(json: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(json).expect("JSON");
    value["content"].as_str().expect("content").to_owned()
}
