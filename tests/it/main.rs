//! The server's integration tests, one binary: every module talks to the real MariaDB (each
//! test in a database of its own) through real sockets; `support` is the shared harness.

mod support;

mod binlog;
mod check;
mod compat_replay;
mod delivery;
mod deploy;
mod endpoints;
mod failover;
mod galera;
mod group_commit;
mod hardened;
mod logs;
mod message_safety;
mod metrics;
mod nginx_front;
mod php_fpm;
mod php_fpm_pool;
mod rollback;
mod site_settings;
mod soak;
mod tls;
