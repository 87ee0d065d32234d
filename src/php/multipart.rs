//! `$_POST` from a `multipart/form-data` body, as PHP 8.2's `rfc1867_post_handler`
//! (`main/rfc1867.c`) builds it.
//!
//! PHP reads the body through a 5 KiB window (`multipart_buffer`, from libapreq): lines are found
//! inside that window, a line longer than it comes back in window-sized pieces, and field data
//! ends at the first `\n--boundary` (a partial match at the end of the window counts until the
//! window is refilled). Which bytes end up in a field follows from that mechanism, so it is
//! reproduced here as it is, over the body already in memory, instead of being re-derived from
//! the RFC.
//!
//! What lands in `$_POST`: each part whose `Content-Disposition` has a `name=` and no
//! `filename=`, registered like any POST variable (`rec[]` makes `rec` an array, which the
//! scripts read as `Array`). Parts with `filename=` go to `$_FILES`, never `$_POST`, but their
//! data is still read (or skipped) the way PHP does, since that decides where the next part
//! starts. Limits, with PHP's defaults (`php.ini-production` keeps them):
//!
//! - `post_max_size` (8M): a larger body gives an empty `$_POST`;
//! - `max_input_vars` (1000): later fields are dropped, parsing goes on;
//! - `max_multipart_body_parts` (`max_input_vars + max_file_uploads`): parsing stops;
//! - `max_file_uploads` (20): later file parts are skipped, not read;
//! - `upload_max_filesize` (2M) and a preceding `MAX_FILE_SIZE` field: the file stops being
//!   read at the window that crosses it.
//!
//! A missing boundary, or a `Content-Disposition` with neither `name` nor `filename`, ends
//! parsing with what was registered so far; a part without `Content-Disposition` is passed over.

use super::vars::{Duplicates, Vars, MAX_INPUT_VARS};

/// PHP's `FILLUNIT`: the window the body is read through.
const FILLUNIT: usize = 5 * 1024;

/// The ini settings that bound multipart parsing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `max_input_vars`.
    pub max_input_vars: usize,
    /// `max_file_uploads`.
    pub max_file_uploads: usize,
    /// `upload_max_filesize`, bytes.
    pub upload_max_filesize: u64,
    /// `post_max_size`, bytes.
    pub post_max_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_vars: MAX_INPUT_VARS,
            max_file_uploads: 20,
            upload_max_filesize: 2 * 1024 * 1024,
            post_max_size: 8 * 1024 * 1024,
        }
    }
}

/// Whether PHP hands this Content-Type to the multipart parser: its type, lower-cased and cut at
/// the first `;`, `,` or space, is `multipart/form-data`.
pub fn is_multipart(content_type: &[u8]) -> bool {
    let mime = content_type
        .split(|&b| matches!(b, b';' | b',' | b' '))
        .next()
        .unwrap_or_default();
    mime.eq_ignore_ascii_case(b"multipart/form-data")
}

/// The boundary PHP takes from a Content-Type: after the first `boundary` (any case) and the
/// `=` following it; quoted up to the closing `"`, else up to `,` or `;`.
pub fn boundary(content_type: &[u8]) -> Option<Vec<u8>> {
    let content_type = c_str(content_type);
    // SAPI lower-cases the type itself (up to the first `;`, `,` or space), not its parameters.
    let cut = content_type
        .iter()
        .position(|&b| matches!(b, b';' | b',' | b' '))
        .unwrap_or(content_type.len());
    let mut dup = content_type.to_vec();
    dup[..cut].make_ascii_lowercase();
    let at = find(&dup, b"boundary").or_else(|| find(&dup.to_ascii_lowercase(), b"boundary"))?;
    let eq = at + dup[at..].iter().position(|&b| b == b'=')?;
    let value = &dup[eq + 1..];
    let value = if let Some(quoted) = value.strip_prefix(b"\"") {
        &quoted[..quoted.iter().position(|&b| b == b'"')?]
    } else {
        let end = value
            .iter()
            .position(|&b| b == b',' || b == b';')
            .unwrap_or(value.len());
        &value[..end]
    };
    Some(value.to_vec())
}

