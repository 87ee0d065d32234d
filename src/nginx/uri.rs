//! The request target as nginx splits and normalises it (`ngx_http_parse_complex_uri`): the
//! path is percent-decoded, `.` and `..` segments are resolved and slashes merged; the result
//! (`$uri`) is what locations and files are matched against.

/// A request target, split as nginx does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `$uri`: the decoded, normalised path (always starts with `/`).
    pub path: Vec<u8>,
    /// `$args`: the raw query string (not decoded), without the `?`.
    pub args: Vec<u8>,
}

/// Splits an origin-form target (starting with `/`). `None` when nginx answers 400: a `%` not
/// followed by two hex digits, an encoded NUL, or `..` above the root.
pub fn parse(target: &[u8]) -> Option<Target> {
    // `?` starts the arguments unless a `#` came first; `#` ends the path.
    let path_end = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let args = match target.get(path_end) {
        Some(b'?') => target[path_end + 1..].to_vec(),
        _ => Vec::new(),
    };
    Some(Target {
        path: normalize(&target[..path_end])?,
        args,
    })
}

/// Decodes and normalises a raw path. Decoded `/` and `.` count as structure, as in nginx.
pub fn normalize(raw: &[u8]) -> Option<Vec<u8>> {
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hi = super::hex_digit(*raw.get(i + 1)?)?;
            let lo = super::hex_digit(*raw.get(i + 2)?)?;
            let byte = hi << 4 | lo;
            if byte == 0 {
                return None;
            }
            decoded.push(byte);
            i += 3;
        } else {
            decoded.push(raw[i]);
            i += 1;
        }
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split(|&b| b == b'/').skip(1) {
        trailing_slash = false;
        match segment {
            b"" | b"." => trailing_slash = true,
            b".." => {
                segments.pop()?;
                trailing_slash = true;
            }
            other => segments.push(other),
        }
    }
    let mut path = Vec::with_capacity(decoded.len() + 1);
    for segment in &segments {
        path.push(b'/');
        path.extend_from_slice(segment);
    }
    if trailing_slash || segments.is_empty() {
        path.push(b'/');
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(raw: &str) -> Option<String> {
        parse(raw.as_bytes()).map(|t| String::from_utf8_lossy(&t.path).into_owned())
    }

    #[test]
    fn decodes_and_resolves_like_nginx() {
        // Each row was sent to nginx 1.22.1 (scripts/diff-raw): served file or 400.
        assert_eq!(path("/d%75mp.php?x=%41").as_deref(), Some("/dump.php"));
        assert_eq!(path("/a/../dump.php").as_deref(), Some("/dump.php"));
        assert_eq!(path("/a%2f..%2fdump.php").as_deref(), Some("/dump.php"));
        assert_eq!(path("//dump.php").as_deref(), Some("/dump.php"));
        assert_eq!(path("/dump.php/.").as_deref(), Some("/dump.php/"));
        assert_eq!(path("/dump.php#frag?x=1").as_deref(), Some("/dump.php"));
        assert_eq!(path("/").as_deref(), Some("/"));
        assert_eq!(path("/../dump.php"), None);
        assert_eq!(path("/%2E%2E/dump.php"), None);
        assert_eq!(path("/dump%zz.php"), None);
        assert_eq!(path("/dump.php%00"), None);
        assert_eq!(path("/dump.php%4"), None);
    }

    #[test]
    fn arguments_stay_raw() {
        let target = parse(b"/x.php?a=%41&b=>\"").expect("valid");
        assert_eq!(target.args, b"a=%41&b=>\"");
        assert_eq!(parse(b"/x.php#f?a=1").expect("valid").args, b"");
    }
}
