//! The FastCGI parameters nginx 1.22 sends PHP-FPM for a request under Debian's
//! `location ~ \.php$ { include snippets/fastcgi-php.conf; … }`: the snippet's `PATH_INFO`,
//! then `fastcgi.conf` line by line, then every request header as `HTTP_*`. Pure: a request head
//! and its connection in, ordered name-value pairs out.
//!
//! The order matters: PHP builds `$_SERVER` from the parameters in the order they arrive. So do
//! the duplicates: nginx 1.22 passes each header line as a parameter of its own (it joins
//! duplicates only from 1.23.0 on), and PHP keeps the last, so two `Cookie` lines give PHP the
//! second one. Checked against nginx 1.22.1 + PHP-FPM 8.2 by `tests/php_fpm.rs`.

use std::net::SocketAddr;

use base64::Engine;

use crate::nginx::head::Head;

/// `SERVER_SOFTWARE`: what `nginx/$nginx_version` printed for the legacy, so a script that
/// shows it sees what it saw behind nginx.
pub const SERVER_SOFTWARE: &str = "nginx/1.22.1";

/// One request as the legacy's nginx would have described it.
#[derive(Debug)]
pub struct Context<'a> {
    /// The request head as nginx accepted it.
    pub head: &'a Head,
    /// The body's length once read (a chunked request's `CONTENT_LENGTH`).
    pub body_len: usize,
    /// The docroot (`--site`), absolute, without a trailing slash.
    pub site_root: &'a [u8],
    /// The URL path the site lives under (`--base-path`), without a trailing slash.
    pub base_path: &'a [u8],
    /// The client's address and port.
    pub peer: SocketAddr,
    /// The address and port the request came in on.
    pub local: SocketAddr,
    /// `server_name` (empty when the server block names none, as in `compat/legacy-up`).
    pub server_name: &'a str,
}

/// `fastcgi_split_path_info ^(.+?\.php)(/.*)$;` on `$uri`: the script name and `PATH_INFO`.
/// Without a match the whole path is the script and `PATH_INFO` is empty.
pub fn split_path_info(uri: &[u8]) -> (&[u8], &[u8]) {
    // `.+?` needs at least one byte before `.php`; `(/.*)` needs a `/` right after it.
    (5..uri.len())
        .find(|&end| uri[..end].ends_with(b".php") && uri[end] == b'/')
        .map_or((uri, &b""[..]), |end| uri.split_at(end))
}

/// The parameters in nginx's order. The script exists (`try_files $fastcgi_script_name =404`
/// passed), and `try_files` made the script name the new `$uri`, so `DOCUMENT_URI` is the script
/// name, not the path the client asked for.
pub fn params(context: &Context<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let head = context.head;
    let (script_name, path_info) = split_path_info(&head.target.path);
    // `$document_root$fastcgi_script_name` names the script: with a base path, nginx's `root`
    // is the directory above the site (`root /srv;` serves `/srv/chat` at `/chat`). Where the
    // site does not end with the base path (nginx would need `alias`), the file still wins.
    let document_root = context
        .site_root
        .strip_suffix(context.base_path)
        .unwrap_or(context.site_root);
    let mut script_filename = context.site_root.to_vec();
    script_filename.extend_from_slice(
        script_name
            .strip_prefix(context.base_path)
            .unwrap_or(script_name),
    );
    let content_length = match head.first("content-length") {
        Some(sent) => sent.to_vec(),
        // nginx 1.22 counts a chunked body once it has read it.
        None if head.chunked => context.body_len.to_string().into_bytes(),
        None => Vec::new(),
    };
    let protocol = format!("HTTP/{}.{}", head.version / 1000, head.version % 1000);
    let text = |value: &str| value.as_bytes().to_vec();
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = vec![
        // snippets/fastcgi-php.conf, before its `include fastcgi.conf`.
        (text("PATH_INFO"), path_info.to_vec()),
        // fastcgi.conf.
        (text("SCRIPT_FILENAME"), script_filename),
        (text("QUERY_STRING"), head.target.args.clone()),
        (text("REQUEST_METHOD"), text(&head.method)),
        (
            text("CONTENT_TYPE"),
            head.first("content-type").unwrap_or_default().to_vec(),
        ),
        (text("CONTENT_LENGTH"), content_length),
        (text("SCRIPT_NAME"), script_name.to_vec()),
        (text("REQUEST_URI"), head.request_uri.clone()),
        (text("DOCUMENT_URI"), script_name.to_vec()),
        (text("DOCUMENT_ROOT"), document_root.to_vec()),
        (text("SERVER_PROTOCOL"), text(&protocol)),
        (text("REQUEST_SCHEME"), text("http")),
        // `HTTPS $https if_not_empty`: never set on plain HTTP.
        (text("GATEWAY_INTERFACE"), text("CGI/1.1")),
        (text("SERVER_SOFTWARE"), text(SERVER_SOFTWARE)),
        (text("REMOTE_ADDR"), text(&context.peer.ip().to_string())),
        (text("REMOTE_PORT"), text(&context.peer.port().to_string())),
        (text("REMOTE_USER"), remote_user(head)),
        (text("SERVER_ADDR"), text(&context.local.ip().to_string())),
        (text("SERVER_PORT"), text(&context.local.port().to_string())),
        (text("SERVER_NAME"), text(context.server_name)),
        (text("REDIRECT_STATUS"), text("200")),
    ];
    pairs.extend(
        head.headers
            .iter()
            .map(|(name, value)| (header_param(name), value.clone())),
    );
    pairs
}

