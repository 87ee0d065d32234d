//! The `dynamic_page` class (issue 20): generated PHP scripts run by one PHP-FPM 8.2 pool behind
//! the legacy's real nginx and behind our server's `--php-fpm`, compared byte for byte.
//!
//! Each case is a script built from blocks (what [`KINDS`] names: `header()` with duplicates,
//! `replace=false`, odd names and values and `Status:`; `setcookie()`/`setrawcookie()` with every
//! attribute; sessions; `http_response_code()` with common and odd codes; redirects; dumps of
//! `$_SERVER`, `$_GET`, `$_POST`, `$_COOKIE`, `$_FILES` and `php://input`; flushes; outputs from
//! 0 bytes to several MB; `exit`/`die`; fatal errors, warnings and headers after output) and a
//! generated request for it (GET, HEAD or POST, query string, PATH_INFO, cookies, form,
//! multipart and chunked bodies, extra headers). The script is written under its own name into
//! the shared docroot, the same request bytes go to both servers at once, and the answers are
//! compared: status line, every header line but `Date`, body, and whether the answer ended.
//!
//! What differs by nature is kept out of the comparison at the source, not masked afterwards:
//! the request names a fixed `Host` (never a port), and a script that shows `$_SERVER` replaces
//! `REMOTE_PORT`, `SERVER_PORT`, `REQUEST_TIME` and `REQUEST_TIME_FLOAT` (each side's own
//! connection and clock) with `(masked)` itself; uploaded files' `tmp_name` (random) is shown
//! as `tmp`. Two things cannot be kept out and are masked, each as a named category: a new
//! session's random id, and `Max-Age` of a cookie that expires in the future (PHP counts it
//! from its own clock, and the two requests may fall in different seconds).
//!
//! Every other difference is either one of the [`EXPLAINED`] categories, each a deliberate,
//! documented difference of the server (README.md), counted per category, or unexplained:
//! printed, its case saved (`--save`: the script, the request bytes and a scenario file), and
//! the run fails.
//!
//! Cases run [`FuzzArgs::concurrency`] at a time (they share no state: each has its own script
//! name, and a session cookie names its own session), with no database involved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{FuzzArgs, Rng};
use crate::http::{build_request, split_base_url};
use crate::scenario::{Request, Scenario, Step, TableVariant};
use crate::CompatError;

/// The kinds of script, in the order cases cycle through them.
pub const KINDS: [&str; 10] = [
    "headers",
    "cookies",
    "session",
    "status",
    "server_vars",
    "input",
    "output",
    "exit",
    "errors",
    "mixed",
];

/// The explained categories: differences the server makes on purpose (README.md, "Pointing it
/// at an existing legacy site" 1 and "Deliberate differences" 5), or that come from the clock
/// and the random number generator rather than from either server.
pub const EXPLAINED: [(&str, &str); 10] = [
    (
        "unsendable_header",
        "a line of PHP's whose name is no HTTP token (`X-\u{fc}mlaut`) or whose value holds a \
         control byte: nginx passes it, hyper cannot hold it, and our server leaves it out",
    ),
    (
        "unsendable_status",
        "PHP's status is one HTTP/1.1 cannot carry as a final answer (1xx, `Status: 1000`, \
         `Status: 200x`): nginx writes it as given, hyper cannot, and our server answers nginx's \
         502 page instead",
    ),
    (
        "server_header",
        "nginx writes `Server: nginx/1.22.1`; our server writes no `Server` line",
    ),
    (
        "framing_position",
        "hyper writes `Connection`, `Transfer-Encoding` and `Content-Length` after PHP's lines; \
         nginx before them (same lines, same values)",
    ),
    (
        "name_case",
        "hyper writes header names title-cased; nginx as PHP spelled them (`x-a` vs `X-A`)",
    ),
    (
        "grouping",
        "hyper writes the lines of one name together, at the first one's place; nginx in PHP's \
         order (the order within a name is kept)",
    ),
    (
        "bare_status",
        "a status without words (`Status: 299`) is `HTTP/1.1 299 ` (hyper's space) for nginx's \
         `HTTP/1.1 299`",
    ),
    (
        "error_page_signature",
        "nginx's own error pages (404, 413, 502, ...) are signed `chat-server` for \
         `nginx/1.22.1` (deliberate difference 5); `Content-Length` one byte shorter",
    ),
    (
        "session_id",
        "a new session's id is random (PHP's generator): the value of the session cookie is masked",
    ),
    (
        "clock",
        "`Max-Age` of a cookie that expires in the future counts from PHP's clock: values at \
         most 2 s apart are masked",
    ),
];

/// The session cookie's name when the script sets none.
const SESSION_NAME: &str = "PHPSESSID";

/// One generated case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The case's name; the script is `/<name>.php`.
    pub name: String,
    /// One of [`KINDS`].
    pub kind: &'static str,
    /// The script's source.
    pub script: Vec<u8>,
    /// `GET`, `HEAD` or `POST`.
    pub method: &'static str,
    /// The request target.
    pub target: String,
    /// Header lines in order, `Host` included.
    pub headers: Vec<(String, String)>,
    /// The body as sent (already chunked when a `Transfer-Encoding: chunked` line is there).
    pub body: Vec<u8>,
    /// Names the script may give its session cookie.
    pub session_names: Vec<String>,
}

