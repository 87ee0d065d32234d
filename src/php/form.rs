//! `$_POST` from an `application/x-www-form-urlencoded` body (`main/SAPI.c`, `add_post_var`).
//!
//! Matters most for the agent page, which posts `'rec='+rec+'&content='+cont` without any
//! encoding: PHP decodes whatever arrives, so `a+b` is stored as `a b` and `x&y=z` as `x`.

use super::url::url_decode;
use super::vars::{Duplicates, Vars, MAX_INPUT_VARS};
use super::Version;

/// Whether PHP parses the body into `$_POST`: a `POST` (exact case) whose Content-Type, lower-cased
/// and cut at the first `;`, `,` or space, is the form type. The charset parameter is ignored.
pub fn is_form_post(method: &str, content_type: Option<&[u8]>) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    let mime = content_type
        .split(|&b| matches!(b, b';' | b',' | b' '))
        .next()
        .unwrap_or_default();
    method == "POST" && mime.eq_ignore_ascii_case(b"application/x-www-form-urlencoded")
}

/// Builds `$_POST` from a form body.
pub fn parse(body: &[u8], version: Version) -> Vars {
    let mut vars = Vars::default();
    let mut registered = 0;
    let mut segments: Vec<&[u8]> = body.split(|&b| b == b'&').collect();
    // A final `&` ends the last segment; it does not start another one.
    if segments.last().is_some_and(|s| s.is_empty()) {
        segments.pop();
    }
    for segment in segments {
        if segment.is_empty() {
            // PHP 8's `add_post_var` counts every segment toward max_input_vars, the empty ones
            // (`a=1&&b=2`) too, although they register nothing; PHP 5's strtok skipped them.
            if version == Version::Php8 {
                registered += 1;
                if registered > MAX_INPUT_VARS {
                    break;
                }
            }
            continue;
        }
        let (name, value) = match segment.iter().position(|&b| b == b'=') {
            Some(eq) => (&segment[..eq], &segment[eq + 1..]),
            // 5.6+ registers `foo&` as `foo => ''`; up to 5.5 such a segment was skipped.
            None if version == Version::Php8 => (segment, &b""[..]),
            None => continue,
        };
        if version == Version::Php5 && registered == MAX_INPUT_VARS {
            break;
        }
        vars.register(&url_decode(name), url_decode(value), Duplicates::LastWins);
        registered += 1;
        // PHP 8 checks the limit after registering, so 1001 variables get in.
        if version == Version::Php8 && registered > MAX_INPUT_VARS {
            break;
        }
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(body: &str) -> Vars {
        parse(body.as_bytes(), Version::Php8)
    }

    #[test]
    fn decodes_plus_and_escapes() {
        assert_eq!(
            post("rec=1&content=hello+world").string("content"),
            b"hello world"
        );
        assert_eq!(post("content=a%2Bb%20c").string("content"), b"a+b c");
        assert_eq!(post("content=+%2B+").string("content"), b" + ");
        assert_eq!(post("content=%e4%b8%ad").string("content"), "中".as_bytes());
        assert_eq!(post("content=a%0d%0ab").string("content"), b"a\r\nb");
        assert_eq!(post("content=a%00b").string("content"), b"a\0b");
        for kept in ["%zz%4%", "100%", "%", "%2", "%G1"] {
            assert_eq!(
                post(&format!("content={kept}")).string("content"),
                kept.as_bytes()
            );
        }
    }

    #[test]
    fn empty_segments_count_toward_max_input_vars() {
        // Found by chat-compat fuzz; recorded as send_empty_fields_count_toward_max_input_vars.
        let body = format!("{}rec=r&content=dropped&", "&".repeat(1000));
        let vars = post(&body);
        assert_eq!(vars.string("rec"), b"r");
        assert_eq!(vars.string("content"), b"");
        // A final `&` is not a segment: 999 empty ones, then the 1000th and 1001st get in.
        let vars = post(&format!("{}rec=r&content=c&", "&".repeat(999)));
        assert_eq!(vars.string("content"), b"c");
    }

    #[test]
    fn only_ampersand_separates() {
        let vars = post("rec=1;content=2");
        assert_eq!(vars.string("rec"), b"1;content=2");
        let vars = post("content=<b>\"q\"&amp;</b>");
        assert_eq!(vars.string("content"), b"<b>\"q\"");
        assert_eq!(vars.string("amp;</b>"), b"");
    }

    #[test]
    fn raw_agent_bodies_are_altered_as_php_alters_them() {
        assert_eq!(post("rec=7&content=a+b=c").string("content"), b"a b=c");
        assert_eq!(post("rec=7&content=50%off").string("content"), b"50%off");
        let vars = post("rec=7&content=tom & jerry");
        assert_eq!(vars.string("content"), b"tom ");
        assert!(vars.get("jerry").is_some());
    }

    #[test]
    fn missing_and_valueless_fields() {
        let vars = post("=v&&x");
        assert_eq!(
            vars.get("x"),
            Some(&super::super::vars::Value::Str(Vec::new()))
        );
        assert!(vars.get("content").is_none());
        assert!(parse(b"content", Version::Php5).get("content").is_none());
        assert_eq!(post("content=a&content").string("content"), b"");
    }

    #[test]
    fn keys_are_decoded_before_mangling() {
        assert_eq!(post("c%6fntent=enc").string("content"), b"enc");
        assert_eq!(post("content+=1").string("content_"), b"1");
        assert_eq!(post("%09content=t").string("\tcontent"), b"t");
    }

    #[test]
    fn php8_keeps_1001_variables() {
        let body: Vec<String> = (0..1007).map(|i| format!("v{i}=x")).collect();
        let vars = post(&body.join("&"));
        assert_eq!(vars.string("v1000"), b"x");
        assert!(vars.get("v1001").is_none());
    }

    #[test]
    fn only_exact_post_with_form_type_is_parsed() {
        let form = Some(&b"application/x-www-form-urlencoded; charset=UTF-8"[..]);
        assert!(is_form_post("POST", form));
        assert!(is_form_post(
            "POST",
            Some(b"Application/X-WWW-Form-Urlencoded;charset=GBK")
        ));
        assert!(!is_form_post("post", form));
        assert!(!is_form_post("PUT", form));
        assert!(!is_form_post("POST", Some(b"text/plain")));
        assert!(!is_form_post(
            "POST",
            Some(b"application/x-www-form-urlencodedX")
        ));
        assert!(!is_form_post("POST", None));
    }
}
