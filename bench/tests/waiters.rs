//! The burst benchmark measures every poll or fails: a poll the server refused (a per-address
//! ceiling) must not leave a run that quietly timed a fifth of its work.

use std::process::Output;

use clap::Parser;
use mysql_async::prelude::Queryable;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

fn base_url() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// Runs `loadgen waiters` for `count` polls against a server with `ceiling` polls per address,
/// on a database of its own.
async fn burst(count: usize, ceiling: usize) -> Output {
    let base = base_url();
    let name = format!(
        "chat_bench_waiters_{}_{count}_{ceiling}",
        std::process::id()
    );
    let mut admin = mysql_async::Conn::from_url(&base)
        .await
        .unwrap_or_else(|err| panic!("MariaDB must be running at {base}: {err}"));
    let schema = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../sql/schema.sql"))
        .expect("schema");
    admin
        .query_drop(format!(
            "DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}; USE {name}; {schema}"
        ))
        .await
        .expect("database");
    let url = format!("{base}/{name}");
    let site = concat!(env!("CARGO_MANIFEST_DIR"), "/../compat/legacy-site");
    let config = chat_server::Config::parse_from([
        "chat-server",
        "--database-url",
        &url,
        "--site",
        site,
        "--max-polls-per-address",
        &ceiling.to_string(),
    ]);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(chat_server::run(listener, config, async move {
        let _ = stopped.await;
    }));
    let loadgen = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--target", &addr.to_string(), "--users", "t", "waiters"])
        .args(["--count", &count.to_string(), "--hold-secs", "0"])
        .args(["--insert-via", &url])
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), loadgen)
        .await
        .expect("loadgen ends within a minute")
        .expect("loadgen runs");
    let _ = stop.send(());
    server.await.expect("server task").expect("server");
    admin
        .query_drop(format!("DROP DATABASE {name}"))
        .await
        .expect("drop");
    output
}

fn line(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "one JSON line ({err}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[tokio::test]
async fn a_burst_whose_polls_were_refused_fails_and_says_how_many() {
    let output = burst(8, 5).await;
    let result = line(&output);
    assert_eq!(
        (&result["delivered"], &result["refused"]),
        (&5.into(), &3.into()),
        "{result}"
    );
    assert!(!output.status.success(), "a partial burst must fail");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("5 of 8 polls delivered (3 refused"), "{said}");
}

#[tokio::test]
async fn a_burst_with_every_poll_admitted_passes() {
    let output = burst(8, 0).await;
    let result = line(&output);
    assert_eq!(
        (&result["delivered"], &result["refused"]),
        (&8.into(), &0.into())
    );
    assert!(output.status.success(), "{result}");
}
