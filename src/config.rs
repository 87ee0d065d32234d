//! Command-line and environment configuration: every knob in one struct, each flag also an
//! environment variable, documented by `--help` and README.md.
//!
//! Tests build a `Config` with [`Config::parse_from`] and explicit flags, so they never depend on
//! the process environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::php;

/// Server configuration.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "chat-server",
    version,
    about = "Drop-in server for the legacy PHP long-poll chat",
    after_help = "`chat-server check [FLAGS]` checks the database, the table and the limits with the same flags, prints what it found, and exits non-zero when something would break the service.",
    args_override_self = true
)]
pub struct Config {
    /// Address and port to listen on.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// MySQL/MariaDB URL. Without it, the site's own `AJconn.php` says where the database is
    /// (literal settings only; anything else stops the start with the reason).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// The legacy docroot: the site's `.php` pages and static files (`jquery.js`).
    #[arg(long, env = "CHAT_SITE", default_value = "compat/legacy-site")]
    pub site: PathBuf,

    /// URL path the site lives under, e.g. `/chat` for `/chat/AJ05customer.php`.
    #[arg(long, env = "CHAT_BASE_PATH", default_value = "/")]
    pub base_path: String,

    /// How often (ms) one background query looks for messages written by anyone else: the legacy
    /// PHP during a migration, another instance, a direct INSERT.
    #[arg(long, env = "CHAT_WATCH_INTERVAL_MS", default_value_t = 200)]
    pub watch_interval_ms: u64,

    /// What wakes the watcher for rows written by anyone else: `binlog` follows the database's
    /// binary log (ROW format, REPLICATION SLAVE and REPLICATION CLIENT) and ticks only when a row
    /// is written, refusing to start when the database does not allow it; `watcher` ticks every
    /// `--watch-interval-ms`; `auto` is `binlog` when the database allows it, else `watcher`.
    #[arg(long, env = "CHAT_PUSH", value_enum, default_value = "auto")]
    pub push: Push,

    /// How long (ms) an id missing below newer rows is awaited before it is taken as rolled back.
    /// Auto-increment ids become visible at commit, not in id order.
    #[arg(long, env = "CHAT_LATE_COMMIT_GRACE_MS", default_value_t = 30_000)]
    pub late_commit_grace_ms: u64,

    /// How often (ms) the unread rows are scanned again as a safety net (rows made unread by hand,
    /// late commits past their grace); 0 never rescans. One scan of the table each time.
    #[arg(long, env = "CHAT_RESCAN_INTERVAL_MS", default_value_t = 60_000)]
    pub rescan_interval_ms: u64,

    /// Most long polls and agent streams parked at once from one client address; 0 = no limit.
    /// Generous by default: an office behind one NAT address is many customers.
    #[arg(long, env = "CHAT_MAX_POLLS_PER_ADDRESS", default_value_t = 1_000)]
    pub max_polls_per_address: usize,

    /// Most long polls parked at once for one username (tabs of one customer); 0 = no limit.
    #[arg(long, env = "CHAT_MAX_POLLS_PER_USER", default_value_t = 20)]
    pub max_polls_per_user: usize,

    /// Answer a long poll that waited this long (ms) with `null`, which the unchanged customer
    /// page takes as "poll again" without showing anything; 0 waits forever, as the legacy did.
    #[arg(long, env = "CHAT_MAX_PARK_MS", default_value_t = 0)]
    pub max_park_ms: u64,

    /// Speak the legacy's `SET NAMES utf8` instead of utf8mb4 (emoji then fail or read back as `?`,
    /// exactly as under PHP).
    #[arg(long, env = "CHAT_LEGACY_CHARSET")]
    pub legacy_charset: bool,

    /// Upper bound (ms) for any one database operation; a send answers `FIAL` after it.
    #[arg(long, env = "CHAT_DB_TIMEOUT_MS", default_value_t = 3_000)]
    pub db_timeout_ms: u64,

    /// Most database connections this instance opens. Waiting clients hold none.
    #[arg(long, env = "CHAT_DB_POOL_MAX", default_value_t = 16)]
    pub db_pool_max: usize,

    /// Largest request body accepted (nginx's `client_max_body_size` default); larger is 413.
    #[arg(long, env = "CHAT_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: u64,

    /// On SIGTERM/Ctrl-C, how long (ms) open connections get to finish before they are cut.
    #[arg(long, env = "CHAT_SHUTDOWN_GRACE_MS", default_value_t = 5_000)]
    pub shutdown_grace_ms: u64,

    /// Which PHP to imitate where versions differ: `8` (PHP 8.2) or `5` (PHP 5.4/5.5).
    #[arg(long = "php", env = "CHAT_PHP", value_enum, default_value = "8")]
    pub php: php::Version,

