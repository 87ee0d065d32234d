//! The text a `.php` file prints around its code, and whether that text is certainly all it
//! prints.
//!
//! The legacy pages are HTML files with a leading `<?php setcookie(…); ?>` block. The server does
//! the code natively and takes the HTML from the operator's own file (`head`/`tail`), so edits to
//! the site's pages keep working. Other `.php` files are never run: issue 10 says "never print a
//! byte PHP would not print", so their text is printed only when an allowlist proves their code
//! inert (whitespace, comments, `;`, and statements made of one plain literal). Anything else is
//! declined: an empty answer, never a guess and never a byte of source (`AJconn.php` holds the
//! database password). What PHP's scanner refuses outright (an unclosed comment, string or
//! heredoc; a literal statement with no `;`) is a parse error, which PHP-FPM answers with an
//! empty 500 under `display_errors=Off`.
//!
//! The lexing follows `Zend/zend_language_scanner.l` (PHP 8.2) as far as the allowlist needs, and
//! was checked against PHP 8.2 behind nginx with `chat-compat fuzz --class php_text`.

/// A PHP file split around its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Text before the first open tag (output before anything the code echoes).
    pub head: Vec<u8>,
    /// Text after the first code block: every later text segment, concatenated.
    pub tail: Vec<u8>,
    /// What the file's code is, as far as printing goes.
    pub verdict: Verdict,
}

/// What the code blocks of a file are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every block is on the allowlist: the text is all the file prints.
    Inert,
    /// Some block may print, stop or skip text: its output is not known without running it.
    Declined,
    /// PHP's compiler refuses the file, so nothing of it runs or prints.
    ParseError,
}

/// What a `.php` file that is not run answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Printed {
    /// Its text, which is certainly all it prints (200).
    Text(Vec<u8>),
    /// Nothing: its code might print something else (an empty 200, as code that echoes nothing).
    Declined,
    /// PHP's parse error: an empty 500.
    ParseError,
}

impl Script {
    /// Splits a PHP source file and judges its code.
    pub fn parse(source: &[u8]) -> Script {
        let mut lexer = Lexer::new(source);
        let mut script = Script {
            head: Vec::new(),
            tail: Vec::new(),
            verdict: Verdict::Inert,
        };
        let mut seen_code = false;
        loop {
            let rest = lexer.rest();
            let (text, tag) = match find_open_tag(rest) {
                Some((start, len)) => (&rest[..start], Some((start, len))),
                None => (rest, None),
            };
            let segment = if seen_code {
                &mut script.tail
            } else {
                &mut script.head
            };
            segment.extend_from_slice(text);
            let Some((start, len)) = tag else { break };
            seen_code = true;
            if len == 3 {
                // `<?=` echoes a value nobody computed here.
                lexer.decline();
            }
            lexer.at += start + len;
            if lexer.code(false) != End::Close {
                break;
            }
        }
        script.verdict = if lexer.gave_up {
            Verdict::Declined
        } else if lexer.error {
            Verdict::ParseError
        } else if lexer.inert {
            Verdict::Inert
        } else {
            Verdict::Declined
        };
        script
    }

    /// Everything the file prints when its code echoes `output`.
    pub fn around(&self, output: &[u8]) -> Vec<u8> {
        [&self.head[..], output, &self.tail[..]].concat()
    }

    /// What the file answers when its code is not run. Never a byte of its code.
    pub fn printed(&self) -> Printed {
        match self.verdict {
            Verdict::Inert => Printed::Text(self.around(b"")),
            Verdict::Declined => Printed::Declined,
            Verdict::ParseError => Printed::ParseError,
        }
    }
}

/// Finds `<?php` followed by whitespace or the end of the file (case-insensitive), or `<?=`;
/// returns its offset and length. Short `<?` tags are off in production php.ini, so they are
/// text, and so is `<?phpx`.
pub(crate) fn find_open_tag(text: &[u8]) -> Option<(usize, usize)> {
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

/// How a stretch of code ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// `?>` (and the line ending it swallows): text follows.
    Close,
    /// The `}` closing a `{$…}` inside a string.
    Brace,
    /// The end of the file, or `__halt_compiler`, after which nothing is code or printed.
    Eof,
}

