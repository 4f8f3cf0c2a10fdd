//! One connection: a task that owns its [`RelaySession`] and carries out its effects, and
//! a writer task draining its send queue into the socket.
//!
//! The task reads a message only while the session wants one (backpressure), ticks the
//! session every second, runs stores and pulls on the blocking pool and hands their
//! results back, and forwards live batches from the fan-out through `handle_live`. On a
//! shutdown signal it stops reading, lets the stores and pulls in flight finish (their
//! acks are sent), then turns the device away with `ServerBusy`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use holdfast_protocol::session::{CloseReason, RelayConfig, RelayEffect, RelaySession, RequestId};
use holdfast_protocol::{encode_with_stats, ErrorCode, Frame, PushEntry, SpaceId};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::{field, Instrument, Span};

use super::queue::{self, Refused, SendQueue};
use super::storage::Done;
use super::Shared;
use crate::config::{CLOSE_GRACE, SOCKET_BUFFER_BYTES, TICK_INTERVAL};
use crate::error::StoreError;
use crate::fanout::{live_inbox, Encoded, LiveBatch, LiveInbox, Subscription};
use crate::metrics::Metrics;

/// The version and flags bytes before a frame's body.
const FRAME_HEADER_BYTES: usize = 2;

/// `Repair` messages of one connection storage works on at once; beyond it the connection
/// stops reading, as for pushes and pulls, so a device cannot queue unbounded work.
const REPAIRS_IN_FLIGHT_MAX: usize = 4;

/// WebSocket close code for a peer dropped as a slow consumer: try again later.
const SLOW_CONSUMER_CLOSE_CODE: u16 = 1013;

/// Serves one accepted stream (TCP or TLS) until it closes. `admitted` is false when the
/// connection limit is reached: the device is then told `ServerBusy` and closed.
pub(crate) async fn serve<S>(stream: S, peer: SocketAddr, shared: Arc<Shared>, admitted: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let span = tracing::info_span!(
        "connection",
        %peer,
        device = field::Empty,
        subject = field::Empty
    );
    async move {
        let config = websocket_config(shared.limits.frame_bytes_max as usize);
        let handshake = tokio_tungstenite::accept_async_with_config(stream, Some(config));
        let ws = match tokio::time::timeout(shared.limits.handshake_timeout, handshake).await {
            Ok(Ok(ws)) => ws,
            Ok(Err(error)) => return tracing::debug!("websocket handshake failed: {error}"),
            Err(_) => return tracing::debug!("websocket handshake timed out"),
        };
        tracing::debug!(admitted, "connected");
        run(ws, shared, admitted).await;
        tracing::debug!("disconnected");
    }
    .instrument(span)
    .await;
}

/// Small buffers so idle connections cost little; messages above the frame limit are
/// refused from their header, before any of them is buffered.
fn websocket_config(frame_bytes_max: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_message_size(Some(frame_bytes_max))
        .max_frame_size(Some(frame_bytes_max))
}

/// What woke the connection task.
enum Event {
    Message(Option<Result<Message, WsError>>),
    Done(Result<Done, JoinError>),
    Live(Option<Arc<LiveBatch>>),
    Tick,
    Shutdown,
    WriterEnded,
}

struct Connection {
    session: RelaySession,
    shared: Arc<Shared>,
    queue: SendQueue,
    jobs: JoinSet<Done>,
    inbox: Option<LiveInbox>,
    subscription: Option<Subscription>,
    span: Span,
    /// The task stops: the session closed, the socket failed, or the peer left.
    ended: bool,
    /// A close frame of our own is queued.
    closing: bool,
    /// The span names the device.
    named: bool,
    /// `Repair` messages handed to storage and not answered yet.
    repairs_in_flight: usize,
    /// Pushes waiting for the store in flight: one connection's stores run one at a time,
    /// in push order, so a push never commits before an earlier one it may depend on.
    /// The session bounds how many wait (`pushes_in_flight_max`).
    stores_waiting: VecDeque<(RequestId, Vec<PushEntry>)>,
    /// A store of this connection is running.
    storing: bool,
}

