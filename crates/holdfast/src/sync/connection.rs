//! One connection to the relay: a [`Driver`] (the session and everything the worker keeps
//! around it, without I/O), the socket, and a blocking thread for the store work the
//! driver hands out. Store work (redb, Automerge) runs in order on that one thread, never
//! on a reactor thread; its results come back into the same loop as the socket's
//! messages, so the driver sees every event in one order.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tracing::Instrument;

use super::driver::{self, Done, Driver, DriverConfig, Job, Lost, Now, Out, NO_CONNECTION};
use super::status::{CaughtUp, ConnectionState};
use super::transport::Socket;
use super::worker::{Control, Shared};
use crate::Store;

/// Longest wait for the close frame to go out when a connection ends.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Longest wait for it on a stop, a pause or `sync_once`'s deadline: whoever asked is not
/// kept waiting by a link that does not drain.
const CLOSE_WAIT_ASKED: Duration = Duration::from_millis(200);

/// How a connection is run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// In the background, staying connected for live changes.
    Live,
    /// For `sync_once`: until everything is in sync, or `until`.
    Once { until: tokio::time::Instant },
}

/// Why a connection ended.
#[derive(Debug)]
pub(crate) enum Ended {
    Stopped,
    Paused,
    /// `Mode::Once`: everything is in sync.
    Complete,
    /// `Mode::Once`: time is up.
    Deadline,
    Lost(Lost),
}

impl Mode {
    /// When `sync_once` must return, if this is one.
    fn deadline(self) -> Option<tokio::time::Instant> {
        match self {
            Mode::Live => None,
            Mode::Once { until } => Some(until),
        }
    }
}

/// Runs one connection until it ends; what was being sent goes back to the queue.
pub(crate) async fn run(
    shared: &Arc<Shared>,
    control: &mut watch::Receiver<Control>,
    mode: Mode,
) -> Ended {
    shared
        .status
        .update(|s| s.connection = ConnectionState::Connecting);
    let store = shared.store.clone();
    let spaces = shared.spaces();
    let cursors = tokio::task::spawn_blocking(move || driver::read_cursors(&store, &spaces)).await;
    let cursors = match cursors {
        Ok(Ok(cursors)) => cursors,
        Ok(Err(e)) => {
            tracing::error!("reading the sync cursors failed: {e}");
            let reason = format!("This device could not save synced changes: {e}");
            return Ended::Lost(Lost::transient(reason));
        }
        Err(e) => return Ended::Lost(Lost::transient(format!("sync worker failed: {e}"))),
    };
    shared.counters().connects += 1;
    let connect = shared.endpoint.connect(shared.config.connect_timeout);
    // `sync_once`'s deadline bounds the connect too, whatever the connect timeout.
    let socket = tokio::select! {
        socket = connect => socket,
        ended = control_ended(control, mode) => return ended,
        () = sleep_until(mode.deadline()) => return Ended::Deadline,
    };
    let socket = match socket {
        Ok(socket) => socket,
        Err(detail) => {
            tracing::info!("cannot reach the sync server: {detail}");
            shared.counters().failure("unreachable");
            return Ended::Lost(Lost::transient(NO_CONNECTION));
        }
    };
    let (sink, mut stream) = socket.split();
    let clock = Clock::new(shared.store.clone());
    let mut out = Out::default();
    let config = DriverConfig::new(&shared.store, &shared.config);
    let driver = Driver::start(config, cursors, clock.now(), &mut out);
    let mut connection = Connection {
        shared,
        driver,
        sink,
        jobs: Jobs::start(shared.store.clone()),
        clock,
        idle: false,
        cut_short: false,
    };
    let ended = match connection.carry_out(&mut out, control, mode).await {
        Ok(()) => connection.drive(&mut stream, control, mode, &mut out).await,
        Err(ended) => ended,
    };
    connection.finish(&ended).await;
    ended
}

/// Resolves once the control asks this connection to end.
async fn control_ended(control: &mut watch::Receiver<Control>, mode: Mode) -> Ended {
    loop {
        if let Some(ended) = control_changed(control, mode).await {
            return ended;
        }
    }
}

/// Resolves at the control's next change: how the connection ends, or `None` to go on
/// (a `retry_now`, a `resume`).
async fn control_changed(control: &mut watch::Receiver<Control>, mode: Mode) -> Option<Ended> {
    if control.changed().await.is_err() {
        return Some(Ended::Stopped);
    }
    let now = control.borrow_and_update().clone();
    if now.stopped {
        return Some(Ended::Stopped);
    }
    (now.paused && matches!(mode, Mode::Live)).then_some(Ended::Paused)
}