/// PHP's scanner, reduced to what the allowlist needs: where code ends, whether every token so
/// far is inert, and whether the file is one PHP refuses to compile.
struct Lexer<'a> {
    src: &'a [u8],
    at: usize,
    /// Every token so far is on the allowlist.
    inert: bool,
    /// A parse error was found: an unclosed construct, or a literal statement with no `;`.
    error: bool,
    /// `{$…}` inside strings inside `{$…}`, how deep: bounded so that no file can exhaust the
    /// stack of the task that reads it.
    nesting: usize,
    /// The file nests deeper than [`MAX_NESTING`]: not followed further, so declined.
    gave_up: bool,
}

/// Deeper interpolations than any real file holds.
const MAX_NESTING: usize = 32;

impl<'a> Lexer<'a> {
    fn new(src: &'a [u8]) -> Self {
        Lexer {
            src,
            at: 0,
            inert: true,
            error: false,
            nesting: 0,
            gave_up: false,
        }
    }

    fn peek(&self, offset: usize) -> Option<u8> {
        self.src.get(self.at + offset).copied()
    }

    fn rest(&self) -> &'a [u8] {
        self.src.get(self.at..).unwrap_or_default()
    }

    /// A token off the allowlist: from here on only lexical errors are looked for, since the
    /// grammar of arbitrary code is PHP's to judge.
    fn decline(&mut self) {
        self.inert = false;
    }

    /// Lexes code from `at`; `nested` inside a string's `{$…}`, which ends at its `}`.
    fn code(&mut self, nested: bool) -> End {
        let mut flow = Flow::new(!nested);
        loop {
            let Some(byte) = self.peek(0) else {
                if nested || flow.pending {
                    // Inside `{$…}`, or after a literal statement with no `;`.
                    self.error = true;
                }
                return End::Eof;
            };
            let next = self.peek(1);
            match (byte, next) {
                (b' ' | b'\t' | b'\n' | b'\r', _) => self.at += 1,
                (b'?', Some(b'>')) if !nested => {
                    self.at += 2;
                    self.eat_one_newline();
                    return End::Close;
                }
                (b'#', Some(b'[')) => {
                    // PHP 8: an attribute, which is code.
                    self.decline();
                    flow.other();
                    self.at += 2;
                }
                (b'#', _) | (b'/', Some(b'/')) => {
                    if self.line_comment() {
                        // `?>` ends the comment and the code, and stands for the `;`; inside
                        // `{$…}` it leaves a string open, which PHP refuses to compile.
                        if nested {
                            self.error = true;
                            return End::Eof;
                        }
                        return End::Close;
                    }
                }
                (b'/', Some(b'*')) => {
                    if !self.block_comment() {
                        return End::Eof;
                    }
                }
                (b'\'' | b'"' | b'0'..=b'9', _) | (b'<', Some(b'<'))
                    if byte != b'<' || heredoc_label(self.rest()).is_some() =>
                {
                    let Some(inert) = self.literal() else {
                        return End::Eof;
                    };
                    if !inert {
                        self.decline();
                    }
                    if flow.literal() {
                        // Two literals in a row: `'a' 'b'` does not compile.
                        self.error = true;
                    }
                }
                (b'`', _) => {
                    self.decline();
                    flow.other();
                    self.at += 1;
                    if !self.interpolated(b'`') {
                        return End::Eof;
                    }
                }
                (b'}', _) if nested && flow.depth == 0 => {
                    self.at += 1;
                    return End::Brace;
                }
                (byte, _) if is_identifier_start(byte) => {
                    self.decline();
                    flow.other();
                    let end = identifier_end(self.src, self.at);
                    if self.src[self.at..end].eq_ignore_ascii_case(b"__halt_compiler") {
                        // What follows is data, never code or text.
                        return End::Eof;
                    }
                    self.at = end;
                }
                (byte, _) => {
                    if byte != b';' {
                        self.decline();
                    }
                    flow.punctuation(byte);
                    self.at += 1;
                }
            }
        }
    }

    /// A literal at `at` (string, heredoc, nowdoc, number): `Some(inert)` after it, `None` when
    /// it never closes.
    fn literal(&mut self) -> Option<bool> {
        match self.src[self.at] {
            b'\'' => {
                self.at += 1;
                self.single_quoted().then_some(true)
            }
            b'"' => {
                self.at += 1;
                let before = self.inert;
                self.inert = true;
                let closed = self.interpolated(b'"');
                let inert = self.inert;
                self.inert = before;
                closed.then_some(inert)
            }
            b'<' => {
                let (label, nowdoc, header) = heredoc_label(self.rest())?;
                self.at += header;
                self.heredoc(label, nowdoc)
            }
            _ => Some(self.number()),
        }
    }

    /// `'…'`: only `\'` and `\\` are escapes. False when unclosed.
    fn single_quoted(&mut self) -> bool {
        while let Some(byte) = self.peek(0) {
            match byte {
                b'\\' => self.at += 2,
                b'\'' => {
                    self.at += 1;
                    return true;
                }
                _ => self.at += 1,
            }
        }
        self.error = true;
        false
    }

    /// A double-quoted or backtick string from just after its quote. `$` (a variable or
    /// `{$…}`/`${…}`) and `\u` decline it. False when unclosed.
    fn interpolated(&mut self, quote: u8) -> bool {
        while let Some(byte) = self.peek(0) {
            if byte == quote {
                self.at += 1;
                return true;
            }
            if !self.interpolated_byte() {
                return false;
            }
        }
        self.error = true;
        false
    }

    /// One step inside an interpolating string or heredoc: an escape, an interpolation or a
    /// plain byte. False when an interpolation runs off the end of the file.
    fn interpolated_byte(&mut self) -> bool {
        match (self.src[self.at], self.peek(1)) {
            (b'\\', Some(b'u')) => {
                self.decline();
                self.unicode_escape();
            }
            // A backslash before a line end is a plain byte: the line still ends there.
            (b'\\', Some(next)) if next != b'\n' && next != b'\r' => self.at += 2,
            (b'$', Some(b'{')) | (b'{', Some(b'$')) => {
                self.decline();
                if self.nesting == MAX_NESTING {
                    self.gave_up = true;
                    return false;
                }
                self.at += usize::from(self.src[self.at] == b'$') + 1;
                self.nesting += 1;
                let end = self.code(true);
                self.nesting -= 1;
                if end != End::Brace {
                    return false;
                }
            }
            (b'$', _) => {
                self.decline();
                self.at += 1;
            }
            _ => self.at += 1,
        }
        true
    }

    /// `\u{hex}` must name a code point up to U+10FFFF, or the file does not compile;
    /// `\u` without `{` is two plain bytes.
    fn unicode_escape(&mut self) {
        self.at += 2;
        if self.peek(0) != Some(b'{') {
            return;
        }
        self.at += 1;
        let digits = self
            .rest()
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        let value = std::str::from_utf8(&self.rest()[..digits])
            .ok()
            .and_then(|hex| u32::from_str_radix(hex, 16).ok());
        self.at += digits;
        let valid = digits > 0 && value.is_some_and(|v| v <= 0x10_FFFF);
        if !valid || self.peek(0) != Some(b'}') {
            self.error = true;
            return;
        }
        self.at += 1;
    }

    /// A heredoc or nowdoc body from just after its header line, up to its closing label.
    /// Inert when it has no `$`, no `\u` and a closing label at the start of its line.
    fn heredoc(&mut self, label: &[u8], nowdoc: bool) -> Option<bool> {
        let before = self.inert;
        self.inert = true;
        let body_start = self.at;
        let closed = loop {
            let line_start = self.at;
            let indent = self
                .rest()
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count();
            let at_label = &self.rest()[indent..];
            if at_label.starts_with(label)
                && !at_label
                    .get(label.len())
                    .copied()
                    .is_some_and(is_identifier_byte)
            {
                self.at += indent + label.len();
                if indent > 0 {
                    // A flexible heredoc strips its indentation from every line; PHP refuses
                    // lines indented less. Correct or not, not inert.
                    self.decline();
                    let indentation = &self.src[line_start..line_start + indent];
                    if !indented_body(&self.src[body_start..line_start], indentation) {
                        self.error = true;
                    }
                }
                break true;
            }
            if !self.heredoc_line(nowdoc) {
                break false;
            }
        };
        let inert = self.inert;
        self.inert = before;
        if !closed {
            self.error = true;
        }
        closed.then_some(inert)
    }

    /// One body line up to and including its line ending (`\n`, `\r\n` or a lone `\r`). False
    /// at the end of the file.
    fn heredoc_line(&mut self, nowdoc: bool) -> bool {
        loop {
            match self.peek(0) {
                None => return false,
                Some(b'\n') => {
                    self.at += 1;
                    return true;
                }
                Some(b'\r') => {
                    self.at += 1;
                    if self.peek(0) == Some(b'\n') {
                        self.at += 1;
                    }
                    return true;
                }
                Some(_) if nowdoc => self.at += 1,
                Some(_) => {
                    if !self.interpolated_byte() {
                        return false;
                    }
                }
            }
        }
    }

    /// A number: inert only as a plain decimal integer (`0` or no leading zero, no `_`, no
    /// `.`, no exponent). An octal literal with an 8 or 9 (`08`) does not compile.
    fn number(&mut self) -> bool {
        let len = self
            .rest()
            .iter()
            .take_while(|&&b| is_identifier_byte(b) || b == b'.')
            .count();
        let token = &self.rest()[..len];
        self.at += len;
        let digits = token.iter().all(u8::is_ascii_digit);
        if digits && token[0] == b'0' && token.iter().any(|&b| b == b'8' || b == b'9') {
            self.error = true;
        }
        digits && (token == b"0" || token[0] != b'0')
    }

    /// `//` or `#` comment: it ends at `\n`, at a lone `\r` or at `?>`, which leaves PHP mode
    /// even there. True when it ended at `?>` (consumed, with its line ending).
    fn line_comment(&mut self) -> bool {
        while let Some(byte) = self.peek(0) {
            match (byte, self.peek(1)) {
                (b'\n' | b'\r', _) => return false,
                (b'?', Some(b'>')) => {
                    self.at += 2;
                    self.eat_one_newline();
                    return true;
                }
                _ => self.at += 1,
            }
        }
        false
    }

    /// `/* … */` (and `/** … */`); `?>` inside does not end code. False when unclosed.
    fn block_comment(&mut self) -> bool {
        match find(&self.rest()[2..], b"*/") {
            Some(end) => {
                self.at += 2 + end + 2;
                true
            }
            None => {
                self.at = self.src.len();
                self.error = true;
                false
            }
        }
    }

    /// `?>` swallows one line ending right after it (`{NEWLINE}?` in the scanner).
    fn eat_one_newline(&mut self) {
        if self.rest().starts_with(b"\r\n") {
            self.at += 2;
        } else if matches!(self.peek(0), Some(b'\n' | b'\r')) {
            self.at += 1;
        }
    }
}

