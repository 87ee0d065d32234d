//! `chat-compat replay --har FILE --against URL`: an operator's own browser recording, sent
//! request by request at its recorded pace and compared with what the new server answers.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{report, ReplayArgs};
use crate::compare;
use crate::har::{self, Har};
use crate::http;
use crate::runner::{self, ExchangeRecord};
use crate::CompatError;

/// Request headers not replayed from an operator's HAR: the client's own framing and
/// connection handling (re-done by our client), HTTP/2 pseudo-headers, and `Accept-Encoding`
/// (HAR bodies are stored decoded, so the replay asks for an identity body).
const HOP_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "proxy-connection",
    "accept-encoding",
];

pub(crate) async fn replay_har(args: &ReplayArgs, path: &Path) -> Result<usize, CompatError> {
    let against = args
        .against
        .as_deref()
        .ok_or_else(|| CompatError::Scenario("--har needs --against URL".into()))?;
    let (authority, prefix) = http::split_base_url(against)?;
    let har: Har = har::read_json(path)?;
    let recorded = har::exchanges_of(&har)?;
    // Requests go out at their recorded offsets (gaps capped) without waiting for earlier
    // answers, as the browser sent them: a long poll recorded before the message that answered
    // it must be waiting when that message is sent.
    let offsets = start_offsets(&har, args.max_gap_ms);
    let origin = tokio::time::Instant::now();
    let mut running = Vec::new();
    for (i, expected) in recorded.iter().enumerate() {
        tokio::time::sleep_until(origin + Duration::from_millis(offsets[i])).await;
        let target = format!("{prefix}{}", path_of(&expected.url));
        let headers: Vec<(String, Vec<u8>)> = expected
            .request_headers
            .iter()
            .filter(|(n, _)| {
                !n.starts_with(':') && !HOP_HEADERS.contains(&n.to_ascii_lowercase().as_str())
            })
            .cloned()
            .collect();
        let bytes = http::build_request(
            &expected.method,
            &target,
            &authority,
            &headers,
            &expected.request_body,
        );
        let exchange = http::Exchange::send(&authority, &bytes, expected.method == "HEAD").await?;
        // A response the HAR holds only part of (a stream) is read up to that length.
        let want_len = expected
            .response
            .as_ref()
            .filter(|r| !r.complete)
            .map(|r| r.body.len());
        let timeout = Duration::from_millis(args.timeout_ms);
        running.push((
            target,
            headers,
            tokio::spawn(async move {
                let mut exchange = exchange;
                let deadline = tokio::time::Instant::now() + timeout;
                let done = match want_len {
                    Some(len) => exchange.read_until(deadline, |x| x.body.len() >= len).await,
                    None => exchange.read_until(deadline, |x| x.complete).await,
                };
                done.map(|done| (done, exchange))
            }),
        ));
    }
    let mut failing = 0;
    for (expected, (target, headers, task)) in recorded.iter().zip(running) {
        let label = format!("{} {} {}", expected.id, expected.method, target);
        let (done, exchange) = task
            .await
            .map_err(|e| CompatError::Http(format!("{label}: {e}")))??;
        let Some(want_response) = &expected.response else {
            println!("skip {label}: the HAR has no response for it");
            continue;
        };
        if !done {
            failing += 1;
            println!("FAIL {label}: no answer within {} ms", args.timeout_ms);
            continue;
        }
        let mut body = exchange.body;
        if !want_response.complete {
            body.truncate(want_response.body.len());
        }
        let actual = ExchangeRecord {
            id: expected.id.clone(),
            method: expected.method.clone(),
            url: format!("http://{authority}{target}"),
            request_headers: headers,
            request_body: expected.request_body.clone(),
            started: SystemTime::now(),
            elapsed_ms: 0.0,
            response: exchange.head.map(|head| runner::RecordedResponse {
                version: head.version,
                status: head.status,
                reason: head.reason,
                headers: head.headers,
                body,
                complete: want_response.complete,
            }),
            checks: Vec::new(),
        };
        let mut want = expected.clone();
        want.checks.clear();
        if let (Some(w), Some(a)) = (want.response.as_mut(), &actual.response) {
            // Browsers leave out bodies they did not keep; compare what the HAR has.
            if w.body.is_empty() && har_body_missing(&har, &expected.id) {
                w.body = a.body.clone();
            }
        }
        let mut differences = Vec::new();
        compare::compare_exchange(&want, &actual, &mut differences);
        if differences.is_empty() {
            println!("ok   {label}");
        } else {
            failing += 1;
            print!("FAIL {}", report(&label, &differences));
        }
    }
    println!("{} request(s), {failing} disagreement(s)", recorded.len());
    Ok(failing)
}

/// Milliseconds after the first request at which each entry was sent, with every gap capped
/// at `max_gap_ms`; entries without a readable time follow the previous one at once.
fn start_offsets(har: &Har, max_gap_ms: u64) -> Vec<u64> {
    let mut out = Vec::with_capacity(har.log.entries.len());
    let mut previous: Option<i64> = None;
    let mut at = 0u64;
    for entry in &har.log.entries {
        let this = har::parse_iso8601_ms(&entry.started_date_time);
        if let (Some(prev), Some(now)) = (previous, this) {
            let gap = u64::try_from(now - prev).unwrap_or(0).min(max_gap_ms);
            at += gap;
        }
        previous = this.or(previous);
        out.push(at);
    }
    out
}

fn har_body_missing(har: &Har, id: &str) -> bool {
    har.log
        .entries
        .iter()
        .enumerate()
        .find(|(i, e)| {
            e.id.as_deref()
                .map_or(format!("entry {}", i + 1) == id, |x| x == id)
        })
        .is_some_and(|(_, e)| e.response.content.text.is_none())
}

/// The request target (path and query) of an absolute or relative URL.
fn path_of(url: &str) -> String {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .map(|r| r.find('/').map_or("/", |i| &r[i..]))
        .unwrap_or(url);
    let rest = rest.split('#').next().unwrap_or(rest);
    if rest.is_empty() {
        "/".to_owned()
    } else {
        rest.to_owned()
    }
}