/// Builds `$_POST` from a multipart body.
pub fn parse(body: &[u8], content_type: &[u8], limits: &Limits) -> Vars {
    let mut vars = Vars::default();
    if body.len() as u64 > limits.post_max_size {
        return vars;
    }
    let Some(boundary) = boundary(content_type) else {
        return vars;
    };
    let mut buffer = Window::new(body, &boundary);
    let mut fields = 0usize;
    let mut uploads_left = limits.max_file_uploads;
    let mut parts_left = limits.max_input_vars + limits.max_file_uploads;
    let mut max_file_size: u64 = 0;
    while !buffer.eof() {
        let Some(headers) = buffer.headers() else {
            break;
        };
        if parts_left == 0 {
            break;
        }
        parts_left -= 1;
        // A part without Content-Disposition is passed over.
        let Some((name, filename)) = headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(b"content-disposition"))
            .map(|(_, value)| disposition(value))
        else {
            continue;
        };
        if let (Some(name), None) = (&name, &filename) {
            let value = buffer.read_body();
            fields += 1;
            if fields <= limits.max_input_vars {
                vars.register(name, value.clone(), Duplicates::LastWins);
            }
            if name.eq_ignore_ascii_case(b"MAX_FILE_SIZE") {
                max_file_size = strtoll(&value);
            }
            continue;
        }
        let Some(filename) = filename else {
            // "File Upload Mime headers garbled": no name at all ends parsing.
            break;
        };
        let skip = uploads_left == 0 || name.as_deref().is_some_and(|name| !brackets_ok(name));
        if skip || filename.is_empty() {
            // Skipped or empty file parts are not read; the next boundary is searched for.
            continue;
        }
        uploads_left -= 1;
        let mut total: u64 = 0;
        loop {
            let chunk = buffer.read(FILLUNIT);
            if chunk.is_empty() {
                break;
            }
            total += chunk.len() as u64;
            let over_ini = limits.upload_max_filesize > 0 && total > limits.upload_max_filesize;
            let over_form = max_file_size > 0 && total > max_file_size;
            if over_ini || over_form {
                break;
            }
        }
    }
    vars
}

/// `name` and `filename` of a `Content-Disposition` value (`php_ap_getword` pairs split at `;`,
/// values through `php_ap_getword_conf`). Anything else in it (even a missing `form-data`) is
/// ignored, as PHP ignores it.
fn disposition(value: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let (mut name, mut filename) = (None, None);
    let mut rest = skip_space(value);
    while !rest.is_empty() {
        let (pair, after) = getword(rest, b';');
        rest = skip_space(after);
        if !pair.contains(&b'=') {
            continue;
        }
        let (key, value) = getword(pair, b'=');
        if key.eq_ignore_ascii_case(b"name") {
            name = Some(getword_conf(value));
        } else if key.eq_ignore_ascii_case(b"filename") {
            filename = Some(getword_conf(value));
        }
    }
    (name, filename)
}

/// `php_ap_getword`: up to `stop` outside quotes; the stop bytes after it are skipped.
fn getword(line: &[u8], stop: u8) -> (&[u8], &[u8]) {
    let mut pos = 0;
    while pos < line.len() && line[pos] != stop {
        let quote = line[pos];
        if quote == b'"' || quote == b'\'' {
            pos += 1;
            while pos < line.len() && line[pos] != quote {
                if line[pos] == b'\\' && line.get(pos + 1) == Some(&quote) {
                    pos += 2;
                } else {
                    pos += 1;
                }
            }
            if pos < line.len() {
                pos += 1;
            }
        } else {
            pos += 1;
        }
    }
    let pos = pos.min(line.len());
    let word = &line[..pos];
    let mut after = pos;
    while after < line.len() && line[after] == stop {
        after += 1;
    }
    (word, &line[after..])
}

/// `php_ap_getword_conf`: a quoted value up to its closing quote (`\"` and `\\` unescaped), or
/// an unquoted one up to the first space.
fn getword_conf(value: &[u8]) -> Vec<u8> {
    let value = skip_space(value);
    match value.first() {
        Some(&quote @ (b'"' | b'\'')) => substring_conf(&value[1..], Some(quote)),
        _ => {
            let end = value
                .iter()
                .position(|&b| is_space(b))
                .unwrap_or(value.len());
            substring_conf(&value[..end], None)
        }
    }
}