/// Where statements start and end, as far as telling a literal statement without its `;` needs:
/// `'a' 'b'` and `'a'` at the end of the file do not compile, wherever they stand.
struct Flow {
    /// At the start of a statement (block start, after `;`, `{` or `}` outside parentheses).
    start: bool,
    /// The last token is a literal that started a statement: it needs `;` or `?>` next.
    pending: bool,
    /// Open `(` and `[`: a `;` inside them (`for (;;)`) ends no statement.
    parens: usize,
    /// Open `{`, for the end of a `{$…}`.
    depth: usize,
}

impl Flow {
    fn new(start: bool) -> Flow {
        Flow {
            start,
            pending: false,
            parens: 0,
            depth: 0,
        }
    }

    /// A literal: true when it follows a literal statement (a parse error).
    fn literal(&mut self) -> bool {
        let error = self.pending;
        self.pending = self.start;
        self.start = false;
        error
    }

    /// Any other token.
    fn other(&mut self) {
        self.pending = false;
        self.start = false;
    }

    /// A punctuation byte.
    fn punctuation(&mut self, byte: u8) {
        self.other();
        match byte {
            b'(' | b'[' => self.parens += 1,
            b')' | b']' => self.parens = self.parens.saturating_sub(1),
            b'{' => self.depth += 1,
            b'}' => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
        self.start = self.parens == 0 && matches!(byte, b';' | b'{' | b'}');
    }
}

/// `<<<` + spaces/tabs + `ID`, `"ID"` or `'ID'` (nowdoc) + a line ending: the label, whether it
/// is a nowdoc, and the header's length. `None` when `<<` starts no heredoc.
fn heredoc_label(code: &[u8]) -> Option<(&[u8], bool, usize)> {
    let mut i = 3;
    if !code.starts_with(b"<<<") {
        return None;
    }
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
    let end = identifier_end(code, i);
    if end == i {
        return None;
    }
    let label = &code[i..end];
    i = end;
    if let Some(q) = quote {
        if code.get(i) != Some(&q) {
            return None;
        }
        i += 1;
    }
    match (code.get(i), code.get(i + 1)) {
        (Some(b'\r'), Some(b'\n')) => i += 2,
        (Some(b'\n' | b'\r'), _) => i += 1,
        _ => return None,
    }
    Some((label, quote == Some(b'\''), i))
}

/// Whether every line of a flexible heredoc's body carries its closing label's indentation
/// (lines holding only a line ending are exempt, as in PHP).
fn indented_body(body: &[u8], indentation: &[u8]) -> bool {
    body.split_inclusive(|&b| b == b'\n' || b == b'\r')
        .all(|line| line == b"\n" || line == b"\r" || line.starts_with(indentation))
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

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests;
