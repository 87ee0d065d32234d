//! Request routing: one match from URL to endpoint, and the one place a hyper request becomes
//! the `$_COOKIE`/`$_POST` a PHP script would have seen.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, COOKIE};
use hyper::{Request, Response, StatusCode};

use crate::config::Config;
use crate::delivery::Mailbox;
use crate::endpoints::{error_page, files, full, pages, poll, send, stream, Body, PhpRequest};
use crate::limits::ParkLimits;
use crate::php::{cookie, form};
use crate::site::{Endpoint, Resource, Site};

/// Health probe for orchestrators and load balancers: `ok`, or 503 while no database node is
/// ready (the instance cannot store or claim anything then). It starts with a dot-directory, which the site never serves,
/// so it cannot shadow a file of the legacy docroot.
pub const HEALTH_PATH: &str = "/.chat-server/health";
/// Prometheus text-format gauges, beside the health probe for the same reason.
pub const METRICS_PATH: &str = "/.chat-server/metrics";

/// How long a form body may take to arrive (nginx's `client_body_timeout`), so a client that
/// trickles its body cannot hold a request open forever.
const BODY_TIMEOUT: Duration = Duration::from_secs(60);

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
}

/// hyper's service function. Errors never reach hyper: each becomes the answer PHP would give.
pub async fn handle(
    app: Arc<App>,
    peer: IpAddr,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    Ok(route(&app, peer, request).await)
}

async fn route(app: &App, peer: IpAddr, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    if path == HEALTH_PATH {
        if !app.mailbox.database_ready() {
            return error_page(StatusCode::SERVICE_UNAVAILABLE);
        }
        return Response::new(full("ok\n"));
    }
    if path == METRICS_PATH {
        return Response::new(full(app.mailbox.metrics()));
    }
    let Some(relative) = strip_base(app.config.base_path(), &path) else {
        return error_page(StatusCode::NOT_FOUND);
    };
    if declared_length(&request).is_some_and(|length| length > app.config.max_body_bytes) {
        return error_page(StatusCode::PAYLOAD_TOO_LARGE);
    }
    match app.site.resolve(relative).await {
        Resource::Endpoint(endpoint, script) => {
            let php = match php_request(request, app).await {
                Ok(php) => php,
                Err(status) => return error_page(status),
            };
            match endpoint {
                Endpoint::AgentPage => pages::agent(script, &php),
                Endpoint::CustomerPage => pages::customer(script, &php),
                Endpoint::Send => send::send(script, &php, &app.mailbox).await,
                Endpoint::Poll => {
                    let user = php.cookies.string("username");
                    let Some(_parked) = app.limits.admit(peer, Some(&user)) else {
                        return error_page(StatusCode::SERVICE_UNAVAILABLE);
                    };
                    let max_park = app.config.max_park();
                    poll::poll(script, &php, &app.mailbox, max_park).await
                }
                Endpoint::Stream => match app.limits.admit(peer, None) {
                    Some(parked) => stream::stream(script, &php, &app.mailbox, parked),
                    None => error_page(StatusCode::SERVICE_UNAVAILABLE),
                },
            }
        }
        Resource::OtherScript(printed) => files::other_script(app.config.php, printed),
        Resource::File(file, content_type) => {
            files::static_file(request.method(), &file, content_type).await
        }
        Resource::Directory => error_page(StatusCode::FORBIDDEN),
        Resource::NotFound => error_page(StatusCode::NOT_FOUND),
    }
}

/// The path below the base path, or `None` when the request is outside the site.
fn strip_base<'a>(base: &str, path: &'a str) -> Option<&'a str> {
    let rest = path.strip_prefix(base)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

fn declared_length(request: &Request<Incoming>) -> Option<u64> {
    request
        .headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Decodes cookies and, for a form POST, the body, as PHP would.
async fn php_request(request: Request<Incoming>, app: &App) -> Result<PhpRequest, StatusCode> {
    let version = app.config.php;
    // Several Cookie lines reach PHP joined with "; ", as nginx joins them.
    let cookie_header: Vec<&[u8]> = request
        .headers()
        .get_all(COOKIE)
        .iter()
        .map(|value| value.as_bytes())
        .collect();
    let cookies = cookie::parse(&cookie_header.join(&b"; "[..]), version);
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .map(|value| value.as_bytes());
    if !form::is_form_post(request.method().as_str(), content_type) {
        return Ok(PhpRequest {
            cookies,
            version,
            ..PhpRequest::default()
        });
    }
    let limit = usize::try_from(app.config.max_body_bytes).unwrap_or(usize::MAX);
    let collect = Limited::new(request.into_body(), limit).collect();
    let body = tokio::time::timeout(BODY_TIMEOUT, collect)
        .await
        .map_err(|_| StatusCode::REQUEST_TIMEOUT)?
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE)?
        .to_bytes();
    Ok(PhpRequest {
        cookies,
        post: form::parse(&body, version),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::strip_base;

    #[test]
    fn base_path_is_a_whole_segment() {
        assert_eq!(strip_base("", "/AJsendmsg.php"), Some("/AJsendmsg.php"));
        assert_eq!(
            strip_base("/chat", "/chat/AJsendmsg.php"),
            Some("/AJsendmsg.php")
        );
        assert_eq!(strip_base("/chat", "/chatter/x"), None);
        assert_eq!(strip_base("/chat", "/AJsendmsg.php"), None);
    }
}
