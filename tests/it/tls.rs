//! TLS to MySQL, as managed databases require it: a MariaDB of the test's own (own datadir, port
//! and socket, stopped by its pid) with TLS switched on and a certificate the test makes with
//! rcgen, a user that may only connect over TLS, and the server and `chat-server check`
//! configured from the URL alone (`require_ssl=true&ssl_ca=…`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;
use mysql_async::prelude::Queryable;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// How long the private MariaDB may take to initialise and start.
const START_DEADLINE: Duration = Duration::from_secs(60);

struct Certificates {
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_certificates(dir: &Path) -> Certificates {
    let authority = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        (cert, key)
    };
    let (ca, ca_key) = authority("chat-server test CA");
    let (other, _) = authority("someone else's CA");
    let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    let key = KeyPair::generate().expect("server key");
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .expect("server certificate");
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("write pem");
        path
    };
    Certificates {
        ca: write("ca.pem", ca.pem()),
        other_ca: write("other-ca.pem", other.pem()),
        cert: write("server.pem", cert.pem()),
        key: write("server-key.pem", key.serialize_pem()),
    }
}

/// A MariaDB of our own, with TLS; killed (by pid) and its files removed on drop.
struct TlsMariaDb {
    child: Child,
    port: u16,
    socket: PathBuf,
    certs: Certificates,
    _dir: tempfile::TempDir,
}

impl TlsMariaDb {
    async fn start() -> TlsMariaDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let certs = make_certificates(dir.path());
        let install = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=normal",
            ])
            .arg(format!("--datadir={}", data.display()))
            .stdout(Stdio::null())
            .output()
            .expect("mariadb-install-db must be installed (MariaDB server package)");
        assert!(
            install.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&install.stderr)
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|probe| probe.local_addr())
            .expect("a free port")
            .port();
        let socket = dir.path().join("mysqld.sock");
        let child = Command::new("mariadbd")
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mysqld.pid").display()
            ))
            .arg(format!("--ssl-ca={}", certs.ca.display()))
            .arg(format!("--ssl-cert={}", certs.cert.display()))
            .arg(format!("--ssl-key={}", certs.key.display()))
            .args(["--skip-log-bin", "--innodb-buffer-pool-size=16M"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("mariadbd.log")).expect("log"))
            .spawn()
            .expect("mariadbd must be installed");
        let db = TlsMariaDb {
            child,
            port,
            socket,
            certs,
            _dir: dir,
        };
        db.wait_until_up().await;
        db
    }

    /// A root connection over the private socket (not TLS: setup only).
    async fn admin(&self) -> Result<mysql_async::Conn, mysql_async::Error> {
        let opts = mysql_async::OptsBuilder::default()
            .user(Some("root"))
            .socket(Some(self.socket.display().to_string()));
        mysql_async::Conn::new(opts).await
    }

    async fn wait_until_up(&self) {
        let conn = eventually(
            START_DEADLINE,
            "the private MariaDB to accept connections",
            || async { self.admin().await.map_err(|err| err.to_string()) },
        )
        .await;
        let _ = conn.disconnect().await;
    }

    fn url(&self, query: &str) -> String {
        // prefer_socket=false: mysql_async would otherwise move a 127.0.0.1 connection to the
        // Unix socket, and the test is about TLS over TCP.
        format!(
            "mysql://chat:pw@127.0.0.1:{}/chat?prefer_socket=false&{query}",
            self.port
        )
    }
}

impl Drop for TlsMariaDb {
    fn drop(&mut self) {
        // SIGTERM by pid for a clean stop; SIGKILL if it does not go in time.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_and_the_check_talk_tls_to_a_database_that_requires_it() {
    let mariadb = TlsMariaDb::start().await;
    let mut admin = mariadb.admin().await.expect("admin connection");
    admin
        .query_drop(format!(
            "CREATE DATABASE chat CHARACTER SET utf8mb4; USE chat; {}; \
             CREATE USER 'chat'@'%' IDENTIFIED BY 'pw' REQUIRE SSL; \
             GRANT SELECT, INSERT, UPDATE ON chat.msg TO 'chat'@'%'; \
             CREATE USER 'chat'@'localhost' IDENTIFIED BY 'pw' REQUIRE SSL; \
             GRANT SELECT, INSERT, UPDATE ON chat.msg TO 'chat'@'localhost'",
            schema_sql().trim().trim_end_matches(';')
        ))
        .await
        .expect("set up the TLS database");
    admin.disconnect().await.expect("disconnect");
    let ca = mariadb.certs.ca.display().to_string();
    let verified = mariadb.url(&format!("require_ssl=true&ssl_ca={ca}"));

    // (`localhost` too: the anonymous ''@localhost that mariadb-install-db creates would
    // otherwise take a 127.0.0.1 connection before 'chat'@'%' does.)

    // The preflight says it is TLS, and passes.
    let check = |url: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(["check", "--database-url", url])
            .args(["--site", legacy_site().to_str().expect("utf8 path")])
            .env("RUST_LOG", "off")
            .output()
            .expect("run check");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (ok, report) = check(&verified);
    assert!(ok, "{report}");
    assert!(report.contains(", TLS ("), "{report}");

    // Without TLS the user is refused; with someone else's CA the certificate is refused.
    let (ok, report) = check(&mariadb.url("require_ssl=false"));
    assert!(!ok && report.contains("cannot connect"), "{report}");
    let other = mariadb.certs.other_ca.display().to_string();
    let (ok, report) = check(&mariadb.url(&format!("require_ssl=true&ssl_ca={other}")));
    assert!(!ok && report.contains("cannot connect"), "{report}");

    // The server itself, configured from the URL alone: a message goes both ways.
    let server = TestServer::start_on_url(&verified, |_| {}).await;
    let mut poll = ResponseReader::open(
        server.addr,
        &get_request("/AJ05comitajax.php", Some("username=admin777")),
    )
    .await;
    server.wait_for_waiters("admin777", 1).await;
    let sent = server
        .post_form(
            "/AJsendmsg.php",
            Some("username=admin"),
            b"rec=admin777&content=over+TLS",
        )
        .await;
    assert_eq!(sent.text(), "OK");
    let answer = poll.read_response().await;
    assert!(
        answer.text().contains("\"content\":\"over TLS\""),
        "{answer:?}"
    );
    server.stop().await;
}