impl Page {
    /// The request bytes, the same for both servers.
    pub fn request_bytes(&self) -> Vec<u8> {
        let headers: Vec<(String, Vec<u8>)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.as_bytes().to_vec()))
            .collect();
        // The `Host` line is always in `headers`, so the authority is never used.
        build_request(self.method, &self.target, "unused", &headers, &self.body)
    }

    /// The case as a scenario file (for `--save`).
    pub fn scenario(&self) -> Scenario {
        use base64::Engine;
        let (body, body_base64) = match std::str::from_utf8(&self.body) {
            _ if self.body.is_empty() => (None, None),
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(&self.body)),
            ),
        };
        Scenario {
            name: self.name.clone(),
            description: format!(
                "generated by chat-compat fuzz --class dynamic_page ({}): needs {}.php beside it \
                 in the docroot",
                self.kind, self.name
            ),
            table: TableVariant::default(),
            rows: Vec::new(),
            steps: vec![Step::Request(Request {
                id: "page".to_owned(),
                method: self.method.to_owned(),
                path: self.target.clone(),
                headers: self.headers.clone(),
                body,
                body_base64,
                timeout_ms: Some(30_000),
                digest_body: false,
                latin1: Vec::new(),
            })],
            deviation: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The generator.

/// Case `index` of `seed`: its kind cycles through [`KINDS`].
pub fn generate(seed: u64, index: u64) -> Page {
    let kind = KINDS[(index % KINDS.len() as u64) as usize];
    let mut rng = super::case_rng(seed, index);
    generate_kind(kind, &format!("dp_{seed}_{index}"), &mut rng)
}

/// A case of `kind` named `name`.
pub fn generate_kind(kind: &'static str, name: &str, rng: &mut Rng) -> Page {
    let mut script = Script::default();
    script.line("<?php");
    script.line(&format!("// chat-compat fuzz dynamic_page: {kind}"));
    if rng.one_in(3) {
        script.line("ini_set('display_errors', '1');");
        if rng.one_in(2) {
            script.line("ini_set('html_errors', '0');");
        }
    }
    if rng.one_in(10) {
        script.line("ob_start();");
    }
    let blocks = match kind {
        "mixed" => 2 + rng.below(4),
        _ => 1 + rng.below(3),
    };
    for _ in 0..blocks {
        let block_kind = if kind == "mixed" {
            *rng.pick(&KINDS[..9])
        } else {
            kind
        };
        block(block_kind, rng, &mut script);
    }
    if rng.one_in(3) {
        script.line(&format!("echo {};", lit(pick_text(rng).as_bytes())));
    }
    let request = request(kind, name, &script, rng);
    Page {
        name: name.to_owned(),
        kind,
        script: script.source.into_bytes(),
        method: request.method,
        target: request.target,
        headers: request.headers,
        body: request.body,
        session_names: script.session_names,
    }
}

/// The script being built, and what its request should carry.
#[derive(Default)]
struct Script {
    source: String,
    session_names: Vec<String>,
    /// The script starts a session: the request may carry the session's cookie.
    session: bool,
    /// The script reads `$_POST`, `$_FILES` or `php://input`: the request should have a body.
    wants_body: bool,
}

impl Script {
    fn line(&mut self, code: &str) {
        self.source.push_str(code);
        self.source.push('\n');
    }
}

/// A PHP double-quoted string literal holding exactly `bytes`.
pub fn lit(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in bytes {
        match b {
            b'"' | b'\\' | b'$' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

fn block(kind: &str, rng: &mut Rng, s: &mut Script) {
    match kind {
        "headers" => headers_block(rng, s),
        "cookies" => cookies_block(rng, s),
        "session" => session_block(rng, s),
        "status" => status_block(rng, s),
        "server_vars" => server_block(rng, s),
        "input" => input_block(rng, s),
        "output" => output_block(rng, s),
        "exit" => exit_block(rng, s),
        _ => errors_block(rng, s),
    }
}

/// Short texts for bodies and values.
const TEXTS: &[&str] = &[
    "",
    "x",
    "hello\n",
    "<p>é</p>",
    "a\r\nb",
    "tab\there",
    "0",
    "{\"k\":1}",
    "\u{0}nul",
    "?>",
];

fn pick_text(rng: &mut Rng) -> String {
    (*rng.pick(TEXTS)).to_owned()
}

const HEADER_NAMES: &[&str] = &[
    "X-Fz",
    "x-lower",
    "X-UPPER",
    "X_Under",
    "X.Dot",
    "X-Dup",
    "Cache-Control",
    "Vary",
    "Link",
    "Refresh",
    "Expires",
    "Last-Modified",
    "ETag",
    "Etag",
    "X-Powered-By",
    "Server",
    "Date",
    "WWW-Authenticate",
    "Content-Disposition",
    "Content-Language",
    "Content-Encoding",
    "Accept-Ranges",
    "Pragma",
    "Access-Control-Allow-Origin",
    "X-Accel-Buffering",
    "X-Accel-Expires",
    "X-Accel-Charset",
    "Keep-Alive",
    "Connection",
    "Status",
    "Location",
    "content-type",
    "Content-Type",
];

const HEADER_VALUES: &[&str] = &[
    "1",
    "",
    "  spaced  ",
    "a, b",
    "no",
    "yes",
    "close",
    "keep-alive",
    "text/plain",
    "attachment; filename=\"a b.txt\"",
    "Wed, 21 Oct 2015 07:28:00 GMT",
    "\"etag-1\"",
    "W/\"weak\"",
    "<https://example.test/>; rel=preload",
    "5; url=/elsewhere",
    "caf\u{e9}",
    "a:b:c",
    "Basic realm=\"x\"",
    "gzip",
    "bytes",
    "none",
    "*",
    "x\ty",
    "404 Not Here",
    "/relative",
];

fn header_line(rng: &mut Rng) -> String {
    format!("{}: {}", rng.pick(HEADER_NAMES), rng.pick(HEADER_VALUES))
}

/// Lines PHP itself refuses or that nginx cannot take as a header.
const ODD_HEADERS: &[&str] = &[
    "X Space: v",
    "NoColon",
    ": no name",
    "X-Empty:",
    "X-Crlf: a\r\nX-Injected: b",
    "X-Lf: a\nb",
    "X-Nul: a\u{0}b",
    "X-Bytes: \u{80}\u{ff}",
    "X-Ctl: a\u{1}b",
    "X-Del: a\u{7f}b",
    "X-Tabbed: \tv\t",
    "X-\u{fc}mlaut: v",
    "X-Colon:: v",
    "X-Trailing: v   ",
    "  X-Lead: v",
    "HTTP/1.1 299 Fine Indeed",
    "HTTP/1.0 404",
    "HTTP/1.1 200",
    "HTTP/1.1 302",
    "HTTP/2 201 Made",
    "Status: 404 Nope",
    "Status: 299",
    "Status: 200 OK",
    "Status: 503 Service Unavailable",
    "Status: 1000 Big",
    "Status: abc",
    "Status: 20",
    "Content-Length: 0",
    "Content-Length: 3",
    "Content-Length: 5000",
    "Content-Length: abc",
    "Transfer-Encoding: chunked",
    "Transfer-Encoding: identity",
    "Content-Range: bytes 0-1/2",
    "Content-Type:",
    "Content-Type: application/json",
    "Content-Type: text/plain",
    "Content-Type: text/html; charset=ISO-8859-1",
    "Content-Type: text/plain;charset=\"utf-8\"",
    "content-type: image/png",
];

/// `header()` calls: plain, duplicates (`replace=false`), replacing, with a response code,
/// removed again, odd lines and long values.
fn headers_block(rng: &mut Rng, s: &mut Script) {
    for _ in 0..1 + rng.below(5) {
        let code = match rng.below(12) {
            0..=5 => format!("header({});", lit(header_line(rng).as_bytes())),
            6 => format!("header({}, false);", lit(header_line(rng).as_bytes())),
            7 => {
                let name = rng.pick(HEADER_NAMES);
                format!(
                    "header({}); header({}, false);",
                    lit(format!("{name}: first").as_bytes()),
                    lit(format!("{name}: second").as_bytes())
                )
            }
            8 => format!(
                "header({}, true, {});",
                lit(header_line(rng).as_bytes()),
                rng.pick(CODES)
            ),
            9 => format!("header_remove({});", lit(rng.pick(HEADER_NAMES).as_bytes())),
            10 => {
                let len = *rng.pick(&[100usize, 1000, 3000, 3900, 4100, 9000]);
                format!("header('X-Long: ' . str_repeat('v', {len}));")
            }
            _ => format!("header({});", lit(rng.pick(ODD_HEADERS).as_bytes())),
        };
        s.line(&code);
    }
    if rng.one_in(4) {
        // A session's random id would show: it is masked as the comparison masks the cookie.
        s.line(
            "var_export(preg_replace('/=[0-9a-v]{26}(;|$)/', '=(session id)$1', headers_list()));",
        );
    }
}

const COOKIE_NAMES: &[&str] = &["a", "fz", "A_b", "arr[x]", "arr[]", "dup", "x.y", "ü"];
const COOKIE_VALUES: &[&str] = &[
    "1",
    "",
    "v 1",
    "a=b",
    "semi;colon",
    "caf\u{e9}",
    "%41",
    "plus+sign",
    "quote\"d",
    "long-value-0123456789",
];
const EXPIRES: &[&str] = &["0", "1", "86400", "1000000000", "2000000000", "-1"];
const PATHS: &[&str] = &["", "/", "/sub", "/a b", "/dp.php"];
const DOMAINS: &[&str] = &["", "pages.test", ".pages.test", "other.test"];
const SAMESITE: &[&str] = &["", "Lax", "Strict", "None", "Weird"];

/// `setcookie()` (positional and with options) and `setrawcookie()`.
fn cookies_block(rng: &mut Rng, s: &mut Script) {
    for _ in 0..1 + rng.below(4) {
        let name = lit(rng.pick(COOKIE_NAMES).as_bytes());
        let value = lit(rng.pick(COOKIE_VALUES).as_bytes());
        let code = match rng.below(5) {
            0 => format!("setcookie({name}, {value});"),
            1 => format!(
                "setcookie({name}, {value}, {}, {}, {}, {}, {});",
                rng.pick(EXPIRES),
                lit(rng.pick(PATHS).as_bytes()),
                lit(rng.pick(DOMAINS).as_bytes()),
                rng.pick(&["false", "true"]),
                rng.pick(&["false", "true"])
            ),
            2 | 3 => {
                let mut options = Vec::new();
                if rng.one_in(2) {
                    options.push(format!("'expires' => {}", rng.pick(EXPIRES)));
                }
                if rng.one_in(2) {
                    options.push(format!("'path' => {}", lit(rng.pick(PATHS).as_bytes())));
                }
                if rng.one_in(3) {
                    options.push(format!("'domain' => {}", lit(rng.pick(DOMAINS).as_bytes())));
                }
                if rng.one_in(2) {
                    options.push(format!("'secure' => {}", rng.pick(&["false", "true"])));
                }
                if rng.one_in(2) {
                    options.push(format!("'httponly' => {}", rng.pick(&["false", "true"])));
                }
                if rng.one_in(2) {
                    options.push(format!(
                        "'samesite' => {}",
                        lit(rng.pick(SAMESITE).as_bytes())
                    ));
                }
                format!("setcookie({name}, {value}, [{}]);", options.join(", "))
            }
            _ => format!(
                "setrawcookie({name}, {}, {});",
                lit(rng
                    .pick(&["raw", "a%20b", "x=y", "", "sp ace", "c,d"])
                    .as_bytes()),
                rng.pick(EXPIRES)
            ),
        };
        s.line(&code);
    }
    if rng.one_in(3) {
        s.line("echo count(headers_list()), \"\\n\";");
    }
}

/// `session_start()` with its options, writes to `$_SESSION` (shown only after they are made,
/// so which of the two requests ran first does not show), and the session functions around it.
fn session_block(rng: &mut Rng, s: &mut Script) {
    if s.session {
        s.line("$_SESSION['again'] = 1;");
        return;
    }
    s.session = true;
    // The sessions live beside the scripts (the harness makes the directory), not in the
    // system's directory.
    s.line("session_save_path(__DIR__ . '/.sessions');");
    if rng.one_in(3) {
        let name = *rng.pick(&["FZSESS", "sid", "S"]);
        s.session_names.push(name.to_owned());
        s.line(&format!("session_name('{name}');"));
    } else {
        s.session_names.push(SESSION_NAME.to_owned());
    }
    if rng.one_in(3) {
        // `public` would send an `Expires` counted from the clock.
        let limiter = *rng.pick(&["nocache", "private", "private_no_expire", ""]);
        s.line(&format!("session_cache_limiter('{limiter}');"));
    }
    let options = match rng.below(5) {
        0 => "['cookie_httponly' => true, 'cookie_samesite' => 'Strict']",
        1 => "['cookie_path' => '/sub', 'cookie_secure' => true]",
        2 => "['read_and_close' => true]",
        3 => "['cookie_domain' => 'pages.test']",
        _ => "",
    };
    s.line(&format!("session_start({options});"));
    s.line(&format!(
        "$_SESSION = ['n' => {}, 'text' => {}];",
        rng.below(100),
        lit(pick_text(rng).as_bytes())
    ));
    if rng.one_in(2) {
        s.line("$_SESSION['list'][] = 'x';");
    }
    match rng.below(6) {
        0 => s.line("session_regenerate_id();"),
        1 => s.line("session_write_close();"),
        2 => s.line("session_destroy();"),
        _ => {}
    }
    s.line("echo json_encode($_SESSION), \"\\n\";");
    if rng.one_in(3) {
        s.line("echo strlen(session_id()), ' ', session_status(), ' ', session_name(), \"\\n\";");
    }
}

/// Response codes: common, the ones without a body, and odd ones PHP accepts.
const CODES: &[&str] = &[
    "200", "201", "204", "206", "299", "301", "302", "303", "304", "307", "308", "400", "401",
    "403", "404", "405", "410", "418", "429", "451", "500", "502", "503", "599", "999", "100",
    "101", "199", "600", "1000",
];

/// `http_response_code()` and redirects.
fn status_block(rng: &mut Rng, s: &mut Script) {
    let code = rng.pick(CODES);
    match rng.below(7) {
        0..=2 => s.line(&format!("http_response_code({code});")),
        3 => s.line(&format!(
            "header('Location: {}');",
            rng.pick(&[
                "/elsewhere",
                "http://other.test/a?b=c",
                "relative.php",
                "",
                "//proto.test/"
            ])
        )),
        4 => s.line(&format!(
            "header('Location: {}', true, {code});",
            rng.pick(&["/moved", "https://pages.test/x"])
        )),
        5 => s.line(&format!(
            "http_response_code({code}); header('Location: /after');"
        )),
        _ => s.line(&format!(
            "header('Location: /a'); http_response_code({code});"
        )),
    }
    if rng.one_in(2) {
        s.line("echo http_response_code(), \"\\n\";");
    }
    if rng.one_in(3) {
        s.line("echo 'body after status';");
    }
}

/// `$_SERVER` with the keys that differ by nature replaced (see the module documentation).
const MASKED_SERVER: &str =
    "array_merge($_SERVER, array_intersect_key(['REMOTE_PORT' => '(masked)', \
     'SERVER_PORT' => '(masked)', 'REQUEST_TIME' => '(masked)', 'REQUEST_TIME_FLOAT' => \
     '(masked)'], $_SERVER))";

const SERVER_KEYS: &[&str] = &[
    "SCRIPT_NAME",
    "SCRIPT_FILENAME",
    "PATH_INFO",
    "PATH_TRANSLATED",
    "PHP_SELF",
    "REQUEST_URI",
    "DOCUMENT_URI",
    "DOCUMENT_ROOT",
    "QUERY_STRING",
    "REQUEST_METHOD",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "SERVER_PROTOCOL",
    "SERVER_NAME",
    "SERVER_ADDR",
    "REMOTE_ADDR",
    "REMOTE_USER",
    "SERVER_SOFTWARE",
    "GATEWAY_INTERFACE",
    "REQUEST_SCHEME",
    "HTTPS",
    "REDIRECT_STATUS",
    "HTTP_HOST",
    "HTTP_COOKIE",
    "HTTP_USER_AGENT",
    "HTTP_X_FZ",
    "HTTP_X_DUP",
    "HTTP_ACCEPT",
    "HTTP_CONTENT_TYPE",
    "HTTP_CONTENT_LENGTH",
    "HTTP_TRANSFER_ENCODING",
    "HTTP_AUTHORIZATION",
    "PHP_AUTH_USER",
    "PHP_AUTH_PW",
    "ORIG_PATH_INFO",
];

/// `$_SERVER` shown key by key, whole (`var_export`, `json_encode`, `print_r`), and
/// `getallheaders()`.
fn server_block(rng: &mut Rng, s: &mut Script) {
    match rng.below(6) {
        0 | 1 => {
            for _ in 0..1 + rng.below(6) {
                let key = rng.pick(SERVER_KEYS);
                s.line(&format!(
                    "echo '{key}=', var_export($_SERVER['{key}'] ?? null, true), \"\\n\";"
                ));
            }
        }
        2 => s.line(&format!("var_export({MASKED_SERVER});")),
        3 => s.line(&format!(
            "echo json_encode({MASKED_SERVER}, JSON_UNESCAPED_SLASHES | \
             JSON_INVALID_UTF8_SUBSTITUTE);"
        )),
        4 => s.line(&format!("print_r({MASKED_SERVER});")),
        _ => s.line("var_export(getallheaders());"),
    }
}

/// `$_FILES` with each `tmp_name` (random) shown as `tmp`.
const MASKED_FILES: &str = "array_map(fn($f) => is_array($f) && isset($f['tmp_name']) ? \
     array_merge($f, ['tmp_name' => is_array($f['tmp_name']) ? 'tmp[]' : ($f['tmp_name'] === '' \
     ? '' : 'tmp')]) : $f, $_FILES)";

/// The request's data as PHP decoded it.
fn input_block(rng: &mut Rng, s: &mut Script) {
    s.wants_body = true;
    for _ in 0..1 + rng.below(3) {
        let code = match rng.below(9) {
            0 => "var_export($_GET);".to_owned(),
            1 => "var_export($_POST);".to_owned(),
            2 => "var_export($_COOKIE);".to_owned(),
            3 => "var_export($_REQUEST);".to_owned(),
            4 => format!("var_export({MASKED_FILES});"),
            5 => "foreach ($_FILES as $k => $f) if (is_string($f['tmp_name'] ?? null) && \
                  $f['tmp_name'] !== '') echo $k, ' ', md5_file($f['tmp_name']), ' ', \
                  is_uploaded_file($f['tmp_name']) ? 'up' : 'no', \"\\n\";"
                .to_owned(),
            6 => "echo file_get_contents('php://input');".to_owned(),
            7 => "echo strlen(file_get_contents('php://input')), ' ', md5(file_get_contents('php://input')), \"\\n\";".to_owned(),
            _ => "echo json_encode([$_GET, $_POST, $_COOKIE], JSON_INVALID_UTF8_SUBSTITUTE);"
                .to_owned(),
        };
        s.line(&code);
    }
}

/// Output sizes around the buffers (PHP's 4096-byte output buffer, nginx's 4k/8k buffers) and
/// up to several MB.
const SIZES: &[usize] = &[
    0, 1, 100, 4095, 4096, 4097, 8191, 8192, 8193, 16384, 65535, 65536, 100_000,
];

fn output_block(rng: &mut Rng, s: &mut Script) {
    for _ in 0..1 + rng.below(3) {
        let code = match rng.below(10) {
            0..=3 => {
                let size = if rng.one_in(25) {
                    *rng.pick(&[1usize << 20, 3 << 20, 5 << 20])
                } else {
                    *rng.pick(SIZES)
                };
                let unit = &b"0123456789abcdef"[..1 + rng.below(16)];
                format!("echo str_repeat({}, {size});", lit(unit))
            }
            4 => "flush();".to_owned(),
            5 => "ob_flush(); flush();".to_owned(),
            6 => "echo implode('', array_map('chr', range(0, 255)));".to_owned(),
            7 => "printf('%05d|%s|%.2f', 42, 'x', 1.5);".to_owned(),
            8 => "ob_start(); echo 'dropped'; ob_end_clean();".to_owned(),
            _ => format!("print {};", lit(pick_text(rng).as_bytes())),
        };
        s.line(&code);
    }
}

/// `exit` and `die` with strings and codes, after some output, with a shutdown function.
fn exit_block(rng: &mut Rng, s: &mut Script) {
    if rng.one_in(3) {
        s.line("register_shutdown_function(function () { echo \"shutdown\\n\"; });");
    }
    if rng.one_in(2) {
        s.line("echo 'before';");
    }
    let exit = *rng.pick(&[
        "exit;",
        "exit();",
        "exit(0);",
        "exit(3);",
        "exit(255);",
        "exit('bye');",
        "die('dead');",
        "die();",
        "exit(\"\");",
    ]);
    s.line(exit);
    s.line("echo 'never';");
}

/// Fatal errors, warnings, and headers after output.
fn errors_block(rng: &mut Rng, s: &mut Script) {
    if rng.one_in(2) {
        s.line(&format!("echo {};", lit(pick_text(rng).as_bytes())));
    }
    let code = match rng.below(14) {
        0 => "fz_undefined_function();",
        1 => "strlen([]);",
        2 => "ini_set('memory_limit', '4M'); $big = str_repeat('x', 8 << 20);",
        3 => "echo $fz_undefined_variable;",
        4 => "echo 1 % 0;",
        5 => "throw new RuntimeException('thrown');",
        6 => "trigger_error('user warning', E_USER_WARNING);",
        7 => "trigger_error('user fatal', E_USER_ERROR);",
        8 => "echo 'out'; flush(); header('X-Late: 1'); setcookie('late', '1');",
        9 => "echo str_repeat('w', 5000); header('X-After-Buffer: 1'); http_response_code(404);",
        10 => "echo 'early'; header('X-Within-Buffer: 1'); http_response_code(201);",
        11 => "$a = []; echo $a['missing'];",
        12 => "echo (string) [];",
        _ => "new DateTime('not a date');",
    };
    s.line(code);
    if rng.one_in(2) {
        s.line("echo \"\\nafter\";");
    }
}

// ---------------------------------------------------------------------------------------------
// The request.

struct Generated {
    method: &'static str,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

const HOSTS: &[&str] = &["pages.test", "PAGES.test", "pages.test:8080", "127.0.0.1"];

const QUERIES: &[&str] = &[
    "a=1",
    "a=1&b=2",
    "a[]=1&a[]=2",
    "a[b][c]=d",
    "q=a+b%20c",
    "x=%00y",
    "=empty&k=",
    "flag",
    "&&a=1&&",
    "u=%C3%A9",
    "a.b=1&a b=2",
    "dup=1&dup=2",
];

const PATH_INFOS: &[&str] = &[
    "/a/b.php",
    "/x.php",
    "/%20sp.php",
    "/deep/er/z.php",
    "/no-php",
];

fn request(kind: &str, name: &str, script: &Script, rng: &mut Rng) -> Generated {
    let method = match rng.below(20) {
        _ if script.wants_body && !rng.one_in(4) => "POST",
        0..=9 => "GET",
        10..=15 => "POST",
        _ => "HEAD",
    };
    let mut target = match rng.below(12) {
        0 => format!("/{}.php", name.replace('_', "%5F")),
        1 => format!("//{name}.php"),
        _ => format!("/{name}.php"),
    };
    if rng.one_in(5) {
        target.push_str(rng.pick::<&str>(PATH_INFOS));
    }
    if rng.one_in(2) {
        target.push('?');
        target.push_str(rng.pick::<&str>(QUERIES));
    }
    let mut headers = vec![("Host".to_owned(), (*rng.pick(HOSTS)).to_owned())];
    if rng.one_in(2) {
        headers.push(("User-Agent".to_owned(), "fuzz/1.0".to_owned()));
    }
    let mut cookies = Vec::new();
    if script.session && rng.one_in(2) {
        // A session of its own (PHP accepts an unknown id: use_strict_mode is off).
        let session = script
            .session_names
            .first()
            .map_or(SESSION_NAME, String::as_str);
        cookies.push(format!("{session}={}", session_id(name)));
    }
    if kind == "input" || rng.one_in(4) {
        for _ in 0..rng.below(3) {
            cookies.push(
                (*rng.pick(&[
                    "a=1", "b=x%20y", "arr[k]=v", "dup=1", "dup=2", "sp ace=1", "e=",
                ]))
                .to_owned(),
            );
        }
    }
    if !cookies.is_empty() {
        if rng.one_in(4) && cookies.len() > 1 {
            // Two lines: nginx 1.22 passes both, PHP keeps the last.
            let last = cookies.pop().unwrap_or_default();
            headers.push(("Cookie".to_owned(), cookies.join("; ")));
            headers.push(("Cookie".to_owned(), last));
        } else {
            headers.push(("Cookie".to_owned(), cookies.join("; ")));
        }
    }
    for _ in 0..rng.below(3) {
        let (n, v) = *rng.pick(&[
            ("X-Fz", "1"),
            ("X-Dup", "one"),
            ("X-Dup", "two"),
            ("Accept", "text/html,*/*;q=0.8"),
            ("Authorization", "Basic YWRtaW46cHc="),
            ("Authorization", "Bearer token"),
            ("x-lower-case", "v"),
            ("Accept-Encoding", "gzip"),
            ("If-Modified-Since", "Wed, 21 Oct 2015 07:28:00 GMT"),
            ("If-None-Match", "\"etag-1\""),
            ("Range", "bytes=0-1"),
            ("Referer", "http://pages.test/"),
        ]);
        headers.push((n.to_owned(), v.to_owned()));
    }
    let mut body = Vec::new();
    if method == "POST" || rng.one_in(20) {
        let (content_type, bytes) = body_for(rng);
        if let Some(content_type) = content_type {
            headers.push(("Content-Type".to_owned(), content_type));
        }
        body = bytes;
        if rng.one_in(8) {
            headers.push(("Transfer-Encoding".to_owned(), "chunked".to_owned()));
            body = chunked(&body, rng);
        }
    }
    Generated {
        method,
        target,
        headers,
        body,
    }
}

/// A session id of the case's own: the letters and digits of its name (PHP accepts
/// `[a-zA-Z0-9,-]`).
fn session_id(case: &str) -> String {
    case.chars().filter(char::is_ascii_alphanumeric).collect()
}

fn body_for(rng: &mut Rng) -> (Option<String>, Vec<u8>) {
    match rng.below(8) {
        0..=2 => (
            Some(
                (*rng.pick(&[
                    "application/x-www-form-urlencoded",
                    "application/x-www-form-urlencoded; charset=UTF-8",
                    "APPLICATION/X-WWW-FORM-URLENCODED",
                ]))
                .to_owned(),
            ),
            {
                let mut fields: Vec<&str> = Vec::new();
                for _ in 0..1 + rng.below(5) {
                    fields.push(*rng.pick(&[
                        "a=1", "b=x+y", "c[]=1", "c[]=2", "d[k]=v", "e=%C3%A9", "f=", "g", "h=%00",
                        "i=a%26b",
                    ]));
                }
                fields.join("&").into_bytes()
            },
        ),
        3..=5 => multipart(rng),
        6 => (
            Some("application/json".to_owned()),
            b"{\"k\":[1,2,{\"x\":null}]}".to_vec(),
        ),
        _ => {
            let size = if rng.one_in(10) {
                // Past nginx's client_max_body_size (1m): its 413 page.
                1_100_000
            } else {
                *rng.pick(&[0usize, 1, 10, 5000, 70_000])
            };
            (
                rng.one_in(2).then(|| "text/plain".to_owned()),
                (0..size).map(|i| b"abcdefghij\n"[i % 11]).collect(),
            )
        }
    }
}

fn multipart(rng: &mut Rng) -> (Option<String>, Vec<u8>) {
    let boundary = *rng.pick(&["fzb", "----WebKitFormBoundary7MA4YWxkTrZu0gW", "a b"]);
    let quoted = boundary.contains(' ') || rng.one_in(4);
    let content_type = if quoted {
        format!("multipart/form-data; boundary=\"{boundary}\"")
    } else {
        format!("multipart/form-data; boundary={boundary}")
    };
    let mut body = Vec::new();
    for _ in 0..1 + rng.below(4) {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        if rng.one_in(2) {
            let field = *rng.pick(&["f", "files[]", "files[a]", "up"]);
            let filename = *rng.pick(&["a.txt", "", "dir/b.bin", "sp ace.txt", "é.txt"]);
            let size = *rng.pick(&[0usize, 1, 100, 70_000]);
            body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
                     Content-Type: {}\r\n\r\n",
                    rng.pick(&["text/plain", "application/octet-stream", "image/png"])
                )
                .as_bytes(),
            );
            body.extend((0..size).map(|i| (i * 7 % 256) as u8));
        } else {
            let field = *rng.pick(&["a", "b[]", "b[]", "c[k]", "d"]);
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{field}\"\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(pick_text(rng).as_bytes());
        }
        body.extend_from_slice(b"\r\n");
    }
    if !rng.one_in(8) {
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    }
    (Some(content_type), body)
}

/// `body` as chunks of varied sizes.
fn chunked(body: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let take = (1 + rng.below(5000)).min(rest.len());
        out.extend_from_slice(format!("{take:x}\r\n").as_bytes());
        out.extend_from_slice(&rest[..take]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[take..];
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

// ---------------------------------------------------------------------------------------------
// The comparison.

/// An answer as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status line, without its CRLF.
    pub status_line: Vec<u8>,
    /// Header lines in order, as sent.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// The body ended as its framing says (not cut, not timed out).
    pub complete: bool,
}

impl Answer {
    /// Splits a received head; `body` and `complete` as read.
    pub fn from_head(head: &[u8], body: Vec<u8>, complete: bool) -> Answer {
        let text = head.strip_suffix(b"\r\n\r\n").unwrap_or(head);
        let mut lines = text
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let status_line = lines.next().unwrap_or_default().to_vec();
        let headers = lines
            .filter(|l| !l.is_empty())
            .map(|line| {
                let colon = line.iter().position(|&b| b == b':').unwrap_or(line.len());
                let value = line.get(colon + 1..).unwrap_or_default();
                (line[..colon].to_vec(), value.trim_ascii().to_vec())
            })
            .collect();
        Answer {
            status_line,
            headers,
            body,
            complete,
        }
    }
}

/// What the comparison found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Explained categories that applied (names from [`EXPLAINED`]).
    pub explained: Vec<&'static str>,
    /// Unexplained differences, one line each.
    pub unexplained: Vec<String>,
}

const NGINX_SIGNATURE: &[u8] = b"<center>nginx/1.22.1</center>";
const OUR_SIGNATURE: &[u8] = b"<center>chat-server</center>";

/// Compares nginx's answer with ours. `session_names` are the cookies whose random ids are
/// masked.
pub fn compare(nginx: &Answer, ours: &Answer, session_names: &[String]) -> Verdict {
    let mut v = Verdict::default();
    let explain = |v: &mut Verdict, name: &'static str| {
        if !v.explained.contains(&name) {
            v.explained.push(name);
        }
    };
    if unsendable(&nginx.status_line) && ours.status_line == b"HTTP/1.1 502 Bad Gateway" {
        // The whole answer is the 502 page by design; nothing else to compare.
        explain(&mut v, "unsendable_status");
        return v;
    }
    let (mut n, mut o) = (nginx.clone(), ours.clone());

    if n.status_line != o.status_line {
        let mut spaced = n.status_line.clone();
        spaced.push(b' ');
        if spaced == o.status_line && n.status_line.len() == b"HTTP/1.1 299".len() {
            explain(&mut v, "bare_status");
        } else {
            v.unexplained.push(format!(
                "status line: nginx {:?}, ours {:?}",
                show(&n.status_line),
                show(&o.status_line)
            ));
        }
    }

    // The body first: a signed error page also changes Content-Length.
    let signed = count(&n.body, NGINX_SIGNATURE);
    if signed > 0 && n.body != o.body {
        let resigned = replace(&n.body, NGINX_SIGNATURE, OUR_SIGNATURE);
        if resigned == o.body {
            explain(&mut v, "error_page_signature");
            n.body = resigned;
            let shorter = signed * (NGINX_SIGNATURE.len() - OUR_SIGNATURE.len());
            for (name, value) in &mut n.headers {
                if name.eq_ignore_ascii_case(b"content-length") {
                    if let Some(len) = std::str::from_utf8(value)
                        .ok()
                        .and_then(|t| t.parse::<usize>().ok())
                    {
                        *value = (len - shorter.min(len)).to_string().into_bytes();
                    }
                }
            }
        }
    }
    if n.body.is_empty() && o.body.is_empty() && is_error_page_head(&n, &o) {
        // A HEAD: the page is not there to see, only its length.
        explain(&mut v, "error_page_signature");
        set_header(
            &mut n.headers,
            b"content-length",
            header(&o.headers, b"content-length"),
        );
    }
    if n.body != o.body {
        let at = n
            .body
            .iter()
            .zip(&o.body)
            .position(|(a, b)| a != b)
            .unwrap_or(n.body.len().min(o.body.len()));
        let around = |b: &[u8]| show(&b[at.saturating_sub(20)..(at + 40).min(b.len())]);
        v.unexplained.push(format!(
            "body: {} bytes (nginx) vs {} (ours), first difference at {at}: nginx {:?}, ours {:?}",
            n.body.len(),
            o.body.len(),
            around(&n.body),
            around(&o.body)
        ));
    }
    if n.complete != o.complete {
        v.unexplained.push(format!(
            "ending: nginx's answer {}, ours {}",
            ended(n.complete),
            ended(o.complete)
        ));
    }

    for answer in [&mut n, &mut o] {
        answer
            .headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case(b"date"));
    }
    let nginx_server =
        |(name, value): &(Vec<u8>, Vec<u8>)| name == b"Server" && value == b"nginx/1.22.1";
    if n.headers.iter().filter(|h| nginx_server(h)).count() == 1
        && !o
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(b"server"))
    {
        n.headers.retain(|h| !nginx_server(h));
        explain(&mut v, "server_header");
    }
    let carried = |(name, value): &(Vec<u8>, Vec<u8>)| {
        !name.is_empty()
            && name
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            && value
                .iter()
                .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
    };
    if n.headers.iter().any(|h| !carried(h)) && o.headers.iter().all(carried) {
        n.headers.retain(carried);
        explain(&mut v, "unsendable_header");
    }
    for (category, changed) in mask_cookies(&mut n.headers, &mut o.headers, session_names) {
        if changed {
            explain(&mut v, category);
        }
    }
    if n.headers != o.headers {
        match order_categories(&n.headers, &o.headers) {
            Some(categories) => {
                for c in categories {
                    explain(&mut v, c);
                }
            }
            None => v.unexplained.push(format!(
                "headers: nginx {}, ours {}",
                show_headers(&n.headers),
                show_headers(&o.headers)
            )),
        }
    }
    v
}

