//! A recording as stored on disk: `<name>.har` and the table file `<name>.table.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::convert::{exchanges_of, to_har};
use super::model::Har;
use crate::runner::{Outcome, TableDump};
use crate::scenario::CellValue;
use crate::CompatError;

/// The table file stored beside a recording (`<name>.table.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableFile {
    /// Scenario name.
    pub scenario: String,
    /// Column names in table order.
    pub columns: Vec<String>,
    /// Rows in `mid` order; text, null, or `{"hex": ...}` for bytes that are not UTF-8.
    pub rows: Vec<Vec<CellValue>>,
}

impl TableFile {
    /// The table file of an outcome.
    pub fn of(outcome: &Outcome) -> TableFile {
        TableFile {
            scenario: outcome.scenario.clone(),
            columns: outcome.table.columns.clone(),
            rows: outcome.table.rows.clone(),
        }
    }

    /// As a dump.
    pub fn dump(&self) -> TableDump {
        TableDump {
            columns: self.columns.clone(),
            rows: self.rows.clone(),
        }
    }
}

/// A recording as stored: the HAR and the table file.
#[derive(Debug, Clone)]
pub struct Recording {
    /// `<name>.har`.
    pub har: Har,
    /// `<name>.table.json`.
    pub table: TableFile,
}

impl Recording {
    /// Paths of the two files of scenario `name` in `dir`.
    pub fn paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        (
            dir.join(format!("{name}.har")),
            dir.join(format!("{name}.table.json")),
        )
    }

    /// Reads the recording of scenario `name` from `dir`.
    pub fn load(dir: &Path, name: &str) -> Result<Recording, CompatError> {
        let (har_path, table_path) = Recording::paths(dir, name);
        let har = read_json(&har_path)?;
        let table = read_json(&table_path)?;
        Ok(Recording { har, table })
    }

    /// Writes both files (pretty JSON with a final newline, so diffs stay readable).
    pub fn save(&self, dir: &Path, name: &str) -> Result<(), CompatError> {
        std::fs::create_dir_all(dir).map_err(|e| CompatError::io(dir, e))?;
        let (har_path, table_path) = Recording::paths(dir, name);
        write_json(&har_path, &self.har)?;
        write_json(&table_path, &self.table)
    }

    /// The recording of an outcome.
    pub fn of(outcome: &Outcome) -> Recording {
        Recording {
            har: to_har(outcome),
            table: TableFile::of(outcome),
        }
    }

    /// Back to an outcome, for comparison.
    pub fn outcome(&self) -> Result<Outcome, CompatError> {
        Ok(Outcome {
            scenario: self.table.scenario.clone(),
            exchanges: exchanges_of(&self.har)?,
            table: self.table.dump(),
        })
    }
}

/// Reads a JSON file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CompatError> {
    let text = std::fs::read_to_string(path).map_err(|e| CompatError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| CompatError::Har(format!("{}: {e}", path.display())))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), CompatError> {
    let mut text =
        serde_json::to_string_pretty(value).map_err(|e| CompatError::Har(e.to_string()))?;
    text.push('\n');
    std::fs::write(path, text).map_err(|e| CompatError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{Check, ExchangeRecord, RecordedResponse};
    use std::time::UNIX_EPOCH;

    #[test]
    fn non_utf8_bodies_round_trip_through_base64() {
        let outcome = Outcome {
            scenario: "s".into(),
            exchanges: vec![ExchangeRecord {
                id: "r".into(),
                method: "POST".into(),
                url: "http://h/".into(),
                request_headers: vec![("Content-Type".into(), b"x".to_vec())],
                request_body: vec![0xff, 0x00],
                started: UNIX_EPOCH,
                elapsed_ms: 1.0,
                response: Some(RecordedResponse {
                    version: "HTTP/1.1".into(),
                    status: 200,
                    reason: "OK".into(),
                    headers: vec![("X".into(), vec![0xe4])],
                    body: vec![0xc3, 0x28],
                    complete: true,
                }),
                checks: vec![Check::Complete(true)],
            }],
            table: TableDump {
                columns: vec![],
                rows: vec![],
            },
        };
        let recording = Recording::of(&outcome);
        let text = serde_json::to_string(&recording.har).expect("serialises");
        let har: Har = serde_json::from_str(&text).expect("parses back");
        let back = Recording {
            har,
            table: recording.table,
        }
        .outcome()
        .expect("decodes");
        assert_eq!(back.exchanges[0].request_body, vec![0xff, 0x00]);
        let response = back.exchanges[0].response.as_ref().expect("has a response");
        assert_eq!(response.body, vec![0xc3, 0x28]);
        assert_eq!(response.headers[0].1, vec![0xe4]);
        assert_eq!(back.exchanges[0].checks, vec![Check::Complete(true)]);
    }
}
