//! One connection: a task that gives its [`RelayDriver`] (the session and the glue around
//! it, without I/O) a socket, the blocking pool, the fan-out and a clock, and a writer task
//! draining its send queue into the socket.
//!
//! The task reads a message only while the driver wants one and the send queue is not
//! congested (backpressure), ticks it every second, runs the storage work it hands out on
//! the blocking pool (`storage.rs`) and hands the results back, and forwards live batches
//! from the fan-out, encoding each batch's `Changes` frame once for every subscriber. When
//! the driver welcomes the device, the connection trades its handshake ticket for a device
//! permit, or turns the device away with `ServerBusy` (`admission.rs`). On a shutdown
//! signal the driver stops reading, lets the stores and pulls in flight finish (their acks
//! are sent), then turns the device away with `ServerBusy`. A connection whose send queue
//! or live inbox overflows, or whose device stops reading, is dropped as a slow consumer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use holdfast_protocol::session::{CloseReason, RelayConfig};
use holdfast_protocol::{encode_with_stats, DecodeError, ErrorCode, Frame, SpaceId};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::{field, Instrument, Span};

use super::admission::{Device, Handshake, Refusal};
use super::driver::{Done, Out, RelayDriver, Work};
use super::queue::{self, Refused, SendQueue, WriterEnd, WRITE_BUFFER_BYTES_MAX};
use super::reframe::Reframed;
use super::Shared;
use crate::config::{CLOSE_GRACE, SOCKET_BUFFER_BYTES, TICK_INTERVAL};
use crate::fanout::{live_inbox, Author, Encoded, LiveBatch, LiveInbox, Subscription};
use crate::metrics::Metrics;

/// Messages larger than this are decoded on the blocking pool, so decompressing and
/// decoding a large push never holds up a reactor thread's other connections.
const DECODE_INLINE_BYTES_MAX: usize = 64 << 10;

/// WebSocket close code for a peer dropped as a slow consumer: try again later.
const SLOW_CONSUMER_CLOSE_CODE: u16 = 1013;

/// WebSocket close code after the peer broke the WebSocket protocol (RFC 6455 7.4.1).
const PROTOCOL_ERROR_CLOSE_CODE: u16 = 1002;

/// WebSocket close code after a text message that is not UTF-8 (RFC 6455 7.4.1).
const INVALID_DATA_CLOSE_CODE: u16 = 1007;

/// Serves one accepted stream (TCP or TLS) until it closes. `ticket` is its place among
/// the handshakes, held until the device is welcomed.
pub(crate) async fn serve<S>(stream: S, peer: SocketAddr, shared: Arc<Shared>, ticket: Handshake)
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
        let frame_bytes_max = shared.limits.frame_bytes_max as usize;
        let config = websocket_config(frame_bytes_max);
        let stream = Reframed::new(stream, frame_bytes_max);
        let handshake = tokio_tungstenite::accept_async_with_config(stream, Some(config));
        let admission = &shared.admission;
        let ws = match tokio::time::timeout(shared.limits.handshake_timeout, handshake).await {
            Ok(Ok(ws)) => ws,
            Ok(Err(error)) => {
                let detail = format!("WebSocket handshake failed: {error}");
                admission.refuse(peer, None, Refusal::HandshakeFailed, &detail);
                return;
            }
            Err(_) => {
                let detail = "WebSocket handshake timed out";
                admission.refuse(peer, None, Refusal::HandshakeTimeout, detail);
                return;
            }
        };
        tracing::debug!("connected");
        run(ws, peer, shared, ticket).await;
        tracing::debug!("disconnected");
    }
    .instrument(span)
    .await;
}

/// Small buffers so idle connections cost little, and a capped write buffer (see
/// `queue.rs`); messages above the frame limit are refused from their header, before any
/// of them is buffered.
fn websocket_config(frame_bytes_max: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_write_buffer_size(WRITE_BUFFER_BYTES_MAX)
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
    /// A large message, decoded on the blocking pool.
    Decoded(Result<Result<Frame, DecodeError>, JoinError>),
    /// The send queue drained below congestion.
    Drained,
    WriterEnded(Result<WriterEnd, JoinError>),
}

