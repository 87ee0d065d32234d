//! The `chat-compat` binary: `record` the legacy PHP, `replay` recordings or an operator's HAR.

use std::process::ExitCode;

use chat_compat::{fuzz, record, replay};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "chat-compat",
    version,
    about = "Record the legacy PHP chat and replay recordings against a server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay recorded traffic (HAR) against a server and report differences.
    Replay(replay::ReplayArgs),
    /// Run the compatibility scenarios against a server and write HAR recordings.
    Record(record::RecordArgs),
    /// Differential fuzzing: generated cases against the legacy PHP and a server, compared.
    Fuzz(fuzz::FuzzArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Replay(args) => replay::replay(args).await,
        Command::Record(args) => record::record(args).await,
        Command::Fuzz(args) => fuzz::fuzz(args).await,
    }
}
