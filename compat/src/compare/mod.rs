//! Compares two outcomes of the same scenario (a recording and a replay, or two recordings)
//! after normalisation, and explains the first differing bytes readably.
//!
//! Compared: every check's outcome, status, `Content-Type` and `Set-Cookie` values (header
//! names case-insensitively), the de-chunked body, and the final table. Not compared: other
//! headers (`Date`, `Server`, `X-Powered-By`, framing, `ETag`/`Last-Modified` of static
//! files), chunk boundaries and timing. Each normalisation rule is listed, with its reason, in
//! compat/README.md; the tests in `normalise` prove none of them hides a real body difference.
//!
//! - `expected`: the recording with the scenario's deviation applied.
//! - `normalise`: the normalisation rules.
//! - `render`: differences as readable text.

use std::fmt;

use crate::runner::{ExchangeRecord, Outcome, RecordedResponse, TableDump};

mod expected;
mod normalise;
mod render;

pub use expected::expected_outcome;
pub use normalise::{header_values, normalise_body, normalise_header};
use render::{completeness, describe_checks, show_list, show_row};
pub use render::{escape, first_difference};

/// One disagreement between the expected and the actual outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Request id, or `table`.
    pub at: String,
    /// What differs (`status`, `body`, ...).
    pub what: String,
    /// Human-readable explanation, with the first differing bytes for bodies.
    pub detail: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.at, self.what, self.detail)
    }
}

/// Every difference between `expected` and `actual`, after normalisation.
pub fn compare(expected: &Outcome, actual: &Outcome) -> Vec<Difference> {
    let mut out = Vec::new();
    for e in &expected.exchanges {
        let Some(a) = actual.exchanges.iter().find(|a| a.id == e.id) else {
            out.push(diff(
                &e.id,
                "request",
                "missing from the actual run".to_owned(),
            ));
            continue;
        };
        compare_exchange(e, a, &mut out);
    }
    for a in &actual.exchanges {
        if !expected.exchanges.iter().any(|e| e.id == a.id) {
            out.push(diff(
                &a.id,
                "request",
                "not in the expected recording".to_owned(),
            ));
        }
    }
    compare_tables(&expected.table, &actual.table, &mut out);
    out
}

fn diff(at: &str, what: &str, detail: String) -> Difference {
    Difference {
        at: at.to_owned(),
        what: what.to_owned(),
        detail,
    }
}

/// Compares one exchange (exposed for the operator HAR replay).
pub fn compare_exchange(e: &ExchangeRecord, a: &ExchangeRecord, out: &mut Vec<Difference>) {
    if e.checks != a.checks {
        out.push(diff(
            &e.id,
            "checks",
            format!(
                "expected {}, got {}",
                describe_checks(&e.checks),
                describe_checks(&a.checks)
            ),
        ));
    }
    match (&e.response, &a.response) {
        (None, None) => {}
        (Some(_), None) => out.push(diff(
            &e.id,
            "response",
            "expected a response, got none".to_owned(),
        )),
        (None, Some(r)) => out.push(diff(
            &e.id,
            "response",
            format!("expected no response yet, got status {}", r.status),
        )),
        (Some(er), Some(ar)) => compare_responses(&e.id, er, ar, out),
    }
}

fn compare_responses(
    id: &str,
    e: &RecordedResponse,
    a: &RecordedResponse,
    out: &mut Vec<Difference>,
) {
    if e.status != a.status {
        out.push(diff(
            id,
            "status",
            format!("expected {}, got {}", e.status, a.status),
        ));
    }
    for name in ["content-type", "set-cookie"] {
        let ev: Vec<Vec<u8>> = header_values(&e.headers, name)
            .into_iter()
            .map(|v| normalise_header(name, &v))
            .collect();
        let av: Vec<Vec<u8>> = header_values(&a.headers, name)
            .into_iter()
            .map(|v| normalise_header(name, &v))
            .collect();
        if ev != av {
            out.push(diff(
                id,
                name,
                format!("expected {}, got {}", show_list(&ev), show_list(&av)),
            ));
        }
    }
    if e.complete != a.complete {
        out.push(diff(
            id,
            "body",
            format!(
                "expected a {} body, got a {} one",
                completeness(e.complete),
                completeness(a.complete)
            ),
        ));
    }
    let eb = normalise_body(e.status, &e.body);
    let ab = normalise_body(a.status, &a.body);
    if eb != ab {
        out.push(diff(id, "body", first_difference(&eb, &ab)));
    }
}

