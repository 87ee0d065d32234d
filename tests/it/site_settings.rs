//! The real binary with no `--database-url`: it reads the docroot's `AJconn.php`, connects with
//! what it says (a user of its own, with a password), delivers a message, and never writes the
//! user or the password to its log; a file it cannot read with certainty stops the start with
//! the line and the reason, again without them.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::support::*;
use mysql_async::prelude::Queryable;

/// A password with every character a URL or a PHP string treats specially but `'`.
const PASSWORD: &str = "s3cret:@/%;x y\\z";

/// A MariaDB user with [`PASSWORD`], allowed on one database; dropped with the value.
struct DbUser {
    name: String,
}

impl DbUser {
    async fn create(db: &TestDb) -> DbUser {
        // Unique per test as the database is (the tests of this file run at once).
        let name = format!("ajconn_{}", db.name.trim_start_matches("chat_test_"));
        let mut admin = mysql_async::Conn::from_url(mysql_base_url())
            .await
            .expect("MariaDB must be running for the tests");
        admin
            // CREATE USER takes no placeholders; the quoting is PHP's and MariaDB's alike.
            .query_drop(format!(
                "CREATE OR REPLACE USER '{name}'@'%' IDENTIFIED BY {}",
                php_quoted(PASSWORD)
            ))
            .await
            .expect("create user");
        admin
            .query_drop(format!("GRANT ALL ON `{}`.* TO '{name}'@'%'", db.name))
            .await
            .expect("grant");
        admin.disconnect().await.expect("disconnect");
        DbUser { name }
    }
}

impl Drop for DbUser {
    fn drop(&mut self) {
        clean_up(
            &mysql_base_url(),
            format!("DROP USER IF EXISTS '{}'@'%'", self.name),
        );
    }
}

/// A copy of the bundled site whose `AJconn.php` is `ajconn`.
fn docroot(ajconn: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary docroot");
    for entry in std::fs::read_dir(legacy_site()).expect("bundled site") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    std::fs::write(dir.path().join("AJconn.php"), ajconn).expect("write AJconn.php");
    dir
}

/// `chat-server` on `site` with no database URL in its flags or environment.
fn spawn(site: &Path, addr: SocketAddr, log: &tempfile::NamedTempFile) -> Child {
    Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--listen", &addr.to_string()])
        .args(["--site", site.to_str().expect("utf8 path")])
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "chat_server=debug")
        .stdout(log.reopen().expect("log handle"))
        .stderr(log.reopen().expect("log handle"))
        .stdin(Stdio::null())
        .spawn()
        .expect("start chat-server")
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|probe| probe.local_addr())
        .expect("a free port")
}

/// PHP's single-quoted form of `text` (also a MariaDB string literal).
fn php_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[tokio::test]
async fn with_no_database_url_the_site_s_tcp_settings_are_used_and_its_credentials_never_logged() {
    let base = mysql_async::Opts::from_url(&mysql_base_url()).expect("TEST_MYSQL_URL");
    let host = format!("{}:{}", base.ip_or_hostname(), base.tcp_port());
    let server = format!("server TCP {host} (line 4, mysql_connect())");
    serves_with_the_site_s_settings(&host, &server).await;
}

#[tokio::test]
async fn with_no_database_url_the_site_s_localhost_socket_is_used() {
    let mut admin = mysql_async::Conn::from_url(mysql_base_url())
        .await
        .expect("MariaDB must be running for the tests");
    let socket: String = admin
        .query_first("SELECT @@socket")
        .await
        .expect("@@socket")
        .expect("a socket path");
    admin.disconnect().await.expect("disconnect");
    let server = format!("server Unix socket {socket} (line 4, mysql_connect())");
    let (site, _user, _db) =
        serves_with_the_site_s_settings(&format!("localhost:{socket}"), &server).await;
    // The preflight reads the same file and says where it connected.
    let output = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["check", "--site", site.path().to_str().expect("utf8 path")])
        .env_remove("DATABASE_URL")
        .output()
        .expect("run chat-server check");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        report.contains(&format!(
            "database: connected to socket {socket}, database `"
        )),
        "{report}"
    );
    assert!(!report.contains("s3cret"), "{report}");
}