/// The driver's clocks: the store's wall clock (what entries' creation times and the
/// app's clock are measured in), and milliseconds since the connection started.
struct Clock {
    store: Store,
    started: tokio::time::Instant,
}

impl Clock {
    fn new(store: Store) -> Self {
        Clock {
            store,
            started: tokio::time::Instant::now(),
        }
    }

    fn now(&self) -> Now {
        Now {
            wall_ms: self.store.inner.now().max(0) as u64,
            mono_ms: self.started.elapsed().as_millis() as u64,
        }
    }

    fn at(&self, mono_ms: u64) -> tokio::time::Instant {
        self.started + Duration::from_millis(mono_ms)
    }
}

struct Connection<'a> {
    shared: &'a Arc<Shared>,
    driver: Driver,
    sink: SplitSink<Socket, Message>,
    jobs: Jobs,
    clock: Clock,
    /// The status says idle.
    idle: bool,
    /// A send was interrupted: the socket holds the rest of a frame.
    cut_short: bool,
}

/// What woke the connection.
enum Event {
    Control,
    Job(Option<Done>),
    Message(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Outbox,
    Timer,
    Deadline,
}

impl Connection<'_> {
    async fn drive(
        &mut self,
        stream: &mut SplitStream<Socket>,
        control: &mut watch::Receiver<Control>,
        mode: Mode,
        out: &mut Out,
    ) -> Ended {
        let outbox = self.shared.outbox.clone();
        let until = mode.deadline();
        loop {
            let settled = self.publish_state();
            if settled && matches!(mode, Mode::Once { .. }) {
                return Ended::Complete;
            }
            let timer = self.clock.at(self.driver.next_timer());
            let event = tokio::select! {
                ended = control_changed(control, mode) => match ended {
                    Some(ended) => return ended,
                    None => Event::Control,
                },
                done = self.jobs.done.recv() => Event::Job(done),
                message = stream.next() => Event::Message(message),
                () = outbox.notified() => Event::Outbox,
                () = tokio::time::sleep_until(timer) => Event::Timer,
                () = sleep_until(until) => Event::Deadline,
            };
            let now = self.clock.now();
            match event {
                // `retry_now`: resend what the relay refused for now, at once.
                Event::Control => self.driver.retry_now(out),
                Event::Job(Some(done)) => {
                    self.jobs.pending -= 1;
                    self.driver.done(done, now, out);
                }
                Event::Job(None) => return Ended::Lost(Lost::transient("sync worker failed")),
                Event::Message(Some(Ok(Message::Binary(bytes)))) => {
                    self.driver.received(&bytes, now, out);
                }
                Event::Message(Some(Ok(Message::Close(_))) | None) => {
                    return Ended::Lost(self.driver.lost(now));
                }
                Event::Message(Some(Err(e))) => {
                    tracing::info!("connection lost: {e}");
                    return Ended::Lost(self.driver.lost(now));
                }
                Event::Message(Some(Ok(_))) => {}
                Event::Outbox => self.driver.outbox_notified(out),
                Event::Timer => self.driver.timers(now, out),
                Event::Deadline => return Ended::Deadline,
            }
            if let Err(ended) = self.carry_out(out, control, mode).await {
                return ended;
            }
        }
    }

    /// Does what the driver asked: counts, status, store jobs, frames; then reports
    /// whether the connection ended.
    async fn carry_out(
        &mut self,
        out: &mut Out,
        control: &watch::Receiver<Control>,
        mode: Mode,
    ) -> Result<(), Ended> {
        self.shared
            .counters()
            .absorb(std::mem::take(&mut out.counters));
        let summary = out.summary.take();
        let last_error = out.last_error.take();
        if summary.is_some() || last_error.is_some() {
            self.shared.status.update(|s| {
                if let Some(summary) = &summary {
                    s.set_counts(summary);
                }
                if last_error.is_some() {
                    s.last_error = last_error;
                }
            });
        }
        out.notes.clear();
        out.problems.clear();
        for job in out.jobs.drain(..) {
            self.jobs.run(job);
        }
        for sent in out.frames.drain(..) {
            self.send(Message::Binary(sent.bytes.into()), control, mode)
                .await?;
        }
        match out.ended.take() {
            Some(lost) => Err(Ended::Lost(lost)),
            None => Ok(()),
        }
    }

