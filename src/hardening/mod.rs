//! Opt-in hardened mode (README "Threat model"). Off by default: without `--agent-password`,
//! `--cookie-secret` or `--hardened` this module is never consulted and every byte is the
//! legacy's.
//!
//! - `--agent-password`: HTTP Basic (user `admin`) for the agent page, the agent stream, and any
//!   poll or send acting as `admin`.
//! - `--cookie-secret`: identities are signed (HMAC-SHA256 in an `HttpOnly; SameSite=Lax`
//!   companion cookie); a poll or send without a valid signature is refused and changes nothing.
//! - Either, or `--hardened` alone: names must be `admin` + digits, newcomers get twelve digits
//!   unique on this instance, customers may only write to `admin`, sends must come from the
//!   site's own pages (`Origin`, else `Referer`), a per-identity send rate limit, message values
//!   made inert for `innerHTML` ([`escape`]), and a `Content-Security-Policy` on the scripts.

mod escape;
mod identity;
mod rate;

use base64::Engine;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, HOST, ORIGIN, REFERER, SET_COOKIE};
use hyper::{Response, StatusCode};
use sha2::{Digest, Sha256};

use crate::config::{Config, Secret};
use crate::php::cookie::set_cookie;
use crate::php::request::PhpRequest;
use crate::response::{error_page, Body};
use crate::site::Endpoint;

pub use escape::inert;
use identity::{is_well_formed, Identities, AGENT, SIGNATURE_COOKIE};
use rate::SendRate;

/// Sent with a 401 so the browser asks for (and then keeps sending) the agent's credentials.
const CHALLENGE: &str = "Basic realm=\"chat agent\", charset=\"UTF-8\"";

/// Limits what an injected script could load or send, and who may frame the pages. The legacy
/// pages need inline scripts and `onclick`, so this cannot forbid inline script: the escaping in
/// [`escape`] is what keeps message text from becoming script.
const CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'";

/// The hardened mode's state: the agent's password digest, identities, send buckets.
#[derive(Debug)]
pub struct Guard {
    agent_password: Option<[u8; 32]>,
    identities: Identities,
    sends: SendRate,
}