fn compare_tables(e: &TableDump, a: &TableDump, out: &mut Vec<Difference>) {
    if e.columns != a.columns {
        out.push(diff(
            "table",
            "columns",
            format!("expected {:?}, got {:?}", e.columns, a.columns),
        ));
        return;
    }
    for (i, (er, ar)) in e.rows.iter().zip(&a.rows).enumerate() {
        if er != ar {
            out.push(diff(
                "table",
                "row",
                format!(
                    "row {} differs:\n    expected {}\n    actual   {}",
                    i + 1,
                    show_row(er),
                    show_row(ar)
                ),
            ));
            return;
        }
    }
    if e.rows.len() != a.rows.len() {
        let extra = if e.rows.len() > a.rows.len() {
            format!("first missing row: {}", show_row(&e.rows[a.rows.len()]))
        } else {
            format!("first extra row: {}", show_row(&a.rows[e.rows.len()]))
        };
        out.push(diff(
            "table",
            "rows",
            format!(
                "expected {} rows, got {}; {extra}",
                e.rows.len(),
                a.rows.len()
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Check;
    use crate::scenario::CellValue;

    fn outcome(body: &[u8]) -> Outcome {
        Outcome {
            scenario: "s".into(),
            exchanges: vec![ExchangeRecord {
                id: "poll".into(),
                method: "GET".into(),
                url: "http://h/AJ05comitajax.php".into(),
                request_headers: vec![],
                request_body: vec![],
                started: std::time::UNIX_EPOCH,
                elapsed_ms: 0.0,
                response: Some(RecordedResponse {
                    version: "HTTP/1.1".into(),
                    status: 200,
                    reason: "OK".into(),
                    headers: vec![
                        ("Date".into(), b"Mon".to_vec()),
                        ("Content-Type".into(), b"text/html; charset=UTF-8".to_vec()),
                    ],
                    body: body.to_vec(),
                    complete: true,
                }),
                checks: vec![Check::Complete(true)],
            }],
            table: TableDump {
                columns: vec!["mid".into()],
                rows: vec![vec![CellValue::Text("1".into())]],
            },
        }
    }

    #[test]
    fn a_one_byte_body_difference_is_reported_with_its_offset() {
        let expected = outcome(br#"{"mid":"1","content":"a\/b"}"#);
        let mut actual = outcome(br#"{"mid":"1","content":"a/b"}"#);
        if let Some(r) = actual.exchanges[0].response.as_mut() {
            r.headers[0].1 = b"Tue".to_vec(); // Date is not compared
        }
        let diffs = compare(&expected, &actual);
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert_eq!(diffs[0].what, "body");
        assert!(
            diffs[0].detail.contains("at byte 23"),
            "{}",
            diffs[0].detail
        );
        assert!(compare(&expected, &expected).is_empty());
    }

    #[test]
    fn content_type_case_of_name_is_ignored_but_value_is_exact() {
        let expected = outcome(b"OK");
        let mut actual = outcome(b"OK");
        if let Some(r) = actual.exchanges[0].response.as_mut() {
            r.headers[1] = ("content-type".into(), b"text/html; charset=UTF-8".to_vec());
        }
        assert!(compare(&expected, &actual).is_empty());
        if let Some(r) = actual.exchanges[0].response.as_mut() {
            r.headers[1].1 = b"text/html; charset=utf-8".to_vec();
        }
        assert_eq!(compare(&expected, &actual)[0].what, "content-type");
    }

    #[test]
    fn table_differences_name_the_row() {
        let expected = outcome(b"OK");
        let mut actual = outcome(b"OK");
        actual.table.rows[0][0] = CellValue::Text("2".into());
        let diffs = compare(&expected, &actual);
        assert_eq!(diffs[0].at, "table");
        assert!(diffs[0].detail.contains("row 1"), "{}", diffs[0].detail);
    }
}