/// `HTTP_` and the name upper-cased with `-` as `_`, as `ngx_http_fastcgi_create_request`
/// spells it (the front already dropped the names nginx ignores).
fn header_param(name: &[u8]) -> Vec<u8> {
    let mut param = b"HTTP_".to_vec();
    param.extend(name.iter().map(|&byte| match byte {
        b'-' => b'_',
        other => other.to_ascii_uppercase(),
    }));
    param
}

/// `$remote_user`: the user of `Authorization: Basic …` (`ngx_http_auth_basic_user`), whether or
/// not anything checks the password; empty when the header is absent or not valid Basic.
fn remote_user(head: &Head) -> Vec<u8> {
    let Some(value) = head.first("authorization") else {
        return Vec::new();
    };
    if value.len() < 6 || !value[..6].eq_ignore_ascii_case(b"Basic ") {
        return Vec::new();
    }
    let encoded = value[6..].trim_ascii_start();
    // ngx_decode_base64 stops at the first `=` and needs no padding.
    let encoded = encoded
        .iter()
        .position(|&byte| byte == b'=')
        .map_or(encoded, |end| &encoded[..end]);
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    let Ok(decoded) = engine.decode(encoded) else {
        return Vec::new();
    };
    decoded
        .iter()
        .position(|&byte| byte == b':')
        .map(|colon| decoded[..colon].to_vec())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nginx::head::{HeadParser, Progress};

    fn head(raw: &[u8]) -> Head {
        match HeadParser::new().advance(raw) {
            Progress::Complete(head, _) => *head,
            other => panic!("not a complete head: {other:?}"),
        }
    }

    fn context(head: &Head) -> Context<'_> {
        Context {
            head,
            body_len: 0,
            site_root: b"/srv/site",
            base_path: b"",
            peer: "10.0.0.9:40422".parse().expect("addr"),
            local: "127.0.0.1:8080".parse().expect("addr"),
            server_name: "",
        }
    }

    fn value<'a>(pairs: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Vec<&'a [u8]> {
        pairs
            .iter()
            .filter(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| &v[..])
            .collect()
    }

    #[test]
    fn path_info_is_split_at_the_first_php_followed_by_a_slash() {
        assert_eq!(
            split_path_info(b"/a.php/b.php"),
            (&b"/a.php"[..], &b"/b.php"[..])
        );
        assert_eq!(split_path_info(b"/x.php"), (&b"/x.php"[..], &b""[..]));
        assert_eq!(
            split_path_info(b"/.php/b.php"),
            (&b"/.php"[..], &b"/b.php"[..])
        );
        assert_eq!(
            split_path_info(b"/a.phpx/b.php/c.php"),
            (&b"/a.phpx/b.php"[..], &b"/c.php"[..])
        );
    }

    /// The order and values `$_SERVER` showed behind nginx 1.22.1 for this request (PHP lists
    /// them in reverse), apart from the addresses.
    #[test]
    fn parameters_follow_fastcgi_conf_then_the_headers() {
        let head = head(
            b"GET /server.php/p/i.php?q=1 HTTP/1.1\r\nHost: h:1\r\nX-A: 1\r\nX-A: 2\r\nCookie: b=2\r\nContent-Type: text/x\r\n\r\n",
        );
        let pairs = params(&context(&head));
        let names: Vec<_> = pairs
            .iter()
            .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "PATH_INFO",
                "SCRIPT_FILENAME",
                "QUERY_STRING",
                "REQUEST_METHOD",
                "CONTENT_TYPE",
                "CONTENT_LENGTH",
                "SCRIPT_NAME",
                "REQUEST_URI",
                "DOCUMENT_URI",
                "DOCUMENT_ROOT",
                "SERVER_PROTOCOL",
                "REQUEST_SCHEME",
                "GATEWAY_INTERFACE",
                "SERVER_SOFTWARE",
                "REMOTE_ADDR",
                "REMOTE_PORT",
                "REMOTE_USER",
                "SERVER_ADDR",
                "SERVER_PORT",
                "SERVER_NAME",
                "REDIRECT_STATUS",
                "HTTP_HOST",
                "HTTP_X_A",
                "HTTP_X_A",
                "HTTP_COOKIE",
                "HTTP_CONTENT_TYPE",
            ]
        );
        assert_eq!(value(&pairs, "PATH_INFO"), [b"/p/i.php"]);
        assert_eq!(value(&pairs, "SCRIPT_FILENAME"), [b"/srv/site/server.php"]);
        assert_eq!(value(&pairs, "DOCUMENT_URI"), [b"/server.php"]);
        assert_eq!(value(&pairs, "REQUEST_URI"), [b"/server.php/p/i.php?q=1"]);
        assert_eq!(value(&pairs, "QUERY_STRING"), [b"q=1"]);
        assert_eq!(value(&pairs, "CONTENT_LENGTH"), [b""]);
        assert_eq!(value(&pairs, "HTTP_X_A"), [b"1", b"2"]);
        assert_eq!(value(&pairs, "REMOTE_PORT"), [b"40422"]);
        assert_eq!(value(&pairs, "SERVER_PROTOCOL"), [b"HTTP/1.1"]);
    }

    #[test]
    fn a_base_path_is_part_of_the_uri_and_of_the_root() {
        let head = head(b"GET /chat/a.php HTTP/1.1\r\nHost: h\r\n\r\n");
        let mut ctx = context(&head);
        ctx.site_root = b"/srv/chat";
        ctx.base_path = b"/chat";
        let pairs = params(&ctx);
        assert_eq!(value(&pairs, "SCRIPT_FILENAME"), [b"/srv/chat/a.php"]);
        assert_eq!(value(&pairs, "DOCUMENT_ROOT"), [b"/srv"]);
        assert_eq!(value(&pairs, "SCRIPT_NAME"), [b"/chat/a.php"]);
    }

    #[test]
    fn a_chunked_body_is_counted_and_a_sent_length_kept_as_sent() {
        let chunked =
            head(b"POST /p.php HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        let mut ctx = context(&chunked);
        ctx.body_len = 5;
        assert_eq!(value(&params(&ctx), "CONTENT_LENGTH"), [b"5"]);
        let sent = head(b"POST /p.php HTTP/1.0\r\nContent-Length: 007\r\n\r\n");
        let pairs = params(&context(&sent));
        assert_eq!(value(&pairs, "CONTENT_LENGTH"), [b"007"]);
        assert_eq!(value(&pairs, "SERVER_PROTOCOL"), [b"HTTP/1.0"]);
    }

    #[test]
    fn remote_user_is_the_basic_user_without_checking_anything() {
        let user = |auth: &str| {
            let raw = format!("GET /a.php HTTP/1.1\r\nHost: h\r\nAuthorization: {auth}\r\n\r\n");
            remote_user(&head(raw.as_bytes()))
        };
        // "admin:pw", "admin:pw" without padding, "nocolon".
        assert_eq!(user("Basic YWRtaW46cHc="), b"admin");
        assert_eq!(user("basic   YWRtaW46cHc"), b"admin");
        assert_eq!(user("Basic bm9jb2xvbg=="), b"");
        assert_eq!(user("Bearer YWRtaW46cHc="), b"");
        assert_eq!(user("Basic !!!"), b"");
    }
}
