//! `AJsendmsg.php`: stores one message and answers `OK`, or the legacy's own misspelt `FIAL`.
//!
//! ```php
//! $rec=$_POST['rec']; $content=$_POST['content']; $pos=$_COOKIE['username'];
//! $sql="insert into msg(rec,pos,content) values('$rec','$pos','$content')";
//! echo mysql_query($sql,$conn)?'OK':'FIAL';
//! ```
//!
//! Values are what PHP interpolated (missing is `''`, an array is `Array`), but bound as
//! parameters: a quote is stored literally instead of breaking or injecting the SQL.

use hyper::Response;

use super::{around, php_response, Body, PhpRequest};
use crate::delivery::Mailbox;
use crate::php::script::Script;

/// The legacy's answer to a stored message.
pub const STORED: &[u8] = b"OK";
/// The legacy's answer to a failed insert, typo and all: the pages compare against `'OK'` only,
/// but operators' scripts may grep for this. It means "not stored": an insert whose outcome is
/// unknown is settled with the database before the answer goes out.
pub const FAILED: &[u8] = b"FIAL";

/// Inserts the message and answers as the legacy did.
pub async fn send(script: &Script, request: &PhpRequest, mailbox: &Mailbox) -> Response<Body> {
    let recipient = request.post.string("rec");
    let content = request.post.string("content");
    let sender = request.cookies.string("username");
    let answer = match mailbox.send(&recipient, &sender, &content).await {
        Ok(()) => STORED,
        Err(err) => {
            tracing::warn!(%err, "message not stored");
            FAILED
        }
    };
    php_response(request.version, None, around(script, answer))
}
