//! `AJ04serve.php`: the agent page's hidden iframe, an endless chunked response with one
//! `<script>` per message to `admin`.
//!
//! ```php
//! while(true){ $sql='select * from msg where rec="admin" and isread=0'; …
//!   echo '<script type="text/javascript">'; echo 'parent.window.comet('.$msg.');'; echo '</script>';
//!   ob_flush(); flush(); … sleep(1); }
//! ```
//!
//! Everything waiting (up to [`MOST_PER_WRITE`] messages) is claimed in one transaction and
//! written as one chunk of `<script>`s, as the legacy echoed every unread row before one flush;
//! the claim commits as hyper takes the chunk (see `delivery`). Messages are claimed only when
//! hyper asks for more, i.e. after the previous chunk was written, so a disconnected agent leaves
//! the rest unread for the next page load.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::header::HeaderValue;
use hyper::Response;

use super::{message_json, php_response, Body, PhpRequest};
use crate::delivery::{Claimed, Mailbox};
use crate::http::limits::Parked;
use crate::metrics::Held;
use crate::php::script::Script;
use crate::store::Message;

/// The recipient the legacy stream reads, hard-coded in AJ04serve.php.
pub const AGENT: &[u8] = b"admin";
/// Most messages claimed and written at once: enough that a backlog drains in few round trips,
/// few enough that one chunk stays small.
const MOST_PER_WRITE: usize = 256;

/// Opens the stream; `parked` holds its place under the parking limits for as long as it lasts.
pub fn stream(
    script: &Script,
    request: &PhpRequest,
    mailbox: &Mailbox,
    parked: Parked,
) -> Response<Body> {
    let head = (!script.head.is_empty()).then(|| Bytes::from(script.head.clone()));
    let claims = futures_util::stream::unfold(mailbox.clone(), |mailbox| async move {
        let claimed = mailbox.next(AGENT, MOST_PER_WRITE).await?;
        Some((claimed, mailbox))
    });
    let chunks = Chunks {
        head,
        claims: Box::pin(claims),
        _parked: parked,
        _open: mailbox.meters().stream_open(),
        html_safe: request.html_safe,
    };
    let mut response = php_response(
        request.version,
        None,
        StreamBody::new(chunks).boxed_unsync(),
    );
    // A reverse proxy in front (nginx) would otherwise buffer the stream and nothing would arrive.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The stream's frames: the script's text before its code, then one `<script>` per claimed
/// message, committed in the poll that hands it to hyper.
struct Chunks {
    head: Option<Bytes>,
    claims: Pin<Box<dyn Stream<Item = Claimed> + Send>>,
    /// Holds the stream's place under the parking limits until hyper drops it.
    _parked: Parked,
    /// Counts the stream in `chat_agent_streams` until hyper drops it.
    _open: Held,
    /// Hardened mode: message values made inert for `innerHTML`.
    html_safe: bool,
}

impl Stream for Chunks {
    type Item = Result<Frame<Bytes>, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        let Poll::Ready(claimed) = self.claims.as_mut().poll_next(cx) else {
            return Poll::Pending;
        };
        Poll::Ready(claimed.map(|claimed| {
            let chunk: Vec<u8> = claimed
                .messages()
                .iter()
                .flat_map(|message| comet_script(message, self.html_safe))
                .collect();
            claimed.commit_and_take(cx);
            Ok(Frame::data(chunk.into()))
        }))
    }
}

/// `<script type="text/javascript">parent.window.comet(JSON);</script>`; invalid UTF-8 makes
/// json_encode false, which PHP concatenates as nothing: `comet();`.
fn comet_script(message: &Message, html_safe: bool) -> Vec<u8> {
    let encoded = message_json(message, html_safe);
    [
        &b"<script type=\"text/javascript\">parent.window.comet("[..],
        &encoded,
        b");</script>",
    ]
    .concat()
}
