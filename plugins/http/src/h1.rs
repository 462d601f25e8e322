//! The `http` workload's own HTTP/1.1 exchange, built for load the way wrk's is: the
//! request's bytes are built once per run, each exchange is one write and the reads
//! its answer needs, and the answer's head is parsed in place (httparse) into the
//! three things a load generator needs (status, framing, keep-alive) with no
//! allocation. The general-purpose client (hyper, a connection task, a header map and
//! a body channel per request) cost a fifth more CPU per request than wrk; this costs
//! less (`BENCHMARKS.md`).
//!
//! It frames answers as RFC 9112 §6.3 says: no body for HEAD, 1xx, 204 and 304;
//! `Transfer-Encoding` (chunked when it is the last coding, else read to the close);
//! `Content-Length`; else read to the close. Interim 1xx answers are skipped. It does
//! not pipeline, follow redirects or upgrade.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest answer head (status line and headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The most header lines accepted in a head.
const MAX_HEADERS: usize = 100;
/// The read buffer's size (it grows only for a head longer than this).
const READ_SIZE: usize = 16 * 1024;

/// An answer, as far as a load generator needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The final status code.
    pub status: u16,
    /// Body bytes (after chunked decoding).
    pub body_bytes: u64,
    /// The connection can carry another request.
    pub keep_alive: bool,
}

/// Why an exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The peer closed or reset the connection before the answer was complete;
    /// `nothing_read`: not one byte of the answer had arrived (a request on a
    /// connection the server had already closed while it was idle).
    Closed {
        /// No byte of the answer arrived.
        nothing_read: bool,
    },
    /// The answer is not HTTP/1.x as RFC 9112 frames it.
    Protocol,
}

impl Failure {
    /// The error kind a failed request is counted under.
    #[must_use]
    pub fn kind(self) -> &'static str {
        match self {
            Self::Closed { .. } => "connection_closed",
            Self::Protocol => "http_protocol",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

struct Head {
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

/// One keep-alive HTTP/1.1 connection and its read buffer.
pub struct H1Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    /// `buf[start..end]` holds bytes read and not yet consumed.
    start: usize,
    end: usize,
    /// Answers completed on this connection.
    answered: u64,
}

impl H1Connection {
    /// Wraps a connected stream.
    #[must_use]
    pub fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: vec![0; READ_SIZE],
            start: 0,
            end: 0,
            answered: 0,
        }
    }

    /// Answers completed on this connection so far.
    #[must_use]
    pub fn answered(&self) -> u64 {
        self.answered
    }

    /// Sends `request` (a whole HTTP/1.1 request: head and body) and reads its answer;
    /// `head_request`: it was a HEAD request, whose answer has no body.
    ///
    /// # Errors
    /// The connection closed before the answer was complete, or the answer is not
    /// HTTP/1.x. The connection cannot be used again after either.
    pub async fn exchange(
        &mut self,
        request: &[u8],
        head_request: bool,
    ) -> Result<Answer, Failure> {
        if self.stream.write_all(request).await.is_err() {
            return Err(Failure::Closed { nothing_read: true });
        }
        let mut read_any = false;
        let head = loop {
            match parse_head(self.filled(), head_request)? {
                Some((len, head)) => {
                    self.consume(len);
                    read_any = true;
                    // An interim answer (100 Continue, 103 Early Hints): the final one
                    // follows.
                    if (100..200).contains(&head.status) {
                        continue;
                    }
                    break head;
                }
                None if self.filled().len() >= MAX_HEAD => return Err(Failure::Protocol),
                None => match self.read_more().await {
                    Ok(0) | Err(_) => {
                        return Err(Failure::Closed {
                            nothing_read: !read_any && self.filled().is_empty(),
                        });
                    }
                    Ok(_) => read_any = true,
                },
            }
        };
        let body_bytes = match head.framing {
            Framing::None => 0,
            Framing::Length(n) => {
                self.skip(n).await?;
                n
            }
            Framing::Chunked => self.chunked().await?,
            Framing::UntilClose => self.until_close().await?,
        };
        self.answered += 1;
        Ok(Answer {
            status: head.status,
            body_bytes,
            keep_alive: head.keep_alive,
        })
    }

