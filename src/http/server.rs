//! Sockets and connections: the accept loop, hyper's HTTP/1 options, and a graceful drain with a
//! deadline. Endpoints never see a TcpStream.
//!
//! Each connection is read by [`crate::http::front`] (nginx's parser and limits); hyper gets stand-in
//! requests from it and writes the responses.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::http::front;
use crate::http::routes::{self, App};
use crate::shutdown::Shutdown;

/// Connections the kernel may hold for us before we accept them. tokio's `bind` asks for 1,024:
/// 1,000 customers reconnecting at once (a load generator's start, every page after a restart)
/// overflowed it, and each dropped SYN cost its client a one-second retransmission. The kernel
/// caps this at `net.core.somaxconn` (4,096 on Debian 12).
const ACCEPT_BACKLOG: u32 = 65_535;

/// Listens on `addr` with [`ACCEPT_BACKLOG`] (and `SO_REUSEADDR`, as tokio's `bind` sets it, so a
/// restart need not wait for old connections' TIME_WAIT).
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

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
        let local = stream.local_addr().unwrap_or_else(|_| {
            listener
                .local_addr()
                .expect("a bound listener has an address")
        });
        let (io, queue, reader) = front::connect(stream, limits);
        let app = Arc::clone(&app);
        let service = service_fn(move |_stand_in| {
            routes::handle(Arc::clone(&app), peer, local, front::take(&queue))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// More clients than tokio's default backlog of 1,024 connect at once to a server that has
    /// not accepted any of them yet: every handshake completes. With a backlog of 1,024 the
    /// kernel drops the SYNs beyond it, and those clients wait a one-second retransmission
    /// (then three, while nobody accepts).
    #[tokio::test]
    async fn a_crowd_larger_than_tokios_default_backlog_connects_at_once() {
        const CROWD: usize = 1_500;
        // Each client is a descriptor; raise the soft limit to the hard one.
        rlimit::increase_nofile_limit(u64::MAX).expect("raise the descriptor limit");
        let listener = listen("127.0.0.1:0".parse().expect("address")).expect("listen");
        let addr = listener.local_addr().expect("bound");
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .expect("somaxconn")
            .trim()
            .parse()
            .expect("a number");
        assert!(
            somaxconn > CROWD,
            "net.core.somaxconn ({somaxconn}) caps any backlog below the crowd"
        );
        let connects = (0..CROWD).map(|_| tokio::net::TcpStream::connect(addr));
        let all = futures_util::future::try_join_all(connects);
        tokio::time::timeout(Duration::from_millis(900), all)
            .await
            .expect("every handshake within 900 ms, before any SYN retransmission")
            .expect("connected");
    }
}
