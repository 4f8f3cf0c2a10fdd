//! What a device sends, cut into small WebSocket fragments before tungstenite reads it, so
//! that one large message never leaves a connection holding a large buffer.
//!
//! tungstenite reads a frame into its read buffer after reserving the frame's whole length,
//! hands the message out as a slice of that allocation, and keeps the allocation for the
//! next frames: a `BytesMut` never shrinks (upstream tungstenite-rs#480 shows the same
//! property). One 15 MiB `Push` would pin 15 MiB for as long as the connection lives, even
//! a refused one from a read-only device. [`Reframed`] sits between the socket and
//! tungstenite and rewrites every data frame longer than [`FRAGMENT_BYTES`] as a fragmented
//! message (RFC 6455 section 5.4) of fragments of at most that size. tungstenite joins the
//! fragments into a message buffer of its own, freed with the message, and its read buffer
//! never holds more than one fragment.
//!
//! The rewrite keeps every byte of the payload and its meaning:
//! - fragments keep the frame's mask; they start at multiples of 4 bytes of its payload,
//!   so each one unmasks with the mask from its first byte, as the whole frame would;
//! - the first fragment keeps the frame's opcode and reserved bits, the others are
//!   continuations; only the last keeps the frame's `FIN`, so a frame that was itself one
//!   fragment of a message stays one part of it;
//! - control frames, frames of at most [`FRAGMENT_BYTES`], frames longer than the frame
//!   limit (tungstenite refuses those from their header, before buffering them) and
//!   anything after a header that does not parse pass through unchanged, so every error
//!   tungstenite reports is the one it would have reported without this layer.
//!
//! The HTTP upgrade request before the first frame passes through unchanged.

use std::io::{self, Cursor};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

#[cfg(test)]
mod tests;

/// Largest fragment tungstenite is handed; a multiple of 4 (see the [module](self)).
pub(crate) const FRAGMENT_BYTES: usize = 4 << 10;

/// Bytes read ahead to find a frame header: a small message and the header after it are
/// usually read at once.
const CARRY_BYTES: usize = 512;

/// The end of an HTTP request head.
const HEAD_END: &[u8] = b"\r\n\r\n";

const _: () = assert!(FRAGMENT_BYTES.is_multiple_of(4));
const _: () = assert!(CARRY_BYTES >= 14, "the longest frame header fits");

/// A stream whose incoming data frames are cut into fragments of at most
/// [`FRAGMENT_BYTES`]; writes pass through.
pub(crate) struct Reframed<S> {
    inner: S,
    reframer: Reframer,
}

impl<S> Reframed<S> {
    /// `frame_bytes_max`: frames longer than this are passed on whole, for tungstenite to
    /// refuse from their header.
    pub(crate) fn new(inner: S, frame_bytes_max: usize) -> Self {
        Self {
            inner,
            reframer: Reframer::new(frame_bytes_max),
        }
    }
}

/// Where the byte stream is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// In the HTTP request head; `matched` bytes of [`HEAD_END`] were just seen.
    Head { matched: usize },
    /// Between frames: the next bytes are a header.
    Header,
    /// In a frame's payload: `fragment_left` bytes of the current fragment, then
    /// `rest` more bytes of the frame, cut into further fragments of `header`.
    Payload {
        fragment_left: u64,
        rest: u64,
        /// The header of the fragments after the current one.
        header: FrameHeader,
        /// Whether the frame was its message's last.
        is_final: bool,
    },
    /// A header did not parse: everything passes through for tungstenite to refuse.
    Raw,
}

/// The rewriting, without I/O: bytes in, bytes out.
#[derive(Debug)]
struct Reframer {
    state: State,
    frame_bytes_max: u64,
    /// Bytes read from the stream, not handed on yet.
    carry: Vec<u8>,
    /// Where the unread part of `carry` starts.
    carry_start: usize,
    /// A header written by the rewrite, not handed on yet, and where its unsent part starts.
    header: Vec<u8>,
    header_start: usize,
}

