//! A drop-in replacement for the legacy PHP "Ajax real-time chat": same URLs, cookies, response
//! bytes and MySQL table, with delivery the moment a message is written.
//!
//! # Layout
//!
//! Three layers, each a directory, beside the pure emulations they use:
//!
//! - `http/`: sockets to requests and back: `server` (accept loop, hyper options, drain),
//!   `front` (requests read as nginx reads them), `routes` (URL to endpoint), `limits`
//!   (ceilings on parked requests), `request_id` (the span every log line carries).
//! - `endpoints/`: one module per legacy script, composing `php` and `delivery`.
//! - `fastcgi/`: `--php-fpm`: the site's other `.php` files (and rolled-back endpoints) run on
//!   PHP-FPM, as nginx ran them; `rollback` says which endpoints, re-read on SIGHUP.
//! - `delivery/`: from a message stored to a message handed over once: `mailbox` (the
//!   endpoints' one entry), `hub` (where waiting requests park), `inbox` (the unread index),
//!   `watcher` and `binlog` (other writers' rows), `batching` and `group_commit`.
//! - `store/`: the only SQL, all parameterized, and what it needs: `failover` (one pool per
//!   node), `dburl` (the database URL), `own_writes` (ids this instance inserted), `collation`
//!   (how MariaDB compares `msg.rec`, the key of every in-memory match).
//!
//! Pure, no I/O: `php/` (PHP's parsing and encoding), `nginx/` (the legacy nginx's rules and
//! pages). Around them: `config` (every flag and variable), `site` (the docroot: which file a
//! path names), `site_settings` (the database settings the site's own `AJconn.php` names, read
//! when no URL is given), `hardening` (the opt-in hardened mode), `metrics` (the Prometheus exposition),
//! `check` (`chat-server check`, the operator's preflight), `response` (the body type, PHP's
//! headers and nginx's error pages, shared by the endpoints, the router and the hardened mode),
//! `shutdown`, `error`.
//!
//! Every module is private to the crate. The public surface is [`run`] and [`Config`] for the
//! binary, and [`run_with_hub`] with [`Hub`] for the integration tests, which watch who is waiting.
//! The compatibility suite (recording the legacy, replaying recordings) is its own crate,
//! `chat-compat`, in `compat/`.

mod check;
mod config;
mod delivery;
mod endpoints;
mod error;
mod fastcgi;
mod hardening;
mod http;
mod metrics;
mod nginx;
mod php;
mod response;
mod shutdown;
mod site;
mod site_settings;
mod store;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use check::check;
pub use config::{Config, LogFormat, Push};
pub use delivery::hub::Hub;
pub use error::Error;
pub use http::server::listen;

/// The `--php-fpm` pass-through; without it, logs which `.php` files are not run today. A rollback
/// file that cannot be used stops the start.
fn php_fpm(config: &Config, meters: &metrics::Metrics) -> Result<Option<fastcgi::Fpm>, Error> {
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
        return Ok(None);
    };
    let fixed = config
        .endpoint_to_php
        .iter()
        .filter_map(|name| site::Endpoint::named(name))
        .collect();
    let to_php = Arc::new(fastcgi::rollback::ToPhp::new(
        fixed,
        config.endpoint_to_php_file.clone(),
        meters,
    )?);
    tracing::info!(
        %address,
        rolled_back = %to_php.now(),
        file = %config
            .endpoint_to_php_file
            .as_deref()
            .map_or("none".into(), |path| path.display().to_string()),
        "other .php files go to PHP-FPM"
    );
    Ok(Some(fastcgi::Fpm::new(fastcgi::Settings {
        address,
        site: &config.site,
        base_path: config.base_path(),
        server_name: &config.server_name,
        to_php,
        connections: config.php_fpm_connections as usize,
        keep_idle: config.php_fpm_idle(),
        read_timeout: config.fastcgi_read_timeout(),
        buffering: config.fastcgi_buffering == config::Switch::On,
    })))
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
        &site_settings::database_url(&config)?,
        config.legacy_charset,
        config.db_pool_max,
        config.db_timeout(),
    )?;
    let meters = Arc::new(metrics::Metrics::new());
    let fpm = php_fpm(&config, &meters)?;
    let feed = delivery::binlog::Feed::new(meters.push_binlog());
    let pusher = delivery::binlog::Follower::new(
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
    let reloads = fastcgi::rollback::follow_sighup(
        fpm.as_ref().map(|fpm| Arc::clone(fpm.to_php())),
        stop.clone(),
    )?;
    let monitor = tokio::spawn(store.clone().monitor(stop.clone()));
    // Health answers from the first probe on; a database that is down does not stop the start.
    store.probed().await;
    let collation = hub.collation();
    let inbox = Arc::new(delivery::inbox::Inbox::new(Arc::clone(&collation)));
    let follower = follower.map(|start| pusher.spawn(start, stop.clone()));
    let watcher = delivery::watcher::Watcher {
        store: store.clone(),
        hub: Arc::clone(&hub),
        inbox: Arc::clone(&inbox),
        pace: delivery::watcher::Pace {
            interval: config.watch_interval(),
            grace: config.late_commit_grace(),
            rescan: config.rescan_interval(),
        },
        feed: Arc::clone(&feed),
        meters: Arc::clone(&meters),
    };
    let watcher = tokio::spawn(watcher.run(stop.clone()));
    let mailbox = delivery::Mailbox::new(store.clone(), hub, inbox, feed, stop.clone(), meters);
    let grace = config.shutdown_grace();
    let limits = http::limits::ParkLimits::new(
        config.max_polls_per_address,
        config.max_polls_per_user,
        collation,
    );
    let guard = hardening::Guard::from_config(&config);
    let app = Arc::new(http::routes::App {
        guard,
        fpm,
        config,
        site,
        mailbox,
        limits,
    });
    match listener.local_addr() {
        Ok(addr) => tracing::info!(%addr, "serving"),
        Err(_) => tracing::info!("serving"),
    }
    http::server::serve(listener, app, stop, grace).await;
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
    if let Err(err) = reloads.await {
        tracing::error!(%err, "the SIGHUP task failed");
    }
    if let Err(err) = monitor.await {
        tracing::error!(%err, "the database monitor task failed");
    }
    store.close().await;
    Ok(())
}