/// A status line nginx wrote as PHP gave it that HTTP/1.1 has no final answer for: a 1xx code,
/// or a code not followed by a space or the end.
fn unsendable(status_line: &[u8]) -> bool {
    let Some(status) = status_line.strip_prefix(b"HTTP/1.1 ") else {
        return false;
    };
    status.len() >= 3
        && status[..3].iter().all(u8::is_ascii_digit)
        && (status[0] == b'1' || status.get(3).is_some_and(|&b| b != b' '))
}

/// Both heads are nginx's error page (and ours), its `Content-Length` one byte longer.
fn is_error_page_head(nginx: &Answer, ours: &Answer) -> bool {
    let length = |a: &Answer| {
        std::str::from_utf8(header(&a.headers, b"content-length")?)
            .ok()?
            .parse::<usize>()
            .ok()
    };
    nginx.status_line == ours.status_line
        && !nginx.status_line.starts_with(b"HTTP/1.1 2")
        && header(&nginx.headers, b"content-type") == Some(&b"text/html"[..])
        && header(&nginx.headers, b"server") == Some(&b"nginx/1.22.1"[..])
        && matches!((length(nginx), length(ours)), (Some(n), Some(o)) if n == o + 1)
}

/// The first value of `name`.
fn header<'a>(headers: &'a [(Vec<u8>, Vec<u8>)], name: &[u8]) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