async fn run<S>(ws: WebSocketStream<S>, shared: Arc<Shared>, admitted: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, mut stream) = ws.split();
    let limits = &shared.limits;
    let queue = SendQueue::new(limits.send_queue_frames_max, limits.send_queue_bytes_max);
    let metrics = shared.storage.metrics.clone();
    let mut writer = tokio::spawn(queue::write_loop(sink, queue.clone(), metrics));
    let session = RelaySession::new(
        relay_config(&shared),
        shared.authenticator.clone(),
        now_ms(),
    );
    let mut shutdown = shared.shutdown.clone();
    let mut connection = Connection {
        session,
        shared,
        queue,
        jobs: JoinSet::new(),
        inbox: None,
        subscription: None,
        span: Span::current(),
        ended: false,
        closing: false,
        named: false,
        repairs_in_flight: 0,
        stores_waiting: VecDeque::new(),
        storing: false,
    };
    if !admitted {
        let effects = connection.session.shut_down();
        connection.apply(effects);
    }
    let writer_ended = connection
        .serve(&mut stream, &mut writer, &mut shutdown)
        .await;

    connection.subscription = None;
    if !connection.closing {
        connection.queue.finish();
    }
    if !writer_ended
        && tokio::time::timeout(CLOSE_GRACE, &mut writer)
            .await
            .is_err()
    {
        writer.abort();
    }
}

type Reader<S> = futures_util::stream::SplitStream<WebSocketStream<S>>;

impl Connection {
    /// Handles events until the connection ends; returns whether the writer has ended.
    async fn serve<S>(
        &mut self,
        stream: &mut Reader<S>,
        writer: &mut JoinHandle<()>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut tick = tokio::time::interval(TICK_INTERVAL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut draining = *shutdown.borrow();
        while !self.ended {
            if draining && self.jobs.is_empty() {
                // Every store in flight is acked: turn the device away.
                let effects = self.session.shut_down();
                self.apply(effects);
                self.ended = true;
                break;
            }
            let reading = !draining
                && self.session.wants_read()
                && self.repairs_in_flight < REPAIRS_IN_FLIGHT_MAX;
            let event = tokio::select! {
                message = stream.next(), if reading => Event::Message(message),
                done = self.jobs.join_next(), if !self.jobs.is_empty() => {
                    Event::Done(done.expect("the join set is not empty"))
                }
                batch = recv(&mut self.inbox) => Event::Live(batch),
                _ = tick.tick() => Event::Tick,
                _ = shutdown.changed(), if !draining => Event::Shutdown,
                _ = &mut *writer => Event::WriterEnded,
            };
            match event {
                Event::Message(message) => self.received(message),
                Event::Done(done) => self.finished(done),
                Event::Live(batch) => self.live(batch),
                Event::Tick => {
                    let effects = self.session.handle_tick(now_ms());
                    self.apply(effects);
                }
                Event::Shutdown => draining = true,
                Event::WriterEnded => return true,
            }
        }
        false
    }

    fn received(&mut self, message: Option<Result<Message, WsError>>) {
        match message {
            Some(Ok(Message::Binary(bytes))) => {
                self.shared.storage.metrics.received(&bytes);
                let effects = self.session.handle_bytes(&bytes, now_ms());
                self.apply(effects);
            }
            Some(Ok(Message::Text(_))) => {
                self.fail(
                    ErrorCode::Malformed,
                    "text message; frames are binary messages",
                );
            }
            Some(Ok(Message::Close(_))) | None => self.ended = true,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Err(WsError::Capacity(error))) => {
                let max = self.shared.limits.frame_bytes_max;
                self.fail(ErrorCode::FrameTooLarge { max }, error.to_string());
            }
            Some(Err(error)) => {
                tracing::debug!("connection failed: {error}");
                self.ended = true;
            }
        }
    }

