//! `deploy/`: the systemd unit passes `systemd-analyze verify` and says what an operator relies
//! on (own user, open-files limit, restart policy, a stop timeout longer than the drain), the
//! drain it gives time to really ends within it, and the nginx snippet passes `nginx -t`.
//! `scripts/setup` installs systemd and nginx where they are missing.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

const UNIT: &str = include_str!("../../deploy/chat-server.service");
const NGINX: &str = include_str!("../../deploy/nginx-chat.conf");

/// `Key=value` settings of the unit (the last one wins, as in systemd; `Environment=` collected).
fn settings() -> (HashMap<&'static str, &'static str>, Vec<&'static str>) {
    let mut keys = HashMap::new();
    let mut environment = Vec::new();
    for line in UNIT.lines().filter(|line| !line.starts_with('#')) {
        if let Some((key, value)) = line.split_once('=') {
            if key == "Environment" {
                environment.push(value);
            }
            keys.insert(key, value);
        }
    }
    (keys, environment)
}

fn seconds(value: &str) -> f64 {
    let number: f64 = value
        .trim_end_matches(char::is_alphabetic)
        .parse()
        .unwrap_or_else(|err| panic!("{value}: {err}"));
    match value.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.') {
        "" | "s" => number,
        "min" => number * 60.0,
        "ms" => number / 1000.0,
        other => panic!("unit {other}"),
    }
}

fn shutdown_grace() -> Duration {
    let (_, environment) = settings();
    let grace = environment
        .iter()
        .find_map(|value| value.strip_prefix("CHAT_SHUTDOWN_GRACE_MS="))
        .expect("the unit sets CHAT_SHUTDOWN_GRACE_MS");
    Duration::from_millis(grace.parse().expect("milliseconds"))
}

#[test]
fn the_systemd_unit_verifies_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = dir.path().join("chat-server.service");
    // verify checks that ExecStart exists and is executable: point it at the binary under test.
    std::fs::write(
        &unit,
        UNIT.replace(
            "/usr/local/bin/chat-server",
            env!("CARGO_BIN_EXE_chat-server"),
        ),
    )
    .expect("write unit");
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze must be installed (scripts/setup installs systemd)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze complained:\n{stderr}"
    );
}

#[test]
fn the_unit_runs_as_its_own_user_with_limits_restarts_and_a_stop_timeout_beyond_the_drain() {
    let (keys, _) = settings();
    assert_eq!(keys.get("DynamicUser"), Some(&"yes"));
    assert_eq!(keys.get("User"), Some(&"chat-server"));
    let files: u64 = keys["LimitNOFILE"].parse().expect("a number");
    assert!(files >= 65_536, "LimitNOFILE={files}");
    assert_eq!(keys.get("Restart"), Some(&"on-failure"));
    assert_eq!(keys.get("KillSignal"), Some(&"SIGTERM"));
    let stop = seconds(keys["TimeoutStopSec"]);
    assert!(
        stop >= shutdown_grace().as_secs_f64() + 5.0,
        "TimeoutStopSec={stop}s leaves no margin over the drain's {:?}",
        shutdown_grace()
    );
}

#[tokio::test]
async fn sigterm_drains_within_the_units_stop_timeout() {
    let db = TestDb::with_schema().await;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|probe| probe.local_addr())
        .expect("free port")
        .port();
    let (_, environment) = settings();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &db.url,
        ])
        .args(["--site", legacy_site().to_str().expect("utf8 path")])
        .envs(environment.iter().filter_map(|value| value.split_once('=')))
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start chat-server");
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    eventually(DEADLINE, "the server to listen", || async move {
        let connected = tokio::net::TcpStream::connect(addr).await;
        connected.map(drop).map_err(|err| err.to_string())
    })
    .await;
    let mut poll = ResponseReader::open(
        addr,
        &get_request("/AJ05comitajax.php", Some("username=admin1")),
    )
    .await;
    let mut stream = ResponseReader::open(addr, &get_request("/AJ04serve.php", None)).await;
    stream.read_head().await;
    assert!(
        poll.is_silent_for(Duration::from_millis(200)).await,
        "the poll waits"
    );

    let (keys, _) = settings();
    let stop = Duration::from_secs_f64(seconds(keys["TimeoutStopSec"]));
    let started = std::time::Instant::now();
    let killed = Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(killed.success());
    assert_eq!(
        poll.read_response().await.status,
        503,
        "a waiting poll is answered"
    );
    let what = format!("the process to exit within TimeoutStopSec={stop:?}");
    let status = eventually(stop.saturating_sub(started.elapsed()), &what, || {
        let exited = child.try_wait().expect("wait");
        std::future::ready(exited.ok_or_else(|| "running".to_owned()))
    })
    .await;
    assert!(status.success(), "a drained stop exits 0: {status}");
}

#[test]
fn the_nginx_snippet_passes_nginx_t_and_keeps_long_polls_open_and_unbuffered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let snippet = dir.path().join("chat.conf");
    std::fs::write(&snippet, NGINX).expect("write snippet");
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "pid {pid};\nerror_log stderr;\nevents {{}}\nhttp {{\n  access_log off;\n  server {{\n    listen 127.0.0.1:8099;\n    include {snippet};\n  }}\n}}\n",
            pid = dir.path().join("nginx.pid").display(),
            snippet = snippet.display(),
        ),
    )
    .expect("write conf");
    // Debian puts it in /usr/sbin, which a non-root PATH may lack.
    let nginx = match Path::new("/usr/sbin/nginx").exists() {
        true => "/usr/sbin/nginx",
        false => "nginx",
    };
    let output = Command::new(nginx)
        .arg("-t")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .output()
        .expect("nginx must be installed (scripts/setup installs it)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "nginx -t:\n{stderr}");
    for directive in [
        "proxy_buffering off;",
        "proxy_read_timeout 1h;",
        "proxy_http_version 1.1;",
        "proxy_set_header Host $http_host;",
    ] {
        assert!(NGINX.contains(directive), "missing {directive}");
    }
}

#[test]
fn the_compose_files_are_valid_and_wire_the_chat_to_php_fpm() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["docker-compose.yml", "docker-compose.cluster.yml"] {
        let output = Command::new("docker-compose")
            .current_dir(root)
            .args(["-f", file, "config"])
            .output()
            .expect("docker-compose must be installed (scripts/setup installs it)");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        if file == "docker-compose.yml" {
            assert!(stdout.contains("PHP_FPM: php:9000"), "{stdout}");
            assert!(
                stdout.contains("php:8.2-fpm") || stdout.contains("php-fpm"),
                "{stdout}"
            );
        }
    }
}
