//! Request routing: one match from URL to endpoint, and the one place a request (as nginx
//! handed it over, see [`crate::http::front`]) becomes the `$_COOKIE`/`$_POST` a PHP script would
//! have seen.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tracing::Instrument;

use crate::config::Config;
use crate::delivery::Mailbox;
use crate::endpoints::{files, pages, poll, send, stream};
use crate::hardening::Guard;
use crate::http::front::{Cutter, Handover, Request, Ticket};
use crate::http::limits::ParkLimits;
use crate::php::request::PhpRequest;
use crate::php::{cookie, form, multipart};
use crate::response::{error_page, full, refused, Body};
use crate::site::{Endpoint, Resource, Site};

/// Health probe for orchestrators and load balancers: `ok`, or 503 while no database node is
/// ready (the instance cannot store or claim anything then). It starts with a dot-directory, which the site never serves,
/// so it cannot shadow a file of the legacy docroot.
pub const HEALTH_PATH: &str = "/.chat-server/health";
/// Prometheus text-format gauges, beside the health probe for the same reason.
pub const METRICS_PATH: &str = "/.chat-server/metrics";

/// Everything a request handler needs, shared by all connections.
#[derive(Debug)]
pub struct App {
    /// The configuration the server was started with.
    pub config: Config,
    /// The legacy docroot.
    pub site: Site,
    /// Storing, waiting and claiming.
    pub mailbox: Mailbox,
    /// Ceilings on parked polls and streams.
    pub limits: Arc<ParkLimits>,
    /// The hardened mode's checks; `None` (the default) serves the legacy protocol as it was.
    pub guard: Option<Guard>,
    /// `--php-fpm`: where other `.php` files (and rolled-back endpoints) run.
    pub fpm: Option<crate::fastcgi::Fpm>,
}

/// hyper's service function, for the request the front handed over. Errors never reach hyper:
/// each becomes the answer nginx or PHP would give. The ticket lives as long as the response
/// body, so the front reads the next request only once this answer is finished.
/// Everything logged while a request is handled carries its id ([`crate::http::request_id`]).
pub async fn handle(
    app: Arc<App>,
    peer: SocketAddr,
    local: SocketAddr,
    ticket: Option<Ticket>,
) -> Result<Response<Body>, Infallible> {
    let Some(mut ticket) = ticket else {
        // Cannot happen: the front queues a ticket before every stand-in request.
        return Ok(closing(error_page(StatusCode::BAD_REQUEST)));
    };
    let handover = std::mem::replace(
        &mut ticket.handover,
        Handover::Refused(crate::nginx::Refusal::BadRequest),
    );
    let response = match handover {
        Handover::Request(request) => {
            let span = crate::http::request_id::span(&request.head, peer.ip());
            // nginx says `Connection: close` whenever it will close, HTTP/1.0 included.
            let keep_alive = request.head.keep_alive;
            let cutter = ticket.cutter();
            let response = route(&app, (peer, local), *request, cutter)
                .instrument(span.clone())
                .await;
            span.in_scope(|| tracing::debug!(status = response.status().as_u16(), "answered"));
            if keep_alive {
                response
            } else {
                closing(response)
            }
        }
        Handover::Refused(refusal) => closing(refused(refusal)),
    };
    let (parts, body) = response.into_parts();
    let body = TicketBody {
        inner: body,
        _ticket: ticket,
    };
    Ok(Response::from_parts(parts, body.boxed_unsync()))
}

