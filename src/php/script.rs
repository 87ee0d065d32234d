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
    /// Whether the text segments are certainly all the file prints when nobody runs its code:
    /// false when its code may print (`echo`, `<?=`, `include`, …), may stop early (`exit`,
    /// `die`, a top-level `return`), may skip text (text inside `{ … }` or alternative syntax)
    /// or cannot be followed (`{$…}` inside a string, an indented heredoc end).
    pub certain: bool,
}

impl Script {
    /// Splits a PHP source file.
    pub fn parse(source: &[u8]) -> Script {
        let mut script = Script {
            certain: true,
            ..Script::default()
        };
        let mut scanner = Scanner::default();
        let mut rest = source;
        let mut seen_code = false;
        loop {
            let (text, after_text) = match find_open_tag(rest) {
                Some((start, len)) => (&rest[..start], Some((&rest[start + len..], len == 3))),
                None => (rest, None),
            };
            if scanner.depth != 0 && !text.is_empty() {
                // Text inside a block is printed only if the block runs.
                scanner.uncertain = true;
            }
            if seen_code {
                &mut script.tail
            } else {
                &mut script.head
            }
            .extend_from_slice(text);
            let Some((code, echo_tag)) = after_text else {
                break;
            };
            if echo_tag {
                scanner.uncertain = true;
            }
            seen_code = true;
            match scanner.skip_code(code) {
                Some(after) => rest = after,
                None => break,
            }
        }
        script.certain = !scanner.uncertain;
        script
    }

    /// Everything the file prints when its code echoes `output`.
    pub fn around(&self, output: &[u8]) -> Vec<u8> {
        [&self.head[..], output, &self.tail[..]].concat()
    }

    /// Everything the file prints when its code is not run: its text, when that is certainly
    /// all of it, else nothing. Never a byte of its code.
    pub fn printed_text(&self) -> Vec<u8> {
        if self.certain {
            self.around(b"")
        } else {
            Vec::new()
        }
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

/// Keywords after which the text of the file is no longer certainly what it prints.
const UNCERTAIN: [&str; 20] = [
    "echo",
    "print",
    "printf",
    "vprintf",
    "print_r",
    "var_dump",
    "var_export",
    "readfile",
    "fpassthru",
    "passthru",
    "system",
    "exit",
    "die",
    "include",
    "include_once",
    "require",
    "require_once",
    "eval",
    "goto",
    "highlight_file",
];

/// Alternative-syntax block ends: text between `if (…):` and `endif;` is conditional.
const ALTERNATIVE_ENDS: [&str; 6] = [
    "endif",
    "endwhile",
    "endfor",
    "endforeach",
    "endswitch",
    "enddeclare",
];

/// Walks PHP code the way the scanner of `Zend/zend_language_scanner.l` splits it, as far as
/// finding the closing `?>` needs: strings, heredocs, comments, attributes.
#[derive(Debug, Default)]
struct Scanner {
    depth: i64,
    uncertain: bool,
}

impl Scanner {
    /// Skips code up to and including `?>` and the single line ending it swallows; `None` when
    /// nothing after it is printed (end of file, `__halt_compiler`).
    fn skip_code<'a>(&mut self, code: &'a [u8]) -> Option<&'a [u8]> {
        let mut i = 0;
        while i < code.len() {
            match code[i] {
                b'\'' => i = skip_quoted(code, i + 1, b'\'', &mut self.uncertain, false),
                quote @ (b'"' | b'`') => {
                    i = skip_quoted(code, i + 1, quote, &mut self.uncertain, true)
                }
                b'/' if code.get(i + 1) == Some(&b'*') => {
                    i = find(&code[i + 2..], b"*/").map_or(code.len(), |end| i + 2 + end + 2)
                }
                // PHP 8: `#[` opens an attribute, which is code; any other `#` a comment.
                b'#' if code.get(i + 1) == Some(&b'[') => i += 2,
                b'#' => return self.skip_line_comment(&code[i..]),
                b'/' if code.get(i + 1) == Some(&b'/') => {
                    return self.skip_line_comment(&code[i..])
                }
                b'?' if code.get(i + 1) == Some(&b'>') => {
                    return Some(eat_one_newline(&code[i + 2..]))
                }
                b'<' if code[i..].starts_with(b"<<<") => i = self.skip_heredoc(code, i + 3),
                b'{' => {
                    self.depth += 1;
                    i += 1;
                }
                b'}' => {
                    self.depth -= 1;
                    i += 1;
                }
                b'$' => i = identifier_end(code, i + 1),
                byte if is_identifier_start(byte) => {
                    let end = identifier_end(code, i);
                    let word = code[i..end].to_ascii_lowercase();
                    let follows_arrow =
                        i >= 2 && (&code[i - 2..i] == b"->" || &code[i - 2..i] == b"::");
                    if !follows_arrow {
                        if word == b"__halt_compiler" {
                            return None;
                        }
                        let listed = |list: &[&str]| list.iter().any(|k| k.as_bytes() == word);
                        if listed(&UNCERTAIN)
                            || listed(&ALTERNATIVE_ENDS)
                            || (word == b"return" && self.depth == 0)
                        {
                            self.uncertain = true;
                        }
                    }
                    i = end;
                }
                _ => i += 1,
            }
        }
        None
    }

