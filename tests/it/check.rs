//! `chat-server check`, the preflight, run as the operator runs it: the real binary against the
//! real MariaDB, reading its words and its exit status.

use std::process::{Command, Output};

use crate::support::*;

fn check(url: &str, extra: &[&str]) -> (bool, String) {
    let Output { status, stdout, .. } = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .arg("check")
        .args(["--database-url", url])
        .args(["--site", legacy_site().to_str().expect("utf8 path")])
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run chat-server check");
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
    )
}

fn line<'a>(report: &'a str, what: &str) -> &'a str {
    report
        .lines()
        .find(|line| line[6..].starts_with(what))
        .unwrap_or_else(|| panic!("no {what} line in:\n{report}"))
}

#[tokio::test]
async fn a_ready_database_is_described_in_plain_words_and_passes() {
    let db = TestDb::with_schema().await;
    db.exec("INSERT INTO msg(rec,pos,content,isread) VALUES('admin','admin1','a',1),('admin','admin1','b',0)")
        .await;
    let (ok, report) = check(&db.url, &[]);
    assert!(ok, "{report}");
    assert!(line(&report, "database").contains("no TLS"), "{report}");
    assert_eq!(
        line(&report, "columns"),
        "ok    columns: mid int(10) unsigned auto_increment, rec varchar(64), pos varchar(64), content text, isread tinyint(4)"
    );
    assert_eq!(line(&report, "engine"), "ok    engine: InnoDB");
    assert!(line(&report, "charset").contains("utf8mb4"));
    assert!(
        line(&report, "rows").contains("2 in msg, 1 unread"),
        "{report}"
    );
    assert!(
        line(&report, "unread lookup").contains("Not required"),
        "{report}"
    );
    assert!(line(&report, "privileges").starts_with("ok"));
    assert!(line(&report, "binary log").starts_with("note"));
    assert!(line(&report, "file descriptors").starts_with("ok"));
    assert!(report.ends_with("result: ready; nothing found that would break the service\n"));

    db.exec("ALTER TABLE msg ADD INDEX msg_unread_by_rec (rec, isread, mid)")
        .await;
    let (_, report) = check(&db.url, &[]);
    assert!(line(&report, "unread lookup").contains("an index starts with rec"));
}

#[tokio::test]
async fn what_would_break_the_service_fails_the_check() {
    let empty = TestDb::create().await;
    let (ok, report) = check(&empty.url, &[]);
    assert!(!ok);
    assert!(line(&report, "table msg").starts_with("FAIL"), "{report}");

    let db = TestDb::with_schema().await;
    let (ok, report) = check(&db.url, &["--expected-customers", "1000000000"]);
    assert!(!ok);
    assert!(
        line(&report, "file descriptors").starts_with("FAIL"),
        "{report}"
    );

    db.exec("ALTER TABLE msg MODIFY rec VARCHAR(8) NOT NULL DEFAULT ''")
        .await;
    let (ok, _) = check(&db.url, &[]);
    assert!(ok, "eight characters hold the legacy's adminNNN");
    let (ok, report) = check(&db.url, &["--hardened"]);
    assert!(!ok, "but not the hardened mode's twelve digits:\n{report}");

    let (ok, report) = check("mysql://root@127.0.0.1:1/test", &[]);
    assert!(!ok);
    assert!(
        line(&report, "database").contains("cannot connect"),
        "{report}"
    );
}

#[tokio::test]
async fn a_user_without_update_is_told_which_privilege_is_missing() {
    let db = TestDb::with_schema().await;
    let user = format!("chk_{}", &db.name[db.name.len() - 9..]);
    for host in ["localhost", "127.0.0.1"] {
        db.exec(&format!(
            "CREATE USER '{user}'@'{host}' IDENTIFIED BY 'pw'; GRANT SELECT, INSERT ON `{}`.msg TO '{user}'@'{host}'",
            db.name
        ))
        .await;
    }
    let url = db
        .url
        .replacen("mysql://root@", &format!("mysql://{user}:pw@"), 1);
    let (ok, report) = check(&url, &[]);
    for host in ["localhost", "127.0.0.1"] {
        db.exec(&format!("DROP USER '{user}'@'{host}'")).await;
    }
    assert!(!ok, "{report}");
    assert!(
        line(&report, "privileges").starts_with("FAIL  privileges: missing UPDATE on msg"),
        "{report}"
    );
    assert_eq!(db.messages().await.len(), 0, "the probes wrote nothing");
}
