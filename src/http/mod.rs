//! HTTP: from a socket to an endpoint and back.
//!
//! - `server`: accept loop, hyper options, graceful drain.
//! - `front`: each connection's reader: requests as nginx read them, handed to hyper.
//! - `body`: request bodies, in memory up to 16k and in a temporary file beyond.
//! - `routes`: URL to endpoint; request to `$_COOKIE`/`$_POST`.
//! - `limits`: ceilings on parked polls per client address and per username.
//! - `request_id`: the span, and id, every log line about a request carries.

pub mod body;
pub mod front;
pub mod limits;
pub mod request_id;
pub mod routes;
pub mod server;
