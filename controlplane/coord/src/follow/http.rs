//! A minimal blocking HTTP/1.1 client for etcd's JSON gateway.
//!
//! Hand-written over `std::net::TcpStream` rather than a client crate because the follower
//! needs two things such crates make awkward: a streaming body read that returns on a short
//! socket timeout (so the thread can notice `stop()` and resynchronise without a second
//! thread), and no dependency a client must compile beyond std. It speaks only what the
//! gateway answers: a status line, headers, and a body framed by `Content-Length`, chunked
//! encoding or the connection's close. Every buffer is bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::{CoordError, Endpoint};

/// Largest response head accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest body (or one watch line) kept in memory; a master view is a few hundred bytes.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest chunk-size line (hex size plus extensions).
const MAX_CHUNK_LINE_BYTES: usize = 1024;

/// How a response body ends.
#[derive(Debug)]
enum Framing {
    Length(usize),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// What one read from the socket gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fill {
    /// New body bytes were decoded (maybe zero, when only framing arrived).
    Data,
    /// Nothing arrived within the socket's read timeout.
    Idle,
    /// The body is complete or the peer closed the connection.
    End,
}

/// An open response whose body is read incrementally.
pub(crate) struct Response {
    endpoint: String,
    stream: TcpStream,
    status: u16,
    framing: Framing,
    body: Vec<u8>,
    done: bool,
}

/// Sends `POST path` with a JSON body and reads the response head. The socket's read timeout
/// is then `read_timeout`, which bounds how long one [`Response::fill`] blocks.
pub(crate) fn post(
    ep: &Endpoint,
    path: &str,
    json: &str,
    connect_timeout: Duration,
    read_timeout: Duration,
    keep_open: bool,
) -> Result<Response, CoordError> {
    let name = ep.to_string();
    let io = |source| CoordError::Http {
        endpoint: name.clone(),
        source,
    };
    let stream = connect(ep, connect_timeout).map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    stream
        .set_write_timeout(Some(connect_timeout))
        .map_err(io)?;
    let connection = if keep_open { "keep-alive" } else { "close" };
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {name}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: {connection}\r\n\r\n{json}",
        json.len()
    );
    (&stream).write_all(request.as_bytes()).map_err(io)?;
    // The head must come within the connect timeout, whatever the later polling interval.
    stream.set_read_timeout(Some(connect_timeout)).map_err(io)?;
    let (status, framing, leftover) = read_head(&name, &stream)?;
    stream.set_read_timeout(Some(read_timeout)).map_err(io)?;
    let mut response = Response {
        endpoint: name,
        stream,
        status,
        framing,
        body: Vec::new(),
        done: false,
    };
    response.decode(&leftover)?;
    Ok(response)
}

