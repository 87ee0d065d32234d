//! HAR 1.2 (the format browsers' developer tools export) for recordings, plus the table file
//! stored beside each one. Only the fields we write or read are modelled; unknown fields of
//! operators' own HAR files are ignored. Our own additions start with `_`, as HAR 1.2 allows.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::runner::{Check, ExchangeRecord, Outcome, RecordedResponse, TableDump};
use crate::scenario::CellValue;
use crate::CompatError;

/// A HAR file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Har {
    /// The single top-level object.
    pub log: Log,
}

/// `log`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Log {
    /// "1.2".
    #[serde(default)]
    pub version: String,
    /// Who wrote the file.
    #[serde(default)]
    pub creator: Creator,
    /// Requests in the order they were sent.
    pub entries: Vec<Entry>,
    /// Name of the scenario this recording belongs to (ours only).
    #[serde(rename = "_scenario", default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
}

/// `log.creator`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Creator {
    /// Tool name.
    #[serde(default)]
    pub name: String,
    /// Tool version.
    #[serde(default)]
    pub version: String,
}

/// `log.entries[]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// ISO 8601 time the request started.
    #[serde(rename = "startedDateTime", default)]
    pub started_date_time: String,
    /// Total milliseconds.
    #[serde(default)]
    pub time: f64,
    /// The request.
    pub request: HarRequest,
    /// The response (status 0 when none was read).
    pub response: HarResponse,
    /// Required by HAR; always empty here.
    #[serde(default)]
    pub cache: serde_json::Value,
    /// Required by HAR.
    #[serde(default)]
    pub timings: Timings,
    /// The request's id in the scenario (ours only).
    #[serde(rename = "_id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Outcomes of the scenario's checks on this request, in order (ours only).
    #[serde(rename = "_checks", default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<HarCheck>,
}

/// `timings`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    /// Milliseconds sending.
    #[serde(default)]
    pub send: f64,
    /// Milliseconds waiting.
    #[serde(default)]
    pub wait: f64,
    /// Milliseconds receiving.
    #[serde(default)]
    pub receive: f64,
}

/// One check's outcome, as stored in `_checks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HarCheck {
    /// `pending`: still waiting at the deadline?
    Pending(bool),
    /// `request`/`await`: completed in time?
    Complete(bool),
    /// `read`: reached `messages` `</script>` tags?
    Read {
        /// Messages asked for.
        messages: usize,
        /// Reached in time.
        reached: bool,
    },
}

/// A name/value pair (headers, cookies, query strings).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NameValue {
    /// Name.
    pub name: String,
    /// Value (lossy when the bytes are not UTF-8; see `_base64`).
    pub value: String,
    /// The exact value bytes, only when they are not UTF-8 (ours only).
    #[serde(rename = "_base64", default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
}

/// `request`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HarRequest {
    /// Method.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// e.g. `HTTP/1.1`.
    #[serde(rename = "httpVersion", default)]
    pub http_version: String,
    /// Required by HAR; we leave cookies in the headers.
    #[serde(default)]
    pub cookies: Vec<serde_json::Value>,
    /// Header lines in order.
    #[serde(default)]
    pub headers: Vec<NameValue>,
    /// Required by HAR; the query stays in `url`.
    #[serde(rename = "queryString", default)]
    pub query_string: Vec<serde_json::Value>,
    /// The body, if any.
    #[serde(rename = "postData", default, skip_serializing_if = "Option::is_none")]
    pub post_data: Option<PostData>,
    /// -1: unknown.
    #[serde(rename = "headersSize", default)]
    pub headers_size: i64,
    /// Body length.
    #[serde(rename = "bodySize", default)]
    pub body_size: i64,
}

/// `request.postData`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostData {
    /// The request's Content-Type.
    #[serde(rename = "mimeType", default)]
    pub mime_type: String,
    /// The body: text, or base64 when `_encoding` is `base64`.
    #[serde(default)]
    pub text: String,
    /// `base64` when `text` is base64 (HAR 1.2 has no such field for requests, so it is ours).
    #[serde(rename = "_encoding", default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

