//! Request bodies as nginx 1.22 keeps them: up to `client_body_buffer_size` (16k) in memory,
//! anything longer written as it arrives to an unlinked temporary file (nginx's
//! `client_body_temp_path`), so an upload of up to `client_max_body_size` costs a connection
//! 16k of memory whatever its size, and a thousand parallel uploads no more than that each.
//!
//! The file lives in the system's temporary directory (`TMPDIR`) and has no name from the start:
//! it goes when the request does, however the request ends.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

/// nginx's `client_body_buffer_size` on 64-bit platforms.
pub const BODY_BUFFER: usize = 16 * 1024;

/// A whole request body (de-chunked): `php://input`.
#[derive(Debug, Clone)]
pub enum RequestBody {
    /// Up to [`BODY_BUFFER`].
    Memory(Bytes),
    /// Longer: in a temporary file.
    Spooled {
        /// The unlinked file.
        file: Arc<File>,
        /// How much of it is the body.
        len: u64,
    },
}

impl Default for RequestBody {
    fn default() -> RequestBody {
        RequestBody::Memory(Bytes::new())
    }
}

impl RequestBody {
    /// The body's length.
    pub fn len(&self) -> usize {
        match self {
            RequestBody::Memory(bytes) => bytes.len(),
            RequestBody::Spooled { len, .. } => usize::try_from(*len).unwrap_or(usize::MAX),
        }
    }

    /// At most `most` bytes from `offset` (fewer only at the end).
    pub async fn chunk(&self, offset: usize, most: usize) -> io::Result<Bytes> {
        let end = self.len().min(offset.saturating_add(most));
        let start = offset.min(end);
        match self {
            RequestBody::Memory(bytes) => Ok(bytes.slice(start..end)),
            RequestBody::Spooled { file, .. } => {
                let file = Arc::clone(file);
                tokio::task::spawn_blocking(move || {
                    let mut chunk = vec![0; end - start];
                    file.read_exact_at(&mut chunk, start as u64)?;
                    Ok(Bytes::from(chunk))
                })
                .await
                .map_err(io::Error::other)?
            }
        }
    }

    /// The whole body in memory (the reimplemented scripts parse it; it is at most
    /// `client_max_body_size`).
    pub async fn bytes(&self) -> io::Result<Bytes> {
        self.chunk(0, self.len()).await
    }
}

/// Collects a body as it arrives: in memory up to [`BODY_BUFFER`], then in a temporary file,
/// written a buffer at a time as nginx writes its buffer when it is full.
#[derive(Debug, Default)]
pub struct Spooler {
    buffer: Vec<u8>,
    file: Option<File>,
    written: u64,
}

impl Spooler {
    /// Bytes of the body that arrived. The file is written on the calling thread, as nginx's
    /// worker writes it: to the page cache, a buffer at a time.
    pub fn push(&mut self, data: &[u8]) -> io::Result<()> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() > BODY_BUFFER {
            self.spill()?;
        }
        Ok(())
    }

    /// The decoded bytes a chunked body collects in; kept below [`BODY_BUFFER`] (plus what one
    /// read decodes) by [`Spooler::settle`].
    pub fn buffer_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    /// Spills the buffer once it grew past [`BODY_BUFFER`] through [`Spooler::buffer_mut`].
    pub fn settle(&mut self) -> io::Result<()> {
        self.push(&[])
    }

    /// The body: in memory when it fit, else the file.
    pub fn finish(mut self) -> io::Result<RequestBody> {
        if self.file.is_none() {
            return Ok(RequestBody::Memory(Bytes::from(self.buffer)));
        }
        self.spill()?;
        Ok(RequestBody::Spooled {
            file: Arc::new(self.file.take().expect("spilled")),
            len: self.written,
        })
    }

    fn spill(&mut self) -> io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(tempfile::tempfile()?),
        };
        file.write_all(&self.buffer)?;
        self.written += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body up to the buffer stays in memory; a longer one goes to a file, only a buffer of
    /// it in memory at any time, and reads back whole and in pieces.
    #[tokio::test]
    async fn bodies_past_the_buffer_go_to_a_file() {
        let small: Vec<u8> = (0..BODY_BUFFER).map(|n| n as u8).collect();
        let mut spooler = Spooler::default();
        spooler.push(&small).expect("push");
        assert!(matches!(spooler.finish(), Ok(RequestBody::Memory(bytes)) if bytes == small));

        let large: Vec<u8> = (0..1_000_000).map(|n| (n % 251) as u8).collect();
        let mut spooler = Spooler::default();
        for piece in large.chunks(4096) {
            spooler.push(piece).expect("push");
            assert!(spooler.buffer.len() <= BODY_BUFFER, "a buffer at most");
        }
        let body = spooler.finish().expect("finish");
        assert!(matches!(body, RequestBody::Spooled { len: 1_000_000, .. }));
        assert_eq!(body.len(), large.len());
        assert_eq!(body.bytes().await.expect("whole"), large);
        assert_eq!(
            body.chunk(999_990, 100).await.expect("the end"),
            large[999_990..]
        );
        assert_eq!(body.chunk(5, 10).await.expect("a piece"), large[5..15]);
    }
}