#[tokio::test]
async fn a_refused_login_is_logged_without_the_password() {
    let db = TestDb::with_schema().await;
    let user = DbUser::create(&db).await;
    let base = mysql_async::Opts::from_url(&mysql_base_url()).expect("TEST_MYSQL_URL");
    let site = docroot(&format!(
        "<?php\n$conn = mysqli_connect('{}', {}, 'wrong-s3cret', '{}', {});\n",
        base.ip_or_hostname(),
        php_quoted(&user.name),
        db.name,
        base.tcp_port(),
    ));
    let addr = free_addr();
    let log = tempfile::NamedTempFile::new().expect("log file");
    let mut child = spawn(site.path(), addr, &log);
    wait_for_log(&log, "serving").await;
    let sent = RawResponse::exchange(
        addr,
        &form_request(
            "/AJsendmsg.php",
            Some("username=admin1"),
            b"rec=a&content=x",
        ),
    )
    .await;
    assert_eq!(sent.body, b"FIAL");
    let text = wait_for_log(&log, "Access denied").await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(!text.contains("s3cret"), "{text}");
    assert!(
        !text.contains(&user.name),
        "MariaDB's refusal names the user:\n{text}"
    );
}

/// A docroot whose AJconn.php connects to `host` (as `mysql_connect` reads it) with a user of
/// its own: a send and a poll go through, the log says `server`, and neither credential shows.
/// Returns the docroot, the user and the database, which live as long as the caller keeps them.
async fn serves_with_the_site_s_settings(
    host: &str,
    server: &str,
) -> (tempfile::TempDir, DbUser, TestDb) {
    let db = TestDb::with_schema().await;
    let user = DbUser::create(&db).await;
    let ajconn = format!(
        "<?php\n\n//连接数据库\n$conn=mysql_connect('{host}',{},{}) or die('no: ' . mysql_error());\n\
         mysql_select_db('{}', $conn);\nmysql_query('set names utf8',$conn);\n\n?>\n",
        php_quoted(&user.name),
        php_quoted(PASSWORD),
        db.name,
    );
    let site = docroot(&ajconn);
    let addr = free_addr();
    let log = tempfile::NamedTempFile::new().expect("log file");
    let mut child = spawn(site.path(), addr, &log);
    let text = wait_for_log(&log, "serving").await;
    let sent = RawResponse::exchange(
        addr,
        &form_request(
            "/AJsendmsg.php",
            Some("username=admin1"),
            "rec=admin2&content=hello from AJconn.php".as_bytes(),
        ),
    )
    .await;
    assert_eq!(sent.body, b"OK", "{text}");
    let polled = RawResponse::exchange(
        addr,
        &get_request("/AJ05comitajax.php", Some("username=admin2")),
    )
    .await;
    assert!(
        polled
            .text()
            .contains(r#""content":"hello from AJconn.php""#),
        "{}",
        polled.text()
    );
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(log.path()).expect("read log");
    let settings = text
        .lines()
        .find(|line| line.contains("database settings from"))
        .unwrap_or_else(|| panic!("no settings line:\n{text}"));
    assert!(
        settings.contains(&format!("{}/AJconn.php", site.path().display()))
            && settings.contains(server)
            && settings.contains(&format!("database {} (line 5, mysql_select_db())", db.name))
            && settings.contains("(line 4, mysql_connect()), not logged"),
        "{settings}"
    );
    for secret in [PASSWORD, "s3cret", &user.name] {
        assert!(!text.contains(secret), "{secret:?} in the log:\n{text}");
    }
    (site, user, db)
}

#[tokio::test]
async fn a_file_that_cannot_be_read_with_certainty_stops_the_start_and_names_the_line() {
    let site = docroot(
        "<?php\n$password = 's3cret-refused';\n$conn = mysql_connect('localhost', 'root', $password);\nmysql_select_db('test');\n",
    );
    let log = tempfile::NamedTempFile::new().expect("log file");
    let mut child = spawn(site.path(), free_addr(), &log);
    let status = eventually(DEADLINE, "the server to stop", || {
        let exited = child.try_wait().expect("child status");
        std::future::ready(exited.ok_or_else(|| "running".to_owned()))
    })
    .await;
    assert!(!status.success());
    let text = std::fs::read_to_string(log.path()).expect("read log");
    assert!(
        text.contains("AJconn.php: line 2: sets the variable $password")
            && text.contains("give --database-url"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
}

async fn wait_for_log(log: &tempfile::NamedTempFile, wanted: &str) -> String {
    eventually(DEADLINE, &format!("{wanted:?} in the log"), || {
        let text = std::fs::read_to_string(log.path()).expect("read log");
        std::future::ready(match text.contains(wanted) {
            true => Ok(text),
            false => Err(format!("\n{text}")),
        })
    })
    .await
}