fn set_header(headers: &mut [(Vec<u8>, Vec<u8>)], name: &[u8], value: Option<&[u8]>) {
    for (n, v) in headers {
        if let (true, Some(value)) = (n.eq_ignore_ascii_case(name), value) {
            *v = value.to_vec();
        }
    }
}

/// Lines whose place is hyper's business, not PHP's.
fn is_framing(name: &[u8]) -> bool {
    ["connection", "transfer-encoding", "content-length"]
        .iter()
        .any(|f| name.eq_ignore_ascii_case(f.as_bytes()))
}

/// Which of the ordering categories make the two header lists equal, or `None` when they do
/// not.
fn order_categories(
    nginx: &[(Vec<u8>, Vec<u8>)],
    ours: &[(Vec<u8>, Vec<u8>)],
) -> Option<Vec<&'static str>> {
    let lower = |headers: &[(Vec<u8>, Vec<u8>)]| -> Vec<(Vec<u8>, Vec<u8>)> {
        headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect()
    };
    let (n, o) = (lower(nginx), lower(ours));
    let mut categories = Vec::new();
    let names = |h: &[(Vec<u8>, Vec<u8>)]| {
        let mut names: Vec<Vec<u8>> = h.iter().map(|(n, _)| n.clone()).collect();
        names.sort();
        names
    };
    if names(nginx) != names(ours) {
        categories.push("name_case");
    }
    if n == o {
        return Some(categories);
    }
    let split = |h: &[(Vec<u8>, Vec<u8>)]| {
        let (mut framing, rest): (Vec<_>, Vec<_>) =
            h.iter().cloned().partition(|(name, _)| is_framing(name));
        framing.sort();
        (framing, rest)
    };
    let ((n_framing, n_rest), (o_framing, o_rest)) = (split(&n), split(&o));
    if n_framing != o_framing {
        return None;
    }
    let positions = |h: &[(Vec<u8>, Vec<u8>)]| -> Vec<usize> {
        h.iter()
            .enumerate()
            .filter(|(_, (name, _))| is_framing(name))
            .map(|(i, _)| i)
            .collect()
    };
    if positions(&n) != positions(&o) {
        categories.push("framing_position");
    }
    if n_rest == o_rest {
        return Some(categories);
    }
    if group(&n_rest) == o_rest {
        categories.push("grouping");
        return Some(categories);
    }
    None
}

