//! The `chat-server` binary: logging, configuration, listen, serve until SIGTERM or Ctrl-C;
//! `chat-server check [flags]` runs the preflight instead.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;

use chat_server::{Config, LogFormat};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// The first argument that runs the preflight instead of the server.
const CHECK: &str = "check";

#[tokio::main]
async fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let check = args.get(1).is_some_and(|arg| arg == CHECK);
    if check {
        args.remove(1);
    }
    let config = Config::parse_from(args);
    init_logging(config.log_format);
    if check {
        return match chat_server::check(&config).await {
            true => ExitCode::SUCCESS,
            false => ExitCode::FAILURE,
        };
    }
    let listener = match chat_server::listen(config.listen) {
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

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        // Colour codes only help a person at a terminal; in a log file or `docker logs` they are noise.
        LogFormat::Text => builder.with_ansi(std::io::stdout().is_terminal()).init(),
        // One object a line; the request's span (id, method, path, peer) rides in `span`.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
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
