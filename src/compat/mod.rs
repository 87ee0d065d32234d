//! Compatibility tooling: scenarios, HAR recordings of the legacy PHP, and their replay.
//!
//! Owned by the compatibility-suite work (issue 3); this file is a placeholder until it lands.

use std::process::ExitCode;

/// Arguments of `chat-server replay`.
#[derive(clap::Args, Debug, Clone)]
pub struct ReplayArgs {}

/// Arguments of `chat-server record`.
#[derive(clap::Args, Debug, Clone)]
pub struct RecordArgs {}

/// Runs `chat-server replay`.
pub async fn replay(_args: ReplayArgs) -> ExitCode {
    ExitCode::FAILURE
}

/// Runs `chat-server record`.
pub async fn record(_args: RecordArgs) -> ExitCode {
    ExitCode::FAILURE
}
