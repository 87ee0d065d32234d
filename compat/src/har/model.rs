//! The serde model of HAR 1.2: only the fields we write or read, plus our own `_` fields, and
//! how header values and bodies that are not UTF-8 are kept exact (base64 beside the text).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

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
    /// What the recording was made from, in words (HAR's `comment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The same versions, one field each (ours only; `chat-compat record` writes it).
    #[serde(rename = "_legacy", default, skip_serializing_if = "Option::is_none")]
    pub legacy: Option<crate::provenance::Provenance>,
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
    /// What the tool recorded from (HAR's `comment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
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

pub(super) fn decode_b64(text: &str) -> Result<Vec<u8>, CompatError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| CompatError::Har(format!("base64: {e}")))
}

pub(super) fn encode_body(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), None),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            Some("base64".to_owned()),
        ),
    }
}

pub(super) fn name_value(name: &str, value: &[u8]) -> NameValue {
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