fn closing(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn route(
    app: &App,
    (peer, local): (SocketAddr, SocketAddr),
    request: Request,
    cutter: Cutter,
) -> Response<Body> {
    let path = &request.head.target.path;
    if path == HEALTH_PATH.as_bytes() {
        if !app.mailbox.database_ready() {
            return error_page(StatusCode::SERVICE_UNAVAILABLE);
        }
        return Response::new(full("ok\n"));
    }
    if path == METRICS_PATH.as_bytes() {
        let mut response = Response::new(full(app.mailbox.metrics()));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        );
        return response;
    }
    let Some(relative) = strip_base(app.config.base_path().as_bytes(), path) else {
        return error_page(StatusCode::NOT_FOUND);
    };
    let resource = app.site.resolve(relative);
    if let Some(fpm) = &app.fpm {
        // nginx's `location ~ \.php$`: case-sensitive, on the whole `$uri`.
        let to_php = match resource {
            Resource::Endpoint(endpoint, _) => fpm.takes(endpoint),
            Resource::OtherScript(_) => path.ends_with(b".php"),
            _ => false,
        };
        if to_php {
            return fpm.respond(&request, peer, local, cutter).await;
        }
    }
    let peer = peer.ip();
    match resource {
        Resource::Endpoint(endpoint, script) => {
            let Ok(body) = request.body.bytes().await else {
                // A temporary file that cannot be read back: what nginx answers for one.
                return error_page(StatusCode::INTERNAL_SERVER_ERROR);
            };
            let mut php = php_request(&request, &body, app);
            if let Some(guard) = &app.guard {
                if let Some(refused) = guard.admit(endpoint, &header_map(&request.head), &php) {
                    return refused;
                }
                php.html_safe = true;
            }
            let mut response = match endpoint {
                Endpoint::AgentPage => pages::agent(script, &php),
                Endpoint::CustomerPage => pages::customer(script, &php),
                Endpoint::Send => send::send(script, &php, &app.mailbox).await,
                Endpoint::Poll => {
                    let user = php.cookies.string("username");
                    let Some(_parked) = app.limits.admit(peer, Some(&user)) else {
                        return over_ceiling(app, peer);
                    };
                    let max_park = app.config.max_park();
                    let _open = app.mailbox.meters().poll_open();
                    poll::poll(script, &php, &app.mailbox, max_park).await
                }
                Endpoint::Stream => match app.limits.admit(peer, None) {
                    Some(parked) => stream::stream(script, &php, &app.mailbox, parked),
                    None => over_ceiling(app, peer),
                },
            };
            if let Some(guard) = &app.guard {
                guard.finish(endpoint, &php, &mut response);
            }
            response
        }
        Resource::OtherScript(script) => match Site::printed(&script).await {
            Some(printed) => files::other_script(app.config.php, printed),
            None => error_page(StatusCode::NOT_FOUND),
        },
        Resource::File(file, content_type) => {
            files::static_file(&request.head, &file, content_type).await
        }
        // nginx's static module refuses other methods before the index module looks.
        Resource::Directory if !matches!(&*request.head.method, "GET" | "HEAD" | "POST") => {
            error_page(StatusCode::METHOD_NOT_ALLOWED)
        }
        Resource::Directory => error_page(StatusCode::FORBIDDEN),
        Resource::NotFound => error_page(StatusCode::NOT_FOUND),
    }
}

/// A poll or stream past a parking ceiling: nginx's `limit_conn` answer at once, never a wait.
/// Logged on the first refusal and every thousandth, so a crowd behind one address (a proxy
/// whose clients all share it, a benchmark) is visible without a line per request.
fn over_ceiling(app: &App, peer: IpAddr) -> Response<Body> {
    let count = app.mailbox.meters().parked_refused();
    if count % 1000 == 1 {
        tracing::warn!(
            %peer,
            refused = count,
            per_address = app.config.max_polls_per_address,
            per_user = app.config.max_polls_per_user,
            "a poll or stream was refused (503) at a parking ceiling (--max-polls-per-address, --max-polls-per-user)"
        );
    }
    error_page(StatusCode::SERVICE_UNAVAILABLE)
}

/// The path below the base path, or `None` when the request is outside the site.
fn strip_base<'a>(base: &[u8], path: &'a [u8]) -> Option<&'a [u8]> {
    let rest = path.strip_prefix(base)?;
    (rest.is_empty() || rest.starts_with(b"/")).then_some(rest)
}

/// The request's headers as hyper's map, for the hardened mode's checks (lines nginx passed that
/// hyper cannot hold are left out; none of them is one the checks read).
fn header_map(head: &crate::nginx::head::Head) -> hyper::HeaderMap {
    let mut map = hyper::HeaderMap::new();
    for (name, value) in &head.headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

/// Decodes cookies and, for a form POST, the body (`request`'s, read whole), as PHP would.
fn php_request(request: &Request, body: &[u8], app: &App) -> PhpRequest {
    let version = app.config.php;
    let head = &request.head;
    let cookies = cookie::parse(head.last("cookie").unwrap_or_default(), version);
    let content_type = head.first("content-type");
    let post = if form::is_form_post(&head.method, content_type) {
        form::parse(body, version)
    } else if let Some(content_type) =
        content_type.filter(|ct| head.method == "POST" && multipart::is_multipart(ct))
    {
        multipart::parse(body, content_type, &multipart::Limits::default())
    } else {
        Default::default()
    };
    PhpRequest {
        cookies,
        post,
        version,
        html_safe: false,
    }
}

/// A response body that keeps its request's ticket until hyper drops it.
struct TicketBody {
    inner: Body,
    _ticket: Ticket,
}

impl http_body::Body for TicketBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::strip_base;

    #[test]
    fn base_path_is_a_whole_segment() {
        assert_eq!(
            strip_base(b"", b"/AJsendmsg.php"),
            Some(&b"/AJsendmsg.php"[..])
        );
        assert_eq!(
            strip_base(b"/chat", b"/chat/AJsendmsg.php"),
            Some(&b"/AJsendmsg.php"[..])
        );
        assert_eq!(strip_base(b"/chat", b"/chatter/x"), None);
        assert_eq!(strip_base(b"/chat", b"/AJsendmsg.php"), None);
    }
}