/// `response`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HarResponse {
    /// Status, or 0 when no response was read.
    pub status: u16,
    /// Reason phrase.
    #[serde(rename = "statusText", default)]
    pub status_text: String,
    /// e.g. `HTTP/1.1`.
    #[serde(rename = "httpVersion", default)]
    pub http_version: String,
    /// Required by HAR; Set-Cookie stays in the headers.
    #[serde(default)]
    pub cookies: Vec<serde_json::Value>,
    /// Header lines in order.
    #[serde(default)]
    pub headers: Vec<NameValue>,
    /// The body.
    #[serde(default)]
    pub content: Content,
    /// Location, if any.
    #[serde(rename = "redirectURL", default)]
    pub redirect_url: String,
    /// -1: unknown.
    #[serde(rename = "headersSize", default)]
    pub headers_size: i64,
    /// -1: unknown (the transfer size depends on chunking).
    #[serde(rename = "bodySize", default)]
    pub body_size: i64,
    /// False when the body was cut (a stream read up to some messages) (ours only).
    #[serde(rename = "_complete", default = "yes")]
    pub complete: bool,
}

fn yes() -> bool {
    true
}

/// `response.content`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Content {
    /// Body length in bytes.
    #[serde(default)]
    pub size: i64,
    /// The response's Content-Type.
    #[serde(rename = "mimeType", default)]
    pub mime_type: String,
    /// The body: text, or base64 when `encoding` is `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `base64` when `text` is base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

impl Content {
    /// The body bytes.
    pub fn bytes(&self) -> Result<Vec<u8>, CompatError> {
        let text = self.text.as_deref().unwrap_or_default();
        match self.encoding.as_deref() {
            Some("base64") => decode_b64(text),
            _ => Ok(text.as_bytes().to_vec()),
        }
    }
}

fn decode_b64(text: &str) -> Result<Vec<u8>, CompatError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| CompatError::Har(format!("base64: {e}")))
}

fn encode_body(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), None),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            Some("base64".to_owned()),
        ),
    }
}

fn name_value(name: &str, value: &[u8]) -> NameValue {
    match std::str::from_utf8(value) {
        Ok(v) => NameValue {
            name: name.to_owned(),
            value: v.to_owned(),
            base64: None,
        },
        Err(_) => NameValue {
            name: name.to_owned(),
            value: String::from_utf8_lossy(value).into_owned(),
            base64: Some(base64::engine::general_purpose::STANDARD.encode(value)),
        },
    }
}

