//! `AJ05comitajax.php`: the customer's long poll.
//!
//! ```php
//! $rec=$_COOKIE['username'];
//! $sql="select * from msg where rec='$rec' and isread=0 limit 1";
//! while(true){ … if(!empty($row)){ update … set isread=1 …; echo json_encode($row); exit(); } sleep(1); }
//! ```
//!
//! Held without a timeout by default, as the legacy did: its page never retries after an error,
//! so an error answer would silently end the customer's chat. `--max-park-ms` answers a poll that
//! waited that long with `null`, which the unchanged page takes as "poll again" and shows
//! nothing for. The request parks on the hub (no query while it waits) and leaves when the
//! client disconnects or the server stops.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::{Response, StatusCode};

use super::{error_page, full, message_json, php_response, Body, PhpRequest};
use crate::delivery::{Claimed, Mailbox};
use crate::php::script::Script;

/// What the page's own poll loop takes as "nothing yet": jQuery parses `null`, the page's success
/// handler schedules the next poll and then stops at `res.content` before printing anything.
const NOTHING_YET: &[u8] = b"null";

/// Waits for the caller's oldest unread message and answers it as PHP's `json_encode($row)`.
/// With `max_park` set, a poll that waited that long is answered [`NOTHING_YET`].
pub async fn poll(
    script: &Script,
    request: &PhpRequest,
    mailbox: &Mailbox,
    max_park: Option<Duration>,
) -> Response<Body> {
    let version = request.version;
    let recipient = request.cookies.string("username");
    let claimed = match max_park {
        None => mailbox.next(&recipient, 1).await,
        Some(limit) => match tokio::time::timeout(limit, mailbox.next(&recipient, 1)).await {
            Ok(claimed) => claimed,
            Err(_) => return php_response(version, None, full(script.around(NOTHING_YET))),
        },
    };
    let Some(claimed) = claimed else {
        // Shutting down: the legacy (PHP-FPM restarted) also ended these with an error.
        return error_page(StatusCode::SERVICE_UNAVAILABLE);
    };
    // One row per answer, as the legacy's `limit 1`.
    let bytes = script.around(&message_json(&claimed.messages()[0], request.html_safe));
    if bytes.is_empty() {
        // json_encode returned false (invalid UTF-8): PHP marked the row read and sent nothing.
        // hyper never asks an empty body for bytes, so the claim commits before the answer.
        return match claimed.commit_now().await {
            true => php_response(version, None, full(bytes)),
            false => error_page(StatusCode::SERVICE_UNAVAILABLE),
        };
    }
    php_response(
        version,
        None,
        ClaimedBody::new(bytes, claimed).boxed_unsync(),
    )
}

/// A response body whose message counts as delivered when hyper takes its bytes: the claim's
/// COMMIT goes out in the same poll (see `delivery`). Dropped unsent (client gone, HEAD), the
/// claim rolls back and the message stays for the next poll.
struct ClaimedBody {
    bytes: Option<Bytes>,
    claimed: Option<Claimed>,
}

impl ClaimedBody {
    fn new(bytes: Vec<u8>, claimed: Claimed) -> ClaimedBody {
        ClaimedBody {
            bytes: Some(bytes.into()),
            claimed: Some(claimed),
        }
    }
}

impl http_body::Body for ClaimedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(claimed) = this.claimed.take() {
            claimed.commit_and_take(cx);
        }
        Poll::Ready(this.bytes.take().map(|bytes| Ok(Frame::data(bytes))))
    }

    fn is_end_stream(&self) -> bool {
        self.bytes.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.bytes.as_ref().map_or(0, |bytes| bytes.len() as u64))
    }
}
