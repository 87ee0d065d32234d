//! One HTTP/1.1 connection kept open across requests, as a browser keeps its connection to the
//! site between `$.post` calls: for `sends --keep-alive` and `rate --keep-alive`. The compat
//! client (`chat_compat::http::Exchange`) reads each response; this only decides whether the
//! next request may follow on the same connection.

use std::time::Duration;

use chat_compat::error::CompatError;
use chat_compat::http::Exchange;

/// A client connection that stays open; reopened after the server closes it.
pub struct Kept {
    authority: String,
    open: Option<Exchange>,
}

impl Kept {
    /// Not connected yet: the first request connects.
    pub fn new(authority: &str) -> Kept {
        Kept {
            authority: authority.to_owned(),
            open: None,
        }
    }

    /// Sends `request` (which must not ask for `Connection: close`) and returns the response's
    /// status and body once whole, within `timeout`. The connection is dropped after an error,
    /// an incomplete answer or a `Connection: close` one.
    pub async fn request(
        &mut self,
        request: &[u8],
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), CompatError> {
        let mut exchange = match self.open.take() {
            Some(mut open) => {
                open.send_again(request).await?;
                open
            }
            None => Exchange::send(&self.authority, request, false).await?,
        };
        if !exchange.finish(timeout).await? {
            return Err(CompatError::Http(format!("no whole answer in {timeout:?}")));
        }
        let head = exchange.head.as_ref().expect("a whole answer has its head");
        let status = head.status;
        let closes = head
            .values("connection")
            .any(|value| value.eq_ignore_ascii_case(b"close"));
        let body = std::mem::take(&mut exchange.body);
        if !closes && !exchange.closed() {
            self.open = Some(exchange);
        }
        Ok((status, body))
    }
}
