//! The normalisation rules, each with its reason (compat/README.md lists them): the only
//! places where two different byte strings may compare equal.

/// All values of header `name` (case-insensitive), in order.
pub fn header_values(headers: &[(String, Vec<u8>)], name: &str) -> Vec<Vec<u8>> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

/// Rule "random cookie": `admin` + three digits 100..999 right after `=` (AJ05customer.php's
/// `'admin'.rand(100,999)`) becomes `admin<100-999>`. Anything else is compared exactly.
pub fn normalise_header(name: &str, value: &[u8]) -> Vec<u8> {
    if !name.eq_ignore_ascii_case("set-cookie") {
        return value.to_vec();
    }
    const MARK: &[u8] = b"=admin";
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if value[i..].starts_with(MARK) {
            let digits = &value[i + MARK.len()..];
            let is_random = digits.len() >= 3
                && (b'1'..=b'9').contains(&digits[0])
                && digits[1].is_ascii_digit()
                && digits[2].is_ascii_digit()
                && (digits.len() == 3 || digits[3] == b';');
            if is_random {
                out.extend_from_slice(b"=admin<100-999>");
                i += MARK.len() + 3;
                continue;
            }
        }
        out.push(value[i]);
        i += 1;
    }
    out
}

/// Rule "web-server signature": in an nginx-style error page (status >= 400, body starting
/// `<html>\r\n<head><title>`), the text of `<hr><center>...</center>` (e.g. `nginx/1.22.1`)
/// becomes `<server>`. Everything else of the page, title and heading included, is compared.
pub fn normalise_body(status: u16, body: &[u8]) -> Vec<u8> {
    const START: &[u8] = b"<html>\r\n<head><title>";
    const SIGNATURE: &[u8] = b"\r\n<hr><center>";
    if status < 400 || !body.starts_with(START) {
        return body.to_vec();
    }
    let Some(at) = crate::http::find(body, SIGNATURE) else {
        return body.to_vec();
    };
    let from = at + SIGNATURE.len();
    let Some(len) = crate::http::find(&body[from..], b"</center>") else {
        return body.to_vec();
    };
    let mut out = body[..from].to_vec();
    out.extend_from_slice(b"<server>");
    out.extend_from_slice(&body[from + len..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NGINX_404: &[u8] = b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n";

    #[test]
    fn random_cookie_numbers_compare_equal_but_other_cookies_do_not() {
        let a = normalise_header("Set-Cookie", b"username=admin287");
        let b = normalise_header("set-cookie", b"username=admin999");
        assert_eq!(a, b);
        assert_ne!(a, normalise_header("Set-Cookie", b"username=admin"));
        assert_ne!(a, normalise_header("Set-Cookie", b"username=admin1234"));
        assert_ne!(a, normalise_header("Set-Cookie", b"username=admin099"));
        assert_ne!(
            a,
            normalise_header("Set-Cookie", b"username=admin287; path=/")
        );
        assert_eq!(normalise_header("Content-Type", b"=admin123"), b"=admin123");
    }

    #[test]
    fn error_page_normaliser_ignores_the_signature_only() {
        let other_server =
            String::from_utf8_lossy(NGINX_404).replace("nginx/1.22.1", "chat-server");
        assert_eq!(
            normalise_body(404, NGINX_404),
            normalise_body(404, other_server.as_bytes())
        );
        // A different page, status text or trailing byte is still a difference.
        let forbidden =
            String::from_utf8_lossy(NGINX_404).replace("404 Not Found", "403 Forbidden");
        assert_ne!(
            normalise_body(404, NGINX_404),
            normalise_body(404, forbidden.as_bytes())
        );
        let mut longer = NGINX_404.to_vec();
        longer.push(b'\n');
        assert_ne!(normalise_body(404, NGINX_404), normalise_body(404, &longer));
        // Success bodies are never touched, even when they look like an error page.
        assert_eq!(normalise_body(200, NGINX_404), NGINX_404);
    }
}
