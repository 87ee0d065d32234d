//! `$_COOKIE` from the `Cookie:` header, and the `Set-Cookie` bytes of `setcookie()`.
//!
//! Hand-rolled rather than with the `cookie` crate's parser: PHP splits on `;` only, keeps the
//! first of two equal names, does not trim values and decodes `%XX` leniently, and the legacy
//! pages must see exactly what PHP saw.

use super::url::{raw_url_decode, raw_url_encode, url_decode, url_encode};
use super::vars::{Duplicates, Vars, MAX_INPUT_VARS};
use super::Version;

/// Builds `$_COOKIE` from the request's cookie header (several header lines joined with `"; "`,
/// as nginx hands them to PHP).
pub fn parse(header: &[u8], version: Version) -> Vars {
    let mut vars = Vars::default();
    let mut registered = 0;
    for piece in header.split(|&b| b == b';') {
        let (name, value) = match piece.iter().position(|&b| b == b'=') {
            Some(eq) => (&piece[..eq], &piece[eq + 1..]),
            None => (piece, &b""[..]),
        };
        let name = trim_leading_space(name);
        if name.is_empty() {
            continue;
        }
        if registered == MAX_INPUT_VARS {
            // PHP warns "Input variables exceeded 1000" and stops parsing.
            break;
        }
        registered += 1;
        let (name, value) = match version {
            Version::Php8 => (name.to_vec(), raw_url_decode(value)),
            // Before 7.4.2 values were urldecode()d (`+` is a space); before 7.4.11 names too.
            Version::Php5 => (url_decode(name), url_decode(value)),
        };
        vars.register(&name, value, Duplicates::FirstWins);
    }
    vars
}

/// C `isspace()`: space, `\t`, `\n`, `\v`, `\f`, `\r`.
fn trim_leading_space(name: &[u8]) -> &[u8] {
    let start = name
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        .unwrap_or(name.len());
    &name[start..]
}

/// The `Set-Cookie` header value of `setcookie($name, $value)` with no further arguments:
/// no path, no expiry, no flags.
pub fn set_cookie(name: &str, value: &[u8], version: Version) -> String {
    let encoded = match version {
        Version::Php8 => raw_url_encode(value),
        Version::Php5 => url_encode(value),
    };
    format!("{name}={encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn username(header: &str) -> Vec<u8> {
        parse(header.as_bytes(), Version::Php8).string("username")
    }

    #[test]
    fn first_duplicate_wins_even_when_empty() {
        assert_eq!(username("username=; username=admin"), b"");
        assert_eq!(username("username=admin; username="), b"admin");
        assert_eq!(parse(b"a=1;a=2", Version::Php8).string("a"), b"1");
    }

    #[test]
    fn only_semicolon_separates_and_values_are_not_trimmed() {
        assert_eq!(parse(b"a=1, b=2", Version::Php8).string("a"), b"1, b=2");
        let vars = parse(b"  a=1;   b=2  ", Version::Php8);
        assert_eq!(
            (vars.string("a"), vars.string("b")),
            (b"1".to_vec(), b"2  ".to_vec())
        );
        assert_eq!(parse(b"a = 1", Version::Php8).string("a_"), b" 1");
        assert_eq!(parse(b"a=1\tb=2", Version::Php8).string("a"), b"1\tb=2");
        assert_eq!(parse(b"a=1;\n b=2", Version::Php8).string("b"), b"2");
    }

    #[test]
    fn values_are_raw_url_decoded_in_php8() {
        assert_eq!(parse(b"x=a+b%2Bc", Version::Php8).string("x"), b"a+b+c");
        assert_eq!(
            parse(b"x=%41%4a%zz%4%", Version::Php8).string("x"),
            b"AJ%zz%4%"
        );
        assert_eq!(parse(b"x=%00y", Version::Php8).string("x"), b"\0y");
        assert_eq!(parse(b"x=a=b=c", Version::Php8).string("x"), b"a=b=c");
        assert_eq!(
            parse(b"x=\"quoted\"", Version::Php8).string("x"),
            b"\"quoted\""
        );
    }

    #[test]
    fn php5_decodes_plus_and_names() {
        assert_eq!(parse(b"x=a+b", Version::Php5).string("x"), b"a b");
        assert_eq!(
            parse(b"user%6eame=x", Version::Php5).string("username"),
            b"x"
        );
        assert_eq!(
            parse(b"user%6eame=x", Version::Php8).string("username"),
            b""
        );
    }

    #[test]
    fn names_are_case_sensitive_and_not_decoded() {
        assert!(parse(b"Username=admin", Version::Php8).is_empty("username"));
        assert!(parse(b"username =admin", Version::Php8).is_empty("username"));
        assert_eq!(username(" username=admin"), b"admin");
        assert_eq!(parse(b"a%20b=1", Version::Php8).string("a%20b"), b"1");
        assert_eq!(parse(b"=v; w", Version::Php8).string("w"), b"");
    }

    #[test]
    fn empty_username_cases() {
        for header in ["", "username=", "username", "username=0", "username=%30"] {
            assert!(
                parse(header.as_bytes(), Version::Php8).is_empty("username"),
                "{header}"
            );
        }
        for header in [
            "username=00",
            "username=%20",
            "username=+",
            "username[]=",
            "username=false",
        ] {
            assert!(
                !parse(header.as_bytes(), Version::Php8).is_empty("username"),
                "{header}"
            );
        }
    }

    #[test]
    fn only_the_first_thousand_cookies_count() {
        let header: Vec<String> = (0..1003).map(|i| format!("c{i}=v")).collect();
        let vars = parse(header.join("; ").as_bytes(), Version::Php8);
        assert_eq!(vars.string("c999"), b"v");
        assert!(vars.get("c1000").is_none());
    }

    #[test]
    fn set_cookie_matches_php() {
        assert_eq!(
            set_cookie("username", b"admin", Version::Php8),
            "username=admin"
        );
        assert_eq!(
            set_cookie("u2", "a b+c/中~!*()'".as_bytes(), Version::Php8),
            "u2=a%20b%2Bc%2F%E4%B8%AD~%21%2A%28%29%27"
        );
        assert_eq!(
            set_cookie("n", b"space value", Version::Php5),
            "n=space+value"
        );
    }
}