impl Reframer {
    fn new(frame_bytes_max: usize) -> Self {
        Self {
            state: State::Head { matched: 0 },
            frame_bytes_max: frame_bytes_max as u64,
            carry: Vec::new(),
            carry_start: 0,
            header: Vec::new(),
            header_start: 0,
        }
    }

    fn carried(&self) -> &[u8] {
        &self.carry[self.carry_start..]
    }

    fn consume_carry(&mut self, n: usize) {
        self.carry_start += n;
        if self.carry_start == self.carry.len() {
            self.carry.clear();
            self.carry_start = 0;
            // A spill from the HTTP head may have grown it; keep the steady state small.
            if self.carry.capacity() > CARRY_BYTES {
                self.carry = Vec::new();
            }
        }
    }

    /// How many bytes may be read from the stream straight into the caller's buffer, so
    /// that they need no rewriting: `None` when the next bytes must go through `carry`.
    fn direct_limit(&self) -> Option<u64> {
        if !self.carried().is_empty() || self.header_start < self.header.len() {
            return None;
        }
        match &self.state {
            State::Payload { fragment_left, .. } if *fragment_left > 0 => Some(*fragment_left),
            State::Raw => Some(u64::MAX),
            _ => None,
        }
    }

    /// Bytes just read straight into the caller's buffer (see [`Self::direct_limit`]).
    fn passed_direct(&mut self, n: usize) {
        if let State::Payload { fragment_left, .. } = &mut self.state {
            *fragment_left -= n as u64;
            self.end_fragment();
        }
    }

    /// Moves on from a fragment whose bytes are all handed on: to the next fragment's
    /// header, or to the next frame.
    fn end_fragment(&mut self) {
        let State::Payload {
            fragment_left,
            rest,
            header,
            is_final,
        } = &mut self.state
        else {
            return;
        };
        if *fragment_left > 0 {
            return;
        }
        if *rest == 0 {
            self.state = State::Header;
            return;
        }
        let len = (*rest).min(FRAGMENT_BYTES as u64);
        *fragment_left = len;
        *rest -= len;
        let mut next = header.clone();
        next.is_final = *is_final && *rest == 0;
        self.header.clear();
        self.header_start = 0;
        next.format(len, &mut self.header)
            .expect("formatting into a Vec cannot fail");
    }

    /// Hands on what can be handed on without reading: a pending header, carried bytes
    /// of the HTTP head or of a payload, a parsed header. Returns how many bytes it put
    /// into `out`; 0 means the stream must be read (into `carry`).
    fn emit(&mut self, out: &mut ReadBuf<'_>) -> usize {
        let mut written = 0;
        loop {
            if out.remaining() == 0 {
                return written;
            }
            if self.header_start < self.header.len() {
                let pending = &self.header[self.header_start..];
                let n = pending.len().min(out.remaining());
                out.put_slice(&pending[..n]);
                self.header_start += n;
                written += n;
                continue;
            }
            if self.carried().is_empty() {
                return written;
            }
            match self.state.clone() {
                State::Head { matched } => {
                    let (n, matched, done) = scan_head(self.carried(), matched, out.remaining());
                    out.put_slice(&self.carried()[..n]);
                    self.consume_carry(n);
                    written += n;
                    self.state = if done {
                        State::Header
                    } else {
                        State::Head { matched }
                    };
                }
                State::Raw => {
                    let n = self.carried().len().min(out.remaining());
                    out.put_slice(&self.carried()[..n]);
                    self.consume_carry(n);
                    written += n;
                }
                State::Payload { fragment_left, .. } => {
                    let n = (self.carried().len() as u64)
                        .min(fragment_left)
                        .min(out.remaining() as u64) as usize;
                    out.put_slice(&self.carried()[..n]);
                    self.consume_carry(n);
                    self.passed_direct(n);
                    written += n;
                }
                State::Header => {
                    if !self.parse_header() {
                        return written;
                    }
                }
            }
        }
    }