    /// A `//` or `#` comment ends at the line end, or at `?>`, which leaves PHP mode even there.
    fn skip_line_comment<'a>(&mut self, code: &'a [u8]) -> Option<&'a [u8]> {
        for i in 0..code.len() {
            match code[i] {
                b'\n' => return self.skip_code(&code[i..]),
                b'?' if code.get(i + 1) == Some(&b'>') => {
                    return Some(eat_one_newline(&code[i + 2..]))
                }
                _ => {}
            }
        }
        None
    }

    /// `<<<ID`, `<<<"ID"` or `<<<'ID'` (nowdoc), then lines up to one that is `ID` (after
    /// optional indentation) not followed by an identifier byte. Returns the index after it.
    fn skip_heredoc(&mut self, code: &[u8], mut i: usize) -> usize {
        while matches!(code.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        let quote = match code.get(i) {
            Some(&q @ (b'\'' | b'"')) => {
                i += 1;
                Some(q)
            }
            _ => None,
        };
        let id_start = i;
        let id_end = identifier_end(code, i);
        if id_end == id_start {
            // `<<<` without a label is a shift operator followed by `<`: not a heredoc.
            return id_start;
        }
        let label = &code[id_start..id_end];
        i = id_end;
        if let Some(q) = quote {
            if code.get(i) != Some(&q) {
                self.uncertain = true;
                return code.len();
            }
            i += 1;
        }
        // The label line must end here.
        match code.get(i) {
            Some(b'\n') => i += 1,
            Some(b'\r') if code.get(i + 1) == Some(&b'\n') => i += 2,
            Some(b'\r') => i += 1,
            _ => {
                self.uncertain = true;
                return code.len();
            }
        }
        let interpolating = quote != Some(b'\'');
        // Each line: is it the closing label?
        while i < code.len() {
            let line_start = i;
            let mut j = i;
            while matches!(code.get(j), Some(b' ' | b'\t')) {
                j += 1;
            }
            if code[j..].starts_with(label)
                && !code
                    .get(j + label.len())
                    .copied()
                    .is_some_and(is_identifier_byte)
            {
                if j > line_start {
                    // Flexible heredoc: the body's indentation must match, which PHP checks
                    // and refuses with a parse error (nothing printed) when it does not.
                    self.uncertain = true;
                }
                return j + label.len();
            }
            let line_end = code[i..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(code.len(), |p| i + p + 1);
            if interpolating
                && (find(&code[i..line_end], b"{$").is_some()
                    || find(&code[i..line_end], b"${").is_some())
            {
                self.uncertain = true;
            }
            i = line_end;
        }
        code.len()
    }
}

/// Skips a quoted string from just after its opening quote; returns the index after its end.
/// In interpolating strings, `{$…}` and `${…}` may hold quotes of their own: not followed.
fn skip_quoted(
    code: &[u8],
    mut i: usize,
    quote: u8,
    uncertain: &mut bool,
    interpolating: bool,
) -> usize {
    while i < code.len() {
        match code[i] {
            b'\\' => i += 2,
            byte if byte == quote => return i + 1,
            b'{' | b'$'
                if interpolating
                    && matches!(
                        (code[i], code.get(i + 1)),
                        (b'{', Some(b'$')) | (b'$', Some(b'{'))
                    ) =>
            {
                *uncertain = true;
                i += 1;
            }
            _ => i += 1,
        }
    }
    code.len()
}

fn is_identifier_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || byte >= 0x80
}

fn is_identifier_byte(byte: u8) -> bool {
    is_identifier_start(byte) || byte.is_ascii_digit()
}

