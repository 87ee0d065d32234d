//! Outcomes to HAR entries and back.

use std::time::UNIX_EPOCH;

use super::dates::iso8601;
use super::model::{
    decode_b64, encode_body, name_value, Content, Creator, Entry, Har, HarCheck, HarRequest,
    HarResponse, Log, PostData, Timings,
};
use crate::runner::{Check, ExchangeRecord, Outcome, RecordedResponse};
use crate::CompatError;

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
                comment: None,
            },
            entries,
            scenario: Some(outcome.scenario.clone()),
            comment: None,
            legacy: None,
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