/// The lines of one name moved up to the first of them (what hyper's header map does).
fn group(headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut order: Vec<&Vec<u8>> = Vec::new();
    for (name, _) in headers {
        if !order.contains(&name) {
            order.push(name);
        }
    }
    order
        .into_iter()
        .flat_map(|wanted| headers.iter().filter(move |(name, _)| name == wanted))
        .cloned()
        .collect()
}

/// Masks, on both sides, the random session id of a session cookie and a future cookie's
/// `Max-Age` (at most 2 s apart); says for each category whether it hid a difference.
fn mask_cookies(
    nginx: &mut [(Vec<u8>, Vec<u8>)],
    ours: &mut [(Vec<u8>, Vec<u8>)],
    session_names: &[String],
) -> [(&'static str, bool); 2] {
    let cookies = |h: &[(Vec<u8>, Vec<u8>)]| -> Vec<usize> {
        h.iter()
            .enumerate()
            .filter(|(_, (name, _))| name.eq_ignore_ascii_case(b"set-cookie"))
            .map(|(i, _)| i)
            .collect()
    };
    let (n_at, o_at) = (cookies(nginx), cookies(ours));
    let mut session = false;
    let mut clock = false;
    if n_at.len() != o_at.len() {
        return [("session_id", false), ("clock", false)];
    }
    for (&i, &j) in n_at.iter().zip(&o_at) {
        let (a, b) = (&mut nginx[i].1, &mut ours[j].1);
        if a == b {
            continue;
        }
        for name in session_names {
            let prefix = format!("{name}=");
            let id = |v: &[u8]| -> Option<usize> {
                let rest = v.strip_prefix(prefix.as_bytes())?;
                let len = rest.iter().position(|&c| c == b';').unwrap_or(rest.len());
                let random = len == 26
                    && rest[..len]
                        .iter()
                        .all(|c| c.is_ascii_digit() || (b'a'..=b'v').contains(c));
                random.then_some(prefix.len() + len)
            };
            if let (Some(x), Some(y)) = (id(a), id(b)) {
                a.splice(prefix.len()..x, b"(session id)".iter().copied());
                b.splice(prefix.len()..y, b"(session id)".iter().copied());
                session |= a == b;
            }
        }
        if a != b {
            if let (Some((x, xs)), Some((y, ys))) = (max_age(a), max_age(b)) {
                if x.abs_diff(y) <= 2 {
                    let (ax, bx) = (a.clone(), b.clone());
                    *a = [&ax[..xs.0], b"(age)", &ax[xs.1..]].concat();
                    *b = [&bx[..ys.0], b"(age)", &bx[ys.1..]].concat();
                    clock |= a == b;
                }
            }
        }
    }
    [("session_id", session), ("clock", clock)]
}

/// A cookie line's `Max-Age` value and where its digits are.
fn max_age(value: &[u8]) -> Option<(i64, (usize, usize))> {
    let at = crate::http::find(value, b"; Max-Age=")? + b"; Max-Age=".len();
    let end = value[at..]
        .iter()
        .position(|&c| c == b';')
        .map_or(value.len(), |e| at + e);
    let n = std::str::from_utf8(&value[at..end]).ok()?.parse().ok()?;
    Some((n, (at, end)))
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = crate::http::find(rest, from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

fn ended(complete: bool) -> &'static str {
    if complete {
        "ended"
    } else {
        "was cut or never ended"
    }
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn show_headers(headers: &[(Vec<u8>, Vec<u8>)]) -> String {
    let lines: Vec<String> = headers
        .iter()
        .map(|(n, v)| format!("{}: {}", show(n), show(v)))
        .collect();
    format!("{lines:?}")
}

// ---------------------------------------------------------------------------------------------
// The run.

/// How long one side may take to answer a case.
const CASE_TIMEOUT: Duration = Duration::from_secs(30);

/// One case's result.
struct Done {
    page: Page,
    verdict: Verdict,
}

#[derive(Default)]
struct Counts {
    cases: u64,
    unexplained: u64,
}

/// Runs `--class dynamic_page`: `args.cases` cases, `args.concurrency` at a time. Returns how
/// many cases had an unexplained difference.
pub async fn run(args: &FuzzArgs) -> Result<u64, CompatError> {
    let (Some(legacy_site), Some(site)) = (&args.legacy_site, &args.site) else {
        return Err(CompatError::Scenario(
            "class dynamic_page writes its scripts into the docroot: give --legacy-site and \
             --site"
                .to_owned(),
        ));
    };
    let mut dirs: Vec<PathBuf> = vec![legacy_site.clone()];
    if site != legacy_site {
        dirs.push(site.clone());
    }
    for dir in &dirs {
        let sessions = dir.join(".sessions");
        std::fs::create_dir_all(&sessions).map_err(|e| CompatError::io(&sessions, e))?;
    }
    let dirs = Arc::new(dirs);
    let (legacy, _) = split_base_url(&args.legacy)?;
    let (ours, _) = split_base_url(&args.against)?;
    let started = Instant::now();
    let mut kinds: BTreeMap<&str, Counts> = BTreeMap::new();
    let mut explained: BTreeMap<&str, u64> = BTreeMap::new();
    let mut unexplained = 0u64;
    let mut same = 0u64;
    let mut pending = std::collections::VecDeque::new();
    let mut next = 0u64;
    let mut finished = 0u64;
    while finished < args.cases {
        while next < args.cases && pending.len() < args.concurrency.max(1) {
            let page = generate(args.seed, next);
            pending.push_back(tokio::spawn(run_case(
                page,
                Arc::clone(&dirs),
                legacy.clone(),
                ours.clone(),
            )));
            next += 1;
        }
        let Some(task) = pending.pop_front() else {
            break;
        };
        let done = task
            .await
            .map_err(|e| CompatError::Http(format!("a case's task failed: {e}")))??;
        finished += 1;
        let counts = kinds.entry(done.page.kind).or_default();
        counts.cases += 1;
        for c in &done.verdict.explained {
            *explained.entry(c).or_default() += 1;
        }
        if done.verdict.explained.is_empty() && done.verdict.unexplained.is_empty() {
            same += 1;
        }
        if done.verdict.unexplained.is_empty() {
            if args.verbose {
                println!(
                    "same   case {} {} {:?}",
                    finished - 1,
                    done.page.kind,
                    done.verdict.explained
                );
            }
        } else {
            counts.unexplained += 1;
            unexplained += 1;
            save(args, &done)?;
        }
        if finished.is_multiple_of(1000) && finished < args.cases {
            summary(
                args,
                finished,
                started,
                &kinds,
                &explained,
                same,
                unexplained,
            );
        }
    }
    summary(
        args,
        finished,
        started,
        &kinds,
        &explained,
        same,
        unexplained,
    );
    for dir in dirs.iter() {
        // The sessions of this run only ever lived here.
        let _ = std::fs::remove_dir_all(dir.join(".sessions"));
    }
    Ok(unexplained)
}

async fn run_case(
    page: Page,
    dirs: Arc<Vec<PathBuf>>,
    legacy: String,
    ours: String,
) -> Result<Done, CompatError> {
    let file = format!("{}.php", page.name);
    for dir in dirs.iter() {
        let path = dir.join(&file);
        std::fs::write(&path, &page.script).map_err(|e| CompatError::io(&path, e))?;
    }
    let request = page.request_bytes();
    let head = page.method == "HEAD";
    let (n, o) = tokio::join!(
        answer(&legacy, &request, head),
        answer(&ours, &request, head)
    );
    for dir in dirs.iter() {
        // Already gone is fine: the file only existed for its case.
        let _ = std::fs::remove_file(dir.join(&file));
    }
    let verdict = match (n, o) {
        (Ok(n), Ok(o)) => compare(&n, &o, &page.session_names),
        (n, o) => Verdict {
            explained: Vec::new(),
            unexplained: vec![format!(
                "no answer: nginx {:?}, ours {:?}",
                n.err(),
                o.err()
            )],
        },
    };
    Ok(Done { page, verdict })
}

/// Sends `request` on a connection of its own and reads until the server closes it (every
/// request says `Connection: close`). Read raw, not with [`crate::http::Exchange`]: a status line
/// nginx passes from PHP (`HTTP/1.1 1000`) is one no HTTP parser takes.
async fn answer(authority: &str, request: &[u8], head: bool) -> Result<Answer, CompatError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = tokio::time::Instant::now() + CASE_TIMEOUT;
    let io = |e: std::io::Error| CompatError::Http(format!("{authority}: {e}"));
    let mut stream = tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect(authority))
        .await
        .map_err(|_| CompatError::Http(format!("{authority}: no connection")))?
        .map_err(io)?;
    // A server may answer (413) before it has read the whole body, and close.
    let _ = stream.write_all(request).await;
    let mut raw = Vec::new();
    let mut closed = false;
    let mut chunk = vec![0u8; 64 * 1024];
    while let Ok(read) = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
        match read {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
        }
    }
    let Some(end) = crate::http::find(&raw, b"\r\n\r\n") else {
        return Err(CompatError::Http(format!(
            "{authority}: no response head ({}): {:?}",
            if closed {
                "connection closed"
            } else {
                "timed out"
            },
            show(&raw[..raw.len().min(200)])
        )));
    };
    let (head_bytes, rest) = raw.split_at(end + 4);
    let mut answer = Answer::from_head(head_bytes, Vec::new(), closed);
    if !head {
        let (body, complete) = decode_body(&answer.headers, rest);
        answer.body = body;
        answer.complete &= complete;
    } else {
        answer.body = rest.to_vec();
    }
    Ok(answer)
}