/// Opens a TCP connection to the first address of `ep` that answers.
fn connect(ep: &Endpoint, timeout: Duration) -> std::io::Result<TcpStream> {
    let mut last = std::io::Error::new(ErrorKind::NotFound, "host resolved to no address");
    for addr in (ep.host.as_str(), ep.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Reads up to the blank line; returns the status, the body framing and any body bytes read.
fn read_head(name: &str, mut stream: &TcpStream) -> Result<(u16, Framing, Vec<u8>), CoordError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(bad(name, "response head exceeds 16 KiB"));
        }
        let n = stream.read(&mut chunk).map_err(|source| CoordError::Http {
            endpoint: name.into(),
            source,
        })?;
        if n == 0 {
            return Err(bad(
                name,
                "connection closed before the response head ended",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head =
        std::str::from_utf8(&buf[..end]).map_err(|_| bad(name, "response head is not UTF-8"))?;
    let (status, framing) = parse_head(name, head)?;
    Ok((status, framing, buf[end + 4..].to_vec()))
}

/// Parses the status line and the framing headers.
fn parse_head(name: &str, head: &str) -> Result<(u16, Framing), CoordError> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(bad(name, "malformed status line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(bad(name, "not an HTTP/1.x response"));
    }
    let status = code
        .parse::<u16>()
        .map_err(|_| bad(name, "malformed status code"))?;
    let mut framing = Framing::UntilClose;
    for line in lines {
        let Some((field, value)) = line.split_once(':') else {
            return Err(bad(name, "malformed header line"));
        };
        let value = value.trim();
        if field.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked")
        {
            framing = Framing::Chunked(ChunkedDecoder::default());
        } else if field.eq_ignore_ascii_case("content-length")
            && !matches!(framing, Framing::Chunked(_))
        {
            let len = value
                .parse::<usize>()
                .map_err(|_| bad(name, "malformed Content-Length"))?;
            if len > MAX_BODY_BYTES {
                return Err(bad(name, "body larger than 1 MiB"));
            }
            framing = Framing::Length(len);
        }
    }
    Ok((status, framing))
}

impl Response {
    /// The HTTP status code.
    pub(crate) fn status(&self) -> u16 {
        self.status
    }

    /// Reads once from the socket (blocking at most the read timeout) and decodes what came.
    pub(crate) fn fill(&mut self) -> Result<Fill, CoordError> {
        if self.done {
            return Ok(Fill::End);
        }
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.done = true;
                if let Framing::Length(left) = self.framing
                    && left > 0
                {
                    return Err(bad(&self.endpoint, "connection closed inside the body"));
                }
                Ok(Fill::End)
            }
            Ok(n) => {
                self.decode(&chunk[..n])?;
                Ok(if self.done { Fill::End } else { Fill::Data })
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Ok(Fill::Idle)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(Fill::Data),
            Err(source) => Err(CoordError::Http {
                endpoint: self.endpoint.clone(),
                source,
            }),
        }
    }

    /// Takes the next complete `\n`-terminated line of the body, without the newline.
    pub(crate) fn next_line(&mut self) -> Option<Vec<u8>> {
        let pos = self.body.iter().position(|&b| b == b'\n')?;
        let mut line: Vec<u8> = self.body.drain(..=pos).collect();
        line.pop();
        Some(line)
    }

    /// Reads the whole body within `timeout`.
    pub(crate) fn read_to_end(mut self, timeout: Duration) -> Result<Vec<u8>, CoordError> {
        let deadline = Instant::now() + timeout;
        while self.fill()? != Fill::End {
            if Instant::now() >= deadline {
                return Err(CoordError::Timeout {
                    op: "etcd gateway read",
                    after: timeout,
                });
            }
        }
        Ok(self.body)
    }

    fn decode(&mut self, input: &[u8]) -> Result<(), CoordError> {
        match &mut self.framing {
            Framing::Length(left) => {
                let take = input.len().min(*left);
                self.body.extend_from_slice(&input[..take]);
                *left -= take;
                self.done = *left == 0;
            }
            Framing::Chunked(dec) => {
                dec.feed(input, &mut self.body)
                    .map_err(|reason| bad(&self.endpoint, reason))?;
                self.done = dec.is_done();
            }
            Framing::UntilClose => self.body.extend_from_slice(input),
        }
        if self.body.len() > MAX_BODY_BYTES {
            return Err(bad(
                &self.endpoint,
                "body (or one watch message) larger than 1 MiB",
            ));
        }
        Ok(())
    }
}

fn bad(endpoint: &str, reason: &str) -> CoordError {
    CoordError::BadResponse {
        endpoint: endpoint.into(),
        reason: reason.into(),
    }
}

/// Where the chunked decoder is inside the stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(usize),
    /// After a chunk's data, this many bytes of its CRLF left.
    DataEnd(u8),
    /// After the last chunk: trailer lines up to an empty one.
    Trailer,
    /// The body ended.
    Done,
}

/// Incremental decoder of HTTP/1.1 chunked transfer coding that accepts input split anywhere,
/// so a socket read timeout can land in the middle of a size line or of a chunk.
#[derive(Debug, Default)]
pub(crate) struct ChunkedDecoder {
    state: ChunkState,
    line: Vec<u8>,
}

impl ChunkedDecoder {
    /// Whether the terminating chunk and trailer have been read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes `input`, appending chunk data to `out`.
    pub(crate) fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Size | ChunkState::Trailer => {
                    let Some(pos) = input.iter().position(|&b| b == b'\n') else {
                        self.push_line(input)?;
                        return Ok(());
                    };
                    self.push_line(&input[..pos])?;
                    input = &input[pos + 1..];
                    self.end_line()?;
                }
                ChunkState::Data(left) => {
                    let take = input.len().min(left);
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    self.state = if take == left {
                        ChunkState::DataEnd(2)
                    } else {
                        ChunkState::Data(left - take)
                    };
                }
                ChunkState::DataEnd(left) => {
                    let want: &[u8] = if left == 2 { b"\r\n" } else { b"\n" };
                    if input[0] != want[0] {
                        return Err("chunk data not followed by CRLF");
                    }
                    input = &input[1..];
                    self.state = if left == 2 {
                        ChunkState::DataEnd(1)
                    } else {
                        ChunkState::Size
                    };
                }
                ChunkState::Done => return Err("bytes after the end of a chunked body"),
            }
        }
        Ok(())
    }

    fn push_line(&mut self, part: &[u8]) -> Result<(), &'static str> {
        if self.line.len() + part.len() > MAX_CHUNK_LINE_BYTES {
            return Err("chunk-size or trailer line longer than 1 KiB");
        }
        self.line.extend_from_slice(part);
        Ok(())
    }

    /// Acts on a complete size or trailer line (its `\n` consumed).
    fn end_line(&mut self) -> Result<(), &'static str> {
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if self.state == ChunkState::Trailer {
            if line.is_empty() {
                self.state = ChunkState::Done;
            }
            return Ok(());
        }
        let hex = line.split(|&b| b == b';').next().unwrap_or_default();
        let hex = std::str::from_utf8(hex)
            .map_err(|_| "chunk size is not ASCII")?
            .trim();
        let size = usize::from_str_radix(hex, 16).map_err(|_| "chunk size is not hexadecimal")?;
        if size > MAX_BODY_BYTES {
            return Err("chunk larger than 1 MiB");
        }
        self.state = if size == 0 {
            ChunkState::Trailer
        } else {
            ChunkState::Data(size)
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut wire = Vec::new();
        for c in chunks.iter().filter(|c| !c.is_empty()) {
            wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            wire.extend_from_slice(c);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        wire
    }

    #[test]
    fn decodes_gateway_style_chunks() {
        let wire = b"7;ext=1\r\n{\"a\":1}\r\n1\r\n\n\r\n0\r\nX-Trailer: y\r\n\r\n";
        let mut dec = ChunkedDecoder::default();
        let mut out = Vec::new();
        dec.feed(wire, &mut out).unwrap();
        assert_eq!(out, b"{\"a\":1}\n");
        assert!(dec.is_done());
    }

    #[test]
    fn rejects_garbage() {
        for wire in [&b"zz\r\n"[..], b"3\r\nabcX", b"99999999\r\n"] {
            let mut dec = ChunkedDecoder::default();
            assert!(dec.feed(wire, &mut Vec::new()).is_err(), "{wire:?}");
        }
        let mut dec = ChunkedDecoder::default();
        assert!(dec.feed(&[b'1'; 2000], &mut Vec::new()).is_err());
    }

    #[test]
    fn parses_heads() {
        let (status, framing) =
            parse_head("e", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked").unwrap();
        assert_eq!(status, 200);
        assert!(matches!(framing, Framing::Chunked(_)));
        let (_, framing) = parse_head("e", "HTTP/1.1 404 Not Found\r\ncontent-length: 5").unwrap();
        assert!(matches!(framing, Framing::Length(5)));
        assert!(parse_head("e", "SSH-2.0-OpenSSH").is_err());
        assert!(parse_head("e", "HTTP/1.1 200 OK\r\nno colon").is_err());
    }

    proptest! {
        /// Any payload, chunked any way and delivered in any pieces, decodes to itself.
        #[test]
        fn chunked_roundtrip(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
            cuts in proptest::collection::vec(1usize..17, 0..64),
        ) {
            let wire = encode(&chunks);
            let mut dec = ChunkedDecoder::default();
            let mut out = Vec::new();
            let mut rest = &wire[..];
            for cut in cuts.iter().copied().chain(std::iter::repeat(usize::MAX)) {
                if rest.is_empty() { break; }
                let n = cut.min(rest.len());
                dec.feed(&rest[..n], &mut out).unwrap();
                rest = &rest[n..];
            }
            prop_assert!(dec.is_done());
            prop_assert_eq!(out, chunks.concat());
        }

        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn chunked_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut dec = ChunkedDecoder::default();
            let _ = dec.feed(&bytes, &mut Vec::new());
        }
    }
}
