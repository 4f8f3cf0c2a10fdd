//! A connection's bounded queue of frames waiting to be written, and the task writing them.
//!
//! The queue is bounded by frames and by bytes. Past half of either bound it is
//! *congested*: the connection stops reading the device's requests until the writer has
//! drained it below, so a device that sends a burst of requests and reads the answers is
//! slowed down, never dropped. A push past either bound fails, and the connection is
//! dropped as a slow consumer instead of growing memory: only what the device did not ask
//! for (live changes) or asked for before the queue congested can get there. A frame
//! larger than the byte bound is still admitted into an empty queue, so one large
//! `Changes` never strands a device. The byte count covers frames until the writer hands
//! them to the socket.
//!
//! The writer sends a frame longer than [`WRITE_FRAGMENT_BYTES`] as a fragmented message,
//! so tungstenite's write buffer stays under [`WRITE_BUFFER_BYTES_MAX`] whatever is sent:
//! tungstenite queues one pong per ping it reads in that buffer, and refuses to buffer past
//! the cap (coalescing pongs), so a peer that pings without reading costs at most that
//! much. A write that cannot finish within the write timeout, or that finds the buffer
//! full, ends the connection as a slow consumer: the peer does not read.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::WebSocketStream;

use crate::metrics::Metrics;

#[cfg(test)]
mod tests;

/// Largest WebSocket frame the writer sends; a longer message goes as fragments.
pub(crate) const WRITE_FRAGMENT_BYTES: usize = 16 << 10;

/// Cap of tungstenite's write buffer (its `max_write_buffer_size`): frames written and
/// not yet taken by the socket, pongs included.
pub(crate) const WRITE_BUFFER_BYTES_MAX: usize = 64 << 10;

const _: () = assert!(WRITE_FRAGMENT_BYTES + 16 <= WRITE_BUFFER_BYTES_MAX / 2);

/// The sending side of one connection. Cheap to clone: the writer task holds a clone.
#[derive(Clone, Debug)]
pub(crate) struct SendQueue {
    inner: Arc<Inner>,
}

/// Why a frame was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue is at its bound: the peer does not read fast enough.
    Full,
    /// The connection is closing, or its socket failed.
    Closed,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    /// The writer has something to do.
    ready: Notify,
    /// The writer took frames off a congested queue.
    drained: Notify,
    frames_max: usize,
    bytes_max: usize,
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Outgoing>,
    bytes: usize,
    /// No frame is admitted any more: a close is queued, or the writer has ended.
    closed: bool,
}

#[derive(Debug)]
enum Outgoing {
    Frame {
        bytes: Bytes,
        plain_bytes: usize,
    },
    /// Send a close frame, then end.
    Close {
        code: u16,
        reason: String,
    },
    /// End without a close frame of our own (the peer closed first).
    Finish,
}