    /// Parses the header at the start of `carry` and queues what stands for it; false if
    /// `carry` holds only part of a header.
    fn parse_header(&mut self) -> bool {
        let mut cursor = Cursor::new(self.carried());
        let (header, len) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return false,
            Err(_) => {
                self.state = State::Raw;
                return true;
            }
        };
        let header_len = cursor.position() as usize;
        let data = matches!(header.opcode, OpCode::Data(_));
        let split = data && len > FRAGMENT_BYTES as u64 && len <= self.frame_bytes_max;
        self.header.clear();
        self.header_start = 0;
        if split {
            let mut first = header.clone();
            first.is_final = false;
            first
                .format(FRAGMENT_BYTES as u64, &mut self.header)
                .expect("formatting into a Vec cannot fail");
            let mut later = header.clone();
            later.opcode = OpCode::Data(Data::Continue);
            later.rsv1 = false;
            later.rsv2 = false;
            later.rsv3 = false;
            self.state = State::Payload {
                fragment_left: FRAGMENT_BYTES as u64,
                rest: len - FRAGMENT_BYTES as u64,
                header: later,
                is_final: header.is_final,
            };
        } else {
            let start = self.carry_start;
            self.header
                .extend_from_slice(&self.carry[start..start + header_len]);
            self.state = State::Payload {
                fragment_left: len,
                rest: 0,
                header,
                is_final: true,
            };
        }
        self.consume_carry(header_len);
        self.end_fragment();
        true
    }

    /// `carry`, its read part dropped, ready to be read into.
    fn carry_room(&mut self) -> &mut Vec<u8> {
        if self.carry.capacity() == 0 {
            self.carry.reserve_exact(CARRY_BYTES);
        }
        if self.carry_start > 0 {
            self.carry.drain(..self.carry_start);
            self.carry_start = 0;
        }
        &mut self.carry
    }
}

/// Scans `bytes` of an HTTP head for its end, `matched` bytes of [`HEAD_END`] having been
/// seen just before. Returns how many bytes belong to the head (at most `room`), the
/// bytes of `HEAD_END` matched at their end, and whether the head ended there.
fn scan_head(bytes: &[u8], mut matched: usize, room: usize) -> (usize, usize, bool) {
    for (i, &byte) in bytes.iter().take(room).enumerate() {
        matched = if byte == HEAD_END[matched] {
            matched + 1
        } else if byte == HEAD_END[0] {
            1
        } else {
            0
        };
        if matched == HEAD_END.len() {
            return (i + 1, 0, true);
        }
    }
    (bytes.len().min(room), matched, false)
}

impl<S: AsyncRead + Unpin> AsyncRead for Reframed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if buf.remaining() == 0 || this.reframer.emit(buf) > 0 {
                return Poll::Ready(Ok(()));
            }
            if let Some(limit) = this.reframer.direct_limit() {
                // Payload bytes that need no rewriting: read straight into the caller's
                // buffer, at most to the end of the fragment.
                let room = (buf.remaining() as u64).min(limit) as usize;
                let mut limited = ReadBuf::new(buf.initialize_unfilled_to(room));
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
                let n = limited.filled().len();
                buf.advance(n);
                this.reframer.passed_direct(n);
                return Poll::Ready(Ok(()));
            }
            let carry = this.reframer.carry_room();
            let filled = carry.len();
            let room = CARRY_BYTES.saturating_sub(filled).max(1);
            carry.resize(filled + room, 0);
            let mut read = ReadBuf::new(&mut carry[filled..]);
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut read);
            let n = read.filled().len();
            carry.truncate(filled + n);
            ready!(polled)?;
            if n == 0 {
                // End of stream: what is carried is an incomplete header, handed on for
                // tungstenite to see the stream end mid-frame.
                let rest = this.reframer.carried();
                let n = rest.len().min(buf.remaining());
                buf.put_slice(&rest[..n]);
                this.reframer.consume_carry(n);
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Reframed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
