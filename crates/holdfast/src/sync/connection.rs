//! One connection to the relay: the session, the socket, and the store work its effects
//! ask for. Store work (redb, Automerge) runs in order on one blocking thread per
//! connection, never on a reactor thread; its results come back into the same loop as
//! the socket's messages, so the session sees every event in one order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use automerge::sync;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use holdfast_protocol::session::{ClientConfig, ClientEffect, ClientSession, CloseReason};
use holdfast_protocol::{
    encode_with_stats, AckResult, ChangeEntry, Cursor, ErrorCode, EventId, Frame, Outcome,
    PushEntry, RecordState, RejectCode, SpaceCursor, Token,
};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tracing::Instrument;

mod received;

use received::{Received, ReceivedQueue};

use super::backoff::{self, Backoff, PUSH_RETRY_DELAY_MAX, PUSH_RETRY_DELAY_MIN};
use super::config::TICK_INTERVAL;
use super::repair::Repairs;
use super::status::ConnectionState;
use super::transport::Socket;
use super::worker::{Control, Shared};
use crate::{ApplySummary, Error, PendingPush, RecordId, SpaceId, Store, SyncSummary};

/// Plain words for a relay that cannot be reached or a connection that dropped.
pub(crate) const NO_CONNECTION: &str = "No connection to the sync server";

/// Plain words for a repair message the relay did not answer in time.
const REPAIR_UNANSWERED: &str = "The sync server is slow to answer, retrying";

/// Longest wait for the close frame to go out when a connection ends.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

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

/// A connection that failed or dropped.
#[derive(Debug)]
pub(crate) struct Lost {
    /// Why, in plain words.
    pub reason: String,
    /// Reconnecting cannot help until the user acts.
    pub permanent: bool,
    /// The relay asked to wait this long.
    pub retry_after: Option<Duration>,
    /// It was welcomed and stayed up long enough to reset the backoff.
    pub healthy: bool,
    /// The relay refused to let this device read this space (a revoked grant): the
    /// worker stops syncing it and goes on with the others.
    pub refused_space: Option<SpaceId>,
}

