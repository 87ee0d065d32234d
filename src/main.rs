//! The `chat-server` binary: logging, configuration, and either the server or a compat command.

use std::process::ExitCode;

use chat_server::{compat, Config};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "chat-server",
    version,
    about = "Drop-in server for the legacy PHP long-poll chat",
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Replay recorded traffic (HAR) against a server and report differences.
    Replay(compat::ReplayArgs),
    /// Run the compatibility scenarios against a server and write HAR recordings.
    Record(compat::RecordArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Replay(args)) => compat::replay(args).await,
        Some(Command::Record(args)) => compat::record(args).await,
        None => serve(cli.config).await,
    }
}

async fn serve(config: Config) -> ExitCode {
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
