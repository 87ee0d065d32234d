//! Sockets and connections: the accept loop, hyper's HTTP/1 options, and a graceful drain with a
//! deadline. Endpoints never see a TcpStream.
//!
//! Each connection is read by [`crate::front`] (nginx's parser and limits); hyper gets stand-in
//! requests from it and writes the responses.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::front;
use crate::routes::{self, App};
use crate::shutdown::Shutdown;

/// Serves connections until `shutdown` fires, then gives open ones `grace` to finish.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: Shutdown, grace: Duration) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    // nginx writes `Content-Type`, `Set-Cookie`; keep the legacy's header spelling on the wire.
    // hyper only ever reads the front's small stand-in requests, so its smallest read buffer
    // is plenty.
    http.title_case_headers(true)
        .timer(TokioTimer::new())
        .max_buf_size(8192);
    let limits = front::Limits::nginx(app.config.max_body_bytes);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    back_off(&err).await;
                    continue;
                }
            },
            () = shutdown.wait() => break,
        };
        // Small writes (one stream chunk per message) must leave at once.
        let _ = stream.set_nodelay(true);
        let (io, queue, reader) = front::connect(stream, limits);
        let app = Arc::clone(&app);
        let peer = peer.ip();
        let service = service_fn(move |_stand_in| {
            routes::handle(Arc::clone(&app), peer, front::take(&queue))
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "connection ended with an error");
            }
            // hyper is done with the socket; a reader still waiting on a silent client is not
            // needed any more.
            reader.abort();
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!(?grace, "connections still open after the grace period; closing them"),
    }
}

/// Accept errors are usually per-connection (reset before accept) or resource exhaustion (out of
/// file descriptors): log, pause briefly, keep serving. Never spin.
async fn back_off(err: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionReset | Interrupted
    ) {
        return;
    }
    tracing::error!(%err, "accept failed; pausing");
    tokio::time::sleep(Duration::from_millis(200)).await;
}
