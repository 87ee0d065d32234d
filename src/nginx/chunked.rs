//! A chunked request body as nginx 1.22 decodes it (`ngx_http_parse_chunked`): hex sizes with
//! optional extensions after `;`, space or tab, CRLF or bare LF line ends, trailers skipped.
//! Anything else is 400; a body growing past the size limit is 413 as soon as a chunk size
//! says so.

use super::Refusal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Size,
    Extension,
    SizeAlmostDone,
    Data,
    AfterData,
    AfterDataAlmostDone,
    Trailer,
    TrailerAlmostDone,
    TrailerHeader,
    TrailerHeaderAlmostDone,
    Done,
}

/// Incremental decoder; feed it bytes as they arrive.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    size: u64,
    total: u64,
    limit: u64,
}

/// What a call to [`Decoder::feed`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// All bytes were used; more are needed.
    NeedMore,
    /// The body ended after this many of the bytes given.
    Done(usize),
}

impl Decoder {
    /// A decoder refusing bodies longer than `limit` bytes.
    pub fn new(limit: u64) -> Decoder {
        Decoder {
            state: State::Start,
            size: 0,
            total: 0,
            limit,
        }
    }

    /// Decodes `input`, appending data to `body`.
    pub fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<Fed, Refusal> {
        let bad = Refusal::BadRequest;
        let mut i = 0;
        while i < input.len() {
            let byte = input[i];
            match self.state {
                State::Start | State::Size => match (self.state, super::hex_digit(byte)) {
                    (_, Some(digit)) => {
                        if self.size > (i64::MAX as u64) / 16 {
                            return Err(bad);
                        }
                        self.size = self.size * 16 + u64::from(digit);
                        self.state = State::Size;
                    }
                    (State::Start, None) => return Err(bad),
                    (_, None) => match byte {
                        b'\r' => self.state = State::SizeAlmostDone,
                        b'\n' => self.size_done()?,
                        b';' | b' ' | b'\t' => self.state = State::Extension,
                        _ => return Err(bad),
                    },
                },
                State::Extension => match byte {
                    b'\r' => self.state = State::SizeAlmostDone,
                    b'\n' => self.size_done()?,
                    _ => {}
                },
                State::SizeAlmostDone => match byte {
                    b'\n' => self.size_done()?,
                    _ => return Err(bad),
                },
                State::Data => {
                    let take = usize::try_from(self.size)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - i);
                    body.extend_from_slice(&input[i..i + take]);
                    self.size -= take as u64;
                    i += take;
                    if self.size == 0 {
                        self.state = State::AfterData;
                    }
                    continue;
                }
                State::AfterData => match byte {
                    b'\r' => self.state = State::AfterDataAlmostDone,
                    b'\n' => self.state = State::Start,
                    _ => return Err(bad),
                },
                State::AfterDataAlmostDone => match byte {
                    b'\n' => self.state = State::Start,
                    _ => return Err(bad),
                },
                State::Trailer => match byte {
                    b'\r' => self.state = State::TrailerAlmostDone,
                    b'\n' => self.state = State::Done,
                    _ => self.state = State::TrailerHeader,
                },
                State::TrailerAlmostDone => match byte {
                    b'\n' => self.state = State::Done,
                    _ => return Err(bad),
                },
                State::TrailerHeader => match byte {
                    b'\r' => self.state = State::TrailerHeaderAlmostDone,
                    b'\n' => self.state = State::Trailer,
                    _ => {}
                },
                State::TrailerHeaderAlmostDone => match byte {
                    b'\n' => self.state = State::Trailer,
                    _ => return Err(bad),
                },
                State::Done => return Ok(Fed::Done(i)),
            }
            i += 1;
            if self.state == State::Done {
                return Ok(Fed::Done(i));
            }
        }
        Ok(if self.state == State::Done {
            Fed::Done(i)
        } else {
            Fed::NeedMore
        })
    }

    fn size_done(&mut self) -> Result<(), Refusal> {
        if self.size == 0 {
            self.state = State::Trailer;
            return Ok(());
        }
        self.total = self.total.saturating_add(self.size);
        if self.total > self.limit {
            return Err(Refusal::EntityTooLarge);
        }
        self.state = State::Data;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8]) -> Result<(Vec<u8>, usize), Refusal> {
        let mut body = Vec::new();
        match Decoder::new(1 << 20).feed(input, &mut body)? {
            Fed::Done(used) => Ok((body, used)),
            Fed::NeedMore => panic!("incomplete: {input:?}"),
        }
    }

    #[test]
    fn accepts_what_nginx_accepts() {
        assert_eq!(decode(b"5\r\nrec=1\r\n0\r\n\r\n").expect("ok").0, b"rec=1");
        assert_eq!(
            decode(b"5;a=b\r\nrec=1\r\n0\r\nX-T: 1\r\n\r\n")
                .expect("ok")
                .0,
            b"rec=1"
        );
        assert_eq!(decode(b"5 \r\nrec=1\r\n0\r\n\r\n").expect("ok").0, b"rec=1");
        assert_eq!(decode(b"5\nrec=1\n0\n\n").expect("ok").0, b"rec=1");
        assert_eq!(decode(b"0\r\n\r\nGET").expect("ok").1, 5);
    }

    #[test]
    fn refuses_what_nginx_refuses() {
        assert_eq!(
            decode(b"zz\r\nrec=1\r\n0\r\n\r\n"),
            Err(Refusal::BadRequest)
        );
        assert_eq!(decode(b"ffffffffffffffffff\r\n"), Err(Refusal::BadRequest));
        assert_eq!(decode(b"5\r\nrec=1XX0\r\n\r\n"), Err(Refusal::BadRequest));
        assert_eq!(
            decode(b"\r\n5\r\nrec=1\r\n0\r\n\r\n"),
            Err(Refusal::BadRequest)
        );
        assert_eq!(decode(b"200000\r\n"), Err(Refusal::EntityTooLarge));
    }

    #[test]
    fn byte_at_a_time_gives_the_same_body() {
        let input = b"3\r\nabc\r\n2;x\r\nde\r\n0\r\nT: 1\r\n\r\n";
        let mut decoder = Decoder::new(100);
        let mut body = Vec::new();
        for (i, byte) in input.iter().enumerate() {
            let fed = decoder
                .feed(std::slice::from_ref(byte), &mut body)
                .expect("ok");
            if i + 1 == input.len() {
                assert_eq!(fed, Fed::Done(1));
            } else {
                assert_eq!(fed, Fed::NeedMore);
            }
        }
        assert_eq!(body, b"abcde");
    }
}