    fn finished(&mut self, done: Result<Done, JoinError>) {
        let effects = match done {
            Ok(Done::Stored {
                request_id,
                result: Ok(results),
            }) => {
                self.store_next();
                self.session.handle_store_result(request_id, results)
            }
            Ok(Done::Stored {
                result: Err(error), ..
            }) => {
                // Nothing of the push is acknowledged; the device resends it on its next
                // connection.
                tracing::error!("store failed: {error}");
                return self.fail(ErrorCode::Internal, "storage failed");
            }
            Ok(Done::Pulled { request_id, reply }) => self.session.handle_pulled(request_id, reply),
            Ok(Done::Repaired {
                space,
                record,
                reply,
            }) => {
                self.repairs_in_flight -= 1;
                match reply {
                    Ok(Some(message)) => Ok(self.session.send_repair(space, record, message)),
                    // An empty message ends the device's conversation without a timeout.
                    Ok(None) => Ok(self.session.send_repair(space, record, Vec::new())),
                    Err(StoreError::BadSyncMessage(detail)) => {
                        return self.fail(ErrorCode::Malformed, detail);
                    }
                    Err(error) => {
                        tracing::error!(%space, %record, "repair failed: {error}");
                        return self.fail(ErrorCode::Internal, "storage failed");
                    }
                }
            }
            Err(error) => {
                tracing::error!("storage task failed: {error}");
                return self.fail(ErrorCode::Internal, "storage task failed");
            }
        };
        match effects {
            Ok(effects) => self.apply(effects),
            Err(error) => {
                tracing::error!("driver bug: {error}");
                self.fail(ErrorCode::Internal, "relay error");
            }
        }
    }

    fn live(&mut self, batch: Option<Arc<LiveBatch>>) {
        let Some(batch) = batch else {
            self.inbox = None;
            return;
        };
        if self.inbox.as_ref().is_some_and(LiveInbox::overflowed) {
            return self.slow_consumer("live changes");
        }
        let effects = self
            .session
            .handle_live(&batch.space, &batch.entries, batch.next_cursor);
        for effect in effects {
            match effect {
                RelayEffect::Send(frame @ Frame::Changes { .. }) => {
                    let encoded = batch.encoded(|| encode(&frame).ok());
                    match encoded {
                        Some(Encoded { bytes, plain_bytes }) => self.enqueue(bytes, plain_bytes),
                        None => self.send(&frame),
                    }
                    let metrics = &self.shared.storage.metrics;
                    Metrics::observe(&metrics.fanout_seconds, batch.stored_at.elapsed());
                }
                other => self.apply(vec![other]),
            }
        }
    }

    /// Carries out the session's effects, in order.
    fn apply(&mut self, effects: Vec<RelayEffect>) {
        for effect in effects {
            if self.ended {
                return;
            }
            match effect {
                RelayEffect::Send(frame) => self.send(&frame),
                RelayEffect::Close(reason) => self.close(&reason),
                RelayEffect::Subscribe { spaces } => self.subscribe(&spaces),
                RelayEffect::Store {
                    request_id,
                    entries,
                } => {
                    self.stores_waiting.push_back((request_id, entries));
                    if !self.storing {
                        self.store_next();
                    }
                }
                RelayEffect::Pull {
                    request_id,
                    space,
                    cursor,
                    max_bytes,
                } => {
                    let (storage, span) = (self.shared.storage.clone(), self.span.clone());
                    self.jobs.spawn_blocking(move || {
                        storage.pull(&span, request_id, &space, cursor, max_bytes)
                    });
                }
                RelayEffect::Bootstrap {
                    request_id,
                    space,
                    from,
                    max_bytes,
                } => {
                    let (storage, span) = (self.shared.storage.clone(), self.span.clone());
                    self.jobs.spawn_blocking(move || {
                        storage.bootstrap(&span, request_id, &space, from, max_bytes)
                    });
                }
                RelayEffect::Repair {
                    space,
                    record,
                    message,
                    may_write,
                } => {
                    // Counted here, not by the session: reading stops at the limit.
                    self.repairs_in_flight += 1;
                    let (storage, span) = (self.shared.storage.clone(), self.span.clone());
                    self.jobs.spawn_blocking(move || {
                        storage.repair(&span, space, record, &message, may_write)
                    });
                }
                other => {
                    let mut detail = format!("{other:?}");
                    detail.truncate(200);
                    tracing::warn!(effect = detail, "relay effect not handled");
                }
            }
        }
        self.name_span();
    }