fn substring_conf(text: &[u8], quote: Option<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() && Some(text[i]) != quote {
        let next = text.get(i + 1).copied();
        if text[i] == b'\\' && (next == Some(b'\\') || (quote.is_some() && next == quote)) {
            i += 1;
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

/// The "never repair potential malicious user input" check on file field names.
fn brackets_ok(name: &[u8]) -> bool {
    let mut depth: i64 = 0;
    for (i, &b) in name.iter().enumerate() {
        if b == b'[' {
            depth += 1;
        } else if b == b']' {
            depth -= 1;
            if name.get(i + 1).is_some_and(|&next| next != b'[') {
                return false;
            }
        }
        if depth < 0 {
            return false;
        }
    }
    depth == 0
}

/// `strtoll(value, NULL, 10)`, saturating, negative as 0 (no limit).
fn strtoll(value: &[u8]) -> u64 {
    let text = skip_space(value);
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let number = digits
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |acc, &b| {
            acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
        });
    if negative {
        0
    } else {
        number
    }
}

/// C's `isspace`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn skip_space(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(text.len());
    &text[start..]
}

/// The bytes a C string function sees: up to the first NUL.
fn c_str(text: &[u8]) -> &[u8] {
    text.split(|&b| b == 0).next().unwrap_or_default()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// PHP's `multipart_buffer`: a window of at most `size` bytes over the body. The window is
/// `data[start..]`; consumed bytes are dropped only when the window is refilled, so each byte is
/// moved a bounded number of times.
struct Window<'a> {
    input: &'a [u8],
    data: Vec<u8>,
    start: usize,
    size: usize,
    /// `--boundary`
    boundary: Vec<u8>,
    /// `\n--boundary`
    boundary_next: Vec<u8>,
}

impl<'a> Window<'a> {
    fn new(input: &'a [u8], boundary: &[u8]) -> Window<'a> {
        Window {
            input,
            data: Vec::new(),
            start: 0,
            size: (boundary.len() + 6).max(FILLUNIT),
            boundary: [&b"--"[..], boundary].concat(),
            boundary_next: [&b"\n--"[..], boundary].concat(),
        }
    }

    fn window(&self) -> &[u8] {
        &self.data[self.start..]
    }

    fn consume(&mut self, len: usize) {
        self.start += len;
    }

    /// `fill_buffer`: tops the window up from the body; the number of bytes added.
    fn fill(&mut self) -> usize {
        self.data.drain(..self.start);
        self.start = 0;
        let take = (self.size - self.data.len()).min(self.input.len());
        self.data.extend_from_slice(&self.input[..take]);
        self.input = &self.input[take..];
        take
    }

    fn eof(&mut self) -> bool {
        self.window().is_empty() && self.fill() == 0
    }

    /// `next_line`: a line without its `\n` (and one `\r` before it), or the whole window when
    /// it is full and has no `\n`.
    fn next_line(&mut self) -> Option<Vec<u8>> {
        let window = self.window();
        if let Some(lf) = window.iter().position(|&b| b == b'\n') {
            let end = if lf > 0 && window[lf - 1] == b'\r' {
                lf - 1
            } else {
                lf
            };
            let line = window[..end].to_vec();
            self.consume(lf + 1);
            return Some(line);
        }
        if window.len() < self.size {
            return None;
        }
        let line = window.to_vec();
        self.consume(line.len());
        Some(line)
    }

    fn get_line(&mut self) -> Option<Vec<u8>> {
        if let Some(line) = self.next_line() {
            return Some(line);
        }
        self.fill();
        self.next_line()
    }

    /// `multipart_buffer_headers`: skips to the next `--boundary` line, then reads the part's
    /// header lines (continuations appended). `None` when no boundary line is left.
    fn headers(&mut self) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        loop {
            let line = self.get_line()?;
            if c_str(&line) == self.boundary.as_slice() {
                break;
            }
        }
        let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut current: Option<(Vec<u8>, Vec<u8>)> = None;
        while let Some(line) = self.get_line() {
            let line = c_str(&line);
            if line.is_empty() {
                break;
            }
            let colon = if is_space(line[0]) {
                None
            } else {
                line.iter().position(|&b| b == b':')
            };
            if let Some(colon) = colon {
                headers.extend(current.take());
                let value = skip_space(&line[colon + 1..]);
                current = Some((line[..colon].to_vec(), value.to_vec()));
            } else if let Some((_, value)) = current.as_mut() {
                value.extend_from_slice(line);
            }
        }
        headers.extend(current);
        Some(headers)
    }

    /// `multipart_buffer_read`: up to `bytes - 1` bytes of part data, stopping before a
    /// (possibly partial) `\n--boundary`, without the `\r` right before it.
    fn read(&mut self, bytes: usize) -> Vec<u8> {
        if bytes > self.window().len() {
            self.fill();
        }
        let window = self.window();
        let bound = memstr(window, &self.boundary_next);
        let mut len = bound.unwrap_or(window.len()).min(bytes - 1);
        if len == 0 {
            return Vec::new();
        }
        let mut out = window[..len].to_vec();
        if bound.is_some() && out.last() == Some(&b'\r') {
            out.pop();
            len -= 1;
        }
        self.consume(len);
        out
    }

    /// `multipart_buffer_read_body`: a field's whole value.
    fn read_body(&mut self) -> Vec<u8> {
        let mut value = Vec::new();
        loop {
            let chunk = self.read(FILLUNIT);
            if chunk.is_empty() {
                return value;
            }
            value.extend_from_slice(&chunk);
        }
    }
}

/// `php_ap_memstr(…, partial = 1)`: the first place `needle` (which starts with its only `\n`)
/// starts, allowing it to run off the end of `haystack`. Only `\n` can start a match, and a
/// failed comparison never crosses the next `\n`, so the scan is linear.
fn memstr(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(offset) = haystack[from..].iter().position(|&b| b == needle[0]) {
        let at = from + offset;
        let rest = &haystack[at..];
        let n = needle.len().min(rest.len());
        if rest[..n] == needle[..n] {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests;