    /// Hardened mode: require HTTP Basic credentials (user `admin`, this password) for the agent
    /// page, the agent stream and every request acting as `admin`. Implies `--hardened`.
    #[arg(long, env = "CHAT_AGENT_PASSWORD", hide_env_values = true)]
    pub agent_password: Option<Secret>,

    /// Hardened mode: sign the identities the server issues (companion `HttpOnly` cookie) and
    /// refuse polls and sends without a valid signature. Implies `--hardened`.
    #[arg(long, env = "CHAT_COOKIE_SECRET", hide_env_values = true)]
    pub cookie_secret: Option<Secret>,

    /// Hardened mode without secrets: `admin` + digits names only, unique new names, sends from
    /// the site's own pages only, a send rate limit, message text made inert for `innerHTML`.
    #[arg(long, env = "CHAT_HARDENED")]
    pub hardened: bool,

    /// Hardened mode: most sends per identity per minute (all at once if saved up).
    #[arg(long, env = "CHAT_SEND_RATE_PER_MINUTE", default_value_t = 30)]
    pub send_rate_per_minute: u32,

    /// `chat-server check`: how many customers may wait at once; the open-files limit must cover
    /// one socket each, plus the pool and some spare.
    #[arg(long, env = "CHAT_EXPECTED_CUSTOMERS", default_value_t = 1_000)]
    pub expected_customers: u64,

    /// PHP-FPM to run the docroot's other `.php` files on, as nginx's `fastcgi_pass` did: a Unix
    /// socket path or `host:port`. Without it they are not run (their inert text, or nothing).
    #[arg(long, env = "PHP_FPM")]
    pub php_fpm: Option<String>,

    /// Reimplemented scripts to send to `--php-fpm` instead (rollback), e.g. `AJsendmsg.php`;
    /// comma-separated in the environment. PHP answers them whole: the hardened mode's checks and
    /// the poll limits do not apply to them.
    #[arg(
        long,
        env = "CHAT_ENDPOINT_TO_PHP",
        num_args = 1..,
        value_delimiter = ',',
        value_parser = clap::builder::PossibleValuesParser::new(crate::site::Endpoint::NAMES),
        requires = "php_fpm"
    )]
    pub endpoint_to_php: Vec<String>,

    /// A file naming more scripts to send to `--php-fpm` (one a line, `#` comments), read at
    /// start-up and again on every SIGHUP, so a rollback and its undoing need no restart. Added
    /// to `--endpoint-to-php`, whose scripts stay on PHP until a restart.
    #[arg(long, env = "CHAT_ENDPOINT_TO_PHP_FILE", requires = "php_fpm")]
    pub endpoint_to_php_file: Option<PathBuf>,

    /// nginx's `fastcgi_read_timeout` (ms): the longest wait for PHP-FPM (to connect, to accept
    /// the request, between two reads of its answer) before nginx's 504.
    #[arg(long, env = "CHAT_FASTCGI_READ_TIMEOUT_MS", default_value_t = 60_000)]
    pub fastcgi_read_timeout_ms: u64,

    /// nginx's `fastcgi_buffering`: `on` (Debian's default) holds PHP's output until 8k are
    /// waiting or it ends; `off` passes each flush on at once (needed for a rolled-back
    /// `AJ04serve.php`). PHP's `X-Accel-Buffering` header overrides it per answer.
    #[arg(long, env = "CHAT_FASTCGI_BUFFERING", value_enum, default_value = "on")]
    pub fastcgi_buffering: Switch,

    /// Most connections kept open to `--php-fpm`. Each holds a PHP-FPM worker while idle, so keep
    /// it at most the FPM pool's `pm.max_children` (Debian's `www` pool: 5).
    #[arg(long, env = "CHAT_PHP_FPM_CONNECTIONS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub php_fpm_connections: u32,

    /// How long (ms) a connection to `--php-fpm` is kept open without a request. An idle
    /// connection holds a PHP-FPM worker that nginx, sharing the pool, cannot have meanwhile;
    /// steady traffic reuses its connections long before this. `0` closes each after its
    /// answer, as nginx without `fastcgi_keep_conn`.
    #[arg(long, env = "CHAT_PHP_FPM_IDLE_MS", default_value_t = 100)]
    pub php_fpm_idle_ms: u64,

    /// nginx's `server_name`, passed to PHP as `SERVER_NAME` (empty: a server block without one).
    #[arg(long, env = "CHAT_SERVER_NAME", default_value = "")]
    pub server_name: String,

    /// Log lines as `text` (for people) or `json` (one object a line, for log shippers).
    #[arg(long, env = "CHAT_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// A secret from the command line or environment; never printed by `Debug`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = String;

    fn from_str(text: &str) -> Result<Secret, String> {
        match text.is_empty() {
            true => Err("must not be empty".into()),
            false => Ok(Secret(text.to_owned())),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Secret(..)")
    }
}

