//! The legacy PHP itself, for tests where it writes beside the server: a php-fpm 8.2 of the test's
//! own, configured as `compat/legacy-up` configures it (Debian's production php.ini, a static pool,
//! the `mysql_*` shim `compat/php/mysql.php` auto-prepended), on a scratch copy of
//! `compat/legacy-site` whose `AJconn.php` uses the test's database (the `sed` of
//! `compat/fuzz-live`). Stopped by its pid (TERM to the master, which ends its workers: a
//! legacy long poll loops until a row comes), never by name.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{legacy_site, wait_until, TestDb, DEADLINE};

const FPM: &str = "/usr/sbin/php-fpm8.2";
const FPM_INI: &str = "/etc/php/8.2/fpm/php.ini";

/// A running php-fpm and the docroot it serves.
pub struct LegacyFpm {
    dir: tempfile::TempDir,
    master: Option<Child>,
}

impl LegacyFpm {
    /// Copies the legacy site for `db` and starts php-fpm on a Unix socket beside it.
    pub async fn start(db: &TestDb) -> LegacyFpm {
        assert!(
            Path::new(FPM).exists(),
            "{FPM} is missing: these tests run the real legacy PHP; run scripts/setup (it installs php8.2-fpm)"
        );
        let dir = tempfile::Builder::new()
            .prefix("legacy-fpm")
            .tempdir_in("/tmp")
            .expect("temporary directory");
        let site = dir.path().join("site");
        std::fs::create_dir(&site).expect("site");
        for entry in std::fs::read_dir(legacy_site()).expect("compat/legacy-site") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), site.join(entry.file_name())).expect("copy");
        }
        let conn = site.join("AJconn.php");
        let original = std::fs::read_to_string(&conn).expect("AJconn.php");
        assert!(original.contains("'use test'"), "AJconn.php selects `test`");
        std::fs::write(
            &conn,
            original.replace("'use test'", &format!("'use {}'", db.name)),
        )
        .expect("AJconn.php");

        let shim = concat!(env!("CARGO_MANIFEST_DIR"), "/compat/php/mysql.php");
        let run = dir.path().display().to_string();
        let [user, group] = ["-un", "-gn"].map(|flag| {
            let out = Command::new("id").arg(flag).output().expect("id");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        });
        std::fs::write(
            dir.path().join("php-fpm.conf"),
            format!(
                "[global]\nerror_log = {run}/php-fpm.log\ndaemonize = no\n\n\
                 [legacy]\nuser = {user}\ngroup = {group}\nlisten = {run}/php-fpm.sock\n\
                 listen.mode = 0660\npm = static\npm.max_children = 4\ncatch_workers_output = yes\n\
                 php_admin_value[auto_prepend_file] = {shim}\n\
                 php_admin_value[error_log] = {run}/php-errors.log\n"
            ),
        )
        .expect("php-fpm.conf");
        let mut command = Command::new(FPM);
        if running_as_root() {
            command.arg("-R");
        }
        let master = command
            .args(["-F", "-c", FPM_INI, "-y"])
            .arg(dir.path().join("php-fpm.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start php-fpm");
        let fpm = LegacyFpm {
            dir,
            master: Some(master),
        };
        let socket = fpm.dir.path().join("php-fpm.sock");
        wait_until("php-fpm's socket", || socket.exists()).await;
        fpm
    }

    /// The scratch docroot (give it to the server as `--site`).
    pub fn site(&self) -> PathBuf {
        self.dir.path().join("site")
    }

    /// The socket (give it to the server as `--php-fpm`).
    pub fn socket(&self) -> String {
        self.dir.path().join("php-fpm.sock").display().to_string()
    }

    /// A directory for the test's own files, removed with the rest.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// What PHP logged (warnings of the shim, fatal errors), for failure messages.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("php-errors.log")).unwrap_or_default()
    }
}

/// php-fpm refuses to run as root without `-R`.
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

impl Drop for LegacyFpm {
    fn drop(&mut self) {
        let Some(mut master) = self.master.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &master.id().to_string()])
            .status();
        // A bounded wait in a Drop, outside async context: poll the exit.
        let deadline = std::time::Instant::now() + DEADLINE;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = master.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = master.kill();
        let _ = master.wait();
    }
}