/// The body as its head frames it: de-chunked (where each side cuts its chunks is not part of
/// the body), the declared length, or everything until the close; and whether it ended as
/// framed (a declared length or final chunk reached, nothing after it).
pub fn decode_body(headers: &[(Vec<u8>, Vec<u8>)], raw: &[u8]) -> (Vec<u8>, bool) {
    let value = |wanted: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(wanted.as_bytes()))
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    if value("transfer-encoding").is_some_and(|v| v == b"chunked") {
        let mut body = Vec::new();
        let mut rest = raw;
        loop {
            let Some(eol) = crate::http::find(rest, b"\r\n") else {
                return (body, false);
            };
            let size = std::str::from_utf8(&rest[..eol])
                .ok()
                .and_then(|line| usize::from_str_radix(line.split(';').next()?.trim(), 16).ok());
            let Some(size) = size else {
                return (body, false);
            };
            rest = &rest[eol + 2..];
            if size == 0 {
                return (body, rest == b"\r\n");
            }
            if rest.len() < size + 2 {
                body.extend_from_slice(&rest[..size.min(rest.len())]);
                return (body, false);
            }
            body.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
    }
    if let Some(length) = value("content-length")
        .and_then(|v| std::str::from_utf8(&v).ok()?.trim().parse::<usize>().ok())
    {
        let body = raw[..length.min(raw.len())].to_vec();
        return (body, raw.len() == length);
    }
    (raw.to_vec(), true)
}