impl NameValue {
    /// The exact value bytes.
    pub fn bytes(&self) -> Result<Vec<u8>, CompatError> {
        match &self.base64 {
            Some(b) => decode_b64(b),
            None => Ok(self.value.as_bytes().to_vec()),
        }
    }
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

impl From<&Check> for HarCheck {
    fn from(c: &Check) -> HarCheck {
        match *c {
            Check::Pending(b) => HarCheck::Pending(b),
            Check::Complete(b) => HarCheck::Complete(b),
            Check::Read { messages, reached } => HarCheck::Read { messages, reached },
        }
    }
}

impl From<&HarCheck> for Check {
    fn from(c: &HarCheck) -> Check {
        match *c {
            HarCheck::Pending(b) => Check::Pending(b),
            HarCheck::Complete(b) => Check::Complete(b),
            HarCheck::Read { messages, reached } => Check::Read { messages, reached },
        }
    }
}

/// The HAR of an outcome.
pub fn to_har(outcome: &Outcome) -> Har {
    let entries = outcome.exchanges.iter().map(entry_of).collect();
    Har {
        log: Log {
            version: "1.2".to_owned(),
            creator: Creator {
                name: "chat-server compat recorder".to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            entries,
            scenario: Some(outcome.scenario.clone()),
        },
    }
}

fn entry_of(x: &ExchangeRecord) -> Entry {
    let post_data = (!x.request_body.is_empty()).then(|| {
        let (text, encoding) = encode_body(&x.request_body);
        PostData {
            mime_type: header(&x.request_headers, "content-type")
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default(),
            text,
            encoding,
        }
    });
    let response = match &x.response {
        Some(r) => {
            let (text, encoding) = encode_body(&r.body);
            HarResponse {
                status: r.status,
                status_text: r.reason.clone(),
                http_version: r.version.clone(),
                cookies: Vec::new(),
                headers: r.headers.iter().map(|(n, v)| name_value(n, v)).collect(),
                content: Content {
                    size: r.body.len() as i64,
                    mime_type: header(&r.headers, "content-type")
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default(),
                    text: Some(text),
                    encoding,
                },
                redirect_url: header(&r.headers, "location")
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default(),
                headers_size: -1,
                body_size: -1,
                complete: r.complete,
            }
        }
        None => HarResponse {
            status: 0,
            status_text: String::new(),
            http_version: String::new(),
            cookies: Vec::new(),
            headers: Vec::new(),
            content: Content::default(),
            redirect_url: String::new(),
            headers_size: -1,
            body_size: -1,
            complete: false,
        },
    };
    Entry {
        started_date_time: iso8601(x.started),
        time: round_ms(x.elapsed_ms),
        request: HarRequest {
            method: x.method.clone(),
            url: x.url.clone(),
            http_version: "HTTP/1.1".to_owned(),
            cookies: Vec::new(),
            headers: x
                .request_headers
                .iter()
                .map(|(n, v)| name_value(n, v))
                .collect(),
            query_string: Vec::new(),
            post_data,
            headers_size: -1,
            body_size: x.request_body.len() as i64,
        },
        response,
        cache: serde_json::json!({}),
        timings: Timings {
            send: 0.0,
            wait: round_ms(x.elapsed_ms),
            receive: 0.0,
        },
        id: Some(x.id.clone()),
        checks: x.checks.iter().map(HarCheck::from).collect(),
    }
}

fn round_ms(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// Reads back the exchanges of a recording made by [`to_har`] (or of any HAR: entries without
/// `_id` are named `entry N`).
pub fn exchanges_of(har: &Har) -> Result<Vec<ExchangeRecord>, CompatError> {
    har.log
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let request_headers = e
                .request
                .headers
                .iter()
                .map(|h| Ok((h.name.clone(), h.bytes()?)))
                .collect::<Result<Vec<_>, CompatError>>()?;
            let request_body = match &e.request.post_data {
                Some(p) if p.encoding.as_deref() == Some("base64") => decode_b64(&p.text)?,
                Some(p) => p.text.as_bytes().to_vec(),
                None => Vec::new(),
            };
            let response = if e.response.status == 0 {
                None
            } else {
                Some(RecordedResponse {
                    version: e.response.http_version.clone(),
                    status: e.response.status,
                    reason: e.response.status_text.clone(),
                    headers: e
                        .response
                        .headers
                        .iter()
                        .map(|h| Ok((h.name.clone(), h.bytes()?)))
                        .collect::<Result<Vec<_>, CompatError>>()?,
                    body: e.response.content.bytes()?,
                    complete: e.response.complete,
                })
            };
            Ok(ExchangeRecord {
                id: e.id.clone().unwrap_or_else(|| format!("entry {}", i + 1)),
                method: e.request.method.clone(),
                url: e.request.url.clone(),
                request_headers,
                request_body,
                started: UNIX_EPOCH,
                elapsed_ms: e.time,
                response,
                checks: e.checks.iter().map(Check::from).collect(),
            })
        })
        .collect()
}

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
    pub fn paths(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
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

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for a system time (UTC).
pub fn iso8601(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm, public domain).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Milliseconds since the Unix epoch of an ISO 8601 date-time as browsers write HAR
/// `startedDateTime` (`2024-01-02T03:04:05.678Z`, or with a `+01:00` offset); None if unreadable.
pub fn parse_iso8601_ms(text: &str) -> Option<i64> {
    let num = |s: &str| s.parse::<i64>().ok();
    let (date, rest) = text.split_once('T')?;
    let mut d = date.split('-');
    let (year, month, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let zone_at = rest.find(['Z', '+', '-']).unwrap_or(rest.len());
    let (time, zone) = rest.split_at(zone_at);
    let mut t = time.split(':');
    let (hour, minute) = (num(t.next()?)?, num(t.next()?)?);
    let seconds: f64 = t.next()?.parse().ok()?;
    let offset_min = match zone {
        "" | "Z" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let (h, m) = z[1..].split_once(':').unwrap_or((&z[1..], "0"));
            sign * (num(h)? * 60 + num(m)?)
        }
    };
    // Civil date to days since 1970-01-01 (Howard Hinnant's algorithm, public domain).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 - offset_min * 60;
    Some(secs * 1000 + (seconds * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn iso8601_formats_known_instants() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123); // leap day 2000
        assert_eq!(iso8601(t), "2000-02-29T00:00:00.123Z");
    }

    #[test]
    fn browser_dates_parse_back_to_the_same_instant() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_123_456);
        assert_eq!(parse_iso8601_ms(&iso8601(t)), Some(1_795_000_123_456));
        assert_eq!(
            parse_iso8601_ms("2000-02-29T01:00:00.123+01:00"),
            Some(951_782_400_123)
        );
        assert_eq!(parse_iso8601_ms("yesterday"), None);
    }

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
