//! The FastCGI 1.0 record format (the spec's section 3 and 8): what goes on the wire to PHP-FPM
//! and how its answer is cut back into records. Pure functions over bytes; the socket is in
//! [`super::upstream`].
//!
//! Written here rather than taken from `fastcgi-client`: that crate's `Params` is a `HashMap` of
//! UTF-8 strings, so it can neither keep nginx's parameter order (PHP's `$_SERVER` follows it),
//! nor send one `HTTP_COOKIE` per `Cookie` line as nginx 1.22 does, nor pass a header's non-UTF-8
//! bytes. The format itself is a few dozen lines.

/// `FCGI_BEGIN_REQUEST`.
pub const BEGIN_REQUEST: u8 = 1;
/// `FCGI_END_REQUEST`.
pub const END_REQUEST: u8 = 3;
/// `FCGI_PARAMS`.
pub const PARAMS: u8 = 4;
/// `FCGI_STDIN`.
pub const STDIN: u8 = 5;
/// `FCGI_STDOUT`.
pub const STDOUT: u8 = 6;
/// `FCGI_STDERR`.
pub const STDERR: u8 = 7;

/// The one request id on a connection, as nginx uses (requests are never multiplexed).
pub const REQUEST_ID: u16 = 1;
/// The record header's size.
pub const HEADER_LEN: usize = 8;
/// The most content one record carries.
pub const MAX_CONTENT: usize = 0xffff;

/// Appends one record of `kind` with `content` (at most [`MAX_CONTENT`] bytes), padded to a
/// multiple of 8 bytes as nginx pads its records.
pub fn push(out: &mut Vec<u8>, kind: u8, content: &[u8]) {
    debug_assert!(content.len() <= MAX_CONTENT);
    let len = u16::try_from(content.len()).expect("callers split content at MAX_CONTENT");
    let padding = (8 - content.len() % 8) % 8;
    let [hi, lo] = len.to_be_bytes();
    let [id_hi, id_lo] = REQUEST_ID.to_be_bytes();
    out.extend_from_slice(&[1, kind, id_hi, id_lo, hi, lo, padding as u8, 0]);
    out.extend_from_slice(content);
    out.resize(out.len() + padding, 0);
}

/// Appends `data` as records of `kind`, split at [`MAX_CONTENT`]; nothing for empty `data` (the
/// empty record that ends a stream is pushed by the caller).
pub fn push_stream(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    for piece in data.chunks(MAX_CONTENT) {
        push(out, kind, piece);
    }
}

/// `FCGI_BEGIN_REQUEST` for the responder role; `keep_conn` asks the application to leave the
/// connection open after the request.
pub fn begin_request(out: &mut Vec<u8>, keep_conn: bool) {
    push(
        out,
        BEGIN_REQUEST,
        &[0, 1, u8::from(keep_conn), 0, 0, 0, 0, 0],
    );
}

/// Encodes name-value pairs (the spec's section 3.4) in order, as the content of `FCGI_PARAMS`
/// records, followed by the empty record that ends them.
pub fn params<'a>(out: &mut Vec<u8>, pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) {
    let mut encoded = Vec::new();
    for (name, value) in pairs {
        push_length(&mut encoded, name.len());
        push_length(&mut encoded, value.len());
        encoded.extend_from_slice(name);
        encoded.extend_from_slice(value);
    }
    push_stream(out, PARAMS, &encoded);
    push(out, PARAMS, b"");
}

fn push_length(out: &mut Vec<u8>, len: usize) {
    match u8::try_from(len) {
        Ok(short) if short < 0x80 => out.push(short),
        // Header values are bounded by nginx's buffers, far below 2^31.
        _ => out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes()),
    }
}

/// A record header read off the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The record type.
    pub kind: u8,
    /// The request id it belongs to.
    pub request_id: u16,
    /// Bytes of content that follow.
    pub content_len: usize,
    /// Bytes of padding after the content.
    pub padding_len: usize,
}

/// Parses a record header; `None` when its version is not 1 (nginx: "upstream sent unsupported
/// FastCGI protocol version", a 502).
pub fn header(bytes: &[u8; HEADER_LEN]) -> Option<Header> {
    (bytes[0] == 1).then(|| Header {
        kind: bytes[1],
        request_id: u16::from_be_bytes([bytes[2], bytes[3]]),
        content_len: usize::from(u16::from_be_bytes([bytes[4], bytes[5]])),
        padding_len: usize::from(bytes[6]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_padded_to_eight_bytes() {
        let mut out = Vec::new();
        push(&mut out, STDIN, b"abc");
        assert_eq!(
            out,
            [1, 5, 0, 1, 0, 3, 5, 0, b'a', b'b', b'c', 0, 0, 0, 0, 0]
        );
        let mut out = Vec::new();
        push(&mut out, STDIN, b"");
        assert_eq!(out, [1, 5, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn long_names_and_values_take_four_length_bytes() {
        let mut out = Vec::new();
        let long = [b'v'; 200];
        params(&mut out, [(&b"A"[..], &long[..])]);
        // One record: 1 + 4 + 1 + 200 = 206 bytes of content, 2 of padding; then the empty one.
        assert_eq!(&out[..8], &[1, PARAMS, 0, 1, 0, 206, 2, 0]);
        assert_eq!(&out[8..14], &[1, 0x80, 0, 0, 200, b'A']);
        assert_eq!(&out[out.len() - 8..], &[1, PARAMS, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn big_streams_are_split_at_the_record_limit() {
        let mut out = Vec::new();
        push_stream(&mut out, STDIN, &vec![0; MAX_CONTENT + 1]);
        let first = header(out[..8].try_into().expect("8 bytes")).expect("version 1");
        assert_eq!(first.content_len, MAX_CONTENT);
        assert_eq!(first.padding_len, 1);
        let at = 8 + MAX_CONTENT + 1;
        let second = header(out[at..at + 8].try_into().expect("8 bytes")).expect("version 1");
        assert_eq!((second.kind, second.content_len), (STDIN, 1));
    }

    #[test]
    fn begin_request_asks_for_the_responder_role() {
        let mut out = Vec::new();
        begin_request(&mut out, true);
        assert_eq!(out, [1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
        assert!(header(&[2, 6, 0, 1, 0, 0, 0, 0]).is_none());
    }
}