struct Connection {
    driver: RelayDriver,
    /// Names this connection in the batches it stores (see [`Author`]).
    author: Author,
    shared: Arc<Shared>,
    queue: SendQueue,
    jobs: JoinSet<Done>,
    /// Bytes this connection may still read now: past it, reading pauses.
    read_budget: ReadBudget,
    /// A large message being decoded; nothing more is read until it is handled.
    decoding: Option<JoinHandle<Result<Frame, DecodeError>>>,
    inbox: Option<LiveInbox>,
    subscription: Option<Subscription>,
    span: Span,
    peer: SocketAddr,
    /// Its place among the handshakes, until the device is welcomed.
    handshake: Option<Handshake>,
    /// Its place among the devices, once welcomed.
    device: Option<Device>,
    /// The task stops: the driver closed, the socket failed, or the peer left.
    ended: bool,
    /// A close frame of our own is queued.
    closing: bool,
    /// The span names the device.
    named: bool,
}

async fn run<S>(ws: WebSocketStream<S>, peer: SocketAddr, shared: Arc<Shared>, ticket: Handshake)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, mut stream) = ws.split();
    let limits = &shared.limits;
    let queue = SendQueue::new(limits.send_queue_frames_max, limits.send_queue_bytes_max);
    let metrics = shared.storage.metrics.clone();
    let write_timeout = limits.write_timeout;
    let mut writer = tokio::spawn(queue::write_loop(
        sink,
        queue.clone(),
        metrics,
        write_timeout,
    ));
    let driver = RelayDriver::new(
        relay_config(&shared),
        shared.authenticator.clone(),
        now_ms(),
    );
    let mut shutdown = shared.shutdown.clone();
    let read_budget = ReadBudget::new(limits.read_bytes_per_sec, limits.frame_bytes_max as u64);
    let mut connection = Connection {
        driver,
        author: Author::new(),
        shared,
        queue,
        jobs: JoinSet::new(),
        decoding: None,
        read_budget,
        inbox: None,
        subscription: None,
        span: Span::current(),
        peer,
        handshake: Some(ticket),
        device: None,
        ended: false,
        closing: false,
        named: false,
    };
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
        writer: &mut JoinHandle<WriterEnd>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut tick = tokio::time::interval(TICK_INTERVAL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut draining = *shutdown.borrow();
        if draining {
            self.drive(RelayDriver::shut_down);
        }
        while !self.ended {
            let wants = self.driver.wants_read() && self.decoding.is_none();
            let resume_at = self.read_budget.resume_at();
            let congested = wants && self.queue.is_congested();
            let reading = wants && !congested && resume_at.is_none();
            let event = tokio::select! {
                message = stream.next(), if reading => Event::Message(message),
                () = self.queue.drained(), if congested => Event::Drained,
                decoded = decoded(&mut self.decoding) => Event::Decoded(decoded),
                () = sleep_until(resume_at), if wants && resume_at.is_some() => Event::Drained,
                done = self.jobs.join_next(), if !self.jobs.is_empty() => {
                    Event::Done(done.expect("the join set is not empty"))
                }
                batch = recv(&mut self.inbox) => Event::Live(batch),
                _ = tick.tick() => Event::Tick,
                _ = shutdown.changed(), if !draining => Event::Shutdown,
                end = &mut *writer => Event::WriterEnded(end),
            };
            match event {
                Event::Message(message) => self.received(message),
                Event::Done(done) => self.finished(done),
                Event::Live(batch) => self.live(batch),
                Event::Tick => self.drive(|driver, out| driver.tick(now_ms(), out)),
                Event::Shutdown => {
                    // Every store in flight is acked, then the device is turned away.
                    draining = true;
                    self.drive(RelayDriver::shut_down);
                }
                Event::Drained => {}
                Event::Decoded(decoded) => {
                    self.decoding = None;
                    match decoded {
                        Ok(decoded) => self.drive(|driver, out| {
                            driver.received_decoded(decoded, now_ms(), out);
                        }),
                        Err(error) => {
                            tracing::error!("decoding task failed: {error}");
                            self.drive(RelayDriver::decoding_failed);
                        }
                    }
                }
                Event::WriterEnded(end) => {
                    if matches!(end, Ok(WriterEnd::Stalled)) {
                        self.count_slow_consumer("the device does not read what is written");
                    }
                    return true;
                }
            }
        }
        false
    }

    fn received(&mut self, message: Option<Result<Message, WsError>>) {
        match message {
            Some(Ok(Message::Binary(bytes))) => {
                self.shared.storage.metrics.received(&bytes);
                self.read_budget.spend(bytes.len());
                if bytes.len() > DECODE_INLINE_BYTES_MAX {
                    let decode = move || holdfast_protocol::decode(&bytes);
                    self.decoding = Some(tokio::task::spawn_blocking(decode));
                } else {
                    self.drive(|driver, out| driver.received(&bytes, now_ms(), out));
                }
            }
            Some(Ok(Message::Text(_))) => self.drive(RelayDriver::received_text),
            Some(Ok(Message::Close(_))) | None => self.ended = true,
            Some(Ok(Message::Ping(_))) => {
                self.drive(|driver, out| driver.websocket_ping(now_ms(), out));
            }
            Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
            Some(Err(WsError::Capacity(error))) => {
                self.drive(|driver, out| driver.too_large(error.to_string(), out));
            }
            Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
                tracing::debug!("the device left without a close");
                self.ended = true;
            }
            Some(Err(error @ (WsError::Protocol(_) | WsError::Utf8(_)))) => {
                // Broken WebSocket framing: no frame of ours can follow, only a close
                // with its code.
                let code = match error {
                    WsError::Utf8(_) => INVALID_DATA_CLOSE_CODE,
                    _ => PROTOCOL_ERROR_CLOSE_CODE,
                };
                tracing::debug!("WebSocket protocol violation: {error}");
                if self.device.is_none() {
                    let detail = format!("WebSocket protocol violation: {error}");
                    self.shared
                        .admission
                        .refuse(self.peer, None, Refusal::Malformed, &detail);
                }
                self.queue.abort(code, "protocol violation");
                self.closing = true;
                self.ended = true;
            }
            Some(Err(error)) => {
                tracing::debug!("connection failed: {error}");
                self.ended = true;
            }
        }
    }

    fn finished(&mut self, done: Result<Done, JoinError>) {
        match done {
            Ok(done) => self.drive(|driver, out| driver.done(done, out)),
            Err(error) => {
                tracing::error!("storage task failed: {error}");
                self.drive(RelayDriver::work_failed);
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
        // A batch this connection stored goes to it without its changes (see
        // `RelayDriver::live`); every other subscriber shares one encoding of the frame.
        let own = batch.is_by(&self.author);
        let mut out = Out::default();
        self.driver.live(
            &batch.space,
            &batch.entries,
            batch.next_cursor,
            own,
            &mut out,
        );
        if own {
            self.carry_out(out, None);
            let metrics = &self.shared.storage.metrics;
            Metrics::observe(&metrics.fanout_seconds, batch.stored_at.elapsed());
        } else {
            self.carry_out(out, Some(&batch));
        }
    }

    /// Feeds the driver one event and carries out its answer.
    fn drive(&mut self, event: impl FnOnce(&mut RelayDriver, &mut Out)) {
        let mut out = Out::default();
        event(&mut self.driver, &mut out);
        self.carry_out(out, None);
    }

    /// Does what the driver asked: storage work on the blocking pool, the subscription,
    /// frames into the send queue, then the close. A `Changes` frame answering the live
    /// batch `live` is encoded once for all its subscribers.
    fn carry_out(&mut self, mut out: Out, live: Option<&LiveBatch>) {
        if out.subscribe.is_some() && self.device.is_none() {
            out = self.admit(out);
        }
        if let Some(reason) = &out.close {
            let flood = matches!(reason, CloseReason::Sent(ErrorCode::RateLimited { .. }));
            if self.device.is_none() || flood {
                self.refused(reason, &out.frames);
            }
        }
        // Problems are logged by the driver already.
        let Out {
            frames,
            work,
            subscribe,
            close,
            problems: _,
        } = out;
        for work in work {
            self.run(work);
        }
        if let Some(spaces) = subscribe {
            self.subscribe(&spaces);
        }
        for frame in frames {
            if self.ended {
                return;
            }
            self.shared.storage.metrics.refused_before_storage(&frame);
            match (live, &frame) {
                (Some(batch), Frame::Changes { .. }) => self.send_live(batch, &frame),
                _ => self.send(&frame),
            }
        }
        if let Some(reason) = close {
            if !self.ended {
                self.close(&reason);
            }
        }
        self.name_span();
    }

    /// The driver just welcomed the device (`out` holds the `Welcome`): the connection
    /// takes a device permit and gives back its handshake ticket, or, with every permit
    /// taken, turns the device away with `ServerBusy` instead.
    fn admit(&mut self, out: Out) -> Out {
        let admission = self.shared.admission.clone();
        if let Some(device) = admission.device() {
            self.device = Some(device);
            self.handshake = None;
            return out;
        }
        let subject = self.driver.session().grants().map(|g| g.subject.clone());
        let detail = "every device permit is taken (--max-connections)";
        admission.refuse(self.peer, subject.as_deref(), Refusal::Busy, detail);
        let mut busy = Out::default();
        self.driver.shut_down(&mut busy);
        busy
    }

    /// Counts and logs a connection closed before its device was welcomed, or for a ping
    /// flood.
    fn refused(&self, reason: &CloseReason, frames: &[Frame]) {
        let refusal = match reason {
            CloseReason::Sent(ErrorCode::RateLimited { .. }) => Refusal::PingFlood,
            CloseReason::Sent(ErrorCode::Unauthorized) => Refusal::Unauthorized,
            CloseReason::Sent(ErrorCode::Forbidden { .. }) => Refusal::Forbidden,
            CloseReason::Sent(ErrorCode::UnsupportedVersion { .. }) => Refusal::UnsupportedVersion,
            // Counted where it is decided (`admit`), or the relay is shutting down.
            CloseReason::Sent(ErrorCode::ServerBusy { .. }) => return,
            CloseReason::Sent(_) => Refusal::Malformed,
            CloseReason::HandshakeTimeout => Refusal::HandshakeTimeout,
            // The peer sent an error, or went quiet after its hello: not a refusal.
            _ => return,
        };
        let detail = frames
            .iter()
            .rev()
            .find_map(|frame| match frame {
                Frame::Error { message, .. } => Some(message.as_str()),
                _ => None,
            })
            .unwrap_or("no hello in time");
        let subject = self.driver.session().grants().map(|g| g.subject.clone());
        self.shared
            .admission
            .refuse(self.peer, subject.as_deref(), refusal, detail);
    }

    /// Hands a piece of storage work to the blocking pool.
    fn run(&mut self, work: Work) {
        let (storage, span) = (self.shared.storage.clone(), self.span.clone());
        let author = self.author.clone();
        match work {
            Work::Store {
                request_id,
                entries,
            } => self
                .jobs
                .spawn_blocking(move || storage.store(&span, request_id, entries, author)),
            Work::Pull {
                request_id,
                space,
                cursor,
                max_bytes,
            } => self
                .jobs
                .spawn_blocking(move || storage.pull(&span, request_id, &space, cursor, max_bytes)),
            Work::Bootstrap {
                request_id,
                space,
                from,
                max_bytes,
            } => self.jobs.spawn_blocking(move || {
                storage.bootstrap(&span, request_id, &space, from, max_bytes)
            }),
            Work::Repair {
                space,
                record,
                message,
                may_write,
            } => self.jobs.spawn_blocking(move || {
                storage.repair(&span, space, record, &message, may_write, author)
            }),
        };
    }

    /// Sends a live batch's `Changes` frame, encoded by its first subscriber.
    fn send_live(&mut self, batch: &LiveBatch, frame: &Frame) {
        match batch.encoded(|| encode(frame).ok()) {
            Some(Encoded { bytes, plain_bytes }) => self.enqueue(bytes, plain_bytes),
            None => self.send(frame),
        }
        let metrics = &self.shared.storage.metrics;
        Metrics::observe(&metrics.fanout_seconds, batch.stored_at.elapsed());
    }

    fn send(&mut self, frame: &Frame) {
        match encode(frame) {
            Ok(Encoded { bytes, plain_bytes }) => self.enqueue(bytes, plain_bytes),
            Err(error) => {
                tracing::error!(frame = frame.name(), "could not encode a frame: {error}");
                self.drive(|driver, out| driver.unsendable(frame, out));
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
        self.queue.close(reason.websocket_code(), "");
        self.closing = true;
        self.ended = true;
    }

    fn slow_consumer(&mut self, why: &str) {
        self.count_slow_consumer(why);
        self.queue.abort(SLOW_CONSUMER_CLOSE_CODE, "slow consumer");
        self.closing = true;
        self.ended = true;
    }

    fn count_slow_consumer(&self, why: &str) {
        tracing::warn!(why, "dropping a slow consumer");
        self.shared.storage.metrics.slow_consumers.inc();
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
        let session = self.driver.session();
        if let (Some(device), Some(grants)) = (session.device(), session.grants()) {
            self.span.record("device", field::display(device));
            self.span.record("subject", grants.subject.as_str());
            tracing::info!("authenticated");
            self.named = true;
        }
    }
}

/// A token bucket of bytes read: a connection may read `per_sec` bytes a second on average
/// and one frame's worth at once, so what a peer sends costs the relay at most that much
/// work (TCP makes the sender wait, not the relay).
struct ReadBudget {
    per_sec: u64,
    capacity: i64,
    /// Below zero after a message larger than what was left: a debt paid by waiting.
    level: i64,
    refilled: tokio::time::Instant,
}

impl ReadBudget {
    /// `per_sec` 0: no limit.
    fn new(per_sec: u64, capacity: u64) -> Self {
        let capacity = i64::try_from(capacity).unwrap_or(i64::MAX);
        Self {
            per_sec,
            capacity,
            level: capacity,
            refilled: tokio::time::Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = tokio::time::Instant::now();
        let elapsed = now.duration_since(self.refilled);
        let earned = (elapsed.as_secs_f64() * self.per_sec as f64) as i64;
        if earned > 0 {
            self.level = self.level.saturating_add(earned).min(self.capacity);
            self.refilled = now;
        }
    }

    fn spend(&mut self, bytes: usize) {
        if self.per_sec > 0 {
            self.refill();
            let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
            self.level = self.level.saturating_sub(bytes);
        }
    }

    /// When reading may go on, if the budget is spent: once the debt is paid.
    fn resume_at(&mut self) -> Option<tokio::time::Instant> {
        if self.per_sec == 0 {
            return None;
        }
        self.refill();
        if self.level > 0 {
            return None;
        }
        let wait = (1 - self.level) as f64 / self.per_sec as f64;
        Some(self.refilled + std::time::Duration::from_secs_f64(wait))
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The decoded large message; never ready without one being decoded.
async fn decoded(
    decoding: &mut Option<JoinHandle<Result<Frame, DecodeError>>>,
) -> Result<Result<Frame, DecodeError>, JoinError> {
    match decoding {
        Some(decoding) => decoding.await,
        None => std::future::pending().await,
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
        plain_bytes: stats.plain_bytes(),
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
    config.pings_per_sec_max = limits.pings_per_sec_max;
    config
}

/// The session clock: milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