impl Lost {
    fn transient(reason: impl Into<String>) -> Self {
        Lost {
            reason: reason.into(),
            permanent: false,
            retry_after: None,
            healthy: false,
            refused_space: None,
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
    // A space without a cursor of which this device holds changes that left its outbox is
    // repaired before its bootstrap (`Inbox::holds_synced_changes`).
    let cursors = tokio::task::spawn_blocking(move || -> crate::Result<Vec<(SpaceCursor, bool)>> {
        spaces
            .into_iter()
            .map(|space| {
                let cursor = store.inbox().cursor(&space)?;
                let repair = cursor.is_none() && store.inbox().holds_synced_changes(&space)?;
                Ok((SpaceCursor { space, cursor }, repair))
            })
            .collect()
    })
    .await;
    let cursors = match cursors {
        Ok(Ok(cursors)) => cursors,
        Ok(Err(e)) => return Ended::Lost(local_failure(&e)),
        Err(e) => return Ended::Lost(Lost::transient(format!("sync worker failed: {e}"))),
    };
    shared.counters().connects += 1;
    let connect = shared.endpoint.connect(shared.config.connect_timeout);
    let socket = tokio::select! {
        socket = connect => socket,
        ended = control_ended(control, mode) => return ended,
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
    let store = &shared.store;
    let mut session_config =
        ClientConfig::new(store.device_id(), Token::new(shared.config.token.clone()));
    session_config.pull_bytes_max = shared.config.pull_bytes_max;
    session_config.push_bytes_max = shared.config.push_bytes_max;
    let repair_first: Vec<SpaceId> = cursors
        .iter()
        .filter(|(_, repair)| *repair)
        .map(|(c, _)| c.space.clone())
        .collect();
    let cursors = cursors.into_iter().map(|(c, _)| c).collect();
    let mut session = ClientSession::new(session_config, cursors, now_ms());
    for space in &repair_first {
        session.repair_before_bootstrap(space);
    }
    let mut connection = Connection {
        shared,
        session,
        sink,
        jobs: Jobs::start(store.clone()),
        received: ReceivedQueue::default(),
        in_flight: HashMap::new(),
        taking: false,
        drained: false,
        hold: None,
        push_backoff: Backoff::new(PUSH_RETRY_DELAY_MIN, PUSH_RETRY_DELAY_MAX),
        repairs: Repairs::new(shared.config.repair_reply_timeout),
        welcomed_at: None,
        idle: false,
        fatal: None,
    };
    let ended = connection.drive(&mut stream, control, mode).await;
    connection.finish().await;
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

/// An entry pushed and not yet acknowledged.
struct Sent {
    seq: u64,
    created_ms: i64,
}

struct Connection<'a> {
    shared: &'a Arc<Shared>,
    session: ClientSession,
    sink: SplitSink<Socket, Message>,
    jobs: Jobs,
    /// Received changes and snapshot pages waiting for the store thread.
    received: ReceivedQueue,
    /// Entries handed to the session and not yet acknowledged, by event id.
    in_flight: HashMap<EventId, Sent>,
    /// A batch is being taken from the outbox.
    taking: bool,
    /// The last batch taken was empty: nothing is due.
    drained: bool,
    /// Pushing waits until then: the relay refused entries for now.
    hold: Option<tokio::time::Instant>,
    push_backoff: Backoff,
    repairs: Repairs,
    welcomed_at: Option<Instant>,
    /// The status says idle.
    idle: bool,
    /// The relay's error, reported when the session closes.
    fatal: Option<Lost>,
}

/// What woke the connection.
enum Event {
    Control,
    Job(Option<Done>),
    Message(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Tick,
    Outbox,
    HoldOver,
    RepairTimeout,
    Deadline,
}

impl Connection<'_> {
    async fn drive(
        &mut self,
        stream: &mut SplitStream<Socket>,
        control: &mut watch::Receiver<Control>,
        mode: Mode,
    ) -> Ended {
        let mut tick = tokio::time::interval(TICK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let outbox = self.shared.outbox.clone();
        let until = match mode {
            Mode::Live => None,
            Mode::Once { until } => Some(until),
        };
        let hello = self.session.start(now_ms());
        if let Err(ended) = self.apply(hello).await {
            return ended;
        }
        loop {
            let settled = self.publish_state();
            if settled && matches!(mode, Mode::Once { .. }) {
                return Ended::Complete;
            }
            let hold = self.hold;
            let repair_due = self.repairs.next_timeout();
            let event = tokio::select! {
                ended = control_changed(control, mode) => match ended {
                    Some(ended) => return ended,
                    None => Event::Control,
                },
                done = self.jobs.done.recv() => Event::Job(done),
                message = stream.next() => Event::Message(message),
                _ = tick.tick() => Event::Tick,
                () = outbox.notified() => Event::Outbox,
                () = sleep_until(hold) => Event::HoldOver,
                () = sleep_until(repair_due) => Event::RepairTimeout,
                () = sleep_until(until) => Event::Deadline,
            };
            let result = match event {
                Event::Control => {
                    // `retry_now`: resend what the relay refused for now, at once.
                    self.hold = None;
                    self.push_backoff.reset();
                    self.take_more();
                    Ok(())
                }
                Event::Job(Some(done)) => {
                    self.jobs.pending -= 1;
                    self.job_done(done).await
                }
                Event::Job(None) => Err(Ended::Lost(Lost::transient("sync worker failed"))),
                Event::Message(Some(Ok(Message::Binary(bytes)))) => self.received(&bytes).await,
                Event::Message(Some(Ok(Message::Close(_))) | None) => Err(self.lost()),
                Event::Message(Some(Err(e))) => {
                    tracing::info!("connection lost: {e}");
                    Err(self.lost())
                }
                Event::Message(Some(Ok(_))) => Ok(()),
                Event::Tick => {
                    let effects = self.session.handle_tick(now_ms());
                    self.apply(effects).await
                }
                Event::Outbox => {
                    self.drained = false;
                    self.take_more();
                    Ok(())
                }
                Event::HoldOver => {
                    self.hold = None;
                    self.take_more();
                    Ok(())
                }
                Event::RepairTimeout => self.repair_timeouts(),
                Event::Deadline => Err(Ended::Deadline),
            };
            if let Err(ended) = result {
                return ended;
            }
        }
    }

    /// Closes the socket, waits for the store work under way, and puts entries still
    /// being sent back in the queue.
    async fn finish(mut self) {
        let _ = tokio::time::timeout(CLOSE_WAIT, self.sink.close()).await;
        self.jobs.run(|store| {
            match store.outbox().requeue_sending() {
                Ok(n) if n > 0 => tracing::debug!(entries = n, "unacknowledged entries requeued"),
                Ok(_) => {}
                Err(e) => tracing::warn!("requeueing unacknowledged entries failed: {e}"),
            }
            Done::Marked(store.sync_summary())
        });
        self.jobs.finish().await;
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.refresh_counts()).await;
    }

    /// Sets the connection state; returns whether everything is in sync.
    fn publish_state(&mut self) -> bool {
        let settled = self.welcomed_at.is_some()
            && self.session.is_caught_up()
            && self.drained
            && !self.taking
            && self.hold.is_none()
            && self.in_flight.is_empty()
            && self.session.queued_len() == 0
            && self.session.pushes_in_flight() == 0
            && self.repairs.is_idle()
            && self.jobs.pending == 0;
        let state = match (self.welcomed_at, settled) {
            (None, _) => ConnectionState::Connecting,
            (Some(_), false) => ConnectionState::Syncing,
            (Some(_), true) => ConnectionState::Idle,
        };
        let became_idle = settled && !self.idle;
        self.idle = settled;
        let now = self.shared.store.inner.now();
        self.shared.status.update(|s| {
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

    fn healthy(&self) -> bool {
        self.welcomed_at
            .is_some_and(|t| t.elapsed() >= self.shared.config.healthy_session_min)
    }

    fn lost(&self) -> Ended {
        Ended::Lost(Lost {
            healthy: self.healthy(),
            ..Lost::transient(NO_CONNECTION)
        })
    }

    /// Carries out the session's effects, in order.
    async fn apply(&mut self, effects: Vec<ClientEffect>) -> Result<(), Ended> {
        for effect in effects {
            match effect {
                ClientEffect::Send(frame) => self.send(&frame).await?,
                ClientEffect::Welcomed { relay_id, epoch } => {
                    tracing::info!(%relay_id, epoch, "welcomed by the sync server");
                    self.welcomed_at = Some(Instant::now());
                    self.take_more();
                }
                ClientEffect::Acked(results) => self.acked(results),
                ClientEffect::Apply {
                    space,
                    entries,
                    next_cursor,
                } => self.apply_changes(space, entries, next_cursor),
                ClientEffect::ApplySnapshot {
                    space,
                    records,
                    cursor,
                } => self.apply_snapshot(space, records, cursor),
                ClientEffect::Repair { space } => self.repair_start(space),
                ClientEffect::RepairMessage {
                    space,
                    record,
                    message,
                } => self.repair_answer(space, record, message),
                ClientEffect::Fatal {
                    code,
                    reason,
                    permanent,
                    retry_after_secs,
                } => {
                    tracing::warn!(
                        ?code,
                        permanent,
                        "the sync server ended the connection: {reason}"
                    );
                    self.shared.counters().failure(error_kind(&code));
                    let refused_space = match &code {
                        ErrorCode::Forbidden { space } => Some(space.clone()),
                        _ => None,
                    };
                    self.fatal = Some(Lost {
                        refused_space,
                        reason,
                        permanent,
                        retry_after: retry_after_secs.map(|s| Duration::from_secs(s.into())),
                        healthy: self.healthy(),
                    });
                }
                ClientEffect::Closed(reason) => {
                    if let CloseReason::Sent(code) = &reason {
                        tracing::warn!(?code, "the sync server broke the protocol");
                    }
                    return Err(match self.fatal.take() {
                        Some(lost) => Ended::Lost(lost),
                        None => self.lost(),
                    });
                }
                other => tracing::debug!(?other, "effect ignored"),
            }
        }
        Ok(())
    }

    async fn send(&mut self, frame: &Frame) -> Result<(), Ended> {
        let (bytes, stats) = match encode_with_stats(frame) {
            Ok(encoded) => encoded,
            Err(e) => return Err(self.unsendable(frame, &e.to_string())),
        };
        {
            let mut counters = self.shared.counters();
            counters.bytes_sent_plain += (stats.body_bytes_plain + HEADER_BYTES) as u64;
            counters.bytes_sent_wire += bytes.len() as u64;
            if let Frame::Push { entries } = frame {
                counters.entries_sent += entries.len() as u64;
            }
        }
        if let Frame::Push { entries } = frame {
            for e in entries {
                tracing::debug!(event_id = %e.event_id, space = %e.space, record = %e.record, "pushing");
            }
        }
        self.sink
            .send(Message::Binary(bytes.into()))
            .await
            .map_err(|e| {
                tracing::info!("sending failed: {e}");
                self.lost()
            })
    }

    /// A frame that cannot be encoded: a push holding an entry above the frame limit.
    /// Its entries fail for good (the user may discard them); the connection starts over.
    fn unsendable(&mut self, frame: &Frame, detail: &str) -> Ended {
        tracing::warn!(frame = frame.name(), "cannot encode a frame: {detail}");
        let Frame::Push { entries } = frame else {
            return Ended::Lost(Lost::transient(NO_CONNECTION));
        };
        let reason = "This change is too large to send to the sync server";
        let seqs: Vec<u64> = entries
            .iter()
            .filter_map(|e| self.in_flight.remove(&e.event_id).map(|s| s.seq))
            .collect();
        self.jobs.run(move |store| {
            for seq in seqs {
                if let Err(e) = store.outbox().mark_failed(seq, reason, true) {
                    return Done::Marked(Err(e));
                }
            }
            Done::Marked(store.sync_summary())
        });
        Ended::Lost(Lost::transient(reason))
    }

    async fn received(&mut self, bytes: &[u8]) -> Result<(), Ended> {
        {
            let mut counters = self.shared.counters();
            counters.bytes_received_wire += bytes.len() as u64;
            counters.bytes_received_plain += body_bytes_plain(bytes) + HEADER_BYTES as u64;
        }
        let effects = self.session.handle_bytes(bytes, now_ms());
        self.apply(effects).await
    }

    /// Takes the next batch from the outbox if the session has room for it.
    fn take_more(&mut self) {
        if self.taking || self.hold.is_some() || self.session.queued_len() > 0 {
            return;
        }
        let Some(limits) = self.session.limits() else {
            return;
        };
        if self.session.pushes_in_flight() >= (limits.pushes_in_flight_max as usize).max(1) {
            return;
        }
        let entries_max = (limits.batch_entries_max as usize)
            .min(self.shared.config.push_entries_max)
            .max(1);
        let bytes_max = self.shared.config.push_bytes_max;
        self.taking = true;
        self.jobs.run(move |store| {
            let taken = store
                .outbox()
                .take_batch(entries_max, bytes_max)
                .and_then(|batch| Ok((batch, store.sync_summary()?)));
            Done::Taken(taken)
        });
    }

    async fn taken(&mut self, batch: Vec<PendingPush>) -> Result<(), Ended> {
        if batch.is_empty() {
            self.drained = true;
            return Ok(());
        }
        self.drained = false;
        let resent = batch.iter().filter(|p| p.entry.attempts > 1).count();
        self.shared.counters().entry_retries += resent as u64;
        let entries = batch
            .into_iter()
            .map(|p| {
                let sent = Sent {
                    seq: p.entry.seq,
                    created_ms: p.entry.created_ms,
                };
                self.in_flight.insert(p.entry.event_id, sent);
                PushEntry {
                    event_id: p.entry.event_id,
                    space: p.entry.space,
                    record: p.entry.record,
                    changes: p.changes,
                }
            })
            .collect();
        let effects = self.session.push(entries);
        self.apply(effects).await?;
        self.take_more();
        Ok(())
    }

    /// The relay answered a push: acknowledged entries leave the outbox, refused ones are
    /// marked failed (and resent after a delay when the refusal is for now).
    fn acked(&mut self, results: Vec<AckResult>) {
        let now = self.shared.store.inner.now();
        let mut acked = Vec::new();
        let mut failed = Vec::new();
        let mut retry_after = None;
        {
            let mut counters = self.shared.counters();
            for result in results {
                let Some(sent) = self.in_flight.remove(&result.event_id) else {
                    continue;
                };
                let event_id = result.event_id;
                match result.outcome {
                    Outcome::Stored { seq } | Outcome::Duplicate { seq } => {
                        let duplicate = matches!(result.outcome, Outcome::Duplicate { .. });
                        tracing::debug!(%event_id, outbox_seq = sent.seq, relay_seq = seq, duplicate, "acked");
                        if duplicate {
                            counters.entries_duplicate += 1;
                        } else {
                            counters.entries_stored += 1;
                        }
                        let waited = now.saturating_sub(sent.created_ms).max(0) as u64;
                        counters.time_to_sync.observe(waited);
                        acked.push((sent.seq, seq));
                    }
                    Outcome::Rejected {
                        code,
                        reason,
                        permanent,
                    } => {
                        tracing::warn!(%event_id, outbox_seq = sent.seq, ?code, permanent, "rejected: {reason}");
                        counters.entries_rejected += 1;
                        counters.failure(reject_kind(&code));
                        if !permanent {
                            let wait = match code {
                                RejectCode::RateLimited { retry_after_secs } => {
                                    Duration::from_secs(retry_after_secs.into())
                                }
                                _ => Duration::ZERO,
                            };
                            retry_after = Some(retry_after.unwrap_or(wait).max(wait));
                        }
                        failed.push((sent.seq, code.to_string(), permanent));
                    }
                }
            }
        }
        if !acked.is_empty() && retry_after.is_none() {
            self.push_backoff.reset();
        }
        if let Some(reason) = failed.last().map(|f| f.1.clone()) {
            self.shared.status.update(|s| s.last_error = Some(reason));
        }
        self.jobs.run(move |store| {
            let outbox = store.outbox();
            if !acked.is_empty() {
                if let Err(e) = outbox.mark_acked(&acked) {
                    return Done::Marked(Err(e));
                }
            }
            for (seq, reason, permanent) in &failed {
                if let Err(e) = outbox.mark_failed(*seq, reason, *permanent) {
                    return Done::Marked(Err(e));
                }
            }
            Done::Marked(store.sync_summary())
        });
        if let Some(wait) = retry_after {
            let delay = self.push_backoff.next_delay(backoff::random()).max(wait);
            tracing::info!(
                ?delay,
                "the sync server refused changes for now; resending later"
            );
            self.hold = Some(tokio::time::Instant::now() + delay);
        }
        self.take_more();
    }

    fn apply_changes(&mut self, space: SpaceId, entries: Vec<ChangeEntry>, next_cursor: Cursor) {
        self.received.push(Received::Changes {
            space,
            entries,
            next_cursor,
        });
        self.apply_received();
    }

    fn apply_snapshot(
        &mut self,
        space: SpaceId,
        records: Vec<RecordState>,
        cursor: Option<Cursor>,
    ) {
        self.received.push(Received::Snapshot {
            space,
            records,
            cursor,
        });
        self.apply_received();
    }

    /// Starts applying what was received, unless an apply is under way.
    fn apply_received(&mut self) {
        let Some((work, applies)) = self.received.next() else {
            return;
        };
        self.jobs.run(move |store| match work {
            Received::Changes {
                space,
                entries,
                next_cursor,
            } => {
                let count = entries.len() as u64;
                let result = store.inbox().apply_changes(&space, &entries, next_cursor);
                Done::Applied {
                    space,
                    entries: count,
                    records: 0,
                    applies,
                    result,
                }
            }
            Received::Snapshot {
                space,
                records,
                cursor,
            } => {
                let count = records.len() as u64;
                let result = store.inbox().apply_snapshot(&space, &records, cursor);
                Done::Applied {
                    space,
                    entries: 0,
                    records: count,
                    applies,
                    result,
                }
            }
        });
    }

    async fn job_done(&mut self, done: Done) -> Result<(), Ended> {
        match done {
            Done::Taken(result) => {
                self.taking = false;
                let (batch, summary) = result.map_err(|e| Ended::Lost(local_failure(&e)))?;
                self.shared.status.update(|s| s.set_counts(&summary));
                self.taken(batch).await
            }
            Done::Marked(result) => {
                let summary = result.map_err(|e| Ended::Lost(local_failure(&e)))?;
                self.shared.status.update(|s| s.set_counts(&summary));
                Ok(())
            }
            Done::Applied {
                space,
                entries,
                records,
                applies,
                result,
            } => {
                self.received.done();
                let summary = result.map_err(|e| Ended::Lost(local_failure(&e)))?;
                for (record, why) in &summary.rejected {
                    tracing::warn!(%space, %record, "a received change was not applied: {why}");
                }
                {
                    let mut counters = self.shared.counters();
                    counters.entries_received += entries;
                    counters.records_bootstrapped += records;
                    counters.changes_applied += summary.changes_applied as u64;
                }
                let mut effects = Vec::new();
                for _ in 0..applies {
                    effects.extend(self.session.handle_applied(&space));
                }
                self.apply_received();
                self.apply(effects).await
            }
            Done::Listed { space, result } => {
                let records = result.map_err(|e| Ended::Lost(local_failure(&e)))?;
                tracing::info!(%space, records = records.len(), "repairing the space with the sync server");
                self.repairs.listed(&space, records);
                self.repair_pump(&space);
                Ok(())
            }
            Done::Stepped {
                space,
                record,
                state,
                result,
            } => match result {
                Ok(Some(message)) => {
                    self.repairs.waiting(&space, record, state);
                    let effects = self.session.send_repair(space, record, message);
                    self.apply(effects).await
                }
                Ok(None) | Err(Error::NotFound(_)) => {
                    self.repair_done(&space, record);
                    Ok(())
                }
                Err(e) => Err(Ended::Lost(local_failure(&e))),
            },
            Done::Forgot { space, result } => {
                result.map_err(|e| Ended::Lost(local_failure(&e)))?;
                tracing::info!(%space, "repair done; downloading the space again");
                self.repairs.forgot(&space);
                let effects = self.session.handle_repaired(&space);
                self.apply(effects).await
            }
        }
    }

    fn repair_start(&mut self, space: SpaceId) {
        if !self.repairs.start(&space) {
            return;
        }
        self.jobs.run(move |store| {
            let result = store.records_in_space(&space);
            Done::Listed { space, result }
        });
    }

    /// Starts the conversations the in-flight limit allows; forgets the cursor once
    /// every record is done.
    fn repair_pump(&mut self, space: &SpaceId) {
        for record in self.repairs.next_records(space) {
            let space = space.clone();
            self.jobs.run(move |store| {
                let mut state = Box::new(sync::State::new());
                let result = store.inner.repair_message(record, &mut state);
                Done::Stepped {
                    space,
                    record,
                    state,
                    result,
                }
            });
        }
        if self.repairs.finished(space) {
            let space = space.clone();
            self.jobs.run(move |store| {
                let result = store.inbox().forget_cursor(&space);
                Done::Forgot { space, result }
            });
        }
    }

    fn repair_answer(&mut self, space: SpaceId, record: RecordId, message: Vec<u8>) {
        let Some(mut state) = self.repairs.answered(&space, record) else {
            tracing::debug!(%space, %record, "repair message for a record not under repair; ignored");
            return;
        };
        if message.is_empty() {
            // The relay has nothing more to say about this record.
            return self.repair_done(&space, record);
        }
        self.jobs.run(move |store| {
            let result = store.inner.repair_receive(record, &mut state, &message);
            Done::Stepped {
                space,
                record,
                state,
                result,
            }
        });
    }

    fn repair_done(&mut self, space: &SpaceId, record: RecordId) {
        self.repairs.done(space, record);
        self.shared.counters().records_repaired += 1;
        self.repair_pump(space);
    }

    /// A repair message the relay did not answer in time ends the connection. The space's
    /// cursor is kept (it is forgotten only once every record is done), so the next
    /// connection repairs the space again. Taking the silence for the end of the record's
    /// conversation would leave the relay without the changes it lacks, for good (found by
    /// `holdfast-sim`: an answer later than the timeout, and the space bootstrapped
    /// without them).
    fn repair_timeouts(&mut self) -> Result<(), Ended> {
        match self.repairs.expired().first() {
            Some((space, record)) => {
                tracing::info!(%space, %record, "no answer to a repair message in time");
                self.shared.counters().failure("repair_timeout");
                Err(Ended::Lost(Lost::transient(REPAIR_UNANSWERED)))
            }
            None => Ok(()),
        }
    }
}

/// The result of one piece of store work.
enum Done {
    Taken(crate::Result<(Vec<PendingPush>, SyncSummary)>),
    Marked(crate::Result<SyncSummary>),
    Applied {
        space: SpaceId,
        entries: u64,
        records: u64,
        /// The session's `Apply` effects it carried out.
        applies: usize,
        result: crate::Result<ApplySummary>,
    },
    Listed {
        space: SpaceId,
        result: crate::Result<Vec<RecordId>>,
    },
    Stepped {
        space: SpaceId,
        record: RecordId,
        state: Box<sync::State>,
        result: crate::Result<Option<Vec<u8>>>,
    },
    Forgot {
        space: SpaceId,
        result: crate::Result<()>,
    },
}

type Job = Box<dyn FnOnce(&Store) -> Done + Send>;

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
                // The receiver is gone once the connection ended; the work is done anyway.
                let _ = done_tx.send(job(&store));
            }
        });
        Jobs {
            tx: Some(tx),
            done,
            pending: 0,
            thread,
        }
    }

    fn run(&mut self, job: impl FnOnce(&Store) -> Done + Send + 'static) {
        if let Some(tx) = &self.tx {
            if tx.send(Box::new(job)).is_ok() {
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

const HEADER_BYTES: usize = 2;

/// The size of a received frame's body once decompressed, from its zstd header.
fn body_bytes_plain(bytes: &[u8]) -> u64 {
    match bytes {
        [_, flags, body @ ..] if flags & 1 != 0 => zstd::zstd_safe::get_frame_content_size(body)
            .ok()
            .flatten()
            .unwrap_or(body.len() as u64),
        [_, _, body @ ..] => body.len() as u64,
        _ => 0,
    }
}

/// Wall-clock milliseconds, the time sessions measure token expiry and timeouts in.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// This device failed to read or save sync data: retried like a lost connection.
fn local_failure(e: &Error) -> Lost {
    tracing::error!("store work for sync failed: {e}");
    Lost::transient(format!("This device could not save synced changes: {e}"))
}

fn reject_kind(code: &RejectCode) -> &'static str {
    match code {
        RejectCode::Forbidden { .. } => "forbidden",
        RejectCode::MissingDependencies => "missing_dependencies",
        RejectCode::DependencyRejected { .. } => "dependency_rejected",
        RejectCode::RecordTooLarge { .. } => "record_too_large",
        RejectCode::Malformed => "malformed",
        RejectCode::RateLimited { .. } => "rate_limited",
        RejectCode::Internal => "internal",
        _ => "other",
    }
}

fn error_kind(code: &ErrorCode) -> &'static str {
    match code {
        ErrorCode::Unauthorized => "unauthorized",
        ErrorCode::Forbidden { .. } => "forbidden_space",
        ErrorCode::UnsupportedVersion { .. } => "unsupported_version",
        ErrorCode::FrameTooLarge { .. } => "frame_too_large",
        ErrorCode::Malformed => "malformed",
        ErrorCode::RateLimited { .. } => "rate_limited",
        ErrorCode::ServerBusy { .. } => "server_busy",
        ErrorCode::Internal => "server_error",
        _ => "other",
    }
}
