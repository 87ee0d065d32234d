//! A drop-in replacement for the legacy PHP "Ajax real-time chat": same URLs, cookies, response
//! bytes and MySQL table, with delivery the moment a message is written.
//!
//! # Layout
//!
//! - [`config`]: every command-line flag and environment variable.
//! - [`server`]: accept loop, hyper options, graceful drain.
//! - [`front`]: each connection's reader: requests as nginx read them, handed to hyper.
//! - [`nginx`]: pure rules of the legacy's nginx: which heads it accepts, its error pages.
//! - [`routes`]: URL to endpoint; request to `$_COOKIE`/`$_POST`.
//! - [`endpoints`]: one module per legacy script, composing `php`, `store` and `delivery`.
//! - [`site`]: the legacy docroot: which file a path names, safely.
//! - [`php`]: pure emulation of PHP's parsing and encoding; no I/O.
//! - [`store`]: the only SQL, all parameterized.
//! - [`hub`]: where waiting requests park until a message may exist for them.
//! - [`delivery`]: claim-once, release-if-undelivered, oldest first.
//! - [`watcher`]: one background query that wakes waiters for rows written elsewhere.
//! - [`shutdown`]: the signal long-running handlers select on.
//! - [`compat`]: recording the legacy and replaying recordings against a server.

pub mod compat;
pub mod config;
pub mod delivery;
pub mod endpoints;
pub mod error;
pub mod front;
pub mod hub;
pub mod nginx;
pub mod php;
pub mod routes;
pub mod server;
pub mod shutdown;
pub mod site;
pub mod store;
pub mod watcher;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use config::Config;
pub use error::Error;
pub use hub::Hub;

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
    let (trigger, stop) = shutdown::channel();
    tokio::spawn(async move {
        shutdown.await;
        trigger.fire();
    });
    let watcher = tokio::spawn(watcher::run(
        store.clone(),
        Arc::clone(&hub),
        config.watch_interval(),
        config.late_commit_grace(),
        stop.clone(),
    ));
    let mailbox = delivery::Mailbox::new(store.clone(), hub, stop.clone());
    let grace = config.shutdown_grace();
    let app = Arc::new(routes::App {
        config,
        site,
        store: store.clone(),
        mailbox,
    });
    tracing::info!(addr = ?listener.local_addr().ok(), "serving");
    server::serve(listener, app, stop, grace).await;
    let _ = watcher.await;
    store.close().await;
    Ok(())
}
