//! Differences as text a person can read: escaped bytes and the first differing offset.

use crate::runner::Check;
use crate::scenario::CellValue;

pub(crate) fn describe_checks(checks: &[Check]) -> String {
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

pub(crate) fn completeness(complete: bool) -> &'static str {
    if complete {
        "complete"
    } else {
        "cut (streamed)"
    }
}

pub(crate) fn show_list(values: &[Vec<u8>]) -> String {
    let shown: Vec<String> = values
        .iter()
        .map(|v| format!("\"{}\"", escape(v)))
        .collect();
    format!("[{}]", shown.join(", "))
}

pub(crate) fn show_row(row: &[CellValue]) -> String {
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