fn save(args: &FuzzArgs, done: &Done) -> Result<(), CompatError> {
    let page = &done.page;
    println!("DIFFER case {} ({})", page.name, page.kind);
    for d in &done.verdict.unexplained {
        println!("  {d}");
    }
    let dir: &Path = &args.save;
    std::fs::create_dir_all(dir).map_err(|e| CompatError::io(dir, e))?;
    let text = serde_json::to_string_pretty(&page.scenario())
        .map_err(|e| CompatError::Scenario(format!("{}: {e}", page.name)))?;
    for (ext, bytes) in [
        ("php", page.script.clone()),
        ("http", page.request_bytes()),
        ("json", (text + "\n").into_bytes()),
    ] {
        let path = dir.join(format!("{}.{ext}", page.name));
        std::fs::write(&path, bytes).map_err(|e| CompatError::io(&path, e))?;
    }
    println!("  saved {}/{}.{{php,http,json}}", dir.display(), page.name);
    Ok(())
}

fn summary(
    args: &FuzzArgs,
    cases: u64,
    started: Instant,
    kinds: &BTreeMap<&str, Counts>,
    explained: &BTreeMap<&str, u64>,
    same: u64,
    unexplained: u64,
) {
    println!(
        "seed {} dynamic_page cases {cases} in {:.1} s: {same} identical, {unexplained} \
         unexplained",
        args.seed,
        started.elapsed().as_secs_f64()
    );
    for (kind, c) in kinds {
        println!(
            "  {kind:<12} {:>7} cases {:>5} unexplained",
            c.cases, c.unexplained
        );
    }
    for (category, n) in explained {
        println!("  explained {category:<22} {n:>7} cases");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_cases() {
        for i in 0..200 {
            assert_eq!(generate(7, i), generate(7, i));
        }
        assert_ne!(generate(7, 3).script, generate(8, 3).script);
    }

    #[test]
    fn kinds_cycle_and_names_are_distinct() {
        let pages: Vec<Page> = (0..20).map(|i| generate(1, i)).collect();
        for (i, page) in pages.iter().enumerate() {
            assert_eq!(page.kind, KINDS[i % KINDS.len()]);
            assert!(page.script.starts_with(b"<?php\n"));
            assert!(
                page.target.contains(&page.name.replace('_', "%5F"))
                    || page.target.contains(&page.name)
            );
        }
        let names: std::collections::BTreeSet<_> = pages.iter().map(|p| &p.name).collect();
        assert_eq!(names.len(), pages.len());
    }

    #[test]
    fn requests_name_a_fixed_host_and_frame_their_bodies() {
        for i in 0..2000 {
            let page = generate(3, i);
            let hosts: Vec<_> = page.headers.iter().filter(|(n, _)| n == "Host").collect();
            assert_eq!(hosts.len(), 1);
            assert!(HOSTS.contains(&hosts[0].1.as_str()));
            let raw = page.request_bytes();
            assert!(
                raw.starts_with(format!("{} {} HTTP/1.1\r\n", page.method, page.target).as_bytes())
            );
            if page.headers.iter().any(|(n, _)| n == "Transfer-Encoding") {
                assert!(page.body.ends_with(b"0\r\n\r\n"));
                let head = &raw[..raw.len() - page.body.len()];
                assert!(crate::http::find(head, b"Content-Length").is_none());
            }
        }
    }

    #[test]
    fn scripts_never_show_what_differs_by_nature() {
        for i in 0..3000 {
            let page = generate(11, i);
            let text = String::from_utf8_lossy(&page.script);
            for unstable in [
                "time()",
                "microtime",
                "rand(",
                "uniqid",
                "getmypid",
                "echo session_id()",
            ] {
                assert!(!text.contains(unstable), "{unstable} in {text}");
            }
            if text.contains("var_export($_SERVER)") || text.contains("print_r($_SERVER)") {
                panic!("unmasked $_SERVER in {text}");
            }
            assert!(
                !text.contains("'public'"),
                "a clock-based cache limiter in {text}"
            );
        }
    }

    #[test]
    fn every_kind_appears_and_big_outputs_are_rare() {
        let scripts: Vec<Page> = (0..1000).map(|i| generate(5, i)).collect();
        for kind in KINDS {
            assert!(scripts.iter().any(|p| p.kind == kind));
        }
        let big = scripts
            .iter()
            .filter(|p| {
                let text = String::from_utf8_lossy(&p.script);
                [", 1048576);", ", 3145728);", ", 5242880);"]
                    .iter()
                    .any(|size| text.contains(size))
            })
            .count();
        assert!(big > 0 && big < 50, "{big} multi-MB outputs in 1000 cases");
    }

    #[test]
    fn a_session_cookie_names_the_cases_own_session() {
        let ids: Vec<String> = (0..3000)
            .map(|i| generate(13, i))
            .filter_map(|page| {
                let cookie = page.headers.iter().find(|(n, _)| n == "Cookie")?;
                let name = page.session_names.first()?;
                let id = cookie
                    .1
                    .split("; ")
                    .find_map(|c| c.strip_prefix(&format!("{name}=")))?;
                assert_eq!(id, session_id(&page.name));
                Some(id.to_owned())
            })
            .collect();
        assert!(ids.len() > 50, "{} session cookies", ids.len());
        let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }

    #[test]
    fn literals_hold_exactly_their_bytes() {
        assert_eq!(lit(b"a\"b$c\\"), "\"a\\\"b\\$c\\\\\"");
        assert_eq!(lit(b"\r\n\x00\xff"), "\"\\x0d\\x0a\\x00\\xff\"");
    }

    fn answer(status: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        Answer {
            status_line: status.as_bytes().to_vec(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
            body: body.as_bytes().to_vec(),
            complete: true,
        }
    }

    #[test]
    fn received_heads_are_split_into_lines() {
        let a = Answer::from_head(
            b"HTTP/1.1 299 \r\nX-A:  1 \r\nx-b:\r\n\r\n",
            b"body".to_vec(),
            true,
        );
        assert_eq!(
            a,
            answer("HTTP/1.1 299 ", &[("X-A", "1"), ("x-b", "")], "body")
        );
    }

    #[test]
    fn identical_answers_have_nothing_to_explain() {
        let a = answer("HTTP/1.1 200 OK", &[("Content-Type", "text/html")], "x");
        assert_eq!(compare(&a, &a, &[]), Verdict::default());
    }

    #[test]
    fn hypers_deliberate_differences_are_explained_by_name() {
        let nginx = answer(
            "HTTP/1.1 299",
            &[
                ("Server", "nginx/1.22.1"),
                ("Date", "Fri, 04 Dec 2026 18:22:44 GMT"),
                ("Content-Type", "text/html; charset=UTF-8"),
                ("Transfer-Encoding", "chunked"),
                ("Connection", "close"),
                ("x-a", "1"),
                ("Set-Cookie", "a=1"),
                ("X-B", "2"),
                ("Set-Cookie", "b=2"),
            ],
            "hi",
        );
        let ours = answer(
            "HTTP/1.1 299 ",
            &[
                ("Content-Type", "text/html; charset=UTF-8"),
                ("X-A", "1"),
                ("Set-Cookie", "a=1"),
                ("Set-Cookie", "b=2"),
                ("X-B", "2"),
                ("Connection", "close"),
                ("Transfer-Encoding", "chunked"),
                ("Date", "Fri, 04 Dec 2026 18:22:45 GMT"),
            ],
            "hi",
        );
        let v = compare(&nginx, &ours, &[]);
        assert_eq!(v.unexplained, Vec::<String>::new());
        let mut explained = v.explained.clone();
        explained.sort();
        assert_eq!(
            explained,
            [
                "bare_status",
                "framing_position",
                "grouping",
                "name_case",
                "server_header"
            ]
        );
        for name in explained {
            assert!(EXPLAINED.iter().any(|(n, _)| *n == name));
        }
    }

    #[test]
    fn other_differences_stay_unexplained() {
        let base = answer("HTTP/1.1 200 OK", &[("X-A", "1"), ("X-B", "2")], "x");
        // Another order across names is not hyper's grouping.
        let swapped = answer("HTTP/1.1 200 OK", &[("X-B", "2"), ("X-A", "1")], "x");
        assert_eq!(compare(&base, &swapped, &[]).unexplained.len(), 1);
        // A line missing, a value changed, another status, another body, a cut answer.
        for other in [
            answer("HTTP/1.1 200 OK", &[("X-A", "1")], "x"),
            answer("HTTP/1.1 200 OK", &[("X-A", "1"), ("X-B", "3")], "x"),
            answer(
                "HTTP/1.1 502 Bad Gateway",
                &[("X-A", "1"), ("X-B", "2")],
                "x",
            ),
            answer("HTTP/1.1 200 OK", &[("X-A", "1"), ("X-B", "2")], "y"),
            Answer {
                complete: false,
                ..base.clone()
            },
        ] {
            let v = compare(&base, &other, &[]);
            assert_eq!(v.unexplained.len(), 1, "{other:?}: {v:?}");
            assert!(v.explained.is_empty());
        }
        // A trailing space is hyper's only for a status without words.
        let worded = answer("HTTP/1.1 404 Nope", &[], "");
        let spaced = answer("HTTP/1.1 404 Nope ", &[], "");
        assert_eq!(compare(&worded, &spaced, &[]).unexplained.len(), 1);
        // Our server must not send a Server line of its own.
        let ours = answer("HTTP/1.1 200 OK", &[("Server", "chat-server")], "");
        let nginx = answer("HTTP/1.1 200 OK", &[("Server", "nginx/1.22.1")], "");
        assert_eq!(compare(&nginx, &ours, &[]).unexplained.len(), 1);
    }

    #[test]
    fn signed_error_pages_session_ids_and_clocks_are_masked_and_named() {
        let page = |who: &str| format!("<html>\n<hr><center>{who}</center>\n</html>\n");
        let nginx = answer(
            "HTTP/1.1 404 Not Found",
            &[("Content-Length", "41")],
            &page("nginx/1.22.1"),
        );
        let ours = answer(
            "HTTP/1.1 404 Not Found",
            &[("Content-Length", "40")],
            &page("chat-server"),
        );
        assert_eq!(
            compare(&nginx, &ours, &[]),
            Verdict {
                explained: vec!["error_page_signature"],
                unexplained: Vec::new()
            }
        );

        let cookie = |v: &str| answer("HTTP/1.1 200 OK", &[("Set-Cookie", v)], "");
        let sessions = vec!["PHPSESSID".to_owned()];
        let v = compare(
            &cookie("PHPSESSID=qkf4ck0uu4md7na5jkoimr94rn; path=/"),
            &cookie("PHPSESSID=uhkh3jf1363p5nv2hkg9bgvi2p; path=/"),
            &sessions,
        );
        assert_eq!(v.explained, ["session_id"]);
        assert!(v.unexplained.is_empty());
        // Only the session cookie, only an id PHP could have made.
        for (a, b) in [
            (
                "other=qkf4ck0uu4md7na5jkoimr94rn",
                "other=uhkh3jf1363p5nv2hkg9bgvi2p",
            ),
            ("PHPSESSID=fz1; path=/", "PHPSESSID=fz2; path=/"),
        ] {
            assert_eq!(
                compare(&cookie(a), &cookie(b), &sessions).unexplained.len(),
                1
            );
        }
        let v = compare(
            &cookie("a=1; expires=Wed, 18-May-2033 03:33:20 GMT; Max-Age=203058000"),
            &cookie("a=1; expires=Wed, 18-May-2033 03:33:20 GMT; Max-Age=203057999"),
            &[],
        );
        assert_eq!(v.explained, ["clock"]);
        let v = compare(&cookie("a=1; Max-Age=100"), &cookie("a=1; Max-Age=90"), &[]);
        assert_eq!(v.unexplained.len(), 1);
    }
}