impl SendQueue {
    pub(crate) fn new(frames_max: usize, bytes_max: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                ready: Notify::new(),
                drained: Notify::new(),
                frames_max,
                bytes_max,
            }),
        }
    }

    /// Queues an encoded frame; `plain_bytes` is its size uncompressed, for metrics.
    pub(crate) fn push(&self, bytes: Bytes, plain_bytes: usize) -> Result<(), Refused> {
        let mut state = self.state();
        if state.closed {
            return Err(Refused::Closed);
        }
        let empty = state.items.is_empty();
        let over = state.items.len() >= self.inner.frames_max
            || state.bytes + bytes.len() > self.inner.bytes_max;
        if over && !empty {
            return Err(Refused::Full);
        }
        state.bytes += bytes.len();
        state
            .items
            .push_back(Outgoing::Frame { bytes, plain_bytes });
        drop(state);
        self.inner.ready.notify_one();
        Ok(())
    }

    /// Whether the queue is past half of a bound: the connection should not read
    /// requests until [`drained`](Self::drained).
    pub(crate) fn is_congested(&self) -> bool {
        let state = self.state();
        !state.closed && self.congested(&state)
    }

    fn congested(&self, state: &State) -> bool {
        state.items.len() >= self.inner.frames_max.div_ceil(2)
            || state.bytes >= self.inner.bytes_max.div_ceil(2)
    }

    /// Completes once the writer has taken frames off the queue since it last
    /// completed; check [`is_congested`](Self::is_congested) again after.
    pub(crate) async fn drained(&self) {
        self.inner.drained.notified().await;
    }

    /// Sends what is queued, then a close frame; nothing is admitted after it.
    pub(crate) fn close(&self, code: u16, reason: &str) {
        self.end(Outgoing::Close {
            code,
            reason: reason.to_owned(),
        });
    }

    /// Drops what is queued and sends a close frame at once.
    pub(crate) fn abort(&self, code: u16, reason: &str) {
        {
            let mut state = self.state();
            state.items.clear();
            state.bytes = 0;
        }
        self.close(code, reason);
    }

    /// Sends what is queued, then ends without a close frame of our own.
    pub(crate) fn finish(&self) {
        self.end(Outgoing::Finish);
    }

    fn end(&self, last: Outgoing) {
        let mut state = self.state();
        if state.closed {
            return;
        }
        state.closed = true;
        state.items.push_back(last);
        drop(state);
        self.inner.ready.notify_one();
    }

    async fn pop(&self) -> Outgoing {
        loop {
            {
                let mut state = self.state();
                if let Some(item) = state.items.pop_front() {
                    if let Outgoing::Frame { bytes, .. } = &item {
                        state.bytes -= bytes.len();
                    }
                    if !self.congested(&state) {
                        self.inner.drained.notify_one();
                    }
                    return item;
                }
            }
            // One consumer: a notification sent while nobody waits is kept as a permit.
            self.inner.ready.notified().await;
        }
    }

    fn is_empty(&self) -> bool {
        self.state().items.is_empty()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Why the writer stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriterEnd {
    /// It sent a close, or ended as asked.
    Closed,
    /// The socket failed.
    Failed,
    /// The peer does not read: a write did not finish within the write timeout, or
    /// tungstenite's write buffer was full.
    Stalled,
}

/// Writes queued frames to the socket until a close, or until the socket fails or the
/// peer stops reading for `write_timeout`; then refuses further frames.
pub(crate) async fn write_loop<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    queue: SendQueue,
    metrics: Arc<Metrics>,
    write_timeout: Duration,
) -> WriterEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let end = loop {
        match queue.pop().await {
            Outgoing::Frame { bytes, plain_bytes } => {
                let wire_bytes = bytes.len();
                let flush = queue.is_empty();
                match send(&mut sink, bytes, flush, write_timeout).await {
                    Ok(()) => metrics.sent(wire_bytes, plain_bytes),
                    Err(Stall::Stalled) => break WriterEnd::Stalled,
                    Err(Stall::Failed) => break WriterEnd::Failed,
                }
            }
            Outgoing::Close { code, reason } => {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                };
                let close = async {
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    let _ = sink.close().await;
                };
                let _ = tokio::time::timeout(write_timeout, close).await;
                break WriterEnd::Closed;
            }
            Outgoing::Finish => {
                let _ = tokio::time::timeout(write_timeout, sink.close()).await;
                break WriterEnd::Closed;
            }
        }
    };
    let mut state = queue.state();
    state.closed = true;
    state.items.clear();
    state.bytes = 0;
    end
}

/// Why a message was not sent.
enum Stall {
    /// The peer did not read (see [`WriterEnd::Stalled`]).
    Stalled,
    /// The socket failed.
    Failed,
}

/// Sends one message, flushing after it if `flush`: whole if it is short, else as
/// fragments of at most [`WRITE_FRAGMENT_BYTES`], each waiting for room in the write
/// buffer. Each step must make progress within `write_timeout`, so a large message on a
/// slow link is not taken for a peer that does not read.
async fn send<S>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    bytes: Bytes,
    flush: bool,
    write_timeout: Duration,
) -> Result<(), Stall>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let step = async |sink: &mut SplitSink<WebSocketStream<S>, Message>,
                      message: Option<Message>| {
        let done = match message {
            Some(message) => tokio::time::timeout(write_timeout, sink.feed(message)).await,
            None => tokio::time::timeout(write_timeout, sink.flush()).await,
        };
        match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(WsError::WriteBufferFull(_))) | Err(_) => Err(Stall::Stalled),
            Ok(Err(_)) => Err(Stall::Failed),
        }
    };
    if bytes.len() <= WRITE_FRAGMENT_BYTES {
        step(sink, Some(Message::Binary(bytes))).await?;
    } else {
        let mut start = 0;
        while start < bytes.len() {
            let end = (start + WRITE_FRAGMENT_BYTES).min(bytes.len());
            let opcode = if start == 0 {
                Data::Binary
            } else {
                Data::Continue
            };
            let fragment = WsFrame::message(
                bytes.slice(start..end),
                OpCode::Data(opcode),
                end == bytes.len(),
            );
            step(sink, Some(Message::Frame(fragment))).await?;
            start = end;
        }
    }
    if flush {
        step(sink, None).await?;
    }
    Ok(())
}