fn identifier_end(code: &[u8], mut i: usize) -> usize {
    if !code.get(i).copied().is_some_and(is_identifier_start) {
        return i;
    }
    while code.get(i).copied().is_some_and(is_identifier_byte) {
        i += 1;
    }
    i
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
            Script::parse(b"\xef\xbb\xbf<?php $a = 'x'; ?>\nA<?php /* ?> */ $b = \"?>\"; ?>B");
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
        // `<?=` prints a value nobody computed here: nothing rather than a guess.
        assert_eq!(Script::parse(b"a<?= $x ?>b").printed_text(), b"");
        assert_eq!(Script::parse(b"a<?= $x ?>b").around(b""), b"ab");
        assert_eq!(Script::parse(b"<?PHP\n?>\nx").printed_text(), b"x");
        assert_eq!(Script::parse(b"<?php // don't ?>\nx").printed_text(), b"x");
        let echoes = Script::parse(b"<?php # it's\n echo 'a'; ?>y");
        assert_eq!(echoes.around(b""), b"y");
        // PHP prints `ay`; without running the code, nothing rather than a guess.
        assert_eq!(echoes.printed_text(), b"");
    }

    #[test]
    fn legacy_pages_print_their_html() {
        let site = concat!(env!("CARGO_MANIFEST_DIR"), "/compat/legacy-site/");
        let customer = std::fs::read(format!("{site}AJ05customer.php")).expect("bundled site");
        assert!(Script::parse(&customer)
            .printed_text()
            .starts_with(b"\n<!DOCTYPE html"));
        let send = std::fs::read(format!("{site}AJsendmsg.php")).expect("bundled site");
        let send = Script::parse(&send);
        assert_eq!((send.head, send.tail), (Vec::new(), Vec::new()));
    }

    /// Each case was run with `php` 8.2 (`/tmp/pt/*.php` in docs/nginx-front.md's method): the
    /// expected text is exactly what PHP printed.
    #[test]
    fn closing_tags_inside_heredocs_backticks_and_attributes_do_not_end_code() {
        let cases: [(&[u8], &[u8]); 8] = [
            (
                b"<?php $a = <<<'EOT'\nx ?> y\nEOT;\n?>after2\n",
                b"after2\n",
            ),
            (
                b"<?php $a = <<<EOT\nEOTX ?> y\nEOT;\n?>after6\n",
                b"after6\n",
            ),
            (
                b"<?php $a = <<<EOT\nx\nEOT . \"?>\";\n?>after9\n",
                b"after9\n",
            ),
            (b"<?php $a = <<<\"EOT\"\n?>\nEOT;\n?>q", b"q"),
            (b"<?php if (0) { $a = `x ?> y`; } ?>after3\n", b"after3\n"),
            (
                b"<?php #[Attribute(\"?>\")]\nclass A {} ?>after4\n",
                b"after4\n",
            ),
            (b"<?php # comment ?>after5\n", b"after5\n"),
            (b"<?php $a=1 ?>\r\nafter10", b"after10"),
        ];
        for (source, printed) in cases {
            assert_eq!(
                Script::parse(source).printed_text(),
                printed,
                "{}",
                String::from_utf8_lossy(source)
            );
        }
    }

    #[test]
    fn nothing_is_printed_when_the_text_is_not_certainly_the_output() {
        for source in [
            &b"<?php __halt_compiler(); ?>after7\n"[..],
            b"<?php $a = \"{$b[\"?>\"]}\"; ?>after8\n",
            b"<?php $a = <<<EOT\n  x ?> y\n  EOT;\n?>indented\n",
            b"<?php if ($x) { ?>secret<?php } ?>",
            b"<?php if ($x): ?>secret<?php endif; ?>",
            b"<?php echo 'x'; ?>text",
            b"<?php $c = mysql_connect('h') or die('no'); ?>\ntext",
            b"<?php return; ?>text",
            b"<?php include 'x.php'; ?>text",
        ] {
            assert_eq!(
                Script::parse(source).printed_text(),
                b"",
                "{}",
                String::from_utf8_lossy(source)
            );
        }
        // A variable or method named like a keyword is not one.
        assert_eq!(
            Script::parse(b"<?php $exit = $o->echo; ?>t").printed_text(),
            b"t"
        );
        // `return` inside a function only leaves the function.
        assert_eq!(
            Script::parse(b"<?php function f() { return 1; } ?>t").printed_text(),
            b"t"
        );
    }
}
