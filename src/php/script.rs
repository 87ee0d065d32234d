//! The text a `.php` file prints around its code: what PHP sends for the parts outside
//! `<?php … ?>`.
//!
//! The legacy pages are HTML files with a leading `<?php setcookie(…); ?>` block. The server does
//! the code natively and takes the HTML from the operator's own file, so edits to the site's pages
//! keep working. Other `.php` files are answered with their printed text only, never their source
//! (`AJconn.php` holds the database password).

/// A PHP file split around its code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    /// Text before the first `<?php` (output before anything the code echoes).
    pub head: Vec<u8>,
    /// Text after the first code block: every later text segment, concatenated.
    pub tail: Vec<u8>,
}

impl Script {
    /// Splits a PHP source file.
    pub fn parse(source: &[u8]) -> Script {
        let mut script = Script::default();
        let mut rest = source;
        let mut seen_code = false;
        loop {
            let (text, after_text) = match find_open_tag(rest) {
                Some((start, len)) => (&rest[..start], Some(&rest[start + len..])),
                None => (rest, None),
            };
            if seen_code {
                &mut script.tail
            } else {
                &mut script.head
            }
            .extend_from_slice(text);
            let Some(code) = after_text else {
                return script;
            };
            seen_code = true;
            rest = skip_code(code);
        }
    }

    /// Everything the file prints when its code echoes `output`.
    pub fn around(&self, output: &[u8]) -> Vec<u8> {
        [&self.head[..], output, &self.tail[..]].concat()
    }

    /// Everything the file prints when its code echoes nothing.
    pub fn printed_text(&self) -> Vec<u8> {
        self.around(b"")
    }
}

/// Finds `<?php` followed by whitespace or the end of the file (case-insensitive), or `<?=`.
/// Short `<?` tags are off in production php.ini, so they are text.
fn find_open_tag(text: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(offset) = find(&text[from..], b"<?") {
        let at = from + offset;
        let after = &text[at + 2..];
        if after.starts_with(b"=") {
            return Some((at, 3));
        }
        if after.len() >= 3 && after[..3].eq_ignore_ascii_case(b"php") {
            match after.get(3) {
                None => return Some((at, 5)),
                Some(b' ' | b'\t' | b'\n' | b'\r') => return Some((at, 6)),
                Some(_) => {}
            }
        }
        from = at + 2;
    }
    None
}

/// Skips PHP code up to and including `?>` and the single line ending it swallows. Strings and
/// block comments are skipped so a `?>` inside them does not end the code.
fn skip_code(code: &[u8]) -> &[u8] {
    let mut i = 0;
    while i < code.len() {
        match code[i] {
            quote @ (b'\'' | b'"') => i = skip_string(code, i + 1, quote),
            b'/' if code.get(i + 1) == Some(&b'*') => {
                i = find(&code[i + 2..], b"*/").map_or(code.len(), |end| i + 2 + end + 2)
            }
            b'#' => return skip_line_comment(&code[i..]),
            b'/' if code.get(i + 1) == Some(&b'/') => return skip_line_comment(&code[i..]),
            b'?' if code.get(i + 1) == Some(&b'>') => return eat_one_newline(&code[i + 2..]),
            _ => i += 1,
        }
    }
    &[]
}

/// A `//` or `#` comment ends at the line end, or at `?>`, which leaves PHP mode even there.
fn skip_line_comment(code: &[u8]) -> &[u8] {
    for i in 0..code.len() {
        match code[i] {
            b'\n' => return skip_code(&code[i..]),
            b'?' if code.get(i + 1) == Some(&b'>') => return eat_one_newline(&code[i + 2..]),
            _ => {}
        }
    }
    &[]
}

fn skip_string(code: &[u8], mut i: usize, quote: u8) -> usize {
    while i < code.len() {
        match code[i] {
            b'\\' => i += 2,
            byte if byte == quote => return i + 1,
            _ => i += 1,
        }
    }
    code.len()
}

/// `?>` swallows one `\n`, `\r\n` or `\r` (`Zend/zend_language_scanner.l`).
fn eat_one_newline(text: &[u8]) -> &[u8] {
    if let Some(rest) = text.strip_prefix(b"\r\n") {
        rest
    } else if let Some(rest) = text
        .strip_prefix(b"\n")
        .or_else(|| text.strip_prefix(b"\r"))
    {
        rest
    } else {
        text
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(suffix: &str) -> String {
        let source = format!("<?php setcookie('u','admin'); ?>{suffix}");
        String::from_utf8(Script::parse(source.as_bytes()).printed_text()).expect("utf8")
    }

    #[test]
    fn closing_tag_eats_exactly_one_line_ending() {
        assert_eq!(printed("\n<html>"), "<html>");
        assert_eq!(printed("\r\n<html>"), "<html>");
        assert_eq!(printed("\r<html>"), "<html>");
        assert_eq!(printed("<html>"), "<html>");
        assert_eq!(printed("\n\n<html>"), "\n<html>");
        assert_eq!(printed("\r\n\r\n<html>"), "\r\n<html>");
        assert_eq!(printed("\n\r\n<html>"), "\r\n<html>");
        assert_eq!(printed(" \n<html>"), " \n<html>");
        assert_eq!(printed("\t\n<html>"), "\t\n<html>");
        assert_eq!(printed("\n"), "");
        assert_eq!(printed("\n\n"), "\n");
    }

    #[test]
    fn text_before_and_after_code_is_kept_apart() {
        let script =
            Script::parse(b"\xef\xbb\xbf<?php echo 'x'; ?>\nA<?php /* ?> */ echo \"?>\"; ?>B");
        assert_eq!(script.head, b"\xef\xbb\xbf");
        assert_eq!(script.tail, b"AB");
    }

    #[test]
    fn unclosed_code_runs_to_the_end_and_short_tags_are_text() {
        assert_eq!(Script::parse(b"<?php\necho 1;\n").printed_text(), b"");
        assert_eq!(
            Script::parse(b"<?xml version=\"1.0\"?>").printed_text(),
            b"<?xml version=\"1.0\"?>"
        );
        assert_eq!(Script::parse(b"a<?= $x ?>b").printed_text(), b"ab");
        assert_eq!(Script::parse(b"<?PHP\n?>\nx").printed_text(), b"x");
        assert_eq!(Script::parse(b"<?php // don't ?>\nx").printed_text(), b"x");
        assert_eq!(
            Script::parse(b"<?php # it's\n echo 'a'; ?>y").printed_text(),
            b"y"
        );
    }

    #[test]
    fn legacy_pages_print_their_html() {
        let site = concat!(env!("CARGO_MANIFEST_DIR"), "/compat/legacy-site/");
        let customer = std::fs::read(format!("{site}AJ05customer.php")).expect("bundled site");
        assert!(Script::parse(&customer)
            .printed_text()
            .starts_with(b"\n<!DOCTYPE html"));
        let send = std::fs::read(format!("{site}AJsendmsg.php")).expect("bundled site");
        assert_eq!(Script::parse(&send), Script::default());
    }
}
