//! The `chat-server` binary: logging, configuration, listen, serve until SIGTERM or Ctrl-C.

use std::io::IsTerminal;
use std::process::ExitCode;

use chat_server::Config;
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        // Colour codes only help a person at a terminal; in a log file or `docker logs` they are noise.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let config = Config::parse();
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(%err, listen = %config.listen, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    match chat_server::run(listener, config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C, or SIGTERM from `docker compose stop` / systemd.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler only fails outside a Unix runtime");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
}
