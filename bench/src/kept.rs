//! One HTTP/1.1 connection kept open across requests, as a browser keeps its connection to the
//! site between `$.post` calls: for `sends --keep-alive`. Reads exactly one response per
//! request (`Content-Length` or chunked), so the next request can follow on the same socket.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use chat_compat::http::find;

/// A client connection that stays open; reopened after the server closes it.
pub struct Kept {
    authority: String,
    stream: Option<TcpStream>,
    buffer: Vec<u8>,
}

impl Kept {
    /// Not connected yet: the first request connects.
    pub fn new(authority: &str) -> Kept {
        Kept {
            authority: authority.to_owned(),
            stream: None,
            buffer: Vec::new(),
        }
    }

    /// Sends `request` (which must not ask for `Connection: close`) and returns the response's
    /// status and body. The connection is dropped after an error or a `Connection: close` answer.
    pub async fn request(&mut self, request: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        let result = self.exchange(request).await;
        if !matches!(result, Ok((_, _, true))) {
            self.stream = None;
        }
        result.map(|(status, body, _)| (status, body))
    }

    async fn exchange(&mut self, request: &[u8]) -> io::Result<(u16, Vec<u8>, bool)> {
        if self.stream.is_none() {
            self.buffer.clear();
            let stream = TcpStream::connect(&self.authority).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected above");
        stream.write_all(request).await?;
        let head_end = loop {
            if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                break at + 4;
            }
            read_more(stream, &mut self.buffer).await?;
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).to_ascii_lowercase();
        let keep = !head.contains("\r\nconnection: close");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| io::Error::other("bad status line"))?;
        self.buffer.drain(..head_end);
        let body = match header(&head, "content-length") {
            Some(length) => {
                let length: usize = length
                    .parse()
                    .map_err(|_| io::Error::other("bad Content-Length"))?;
                while self.buffer.len() < length {
                    read_more(stream, &mut self.buffer).await?;
                }
                self.buffer.drain(..length).collect()
            }
            None => read_chunked(stream, &mut self.buffer).await?,
        };
        Ok((status, body, keep))
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(field, _)| field.trim() == name)
        .map(|(_, value)| value.trim())
}

async fn read_chunked(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(at) = find(buffer, b"\r\n") {
                break at;
            }
            read_more(stream, buffer).await?;
        };
        let size = std::str::from_utf8(&buffer[..line_end])
            .ok()
            .and_then(|line| usize::from_str_radix(line.split(';').next()?.trim(), 16).ok())
            .ok_or_else(|| io::Error::other("bad chunk size"))?;
        // The chunk, its CRLF; after the last (empty) chunk, the final CRLF.
        let needed = line_end + 2 + size + 2;
        while buffer.len() < needed {
            read_more(stream, buffer).await?;
        }
        body.extend_from_slice(&buffer[line_end + 2..line_end + 2 + size]);
        buffer.drain(..needed);
        if size == 0 {
            return Ok(body);
        }
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await? {
        0 => Err(io::ErrorKind::UnexpectedEof.into()),
        n => {
            buffer.extend_from_slice(&chunk[..n]);
            Ok(())
        }
    }
}