    /// Sends one frame, unless the connection is to end first: a stop, a pause or
    /// `sync_once`'s deadline interrupts a send the network does not drain (a relay that
    /// stopped reading, a stalled link), and `finish` puts what was in flight back.
    async fn send(
        &mut self,
        message: Message,
        control: &watch::Receiver<Control>,
        mode: Mode,
    ) -> Result<(), Ended> {
        // A copy, so that a `retry_now` or a `resume` seen here still reaches `drive`.
        let mut control = control.clone();
        let sent = tokio::select! {
            sent = self.sink.send(message) => sent,
            ended = control_ended(&mut control, mode) => return Err(self.interrupted(ended)),
            () = sleep_until(mode.deadline()) => return Err(self.interrupted(Ended::Deadline)),
        };
        sent.map_err(|e| {
            tracing::info!("sending failed: {e}");
            Ended::Lost(self.driver.lost(self.clock.now()))
        })
    }

    /// A send stopped part way, for `ended`: the socket may hold half a frame.
    fn interrupted(&mut self, ended: Ended) -> Ended {
        self.cut_short = true;
        ended
    }

    /// Closes the socket, waits for the store work under way, and puts entries still
    /// being sent back in the queue.
    async fn finish(mut self, ended: &Ended) {
        // Offline, no space is known to be at the relay's head.
        self.shared.status.update(|s| s.caught_up.clear());
        // After an interrupted send the close frame would wait behind the rest of the
        // frame: the socket is dropped instead.
        if !self.cut_short {
            let wait = match ended {
                Ended::Stopped | Ended::Paused | Ended::Deadline => CLOSE_WAIT_ASKED,
                Ended::Complete | Ended::Lost(_) => CLOSE_WAIT,
            };
            let _ = tokio::time::timeout(wait, self.sink.close()).await;
        }
        self.jobs.run(Job::requeue());
        self.jobs.finish().await;
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.refresh_counts()).await;
    }

    /// Sets the connection state; returns whether everything is in sync.
    fn publish_state(&mut self) -> bool {
        let settled = self.driver.settled() && self.jobs.pending == 0;
        let state = match (self.driver.welcomed(), settled) {
            (false, _) => ConnectionState::Connecting,
            (true, false) => ConnectionState::Syncing,
            (true, true) => ConnectionState::Idle,
        };
        let became_idle = settled && !self.idle;
        self.idle = settled;
        let now = self.shared.store.inner.now();
        let caught_up = self.driver.caught_up();
        self.shared.status.update(|s| {
            let was = std::mem::take(&mut s.caught_up);
            s.caught_up = caught_up
                .map(|(space, cursor)| {
                    // A space still at the same cursor got there when it first did.
                    let as_of_ms = match was.get(space) {
                        Some(c) if c.cursor == cursor => c.as_of_ms,
                        _ => now,
                    };
                    (space.clone(), CaughtUp { cursor, as_of_ms })
                })
                .collect();
            s.connection = state;
            s.next_retry_ms = None;
            if became_idle {
                s.last_caught_up_ms = Some(now);
                if s.failed == 0 {
                    s.last_error = None;
                }
            }
        });
        settled
    }
}

/// Store work of one connection, run in order on one blocking thread.
struct Jobs {
    tx: Option<mpsc::UnboundedSender<Job>>,
    done: mpsc::UnboundedReceiver<Done>,
    /// Jobs sent whose result has not been read.
    pending: usize,
    thread: tokio::task::JoinHandle<()>,
}

impl Jobs {
    fn start(store: Store) -> Jobs {
        let (tx, mut jobs) = mpsc::unbounded_channel::<Job>();
        let (done_tx, done) = mpsc::unbounded_channel();
        let span = tracing::Span::current();
        let thread = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            while let Some(job) = jobs.blocking_recv() {
                let done = job.run(&store);
                if let Some(problem) = done.problem() {
                    tracing::debug!("store work for sync: {problem}");
                }
                // The receiver is gone once the connection ended; the work is done anyway.
                let _ = done_tx.send(done);
            }
        });
        Jobs {
            tx: Some(tx),
            done,
            pending: 0,
            thread,
        }
    }

    fn run(&mut self, job: Job) {
        if let Some(tx) = &self.tx {
            if tx.send(job).is_ok() {
                self.pending += 1;
            }
        }
    }

    /// Waits for every job sent so far.
    async fn finish(mut self) {
        self.tx = None;
        let _ = self.thread.instrument(tracing::Span::current()).await;
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