    fn filled(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads more bytes: how many (0 at the end of the stream).
    async fn read_more(&mut self) -> std::io::Result<usize> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// [`read_more`](Self::read_more) inside an answer, where a reset is a close.
    async fn fill(&mut self) -> Result<usize, Failure> {
        self.read_more().await.map_err(|_| Failure::Closed {
            nothing_read: false,
        })
    }

    /// Makes at least `n` unconsumed bytes available.
    async fn need(&mut self, n: usize) -> Result<(), Failure> {
        while self.filled().len() < n {
            if self.fill().await? == 0 {
                return Err(Failure::Closed {
                    nothing_read: false,
                });
            }
        }
        Ok(())
    }

    /// Reads past `n` body bytes.
    async fn skip(&mut self, mut n: u64) -> Result<(), Failure> {
        loop {
            let have = self.filled().len();
            let take = usize::try_from(n).map_or(have, |n| n.min(have));
            self.consume(take);
            n -= take as u64;
            if n == 0 {
                return Ok(());
            }
            self.need(1).await?;
        }
    }

    /// Reads a chunked body and its trailers: the data bytes.
    async fn chunked(&mut self) -> Result<u64, Failure> {
        let mut total = 0u64;
        loop {
            let size = loop {
                match httparse::parse_chunk_size(self.filled()) {
                    Ok(httparse::Status::Complete((len, size))) => {
                        self.consume(len);
                        break size;
                    }
                    Ok(httparse::Status::Partial) if self.filled().len() < 1024 => {
                        let have = self.filled().len();
                        self.need(have + 1).await?;
                    }
                    _ => return Err(Failure::Protocol),
                }
            };
            if size == 0 {
                break;
            }
            self.skip(size).await?;
            total += size;
            self.need(2).await?;
            if self.filled()[..2] != *b"\r\n" {
                return Err(Failure::Protocol);
            }
            self.consume(2);
        }
        // Trailer lines, up to the empty line.
        let mut trailers = 0usize;
        loop {
            let line = loop {
                if let Some(i) = self.filled().windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                if self.filled().len() >= MAX_HEAD {
                    return Err(Failure::Protocol);
                }
                let have = self.filled().len();
                self.need(have + 1).await?;
            };
            self.consume(line + 2);
            trailers += line + 2;
            if line == 0 {
                return Ok(total);
            }
            if trailers > MAX_HEAD {
                return Err(Failure::Protocol);
            }
        }
    }

    /// Reads a body that ends when the server closes the connection.
    async fn until_close(&mut self) -> Result<u64, Failure> {
        let mut total = 0u64;
        loop {
            let have = self.filled().len();
            total += have as u64;
            self.consume(have);
            if self.fill().await? == 0 {
                return Ok(total);
            }
        }
    }
}

/// The head at the start of `bytes` and its length, `None` when it is not all there.
fn parse_head(bytes: &[u8], head_request: bool) -> Result<Option<(usize, Head)>, Failure> {
    // Left uninitialised: httparse writes only the headers it finds (zeroing the
    // array first would cost more than parsing a typical head).
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        bytes,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Failure::Protocol),
    };
    let (Some(status), Some(version)) = (response.code, response.version) else {
        return Err(Failure::Protocol);
    };
    // 101 Switching Protocols: this client never asks for an upgrade.
    if status == 101 {
        return Err(Failure::Protocol);
    }
    let mut length: Option<u64> = None;
    let mut transfer_encoding: Option<bool> = None;
    // HTTP/1.0 closes unless asked to keep alive; HTTP/1.1 keeps alive unless closed.
    let mut close = version == 0;
    for header in response.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or(Failure::Protocol)?;
            if length.is_some_and(|l| l != n) {
                return Err(Failure::Protocol);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = header.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
            transfer_encoding = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && version == 0 {
                    close = false;
                }
            }
        }
    }
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304
    {
        Framing::None
    } else {
        match (transfer_encoding, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) | (None, None) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
        }
    };
    // A message with both Transfer-Encoding and Content-Length may be an attempt at
    // request smuggling: RFC 9112 §6.3 says to close the connection after it.
    if transfer_encoding.is_some() && length.is_some() {
        close = true;
    }
    Ok(Some((
        len,
        Head {
            status,
            framing,
            keep_alive: !close && framing != Framing::UntilClose,
        },
    )))
}
