//! `AJ04serve.php`: the agent page's hidden iframe, an endless chunked response with one
//! `<script>` per message to `admin`.
//!
//! ```php
//! while(true){ $sql='select * from msg where rec="admin" and isread=0'; …
//!   echo '<script type="text/javascript">'; echo 'parent.window.comet('.$msg.');'; echo '</script>';
//!   ob_flush(); flush(); … sleep(1); }
//! ```
//!
//! Each message is written the moment it is claimed, all but its last byte first: the claim
//! commits once those are in hyper's hands, and the final `>` of `</script>` follows the COMMIT,
//! so a message whose claim did not commit never runs in the page (the stream is cut instead). A
//! message is claimed only when hyper asks for more, i.e. after the previous one was written, so
//! a disconnected agent leaves the rest unread for the next page load.

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::header::HeaderValue;
use hyper::Response;

use super::{message_json, php_response, split_last, Body, Undelivered};
use crate::delivery::{Mailbox, Settled};
use crate::limits::Parked;
use crate::php::{self, script::Script};
use crate::store::Message;

/// The recipient the legacy stream reads, hard-coded in AJ04serve.php.
pub const AGENT: &[u8] = b"admin";

/// Where the stream is between frames.
enum Next {
    /// The script's text before its code.
    Head(Bytes),
    /// Wait for and claim the next message.
    Claim,
    /// Send a message's last byte once its claim commits.
    Finish { last: Bytes, settled: Settled },
    /// Cut.
    End,
}

/// Opens the stream; `parked` holds its place under the parking limits for as long as it lasts.
pub fn stream(
    version: php::Version,
    script: &Script,
    mailbox: &Mailbox,
    parked: Parked,
) -> Response<Body> {
    let head = Bytes::from(script.head.clone());
    let chunks = futures_util::stream::unfold(
        (mailbox.clone(), Next::Head(head)),
        |(mailbox, next)| async move {
            let (frame, next) = match next {
                Next::Head(head) if !head.is_empty() => (Ok(head), Next::Claim),
                Next::Head(_) | Next::Claim => {
                    let claimed = mailbox.next(AGENT).await?;
                    let (first, last) = split_last(comet_script(claimed.message()));
                    let settled = claimed.handed_over();
                    (Ok(first), Next::Finish { last, settled })
                }
                Next::Finish { last, settled } => match settled.await {
                    Ok(true) => (Ok(last), Next::Claim),
                    _ => (Err(Undelivered), Next::End),
                },
                Next::End => return None,
            };
            Some((frame.map(Frame::data), (mailbox, next)))
        },
    );
    // The place is held by the body, so it is freed when hyper drops the stream.
    let chunks = futures_util::StreamExt::map(chunks, move |frame| {
        let _held = &parked;
        frame
    });
    let mut response = php_response(version, None, StreamBody::new(chunks).boxed_unsync());
    // A reverse proxy in front (nginx) would otherwise buffer the stream and nothing would arrive.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// `<script type="text/javascript">parent.window.comet(JSON);</script>`; invalid UTF-8 makes
/// json_encode false, which PHP concatenates as nothing: `comet();`.
fn comet_script(message: &Message) -> Bytes {
    let encoded = message_json(message);
    [
        &b"<script type=\"text/javascript\">parent.window.comet("[..],
        &encoded,
        b");</script>",
    ]
    .concat()
    .into()
}
