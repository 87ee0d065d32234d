//! A drop-in replacement for the legacy PHP "Ajax real-time chat": same URLs, cookies, response
//! bytes and MySQL table, with delivery the moment a message is written.
//!
//! # Layout
//!
//! - `check`: `chat-server check`, the preflight an operator runs before switching over.
//! - `config`: every command-line flag and environment variable.
//! - `server`: accept loop, hyper options, graceful drain.
//! - `front`: each connection's reader: requests as nginx read them, handed to hyper.
//! - `nginx`: pure rules of the legacy's nginx: which heads it accepts, its error pages.
//! - `routes`: URL to endpoint; request to `$_COOKIE`/`$_POST`.
//! - `endpoints`: one module per legacy script, composing `php` and `delivery`.
//! - `site`: the legacy docroot: which file a path names, safely.
//! - `fastcgi`: `--php-fpm`: other `.php` files (and rolled-back endpoints) run on PHP-FPM, as nginx ran them.
//! - `php`: pure emulation of PHP's parsing and encoding; no I/O.
//! - `store`: the only SQL, all parameterized.
//! - `failover`: one pool per database node, the node in use, and moving to the next that answers.
//! - `hub`: where waiting requests park until a message may exist for them.
//! - `delivery`: storing, and claiming once: a claim commits as its bytes are handed over.
//! - `batching`: requests that arrive together handled as one batch, without a timer.
//! - `group_commit`: sends that arrive together written in one transaction.
//! - `own_writes`: the ids this instance inserted, so the binlog follower can skip them.
//! - `inbox`: the unread index, so a claim is a primary-key lookup on the operator's table.
//! - `watcher`: one background task that keeps the index in step and wakes recipients.
//! - `binlog`: follows the database's binary log and nudges the watcher when a row is written.
//! - `limits`: ceilings on parked polls per client address and per username.
//! - `shutdown`: the signal long-running handlers select on.
//! - `hardening`: the opt-in hardened mode (agent password, signed identities, inert messages).
//! - `request_id`: the span, and id, every log line about a request carries.
//! - `metrics`: the Prometheus exposition at `/.chat-server/metrics`.
//! - `dburl`: the database URL, TLS parameters (`require_ssl`, `ssl_ca`) included.
//!
//! Every module is private to the crate. The public surface is [`run`] and [`Config`] for the
//! binary, and [`run_with_hub`] with [`Hub`] for the integration tests, which watch who is waiting.
//! The compatibility suite (recording the legacy, replaying recordings) is its own crate,
//! `chat-compat`, in `compat/`.

mod batching;
mod binlog;
mod check;
mod config;
mod dburl;
mod delivery;
mod endpoints;
mod error;
mod failover;
mod fastcgi;
mod front;
mod group_commit;
mod hardening;
mod hub;
mod inbox;
mod limits;
mod metrics;
mod nginx;
mod own_writes;
mod php;
mod request_id;
mod routes;
mod server;
mod shutdown;
mod site;
mod store;
mod watcher;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use check::check;
pub use config::{Config, LogFormat, Push};
pub use error::Error;
pub use hub::Hub;
pub use server::listen;

/// The `--php-fpm` pass-through; without it, logs which `.php` files are not run today.
fn php_fpm(config: &Config) -> Option<fastcgi::Fpm> {
    let Some(address) = &config.php_fpm else {
        let declined = fastcgi::declined_scripts(&config.site);
        if !declined.is_empty() {
            // A docroot with thousands of scripts gets a readable line: the first few and a count.
            const SHOWN: usize = 20;
            let mut files: Vec<_> = declined
                .iter()
                .take(SHOWN)
                .map(|path| path.display().to_string())
                .collect();
            if declined.len() > SHOWN {
                files.push(format!("and {} more", declined.len() - SHOWN));
            }
            tracing::warn!(
                count = declined.len(),
                files = %files.join(", "),
                "these .php files are not run (they answer an empty page); --php-fpm would run them"
            );
        }
        return None;
    };
    let endpoints = config
        .endpoint_to_php
        .iter()
        .filter_map(|name| site::Endpoint::named(name))
        .collect();
    tracing::info!(%address, rolled_back = ?config.endpoint_to_php, "other .php files go to PHP-FPM");
    Some(fastcgi::Fpm::new(fastcgi::Settings {
        address,
        site: &config.site,
        base_path: config.base_path(),
        server_name: &config.server_name,
        endpoints,
        connections: config.php_fpm_connections as usize,
        read_timeout: config.fastcgi_read_timeout(),
        buffering: config.fastcgi_buffering == config::Switch::On,
    }))
}

/// Serves the site on `listener` until `shutdown` resolves, then drains.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    run_with_hub(listener, config, Hub::new(), shutdown).await
}

/// [`run`] with a hub the caller keeps, so tests can see who is waiting.
pub async fn run_with_hub(
    listener: TcpListener,
    config: Config,
    hub: Arc<Hub>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let site = site::Site::load(&config.site)?;
    let store = store::Store::new(
        &config.database_url,
        config.legacy_charset,
        config.db_pool_max,
        config.db_timeout(),
    )?;
    let meters = Arc::new(metrics::Metrics::new());
    let feed = binlog::Feed::new(meters.push_binlog());
    let pusher = binlog::Follower::new(
        store.clone(),
        Arc::clone(&hub),
        Arc::clone(&feed),
        config.db_timeout(),
    );
    // Before any task is spawned: `--push binlog` on a database that refuses it stops here.
    let follower = pusher.decide(config.push).await?;
    let (trigger, stop) = shutdown::channel();
    tokio::spawn(async move {
        shutdown.await;
        trigger.fire();
    });
    let monitor = tokio::spawn(store.clone().monitor(stop.clone()));
    // Health answers from the first probe on; a database that is down does not stop the start.
    store.probed().await;
    let inbox = Arc::new(inbox::Inbox::default());
    let follower = follower.map(|start| pusher.spawn(start, stop.clone()));
    let watcher = watcher::Watcher {
        store: store.clone(),
        hub: Arc::clone(&hub),
        inbox: Arc::clone(&inbox),
        pace: watcher::Pace {
            interval: config.watch_interval(),
            grace: config.late_commit_grace(),
            rescan: config.rescan_interval(),
        },
        feed,
        meters: Arc::clone(&meters),
    };
    let watcher = tokio::spawn(watcher.run(stop.clone()));
    let mailbox = delivery::Mailbox::new(store.clone(), hub, inbox, stop.clone(), meters);
    let grace = config.shutdown_grace();
    let limits = limits::ParkLimits::new(config.max_polls_per_address, config.max_polls_per_user);
    let guard = hardening::Guard::from_config(&config);
    let fpm = php_fpm(&config);
    let app = Arc::new(routes::App {
        guard,
        fpm,
        config,
        site,
        mailbox,
        limits,
    });
    tracing::info!(addr = ?listener.local_addr().ok(), "serving");
    server::serve(listener, app, stop, grace).await;
    if let Err(err) = watcher.await {
        // The watcher only ends early by panicking (or being cancelled); its waiters then rely
        // on this instance's own notifications, so say so instead of ending quietly.
        tracing::error!(%err, "the watcher task failed");
    }
    if let Some(follower) = follower {
        if let Err(err) = follower.await {
            // It only ends early by panicking; its feed is then not live, so the watcher ticks on
            // its interval.
            tracing::error!(%err, "the binlog follower task failed");
        }
    }
    if let Err(err) = monitor.await {
        tracing::error!(%err, "the database monitor task failed");
    }
    store.close().await;
    Ok(())
}
