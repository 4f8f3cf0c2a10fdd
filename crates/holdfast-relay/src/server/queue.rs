//! A connection's bounded queue of frames waiting to be written, and the task writing them.
//!
//! The queue is bounded by frames and by bytes. A push past either bound fails, and the
//! connection is dropped as a slow consumer instead of growing memory; a frame larger
//! than the byte bound is still admitted into an empty queue, so one large `Changes`
//! never strands a device. The byte count covers frames until the writer hands them to
//! the socket.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::WebSocketStream;

use crate::metrics::Metrics;

#[cfg(test)]
mod tests;

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
    ready: Notify,
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

/// Writes queued frames to the socket until a close, or until the socket fails; then
/// refuses further frames.
pub(crate) async fn write_loop<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    queue: SendQueue,
    metrics: Arc<Metrics>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match queue.pop().await {
            Outgoing::Frame { bytes, plain_bytes } => {
                let wire_bytes = bytes.len();
                if sink.feed(Message::Binary(bytes)).await.is_err() {
                    break;
                }
                metrics.sent(wire_bytes, plain_bytes);
                if queue.is_empty() && sink.flush().await.is_err() {
                    break;
                }
            }
            Outgoing::Close { code, reason } => {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                let _ = sink.close().await;
                break;
            }
            Outgoing::Finish => {
                let _ = sink.close().await;
                break;
            }
        }
    }
    let mut state = queue.state();
    state.closed = true;
    state.items.clear();
    state.bytes = 0;
}