    /// Hands the oldest waiting push to storage, if any.
    fn store_next(&mut self) {
        self.storing = false;
        if let Some((request_id, entries)) = self.stores_waiting.pop_front() {
            self.storing = true;
            let (storage, span) = (self.shared.storage.clone(), self.span.clone());
            self.jobs
                .spawn_blocking(move || storage.store(&span, request_id, entries));
        }
    }

    fn send(&mut self, frame: &Frame) {
        match encode(frame) {
            Ok(Encoded { bytes, plain_bytes }) => self.enqueue(bytes, plain_bytes),
            Err(error) => {
                tracing::error!(frame = frame.name(), "could not encode a frame: {error}");
                if !matches!(frame, Frame::Error { .. }) {
                    self.fail(ErrorCode::Internal, "could not encode a frame");
                } else {
                    self.ended = true;
                }
            }
        }
    }

    fn enqueue(&mut self, bytes: Bytes, plain_bytes: usize) {
        match self.queue.push(bytes, plain_bytes) {
            Ok(()) => {}
            Err(Refused::Full) => self.slow_consumer("send queue full"),
            Err(Refused::Closed) => self.ended = true,
        }
    }

    fn close(&mut self, reason: &CloseReason) {
        tracing::debug!(?reason, "closing");
        self.queue.close(reason.websocket_code(), "");
        self.closing = true;
        self.ended = true;
    }

    /// Ends the connection for a reason the session cannot see (a text message, a frame
    /// refused by the WebSocket layer, a storage failure): `Error { code }`, then close.
    fn fail(&mut self, code: ErrorCode, detail: impl Into<String>) {
        let detail = detail.into();
        tracing::info!(?code, detail, "ending connection");
        let frame = Frame::Error {
            code: code.clone(),
            message: detail,
        };
        self.send(&frame);
        self.close(&CloseReason::Sent(code));
    }

    fn slow_consumer(&mut self, why: &str) {
        tracing::warn!(why, "dropping a slow consumer");
        self.shared.storage.metrics.slow_consumers.inc();
        self.queue.abort(SLOW_CONSUMER_CLOSE_CODE, "slow consumer");
        self.closing = true;
        self.ended = true;
    }

    fn subscribe(&mut self, spaces: &[SpaceId]) {
        let (sink, inbox) = live_inbox(self.shared.limits.send_queue_frames_max);
        self.subscription = None;
        self.subscription = Some(self.shared.storage.fanout.subscribe(spaces, sink));
        self.inbox = Some(inbox);
    }

    /// Names the device and subject in the connection's span once they are known.
    fn name_span(&mut self) {
        if self.named {
            return;
        }
        if let (Some(device), Some(grants)) = (self.session.device(), self.session.grants()) {
            self.span.record("device", field::display(device));
            self.span.record("subject", grants.subject.as_str());
            tracing::info!("authenticated");
            self.named = true;
        }
    }
}

/// The next live batch; never ready without an inbox.
async fn recv(inbox: &mut Option<LiveInbox>) -> Option<Arc<LiveBatch>> {
    match inbox {
        Some(inbox) => inbox.recv().await,
        None => std::future::pending().await,
    }
}

fn encode(frame: &Frame) -> Result<Encoded, holdfast_protocol::EncodeError> {
    let (bytes, stats) = encode_with_stats(frame)?;
    Ok(Encoded {
        bytes: Bytes::from(bytes),
        plain_bytes: stats.body_bytes_plain + FRAME_HEADER_BYTES,
    })
}

fn relay_config(shared: &Shared) -> RelayConfig {
    let limits = &shared.limits;
    let mut config = RelayConfig::new(shared.relay_id, shared.storage.store.epoch());
    config.limits.frame_bytes_max = limits.frame_bytes_max;
    config.push_rate_per_sec = limits.push_rate_per_sec;
    config.push_burst = limits.push_burst;
    config.idle_timeout_ms = limits.idle_timeout.as_millis() as u64;
    config.keepalive_interval_ms = limits.keepalive_interval.as_millis() as u64;
    config.handshake_timeout_ms = limits.handshake_timeout.as_millis() as u64;
    config
}

/// The session clock: milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
