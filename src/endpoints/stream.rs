//! `AJ04serve.php`: the agent page's hidden iframe, an endless chunked response with one
//! `<script>` per message to `admin`.
//!
//! ```php
//! while(true){ $sql='select * from msg where rec="admin" and isread=0'; …
//!   echo '<script type="text/javascript">'; echo 'parent.window.comet('.$msg.');'; echo '</script>';
//!   ob_flush(); flush(); … sleep(1); }
//! ```
//!
//! Each message is one chunk, written the moment it is claimed. A message is claimed only when
//! hyper asks for the next chunk, i.e. after the previous one was written, so a disconnected
//! agent leaves the rest unread for the next page load.

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::header::HeaderValue;
use hyper::Response;

use super::{message_json, php_response, Body, PhpRequest};
use crate::delivery::Mailbox;
use crate::php::script::Script;
use crate::store::Message;

/// The recipient the legacy stream reads, hard-coded in AJ04serve.php.
pub const AGENT: &[u8] = b"admin";

/// Opens the stream.
pub fn stream(script: &Script, request: &PhpRequest, mailbox: &Mailbox) -> Response<Body> {
    let head = Bytes::from(script.head.clone());
    let chunks = futures_util::stream::unfold(
        (mailbox.clone(), Some(head)),
        |(mailbox, head)| async move {
            if let Some(head) = head.filter(|head| !head.is_empty()) {
                return Some((Ok(Frame::data(head)), (mailbox, None)));
            }
            let claimed = mailbox.next(AGENT).await?;
            let chunk = comet_script(claimed.message());
            claimed.hand_over();
            Some((Ok(Frame::data(chunk)), (mailbox, None)))
        },
    );
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
