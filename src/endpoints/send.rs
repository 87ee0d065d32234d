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
use crate::hub::Hub;
use crate::php::script::Script;
use crate::store::Store;

/// The legacy's answer to a stored message.
pub const STORED: &[u8] = b"OK";
/// The legacy's answer to a failed insert, typo and all: the pages compare against `'OK'` only,
/// but operators' scripts may grep for this.
pub const FAILED: &[u8] = b"FIAL";

/// Inserts the message and wakes its recipient's waiters on this instance at once (other
/// instances find it through their watcher).
pub async fn send(
    script: &Script,
    request: &PhpRequest,
    store: &Store,
    hub: &Hub,
) -> Response<Body> {
    let recipient = request.post.string("rec");
    let content = request.post.string("content");
    let sender = request.cookies.string("username");
    let answer = match store.insert_message(&recipient, &sender, &content).await {
        Ok(()) => {
            hub.notify(&recipient);
            STORED
        }
        Err(err) => {
            tracing::warn!(%err, "message not stored");
            FAILED
        }
    };
    php_response(request.version, None, around(script, answer))
}
