//! A private MariaDB with the binary log on (ROW), for push-mode tests: its own temporary data
//! directory, a free port, its socket in that directory. The shared server's settings (log_bin
//! off) are left alone.
//!
//! mariadbd runs under a small shell that holds a pipe from the test process: when the pipe
//! closes (the value dropped, or the test process gone, which also covers a value kept in a
//! `static` that is never dropped), the shell stops mariadbd and removes its data directory. No
//! mariadbd, and no data directory, outlives its tests. A restart writes `keep` first.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use super::eventually;

/// How long a fresh data directory and its first start may take on a busy machine.
const START_DEADLINE: Duration = Duration::from_secs(90);

/// A running private mariadbd.
pub struct PrivateMariaDb {
    /// `mysql://root@127.0.0.1:PORT` (no database).
    pub base_url: String,
    dir: tempfile::TempDir,
    port: u16,
    running: Option<(Child, ChildStdin)>,
}

impl PrivateMariaDb {
    /// A new data directory and a running server on a free port, ready for queries.
    pub async fn start() -> PrivateMariaDb {
        let dir = tempfile::Builder::new()
            .prefix("chat-binlog-db")
            .tempdir()
            .expect("temporary directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let cnf = write_cnf(dir.path(), port);
        let install = Command::new("mariadb-install-db")
            .arg(format!("--defaults-file={}", cnf.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mariadb-install-db must be installed for the binlog tests");
        assert!(install.success(), "mariadb-install-db failed: {install}");
        let mut db = PrivateMariaDb {
            base_url: format!("mysql://root@127.0.0.1:{port}"),
            dir,
            port,
            running: None,
        };
        db.launch().await;
        db
    }

    /// Stops mariadbd (as a clean shutdown) and starts it again on the same data and port.
    pub async fn restart(&mut self) {
        let running = self.running.take();
        // mariadbd takes a moment to shut down; the server under test keeps running meanwhile.
        tokio::task::spawn_blocking(move || stop(running, b"keep\n"))
            .await
            .expect("stopping mariadbd");
        self.launch().await;
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    async fn launch(&mut self) {
        let cnf = self.dir.path().join("my.cnf");
        // `read` returns when the test side of the pipe closes (or says `keep`); then mariadbd
        // gets SIGTERM, and unless kept for a restart its directory goes.
        let script = format!(
            "/usr/sbin/mariadbd --defaults-file={} & pid=$!; read what; kill $pid; wait $pid; \
             [ \"$what\" = keep ] || rm -rf {}",
            cnf.display(),
            self.dir.path().display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let stdin = child.stdin.take().expect("piped stdin");
        self.running = Some((child, stdin));
        let log = self.dir.path().join("error.log");
        let what = format!("the private mariadbd (see {})", log.display());
        let url = &self.base_url;
        let conn = eventually(START_DEADLINE, &what, || async move {
            mysql_async::Conn::from_url(url)
                .await
                .map_err(|err| err.to_string())
        })
        .await;
        let _ = conn.disconnect().await;
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        stop(self.running.take(), b"");
    }
}

/// Writes `say` and closes the pipe (the shell then stops mariadbd), and waits until it has.
fn stop(running: Option<(Child, ChildStdin)>, say: &[u8]) {
    if let Some((mut child, mut stdin)) = running {
        let _ = stdin.write_all(say);
        drop(stdin);
        let _ = child.wait();
    }
}

fn write_cnf(dir: &Path, port: u16) -> PathBuf {
    let cnf = dir.join("my.cnf");
    let dir = dir.display();
    std::fs::write(
        &cnf,
        format!(
            "[mariadbd]
user=root
datadir={dir}/data
socket={dir}/mysqld.sock
pid-file={dir}/mysqld.pid
log-error={dir}/error.log
bind-address=127.0.0.1
port={port}
skip-name-resolve
character-set-server=utf8mb4
collation-server=utf8mb4_general_ci
innodb_buffer_pool_size=32M
innodb_log_file_size=8M
innodb_flush_log_at_trx_commit=2
log_bin={dir}/data/binlog
binlog_format=ROW
server_id=1
"
        ),
    )
    .expect("write my.cnf");
    cnf
}
