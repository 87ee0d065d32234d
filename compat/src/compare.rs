//! Compares two outcomes of the same scenario (a recording and a replay, or two recordings)
//! after normalisation, and explains the first differing bytes readably.
//!
//! Compared: every check's outcome, status, `Content-Type` and `Set-Cookie` values (header
//! names case-insensitively), the de-chunked body, and the final table. Not compared: other
//! headers (`Date`, `Server`, `X-Powered-By`, framing, `ETag`/`Last-Modified` of static
//! files), chunk boundaries and timing. Each normalisation rule is listed, with its reason, in
//! compat/README.md; the tests below prove none of them hides a real body difference.

use std::fmt;

use crate::runner::{Check, ExchangeRecord, Outcome, RecordedResponse, TableDump};
use crate::scenario::{CellValue, Scenario};
use crate::CompatError;

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

fn describe_checks(checks: &[Check]) -> String {
    let parts: Vec<String> = checks
        .iter()
        .map(|c| match c {
            Check::Pending(true) => "still pending".to_owned(),
            Check::Pending(false) => "answered before the pending deadline".to_owned(),
            Check::Complete(true) => "complete response".to_owned(),
            Check::Complete(false) => "no complete response in time".to_owned(),
            Check::Read {
                messages,
                reached: true,
            } => format!("{messages} message(s) read"),
            Check::Read {
                messages,
                reached: false,
            } => format!("fewer than {messages} message(s) in time"),
        })
        .collect();
    format!("[{}]", parts.join(", "))
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

fn completeness(complete: bool) -> &'static str {
    if complete {
        "complete"
    } else {
        "cut (streamed)"
    }
}

fn show_list(values: &[Vec<u8>]) -> String {
    let shown: Vec<String> = values
        .iter()
        .map(|v| format!("\"{}\"", escape(v)))
        .collect();
    format!("[{}]", shown.join(", "))
}

/// All values of header `name` (case-insensitive), in order.
pub fn header_values(headers: &[(String, Vec<u8>)], name: &str) -> Vec<Vec<u8>> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

/// Rule "random cookie": `admin` + three digits 100..999 right after `=` (AJ05customer.php's
/// `'admin'.rand(100,999)`) becomes `admin<100-999>`. Anything else is compared exactly.
pub fn normalise_header(name: &str, value: &[u8]) -> Vec<u8> {
    if !name.eq_ignore_ascii_case("set-cookie") {
        return value.to_vec();
    }
    const MARK: &[u8] = b"=admin";
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if value[i..].starts_with(MARK) {
            let digits = &value[i + MARK.len()..];
            let is_random = digits.len() >= 3
                && (b'1'..=b'9').contains(&digits[0])
                && digits[1].is_ascii_digit()
                && digits[2].is_ascii_digit()
                && (digits.len() == 3 || digits[3] == b';');
            if is_random {
                out.extend_from_slice(b"=admin<100-999>");
                i += MARK.len() + 3;
                continue;
            }
        }
        out.push(value[i]);
        i += 1;
    }
    out
}

/// Rule "web-server signature": in an nginx-style error page (status >= 400, body starting
/// `<html>\r\n<head><title>`), the text of `<hr><center>...</center>` (e.g. `nginx/1.22.1`)
/// becomes `<server>`. Everything else of the page, title and heading included, is compared.
pub fn normalise_body(status: u16, body: &[u8]) -> Vec<u8> {
    const START: &[u8] = b"<html>\r\n<head><title>";
    const SIGNATURE: &[u8] = b"\r\n<hr><center>";
    if status < 400 || !body.starts_with(START) {
        return body.to_vec();
    }
    let Some(at) = crate::http::find(body, SIGNATURE) else {
        return body.to_vec();
    };
    let from = at + SIGNATURE.len();
    let Some(len) = crate::http::find(&body[from..], b"</center>") else {
        return body.to_vec();
    };
    let mut out = body[..from].to_vec();
    out.extend_from_slice(b"<server>");
    out.extend_from_slice(&body[from + len..]);
    out
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

fn show_row(row: &[CellValue]) -> String {
    serde_json::to_string(row).unwrap_or_else(|_| format!("{row:?}"))
}

/// Bytes as readable text: printable ASCII kept, `\n \r \t \\ "` escaped, the rest `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        match b {
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// Where two byte strings first differ, with some context from each.
pub fn first_difference(expected: &[u8], actual: &[u8]) -> String {
    const BEFORE: usize = 24;
    const AFTER: usize = 48;
    let at = expected
        .iter()
        .zip(actual)
        .position(|(x, y)| x != y)
        .unwrap_or(expected.len().min(actual.len()));
    let from = at.saturating_sub(BEFORE);
    let window = |b: &[u8]| {
        let end = (at + AFTER).min(b.len());
        let more = if end < b.len() { "..." } else { "" };
        let less = if from > 0 { "..." } else { "" };
        format!(
            "{less}\"{}\" | \"{}\"{more}",
            escape(&b[from..at.min(b.len())]),
            escape(&b[at.min(b.len())..end])
        )
    };
    format!(
        "first difference at byte {at} (expected {} bytes, got {})\n    expected {}\n    actual   {}",
        expected.len(),
        actual.len(),
        window(expected),
        window(actual)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NGINX_404: &[u8] = b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n";

    #[test]
    fn random_cookie_numbers_compare_equal_but_other_cookies_do_not() {
        let a = normalise_header("Set-Cookie", b"username=admin287");
        let b = normalise_header("set-cookie", b"username=admin999");
        assert_eq!(a, b);
        assert_ne!(a, normalise_header("Set-Cookie", b"username=admin"));
        assert_ne!(a, normalise_header("Set-Cookie", b"username=admin1234"));
        assert_ne!(a, normalise_header("Set-Cookie", b"username=admin099"));
        assert_ne!(
            a,
            normalise_header("Set-Cookie", b"username=admin287; path=/")
        );
        assert_eq!(normalise_header("Content-Type", b"=admin123"), b"=admin123");
    }

    #[test]
    fn error_page_normaliser_ignores_the_signature_only() {
        let other_server =
            String::from_utf8_lossy(NGINX_404).replace("nginx/1.22.1", "chat-server");
        assert_eq!(
            normalise_body(404, NGINX_404),
            normalise_body(404, other_server.as_bytes())
        );
        // A different page, status text or trailing byte is still a difference.
        let forbidden =
            String::from_utf8_lossy(NGINX_404).replace("404 Not Found", "403 Forbidden");
        assert_ne!(
            normalise_body(404, NGINX_404),
            normalise_body(404, forbidden.as_bytes())
        );
        let mut longer = NGINX_404.to_vec();
        longer.push(b'\n');
        assert_ne!(normalise_body(404, NGINX_404), normalise_body(404, &longer));
        // Success bodies are never touched, even when they look like an error page.
        assert_eq!(normalise_body(200, NGINX_404), NGINX_404);
    }

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