/// Why a request was refused, for the log.
type Refusal = (StatusCode, &'static str);

impl Guard {
    /// The guard `config` asks for; `None` in the default, legacy mode.
    pub fn from_config(config: &Config) -> Option<Guard> {
        config.hardened_mode().then(|| Guard {
            agent_password: config.agent_password.as_ref().map(|p| digest(p.expose())),
            identities: Identities::new(config.cookie_secret.as_ref().map(Secret::expose)),
            sends: SendRate::new(config.send_rate_per_minute),
        })
    }

    /// Checks a request to one of the five scripts before it runs; `Some` is the answer instead
    /// (a refused request has changed nothing).
    pub fn admit(
        &self,
        endpoint: Endpoint,
        headers: &HeaderMap,
        php: &PhpRequest,
    ) -> Option<Response<Body>> {
        let verdict = match endpoint {
            Endpoint::AgentPage | Endpoint::Stream => self.agent(headers),
            Endpoint::CustomerPage => Ok(()),
            Endpoint::Poll => self.identity(headers, php).map(|_| ()),
            Endpoint::Send => self.send(headers, php),
        };
        verdict.err().map(|(status, why)| {
            tracing::info!(
                status = status.as_u16(),
                why,
                "refused by the hardened mode"
            );
            let mut response = error_page(status);
            if status == StatusCode::UNAUTHORIZED {
                response
                    .headers_mut()
                    .insert("www-authenticate", HeaderValue::from_static(CHALLENGE));
            }
            response
        })
    }

    /// Adjusts a script's response: the page cookies this mode issues, and its headers.
    pub fn finish(&self, endpoint: Endpoint, php: &PhpRequest, response: &mut Response<Body>) {
        let headers = response.headers_mut();
        headers.insert("content-security-policy", HeaderValue::from_static(CSP));
        headers.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        let issue = match endpoint {
            // The agent page always (re)sets `admin`, as the legacy did; now signed.
            Endpoint::AgentPage => Some(AGENT.to_vec()),
            Endpoint::CustomerPage => {
                let name = php.cookies.string("username");
                let keep = is_well_formed(&name)
                    && name != AGENT
                    && self.identities.verify(&name, &signature(php));
                (!keep).then(|| self.identities.new_customer())
            }
            _ => None,
        };
        let Some(name) = issue else {
            if endpoint == Endpoint::CustomerPage {
                // A returning customer: the legacy page sends no cookie either.
                headers.remove(SET_COOKIE);
            }
            return;
        };
        headers.remove(SET_COOKIE);
        let mut cookies = vec![set_cookie("username", &name, php.version)];
        if let Some(sig) = self.identities.sign(&name) {
            cookies.push(format!("{SIGNATURE_COOKIE}={sig}; HttpOnly; SameSite=Lax"));
        }
        for cookie in cookies {
            if let Ok(value) = HeaderValue::try_from(cookie) {
                headers.append(SET_COOKIE, value);
            }
        }
    }

    /// The agent page and stream: Basic credentials when a password is set.
    fn agent(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        match self.agent_password {
            Some(expected) if !has_agent_credentials(headers, &expected) => Err((
                StatusCode::UNAUTHORIZED,
                "agent credentials missing or wrong",
            )),
            _ => Ok(()),
        }
    }

    /// The caller's `username`, checked: well-formed, signed, and the agent's only with the
    /// agent's credentials.
    fn identity(&self, headers: &HeaderMap, php: &PhpRequest) -> Result<Vec<u8>, Refusal> {
        let name = php.cookies.string("username");
        if !is_well_formed(&name) {
            return Err((StatusCode::FORBIDDEN, "username is not admin + digits"));
        }
        if !self.identities.verify(&name, &signature(php)) {
            return Err((StatusCode::FORBIDDEN, "username signature missing or wrong"));
        }
        if name == AGENT {
            self.agent(headers)?;
        }
        Ok(name)
    }

    fn send(&self, headers: &HeaderMap, php: &PhpRequest) -> Result<(), Refusal> {
        if !from_own_page(headers) {
            return Err((StatusCode::FORBIDDEN, "send not from the site's own page"));
        }
        let sender = self.identity(headers, php)?;
        let recipient = php.post.string("rec");
        let allowed = match sender == AGENT {
            // The agent answers customers (whose names it clicked).
            true => is_well_formed(&recipient),
            // A customer writes to the agent only: never into another customer's replies.
            false => recipient == AGENT,
        };
        if !allowed {
            return Err((
                StatusCode::FORBIDDEN,
                "recipient not allowed for this sender",
            ));
        }
        let exempt = sender == AGENT && self.agent_password.is_some();
        if !exempt && !self.sends.allow(&sender) {
            return Err((StatusCode::TOO_MANY_REQUESTS, "send rate limit"));
        }
        Ok(())
    }
}

fn signature(php: &PhpRequest) -> Vec<u8> {
    php.cookies.string(SIGNATURE_COOKIE)
}

fn digest(password: &str) -> [u8; 32] {
    Sha256::digest(format!("admin:{password}")).into()
}

/// Whether `Authorization: Basic` carries `admin` and the password. The digests are compared,
/// so the comparison's timing says nothing about the password.
fn has_agent_credentials(headers: &HeaderMap, expected: &[u8; 32]) -> bool {
    let Some(value) = headers.get(AUTHORIZATION).map(HeaderValue::as_bytes) else {
        return false;
    };
    let Some(encoded) = value
        .strip_prefix(b"Basic ")
        .or_else(|| value.strip_prefix(b"basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim_ascii()) else {
        return false;
    };
    let given: [u8; 32] = Sha256::digest(&decoded).into();
    given == *expected
}

/// Whether a send comes from a page of this site: its `Origin` (or, when a browser sent none,
/// its `Referer`) names the host the request was sent to. Behind a proxy, the proxy must pass the
/// original `Host` (nginx: `proxy_set_header Host $host;`).
fn from_own_page(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(HOST).and_then(|host| host.to_str().ok()) else {
        return false;
    };
    let source = headers
        .get(ORIGIN)
        .or_else(|| headers.get(REFERER))
        .and_then(|value| value.to_str().ok());
    let Some(source) = source else {
        return false;
    };
    let Some((_, rest)) = source.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    #[test]
    fn only_a_page_of_this_host_may_send() {
        let ok = |pairs| from_own_page(&headers(pairs));
        assert!(ok(&[
            ("host", "chat.example:8080"),
            ("origin", "https://chat.example:8080")
        ]));
        assert!(ok(&[
            ("host", "chat.example"),
            ("referer", "https://chat.example/chat/AJ05customer.php")
        ]));
        assert!(!ok(&[
            ("host", "chat.example"),
            ("origin", "https://evil.example")
        ]));
        assert!(!ok(&[("host", "chat.example"), ("origin", "null")]));
        assert!(!ok(&[
            ("host", "chat.example"),
            ("origin", "https://chat.example.evil.example")
        ]));
        assert!(!ok(&[("host", "chat.example")]));
        // Origin wins over Referer: a cross-site form with a same-site Referer is still refused.
        assert!(!ok(&[
            ("host", "chat.example"),
            ("origin", "https://evil.example"),
            ("referer", "https://chat.example/")
        ]));
    }

    #[test]
    fn basic_credentials_must_be_the_agents() {
        let expected = digest("pw");
        let basic = |user_pass: &str| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(user_pass);
            headers(&[("authorization", &format!("Basic {encoded}"))])
        };
        assert!(has_agent_credentials(&basic("admin:pw"), &expected));
        assert!(!has_agent_credentials(&basic("admin:pW"), &expected));
        assert!(!has_agent_credentials(&basic("admin124:pw"), &expected));
        assert!(!has_agent_credentials(&headers(&[]), &expected));
        assert!(!has_agent_credentials(
            &headers(&[("authorization", "Bearer x")]),
            &expected
        ));
    }
}
