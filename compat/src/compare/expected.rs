//! Applying a scenario's deliberate deviation to its recording: what our server must answer.

use super::normalise::header_values;
use crate::runner::{Check, Outcome, RecordedResponse, TableDump};
use crate::scenario::Scenario;
use crate::CompatError;

/// The recorded outcome with the scenario's deliberate deviation (if any) applied: what our
/// server is expected to do.
pub fn expected_outcome(scenario: &Scenario, recorded: &Outcome) -> Result<Outcome, CompatError> {
    let mut expected = recorded.clone();
    let Some(dev) = &scenario.deviation else {
        return Ok(expected);
    };
    for x in &mut expected.exchanges {
        if let Some(intended) = dev.responses.get(&x.id) {
            let content_type = match (&intended.content_type, &x.response) {
                (Some(ct), _) => Some(ct.as_bytes().to_vec()),
                (None, Some(r)) => header_values(&r.headers, "content-type").first().cloned(),
                (None, None) => Some(b"text/html; charset=UTF-8".to_vec()),
            };
            let set_cookies: Vec<(String, Vec<u8>)> = x
                .response
                .as_ref()
                .map(|r| {
                    r.headers
                        .iter()
                        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let mut headers: Vec<(String, Vec<u8>)> = set_cookies;
            if let Some(ct) = content_type {
                headers.push(("Content-Type".to_owned(), ct));
            }
            x.response = Some(RecordedResponse {
                version: "HTTP/1.1".to_owned(),
                status: intended.status,
                reason: String::new(),
                headers,
                body: intended.body_bytes()?,
                complete: true,
            });
            for check in &mut x.checks {
                if let Check::Complete(done) = check {
                    *done = true;
                }
            }
        }
        if dev.no_response.contains(&x.id) {
            x.response = None;
            for check in &mut x.checks {
                match check {
                    Check::Complete(done) => *done = false,
                    Check::Read { reached, .. } => *reached = false,
                    Check::Pending(_) => {}
                }
            }
        }
        if let Some(pending) = dev.pending.get(&x.id) {
            let mut intended = pending.iter();
            for check in &mut x.checks {
                if let Check::Pending(p) = check {
                    if let Some(v) = intended.next() {
                        *p = *v;
                    }
                }
            }
        }
    }
    if let Some(rows) = &dev.table {
        let columns = expected.table.columns.clone();
        let mut out = Vec::new();
        for row in rows {
            let mut cells = Vec::new();
            for column in &columns {
                let value = row.get(column).ok_or_else(|| {
                    CompatError::Scenario(format!(
                        "{}: deviation table row lacks column {column}",
                        scenario.name
                    ))
                })?;
                cells.push(value.canonical()?);
            }
            if row.len() != columns.len() {
                return Err(CompatError::Scenario(format!(
                    "{}: deviation table row has columns the table lacks",
                    scenario.name
                )));
            }
            out.push(cells);
        }
        expected.table = TableDump { columns, rows: out };
    }
    Ok(expected)
}
