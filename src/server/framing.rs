//! Request-smuggling guard for HTTP/1.1 connections.
//!
//! hyper reads a request with both `Content-Length` and `Transfer-Encoding`
//! as chunked and silently drops the length, and merges identical duplicate
//! lengths: safe for hyper itself, but the gate must refuse such requests
//! (RFC 9112 §6.3: a front and back end could frame them differently), and it
//! cannot see the dropped headers afterwards. This wrapper watches the raw
//! bytes on their way into hyper, follows request framing (heads, fixed and
//! chunked bodies), and records the index of the first ambiguous head. The
//! service counts requests on the connection and refuses that one with a 400
//! and `Connection: close`. It never changes a byte; on anything it cannot
//! follow (HTTP/2 preface, an upgrade, garbage hyper will reject) it stops
//! watching.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::conn::ConnFraming;

/// Heads longer than this are hyper's to reject; the guard stops watching.
const MAX_HEAD: usize = 128 * 1024;
const MAX_CHUNK_LINE: usize = 4096;

enum State {
    Head(Vec<u8>),
    Body(u64),
    ChunkLine(Vec<u8>),
    ChunkData(u64),
    ChunkCrlf(u8),
    Trailers(Vec<u8>),
    Off,
}

pub struct FramingGuard<IO> {
    io: IO,
    state: State,
    heads: u64,
    shared: Arc<ConnFraming>,
}

impl<IO> FramingGuard<IO> {
    pub fn new(io: IO, shared: Arc<ConnFraming>) -> Self {
        Self {
            io,
            state: State::Head(Vec::new()),
            heads: 0,
            shared,
        }
    }

    fn observe(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Off => return,
                State::Head(buf) => {
                    if self.heads == 0 && buf.is_empty() && bytes.starts_with(b"PRI * HTTP/2.0") {
                        self.state = State::Off;
                        return;
                    }
                    let before = buf.len();
                    buf.extend_from_slice(bytes);
                    let mut headers = [httparse::EMPTY_HEADER; 128];
                    let mut req = httparse::Request::new(&mut headers);
                    match req.parse(buf) {
                        Ok(httparse::Status::Complete(len)) => {
                            let next = head_verdict(&req);
                            let consumed = len - before;
                            bytes = &bytes[consumed.min(bytes.len())..];
                            let index = self.heads;
                            self.heads += 1;
                            self.state = match next {
                                Verdict::Ambiguous => {
                                    self.shared.flag(index);
                                    // The gate closes the connection after refusing it.
                                    State::Off
                                }
                                Verdict::Length(0) => State::Head(Vec::new()),
                                Verdict::Length(n) => State::Body(n),
                                Verdict::Chunked => State::ChunkLine(Vec::new()),
                                Verdict::Stop => State::Off,
                            };
                        }
                        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => return,
                        _ => {
                            self.state = State::Off;
                            return;
                        }
                    }
                }
                State::Body(remaining) => {
                    let take = (*remaining).min(bytes.len() as u64);
                    *remaining -= take;
                    bytes = &bytes[take as usize..];
                    if *remaining == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::ChunkLine(line) => match bytes.iter().position(|&b| b == b'\n') {
                    None => {
                        line.extend_from_slice(bytes);
                        if line.len() > MAX_CHUNK_LINE {
                            self.state = State::Off;
                        }
                        return;
                    }
                    Some(i) => {
                        line.extend_from_slice(&bytes[..i]);
                        bytes = &bytes[i + 1..];
                        self.state = match chunk_size(line) {
                            Some(0) => State::Trailers(Vec::new()),
                            Some(n) => State::ChunkData(n),
                            None => State::Off,
                        };
                    }
                },
                State::ChunkData(remaining) => {
                    let take = (*remaining).min(bytes.len() as u64);
                    *remaining -= take;
                    bytes = &bytes[take as usize..];
                    if *remaining == 0 {
                        self.state = State::ChunkCrlf(0);
                    }
                }
                State::ChunkCrlf(seen) => {
                    // CRLF after chunk data (a bare LF is tolerated like hyper).
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    if b == b'\n' {
                        self.state = State::ChunkLine(Vec::new());
                    } else if b == b'\r' && *seen == 0 {
                        *seen = 1;
                    } else {
                        self.state = State::Off;
                    }
                }
                State::Trailers(line) => match bytes.iter().position(|&b| b == b'\n') {
                    None => {
                        line.extend_from_slice(bytes);
                        if line.len() > MAX_HEAD {
                            self.state = State::Off;
                        }
                        return;
                    }
                    Some(i) => {
                        line.extend_from_slice(&bytes[..i]);
                        bytes = &bytes[i + 1..];
                        let empty = line.iter().all(|&b| b == b'\r');
                        if empty {
                            self.state = State::Head(Vec::new());
                        } else {
                            line.clear();
                        }
                    }
                },
            }
        }
    }
}

enum Verdict {
    Ambiguous,
    Length(u64),
    Chunked,
    Stop,
}

fn head_verdict(req: &httparse::Request<'_, '_>) -> Verdict {
    let mut lengths = 0;
    let mut length = None;
    let mut chunked = false;
    let mut upgrade = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
            if h.value.contains(&b',') {
                lengths += 1;
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        }
    }
    if lengths > 1 || (lengths == 1 && chunked) {
        return Verdict::Ambiguous;
    }
    if upgrade || req.method == Some("CONNECT") {
        // After a successful upgrade the bytes are no longer HTTP.
        return Verdict::Stop;
    }
    match (chunked, lengths, length) {
        (true, _, _) => Verdict::Chunked,
        (false, 1, Some(n)) => Verdict::Length(n),
        (false, 1, None) => Verdict::Stop,
        _ => Verdict::Length(0),
    }
}

fn chunk_size(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    let size = text.trim_end_matches('\r').split(';').next()?.trim();
    u64::from_str_radix(size, 16).ok()
}

impl<IO: AsyncRead + Unpin> AsyncRead for FramingGuard<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let start = buf.filled().len();
        let this = &mut *self;
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            if !matches!(this.state, State::Off) {
                this.observe(&buf.filled()[start..]);
            }
        }
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for FramingGuard<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(chunks: &[&[u8]]) -> (Arc<ConnFraming>, u64) {
        let shared = Arc::new(ConnFraming::default());
        let mut guard = FramingGuard::new((), shared.clone());
        for c in chunks {
            guard.observe(c);
        }
        let flagged = shared.flagged().map_or(0, |index| index + 1);
        (shared.clone(), flagged)
    }

    #[test]
    fn cl_plus_te_is_flagged_even_when_split_byte_by_byte() {
        let req = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n";
        let bytes: Vec<&[u8]> = req.chunks(1).collect();
        assert_eq!(watch(&bytes).1, 1);
    }

    #[test]
    fn the_second_pipelined_head_is_the_one_flagged() {
        let req = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext\r\nhello\r\n0\r\nX-T: 1\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";
        let (shared, bad) = watch(&[req]);
        assert_eq!(bad, 2);
        assert!(!shared.next_request_is_ambiguous());
        assert!(shared.next_request_is_ambiguous());
    }

    #[test]
    fn plain_requests_and_bodies_are_not_flagged() {
        let body = "Content-Length: 1\r\nTransfer-Encoding: x\r\n";
        let req = format!(
            "POST /a HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}GET / HTTP/1.1\r\n\r\n",
            body.len()
        );
        assert_eq!(watch(&[req.as_bytes()]).1, 0);
        assert_eq!(watch(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]).1, 0);
    }
}
