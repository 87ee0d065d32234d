//! A php-fpm 8.2 of the test's own: Debian's production `php.ini`, the pools the test asks for,
//! a docroot the test fills, all in one temporary directory; stopped by its pid (TERM, then
//! KILL past the deadline) when dropped, never by name, so other tests' php-fpm keep running.
//!
//! [`PhpFpm::legacy`] is the legacy site as `compat/legacy-up` runs it: the unchanged scripts, the
//! `mysql_*` shim prepended, `AJconn.php` pointed at the test's database.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{legacy_site, wait_until, TestDb, DEADLINE};

const FPM: &str = "/usr/sbin/php-fpm8.2";
const FPM_INI: &str = "/etc/php/8.2/fpm/php.ini";
const MYSQLI_INI: &str = "/etc/php/8.2/fpm/conf.d/20-mysqli.ini";

/// One `[pool]` of the configuration, with `pm = static`.
pub struct Pool {
    /// The pool's name; a Unix socket pool listens on `<name>.sock` in the directory.
    pub name: &'static str,
    /// `pm.max_children`.
    pub workers: usize,
    /// A TCP port on 127.0.0.1 instead of the socket.
    pub port: Option<u16>,
    /// More lines for the pool (`env[…]`, `php_admin_value[…]`); `{dir}` stands for the
    /// directory.
    pub lines: String,
}

impl Pool {
    /// A pool of `workers` on its Unix socket.
    pub fn socket(name: &'static str, workers: usize) -> Pool {
        Pool {
            name,
            workers,
            port: None,
            lines: String::new(),
        }
    }
}

/// A running php-fpm and its directory (`site/` is the docroot).
pub struct PhpFpm {
    dir: tempfile::TempDir,
    master: Option<Child>,
    /// The first pool on a Unix socket.
    first_socket: Option<&'static str>,
}

impl PhpFpm {
    /// Starts php-fpm with `pools` once `fill` has written the docroot; returns when every pool
    /// listens.
    pub async fn start(pools: &[Pool], fill: impl FnOnce(&Path)) -> PhpFpm {
        assert!(
            Path::new(FPM).exists(),
            "{FPM} is missing: run scripts/setup (it installs php8.2-fpm)"
        );
        let dir = tempfile::Builder::new()
            .prefix("php-fpm")
            .tempdir_in("/tmp")
            .expect("temporary directory");
        let site = dir.path().join("site");
        std::fs::create_dir(&site).expect("site");
        fill(&site);
        let run = dir.path().display();
        let [user, group] = ["-un", "-gn"].map(id);
        let mut conf = format!("[global]\nerror_log = {run}/php-fpm.log\ndaemonize = no\n");
        for pool in pools {
            let listen = match pool.port {
                Some(port) => format!("127.0.0.1:{port}"),
                None => format!("{run}/{}.sock", pool.name),
            };
            conf += &format!(
                "\n[{}]\nuser = {user}\ngroup = {group}\nlisten = {listen}\nlisten.mode = 0660\npm = static\npm.max_children = {}\n{}\n",
                pool.name,
                pool.workers,
                pool.lines.replace("{dir}", &run.to_string())
            );
        }
        let conf_path = dir.path().join("php-fpm.conf");
        std::fs::write(&conf_path, conf).expect("php-fpm.conf");
        let mut command = Command::new(FPM);
        // php-fpm refuses to run as root without -R.
        if id("-u") == "0" {
            command.arg("-R");
        }
        let master = command
            .args(["-F", "-c", FPM_INI, "-y"])
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start php-fpm");
        let fpm = PhpFpm {
            dir,
            master: Some(master),
            first_socket: pools
                .iter()
                .find(|pool| pool.port.is_none())
                .map(|pool| pool.name),
        };
        for pool in pools {
            match pool.port {
                Some(port) => {
                    wait_until("php-fpm's TCP pool", || {
                        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                    })
                    .await
                }
                None => {
                    let socket = fpm.socket_of(pool.name);
                    wait_until("php-fpm's socket", || Path::new(&socket).exists()).await
                }
            }
        }
        fpm
    }

    /// The legacy site copied for `db`, run as `compat/legacy-up` runs it (four workers).
    pub async fn legacy(db: &TestDb) -> PhpFpm {
        // Without it every legacy script dies on mysqli_report() with an empty 500, which reads
        // like a rollback defect.
        assert!(
            Path::new(MYSQLI_INI).exists(),
            "{MYSQLI_INI} is missing: the legacy scripts use mysqli; run scripts/setup (it installs php8.2-mysql)"
        );
        let shim = concat!(env!("CARGO_MANIFEST_DIR"), "/compat/php/mysql.php");
        let mut pool = Pool::socket("legacy", 4);
        pool.lines = format!(
            "catch_workers_output = yes\nphp_admin_value[auto_prepend_file] = {shim}\nphp_admin_value[error_log] = {{dir}}/php-errors.log"
        );
        PhpFpm::start(&[pool], |site| copy_legacy_site(site, &db.name)).await
    }

    /// The docroot (give it to the server as `--site`).
    pub fn site(&self) -> PathBuf {
        self.dir.path().join("site")
    }

    /// The first pool's socket (give it to the server as `--php-fpm`).
    pub fn socket(&self) -> String {
        self.socket_of(self.first_socket.expect("a pool on a Unix socket"))
    }

    /// The socket of the pool `name`.
    pub fn socket_of(&self, name: &str) -> String {
        self.dir
            .path()
            .join(format!("{name}.sock"))
            .display()
            .to_string()
    }

    /// A directory for the test's own files, removed with the rest.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// What PHP logged (warnings of the shim, fatal errors), for failure messages.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("php-errors.log")).unwrap_or_default()
    }

    /// Stops php-fpm, keeping its directory (a front may still look for the scripts).
    pub fn stop(&mut self) {
        if let Some(master) = self.master.take() {
            stop_process(master);
        }
    }
}

impl Drop for PhpFpm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// TERM by pid, then a bounded wait for the exit (polled: it also runs in `Drop`, outside async
/// code), then KILL.
pub fn stop_process(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + DEADLINE;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `id`'s answer to `flag` (`-u`, `-un`, `-gn`).
pub fn id(flag: &str) -> String {
    let out = Command::new("id").arg(flag).output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The legacy site into `site`, its `AJconn.php` selecting `database`.
fn copy_legacy_site(site: &Path, database: &str) {
    for entry in std::fs::read_dir(legacy_site()).expect("compat/legacy-site") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), site.join(entry.file_name())).expect("copy");
    }
    let conn = site.join("AJconn.php");
    let original = std::fs::read_to_string(&conn).expect("AJconn.php");
    assert!(original.contains("'use test'"), "AJconn.php selects `test`");
    std::fs::write(
        &conn,
        original.replace("'use test'", &format!("'use {database}'")),
    )
    .expect("AJconn.php");
}