/// What wakes the watcher ([`Config::push`]).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The binary log when the database allows it, else the timer.
    Auto,
    /// The binary log, required.
    Binlog,
    /// The timer only.
    Watcher,
}

/// An nginx-style `on`/`off` setting.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// How log lines are written.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines; colour only on a terminal.
    Text,
    /// One JSON object per line, with the request id of the request it is about.
    Json,
}

impl Config {
    /// The base path without its trailing slash (`""` for the root).
    pub fn base_path(&self) -> &str {
        self.base_path.trim_end_matches('/')
    }

    /// See [`Config::watch_interval_ms`].
    pub fn watch_interval(&self) -> Duration {
        Duration::from_millis(self.watch_interval_ms.max(1))
    }

    /// See [`Config::late_commit_grace_ms`].
    pub fn late_commit_grace(&self) -> Duration {
        Duration::from_millis(self.late_commit_grace_ms)
    }

    /// See [`Config::rescan_interval_ms`].
    pub fn rescan_interval(&self) -> Option<Duration> {
        (self.rescan_interval_ms > 0).then(|| Duration::from_millis(self.rescan_interval_ms))
    }

    /// See [`Config::max_park_ms`].
    pub fn max_park(&self) -> Option<Duration> {
        (self.max_park_ms > 0).then(|| Duration::from_millis(self.max_park_ms))
    }

    /// See [`Config::db_timeout_ms`].
    pub fn db_timeout(&self) -> Duration {
        Duration::from_millis(self.db_timeout_ms)
    }

    /// Whether any hardened switch is on (`--hardened`, or either secret, which imply it).
    pub fn hardened_mode(&self) -> bool {
        self.hardened || self.agent_password.is_some() || self.cookie_secret.is_some()
    }

    /// See [`Config::fastcgi_read_timeout_ms`].
    pub fn fastcgi_read_timeout(&self) -> Duration {
        Duration::from_millis(self.fastcgi_read_timeout_ms.max(1))
    }

    /// See [`Config::php_fpm_idle_ms`].
    pub fn php_fpm_idle(&self) -> Duration {
        Duration::from_millis(self.php_fpm_idle_ms)
    }

    /// See [`Config::shutdown_grace_ms`].
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_legacy_ones() {
        let config = Config::parse_from([
            "chat-server",
            "--database-url",
            "mysql://root@127.0.0.1:3306/test",
        ]);
        assert_eq!(
            config.database_url.as_deref(),
            Some("mysql://root@127.0.0.1:3306/test")
        );
        assert_eq!(
            Config::parse_from(["chat-server"]).database_url,
            None,
            "without a URL the site's AJconn.php is read"
        );
        assert_eq!(config.base_path(), "");
        assert_eq!(config.php, php::Version::Php8);
        assert!(config.watch_interval() < Duration::from_secs(1));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let config = Config::parse_from(["chat-server", "--agent-password", "hunter2"]);
        assert_eq!(
            config.agent_password.as_ref().map(Secret::expose),
            Some("hunter2")
        );
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(!config.hardened, "the switch itself stays as given");
    }

    #[test]
    fn push_is_auto_unless_told() {
        assert_eq!(Config::parse_from(["chat-server"]).push, Push::Auto);
        let config = Config::parse_from(["chat-server", "--push", "binlog"]);
        assert_eq!(config.push, Push::Binlog);
        let config = Config::parse_from(["chat-server", "--push", "watcher"]);
        assert_eq!(config.push, Push::Watcher);
    }

    #[test]
    fn endpoints_go_to_php_only_by_their_file_names_and_only_with_php_fpm() {
        let config = Config::parse_from([
            "chat-server",
            "--php-fpm",
            "/run/php/php8.2-fpm.sock",
            "--endpoint-to-php",
            "AJsendmsg.php",
            "AJ04serve.php",
        ]);
        assert_eq!(config.endpoint_to_php, ["AJsendmsg.php", "AJ04serve.php"]);
        assert!(
            Config::try_parse_from(["chat-server", "--endpoint-to-php", "AJsendmsg.php"]).is_err()
        );
        assert!(Config::try_parse_from([
            "chat-server",
            "--php-fpm",
            "127.0.0.1:9000",
            "--endpoint-to-php",
            "AJconn.php"
        ])
        .is_err());
        assert!(
            Config::try_parse_from(["chat-server", "--endpoint-to-php-file", "/etc/to-php"])
                .is_err()
        );
    }

    #[test]
    fn base_path_is_normalised() {
        let config = Config::parse_from(["chat-server", "--base-path", "/chat/"]);
        assert_eq!(config.base_path(), "/chat");
    }
}
