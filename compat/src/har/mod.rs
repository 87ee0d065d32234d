//! HAR 1.2 (the format browsers' developer tools export) for recordings, plus the table file
//! stored beside each one. Only the fields we write or read are modelled; unknown fields of
//! operators' own HAR files are ignored. Our own additions start with `_`, as HAR 1.2 allows.
//!
//! - `model`: the serde structs.
//! - `convert`: outcomes to entries and back.
//! - `files`: the two files of a recording on disk.
//! - `dates`: `startedDateTime`.

mod convert;
mod dates;
mod files;
mod model;

pub use convert::{exchanges_of, to_har};
pub use dates::{iso8601, parse_iso8601_ms};
pub use files::{read_json, Recording, TableFile};
pub use model::*;
