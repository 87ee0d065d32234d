//! `AJ05comitajax.php`: the customer's long poll.
//!
//! ```php
//! $rec=$_COOKIE['username'];
//! $sql="select * from msg where rec='$rec' and isread=0 limit 1";
//! while(true){ … if(!empty($row)){ update … set isread=1 …; echo json_encode($row); exit(); } sleep(1); }
//! ```
//!
//! Held without a timeout, as the legacy did: its page never retries after an error, so an
//! answer without a message would silently end the customer's chat. The request parks on the
//! hub (no query while it waits) and leaves when the client disconnects or the server stops.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::{Response, StatusCode};

use super::{error_page, message_json, php_response, Body, PhpRequest};
use crate::delivery::{Claimed, Mailbox};
use crate::php::script::Script;

/// Waits for the caller's oldest unread message and answers it as PHP's `json_encode($row)`.
pub async fn poll(script: &Script, request: &PhpRequest, mailbox: &Mailbox) -> Response<Body> {
    let recipient = request.cookies.string("username");
    let Some(claimed) = mailbox.next(&recipient).await else {
        // Shutting down: the legacy (PHP-FPM restarted) also ended these with an error.
        return error_page(StatusCode::SERVICE_UNAVAILABLE);
    };
    let bytes = script.around(&message_json(claimed.message()));
    php_response(
        request.version,
        None,
        ClaimedBody::new(bytes, claimed).boxed_unsync(),
    )
}

/// A response body that counts its message as delivered only when hyper takes the bytes to write
/// them. Dropped unsent (client gone, HEAD request), the message is released for the next poll.
struct ClaimedBody {
    bytes: Option<Bytes>,
    claimed: Option<Claimed>,
}

impl ClaimedBody {
    fn new(bytes: Vec<u8>, claimed: Claimed) -> ClaimedBody {
        if bytes.is_empty() {
            // json_encode returned false (invalid UTF-8): PHP marked the row read and sent
            // nothing. hyper never polls an empty body, so there is nothing to wait for.
            claimed.hand_over();
            return ClaimedBody {
                bytes: None,
                claimed: None,
            };
        }
        ClaimedBody {
            bytes: Some(bytes.into()),
            claimed: Some(claimed),
        }
    }
}

impl http_body::Body for ClaimedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(claimed) = this.claimed.take() {
            claimed.hand_over();
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
