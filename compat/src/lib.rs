//! The compatibility suite of `chat-server`: scenarios, HAR recordings of the legacy PHP, their
//! replay against any server, and the raw HTTP/1.1 client the tests and the load generator share.
//!
//! # Layout
//!
//! - [`http`]: the one raw HTTP/1.1 client (exact request bytes, incremental de-chunking, chunk
//!   boundaries kept, a deadline on every wait).
//! - [`scenario`]: the scenario format (`compat/scenarios/*.json`).
//! - [`runner`]: runs one scenario against a server + database, observing every step.
//! - [`har`]: HAR 1.2 recordings and the table file beside each one.
//! - [`compare`]: applying deviations, normalising, comparing, rendering differences.
//! - [`provenance`]: the PHP, nginx and MariaDB versions a recording was made from.
//! - [`fuzz`]: `chat-compat fuzz`, generated cases against the legacy and a server, compared.
//! - [`record`]: `chat-compat record`, the legacy into `compat/recordings/`.
//! - [`replay`]: `chat-compat replay`, recordings against a server or against each other.
//! - `replay::har`: `chat-compat replay --har`, an operator's own traffic against a server.
//! - [`error`]: [`CompatError`], what stops the tools.
//!
//! The server's `tests/compat_replay.rs` replays every recording against the server through this
//! library; compat/README.md explains the whole procedure.

pub mod compare;
pub mod error;
pub mod fuzz;
pub mod har;
pub mod http;
pub mod provenance;
pub mod record;
pub mod replay;
pub mod runner;
pub mod scenario;

pub use error::CompatError;
