//! The device's side of one connection to the relay, without a socket, a clock or a
//! thread ("sans-IO"): the protocol's [`ClientSession`] plus what the worker keeps around
//! it (entries in flight, the push hold, repairs, received work waiting for the store).
//!
//! A [`Driver`] is fed what happens — a message from the relay, the time passing, a local
//! write, the result of store work — and answers in an [`Out`]: frames to send, store
//! [`Job`]s to run, and whether the connection is over. Jobs must run one at a time, in
//! the order they were handed out, and their [`Done`] results come back through
//! [`Driver::done`] in that order; the driver never touches the store itself, so a caller
//! chooses when store work happens relative to the messages (the worker runs it on one
//! blocking thread while it goes on reading the socket; a simulation interleaves the two
//! on a simulated clock).
//!
//! The sync worker's connection (`connection.rs`) is one driver of this code; the
//! deterministic simulation (`crates/holdfast-sim`) is another, so what the simulation
//! checks is the worker's own logic.

use std::collections::HashMap;
use std::time::Duration;

use holdfast_protocol::session::{ClientConfig, ClientEffect, ClientSession, CloseReason};
use holdfast_protocol::{
    encode_with_stats, AckResult, ChangeEntry, Cursor, ErrorCode, EventId, Frame, Outcome,
    PushEntry, RecordState, RejectCode, SpaceCursor, Token,
};

mod job;
pub(crate) mod received;

pub use job::{Done, Job};

use super::backoff::{Backoff, PUSH_RETRY_DELAY_MAX, PUSH_RETRY_DELAY_MIN};
use super::config::TICK_INTERVAL;
use super::metrics::Counters;
use super::repair::Repairs;
use super::SyncConfig;
use crate::outbox::PendingPush;
use crate::{Error, RecordId, SpaceId, Store, SyncSummary};
use job::{Apply, Marks, Work};
use received::{Received, ReceivedQueue};

/// Plain words for a relay that cannot be reached or a connection that dropped.
pub(crate) const NO_CONNECTION: &str = "No connection to the sync server";

/// Plain words for a repair message the relay did not answer in time.
const REPAIR_UNANSWERED: &str = "The sync server is slow to answer, retrying";

/// Least time between two pushes that are not full. A device writing one record at a
/// time while it syncs otherwise sends a push per write (276 a second measured, over a
/// relay's default of 50): spaced out, the writes of those 25 ms share one push, and an
/// honest device stays under the relay's rate limit (BENCHMARKS.md, "Push rate of a
/// device catching up"). A full push goes at once.
const PUSH_SPACING_MS: u64 = 25;

/// Plain words for a change larger than any frame.
const TOO_LARGE: &str = "This change is too large to send to the sync server";

/// The two clocks a driver reads: the device's wall clock (the store's [`Clock`](crate::Clock):
/// its session measures token expiry in it, and the time an entry waited from its
/// creation), and a monotonic clock its timers run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Milliseconds since the Unix epoch.
    pub wall_ms: u64,
    /// Milliseconds on a clock that never goes back (any origin).
    pub mono_ms: u64,
}

/// How a [`Driver`] runs: what it takes from a [`SyncConfig`], and its session's
/// settings.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// The session's settings: the device, the token, pull and push sizes, timeouts.
    pub session: ClientConfig,
    /// Most outbox entries in one push (the relay's `Welcome` may ask for fewer).
    pub push_entries_max: usize,
    /// Most change bytes in one push.
    pub push_bytes_max: u64,
    /// Longest wait for the relay's answer to one repair message.
    pub repair_reply_timeout: Duration,
    /// A connection welcomed and up this long was healthy (see [`Lost::healthy`]).
    pub healthy_session_min: Duration,
    /// Seeds the jitter of the push retry delay.
    pub jitter_seed: u64,
}

impl DriverConfig {
    /// The settings of `config` for `store`'s device.
    pub fn new(store: &Store, config: &SyncConfig) -> Self {
        let mut session = ClientConfig::new(store.device_id(), Token::new(config.token.clone()));
        session.pull_bytes_max = config.pull_bytes_max;
        session.push_bytes_max = config.push_bytes_max;
        DriverConfig {
            session,
            push_entries_max: config.push_entries_max,
            push_bytes_max: config.push_bytes_max,
            repair_reply_timeout: config.repair_reply_timeout,
            healthy_session_min: config.healthy_session_min,
            jitter_seed: super::backoff::random(),
        }
    }
}

/// A connection that failed or dropped, and what the worker should do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lost {
    /// Why, in plain words.
    pub reason: String,
    /// Reconnecting cannot help until the user acts.
    pub permanent: bool,
    /// The relay asked to wait this long.
    pub retry_after: Option<Duration>,
    /// It was welcomed and stayed up long enough to reset the reconnect backoff.
    pub healthy: bool,
    /// The relay refused to let this device read this space (a revoked grant): the
    /// worker stops syncing it and goes on with the others.
    pub refused_space: Option<SpaceId>,
}

impl Lost {
    /// A loss that reconnecting may mend (a dropped socket, a relay that cannot be
    /// reached).
    pub fn transient(reason: impl Into<String>) -> Self {
        Lost {
            reason: reason.into(),
            permanent: false,
            retry_after: None,
            healthy: false,
            refused_space: None,
        }
    }
}

/// What one call into a [`Driver`] asks of its caller. Reuse one across calls: each call
/// appends, and the caller drains what it carried out.
#[derive(Debug, Default)]
pub struct Out {
    /// Frames to send, in order.
    pub frames: Vec<Outgoing>,
    /// Store work to run after the jobs handed out before, in order.
    pub jobs: Vec<Job>,
    /// The connection is over: close it (then run [`Job::requeue`]).
    pub ended: Option<Lost>,
    /// Notable steps in plain words, for traces (also logged with `tracing`).
    pub notes: Vec<String>,
    /// Store work that failed, or a received change that did not apply: never expected.
    pub problems: Vec<String>,
    /// Counts to add to the worker's metrics.
    pub(crate) counters: Counters,
    /// The outbox's counts after the latest store work.
    pub(crate) summary: Option<SyncSummary>,
    /// The latest refusal of the relay, in words.
    pub(crate) last_error: Option<String>,
}

impl Out {
    fn note(&mut self, note: String) {
        tracing::debug!("{note}");
        self.notes.push(note);
    }

    /// Store work failed: the connection ends, and is retried like a lost one.
    fn local_failure(&mut self, e: &Error) {
        tracing::error!("store work for sync failed: {e}");
        self.problems.push(e.to_string());
        self.end(Lost::transient(format!(
            "This device could not save synced changes: {e}"
        )));
    }

    /// Ends the connection with `lost`, unless it ended already.
    fn end(&mut self, lost: Lost) {
        self.ended.get_or_insert(lost);
    }
}

/// A frame to send.
#[derive(Debug)]
pub struct Outgoing {
    /// The frame (the simulation reads it; the worker sends only the bytes).
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub frame: Frame,
    /// Its encoding: what goes on the wire, in one binary message.
    pub bytes: Vec<u8>,
}

/// An entry pushed and not yet acknowledged.
struct Sent {
    seq: u64,
    created_ms: i64,
    /// Its `push` span (field `event_id`), from the push to the relay's answer.
    span: tracing::Span,
}

/// The device's side of one connection; see the [module](self).
pub struct Driver {
    config: DriverConfig,
    session: ClientSession,
    /// Received changes and snapshot pages waiting for the store.
    received: ReceivedQueue,
    /// Entries handed to the session and not yet acknowledged, by event id.
    in_flight: HashMap<EventId, Sent>,
    /// A batch is being taken from the outbox.
    taking: bool,
    /// The last batch taken was empty: nothing is due.
    drained: bool,
    /// Pushing waits until then (monotonic ms): the relay refused entries for now.
    hold: Option<u64>,
    /// A push that was not full went out: the next waits until then (monotonic ms).
    paced: Option<u64>,
    /// Most entries the last batch could take.
    batch_entries_max: usize,
    push_backoff: Backoff,
    jitter: u64,
    repairs: Repairs,
    /// When the `Welcome` came (monotonic ms).
    welcomed_at: Option<u64>,
    /// The session's next tick (monotonic ms).
    next_tick: u64,
    /// Jobs handed out whose result has not come back.
    jobs_out: usize,
    /// The relay's error, reported when the session closes.
    fatal: Option<Lost>,
    ended: bool,
}

/// Each configured space's cursor, and whether it is repaired before its bootstrap: a
/// space without a cursor of which `store` holds changes that left its outbox
/// ([`Inbox::holds_synced_changes`](crate::Inbox::holds_synced_changes)). Store reads:
/// run it off any async reactor.
pub fn read_cursors(store: &Store, spaces: &[SpaceId]) -> crate::Result<Vec<(SpaceCursor, bool)>> {
    spaces
        .iter()
        .map(|space| {
            let cursor = store.inbox().cursor(space)?;
            let repair = cursor.is_none() && store.inbox().holds_synced_changes(space)?;
            let space = space.clone();
            Ok((SpaceCursor { space, cursor }, repair))
        })
        .collect()
}

impl Driver {
    /// Starts a connection's session (its `Hello` goes into `out`), with the spaces and
    /// cursors [`read_cursors`] read.
    pub fn start(
        config: DriverConfig,
        cursors: Vec<(SpaceCursor, bool)>,
        now: Now,
        out: &mut Out,
    ) -> Driver {
        let repair_first: Vec<SpaceId> = cursors
            .iter()
            .filter(|(_, repair)| *repair)
            .map(|(c, _)| c.space.clone())
            .collect();
        let cursors = cursors.into_iter().map(|(c, _)| c).collect();
        let mut session = ClientSession::new(config.session.clone(), cursors, now.wall_ms);
        for space in &repair_first {
            session.repair_before_bootstrap(space);
        }
        let mut driver = Driver {
            session,
            received: ReceivedQueue::default(),
            in_flight: HashMap::new(),
            taking: false,
            drained: false,
            hold: None,
            paced: None,
            batch_entries_max: 1,
            push_backoff: Backoff::new(PUSH_RETRY_DELAY_MIN, PUSH_RETRY_DELAY_MAX),
            jitter: config.jitter_seed,
            repairs: Repairs::new(config.repair_reply_timeout),
            welcomed_at: None,
            next_tick: now.mono_ms + TICK_INTERVAL.as_millis() as u64,
            jobs_out: 0,
            fatal: None,
            ended: false,
            config,
        };
        let hello = driver.session.start(now.wall_ms);
        driver.effects(hello, now, out);
        driver
    }

    /// Whether the relay welcomed this connection.
    pub fn welcomed(&self) -> bool {
        self.welcomed_at.is_some()
    }

    /// Whether everything is in sync: welcomed, caught up with every space, nothing due
    /// in the outbox, nothing in flight, no repair and no store work under way.
    pub fn settled(&self) -> bool {
        self.welcomed_at.is_some()
            && self.session.is_caught_up()
            && self.drained
            && !self.taking
            && self.hold.is_none()
            && self.in_flight.is_empty()
            && self.session.queued_len() == 0
            && self.session.pushes_in_flight() == 0
            && self.repairs.is_idle()
            && self.jobs_out == 0
    }

    /// When [`timers`](Self::timers) is next due (monotonic ms).
    pub fn next_timer(&self) -> u64 {
        [
            Some(self.next_tick),
            self.hold,
            self.paced,
            self.repairs.next_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.next_tick)
    }

    /// How a connection that dropped under this driver (the socket closed, a send failed)
    /// is reported.
    pub fn lost(&self, now: Now) -> Lost {
        Lost {
            healthy: self.healthy(now),
            ..Lost::transient(NO_CONNECTION)
        }
    }

    fn healthy(&self, now: Now) -> bool {
        let min = self.config.healthy_session_min.as_millis() as u64;
        self.welcomed_at
            .is_some_and(|at| now.mono_ms.saturating_sub(at) >= min)
    }

    /// A message from the relay.
    pub fn received(&mut self, bytes: &[u8], now: Now, out: &mut Out) {
        out.counters.bytes_received_wire += bytes.len() as u64;
        out.counters.bytes_received_plain += holdfast_protocol::plain_bytes(bytes) as u64;
        let effects = self.session.handle_bytes(bytes, now.wall_ms);
        self.effects(effects, now, out);
    }

    /// The time passed: the session's tick (keepalives, timeouts), the end of a push
    /// hold, repair messages left unanswered. Call at [`next_timer`](Self::next_timer)
    /// (earlier does no harm).
    pub fn timers(&mut self, now: Now, out: &mut Out) {
        if self.next_tick <= now.mono_ms {
            self.next_tick = now.mono_ms + TICK_INTERVAL.as_millis() as u64;
            let effects = self.session.handle_tick(now.wall_ms);
            self.effects(effects, now, out);
        }
        if self.hold.is_some_and(|at| at <= now.mono_ms) {
            self.hold = None;
            self.take_more(out);
        }
        if self.paced.is_some_and(|at| at <= now.mono_ms) {
            self.paced = None;
            self.take_more(out);
        }
        // A repair message left unanswered ends the connection. The space's cursor is
        // kept (it is forgotten only once every record is done), so the next connection
        // repairs the space again. Taking the silence for the end of the record's
        // conversation would leave the relay without the changes it lacks, for good
        // (found by `holdfast-sim`: an answer later than the timeout, and the space
        // bootstrapped without them).
        if let Some((space, record)) = self.repairs.expired(now.mono_ms).first() {
            out.note(format!("repair of {record} in {space}: no answer in time"));
            out.counters.failure("repair_timeout");
            out.end(Lost::transient(REPAIR_UNANSWERED));
        }
    }

    /// Local writes queued entries (the outbox's watcher fired).
    pub fn outbox_notified(&mut self, out: &mut Out) {
        self.drained = false;
        self.take_more(out);
    }

    /// The user asked to retry now: what the relay refused for now is resent at once.
    pub fn retry_now(&mut self, out: &mut Out) {
        self.hold = None;
        self.paced = None;
        self.push_backoff.reset();
        self.take_more(out);
    }

    /// The result of a job this driver handed out, in the order they were handed out.
    pub fn done(&mut self, done: Done, now: Now, out: &mut Out) {
        self.jobs_out = self.jobs_out.saturating_sub(1);
        match done.0 {
            job::Result::Taken(result) => {
                self.taking = false;
                match result {
                    Ok((batch, summary)) => {
                        // Everything due went out in this batch: the outbox is drained now,
                        // without waiting out the pacing for an empty take to say so (a
                        // `sync_once`, or the idle status, would wait PUSH_SPACING_MS).
                        let all_sent = summary.pending == summary.sending
                            && summary.failed == summary.failed_permanent;
                        out.summary = Some(summary);
                        self.taken(batch, now, out);
                        if all_sent {
                            self.drained = true;
                        }
                    }
                    Err(e) => out.local_failure(&e),
                }
            }
            job::Result::Marked(result) => match result {
                Ok(summary) => out.summary = Some(summary),
                Err(e) => out.local_failure(&e),
            },
            job::Result::Applied { applied, result } => {
                self.received.done();
                let summary = match result {
                    Ok(summary) => summary,
                    Err(e) => return out.local_failure(&e),
                };
                for crate::Refusal {
                    record,
                    reason: why,
                    ..
                } in &summary.rejected
                {
                    tracing::warn!(space = %applied.space, %record, "a received change was not applied: {why}");
                    out.problems.push(format!(
                        "a received change of {record} was not applied: {why}"
                    ));
                }
                out.counters.entries_received += applied.entries;
                out.counters.records_bootstrapped += applied.records;
                out.counters.changes_applied += summary.changes_applied as u64;
                for _ in 0..applied.applies {
                    let effects = self.session.handle_applied(&applied.space);
                    self.effects(effects, now, out);
                }
                self.apply_received(out);
            }
            job::Result::Listed { space, result } => match result {
                Ok(records) => {
                    out.note(format!("repairing {space}: {} records", records.len()));
                    tracing::info!(%space, records = records.len(), "repairing the space with the sync server");
                    self.repairs.listed(&space, records);
                    self.repair_pump(&space, out);
                }
                Err(e) => out.local_failure(&e),
            },
            job::Result::Stepped {
                space,
                record,
                state,
                result,
            } => match result {
                Ok(Some(message)) => {
                    self.repairs.waiting(&space, record, state, now.mono_ms);
                    let effects = self.session.send_repair(space, record, message);
                    self.effects(effects, now, out);
                }
                Ok(None) | Err(Error::NotFound(_)) => self.repair_done(&space, record, out),
                Err(e) => out.local_failure(&e),
            },
            job::Result::Forgot { space, result } => match result {
                Ok(()) => {
                    out.note(format!("repair of {space} done; bootstrapping it again"));
                    tracing::info!(%space, "repair done; downloading the space again");
                    self.repairs.forgot(&space);
                    let effects = self.session.handle_repaired(&space);
                    self.effects(effects, now, out);
                }
                Err(e) => out.local_failure(&e),
            },
        }
    }

    fn run(&mut self, work: Work, out: &mut Out) {
        self.jobs_out += 1;
        out.jobs.push(Job(work));
    }

    /// Carries out the session's effects, in order.
    fn effects(&mut self, effects: Vec<ClientEffect>, now: Now, out: &mut Out) {
        for effect in effects {
            if self.ended || out.ended.is_some() {
                return;
            }
            match effect {
                ClientEffect::Send(frame) => self.send(frame, out),
                ClientEffect::Welcomed { relay_id, epoch } => {
                    tracing::info!(%relay_id, epoch, "welcomed by the sync server");
                    out.notes.push(format!("welcomed, epoch {epoch:x}"));
                    self.welcomed_at = Some(now.mono_ms);
                    self.take_more(out);
                }
                ClientEffect::Acked(results) => self.acked(results, now, out),
                ClientEffect::Apply {
                    space,
                    entries,
                    next_cursor,
                } => self.apply_changes(space, entries, next_cursor, out),
                ClientEffect::ApplySnapshot {
                    space,
                    records,
                    cursor,
                } => self.apply_snapshot(space, records, cursor, out),
                ClientEffect::Repair { space } => {
                    if self.repairs.start(&space) {
                        self.run(Work::List { space }, out);
                    }
                }
                ClientEffect::RepairMessage {
                    space,
                    record,
                    message,
                } => self.repair_answer(space, record, message, out),
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
                    out.notes.push(format!("relay error {code:?}: {reason}"));
                    out.counters.failure(error_kind(&code));
                    let refused_space = match &code {
                        ErrorCode::Forbidden { space } => Some(space.clone()),
                        _ => None,
                    };
                    self.fatal = Some(Lost {
                        refused_space,
                        reason,
                        permanent,
                        retry_after: retry_after_secs.map(|s| Duration::from_secs(s.into())),
                        healthy: self.healthy(now),
                    });
                }
                ClientEffect::Closed(reason) => {
                    if let CloseReason::Sent(code) = &reason {
                        tracing::warn!(?code, "the sync server broke the protocol");
                    }
                    out.notes.push(format!("session closed: {reason:?}"));
                    let lost = self.fatal.take().unwrap_or_else(|| self.lost(now));
                    self.ended = true;
                    out.end(lost);
                }
                other => tracing::debug!(?other, "effect ignored"),
            }
        }
    }

    /// Counts a frame and hands it out; a push that cannot be encoded fails its entries.
    fn send(&mut self, frame: Frame, out: &mut Out) {
        let (bytes, stats) = match encode_with_stats(&frame) {
            Ok(encoded) => encoded,
            Err(e) => return self.unsendable(&frame, &e.to_string(), out),
        };
        out.counters.bytes_sent_plain += stats.plain_bytes() as u64;
        out.counters.bytes_sent_wire += bytes.len() as u64;
        if let Frame::Push { entries } = &frame {
            out.counters.pushes_sent += 1;
            out.counters.entries_sent += entries.len() as u64;
            for e in entries {
                if let Some(sent) = self.in_flight.get(&e.event_id) {
                    sent.span.in_scope(|| tracing::debug!("pushing"));
                }
            }
        }
        out.frames.push(Outgoing { frame, bytes });
    }

    /// A frame that cannot be encoded: a push holding an entry above the frame limit.
    /// Its entries fail for good (the user may discard them); the connection starts over.
    fn unsendable(&mut self, frame: &Frame, detail: &str, out: &mut Out) {
        tracing::warn!(frame = frame.name(), "cannot encode a frame: {detail}");
        if let Frame::Push { entries } = frame {
            let failed = entries
                .iter()
                .filter_map(|e| self.in_flight.remove(&e.event_id))
                .map(|s| {
                    s.span.in_scope(|| tracing::warn!("too large to send"));
                    (s.seq, TOO_LARGE.to_owned(), true)
                })
                .collect();
            let marks = Marks {
                failed,
                ..Marks::default()
            };
            self.run(Work::Mark(marks), out);
            out.end(Lost::transient(TOO_LARGE));
        } else {
            out.end(Lost::transient(NO_CONNECTION));
        }
        self.ended = true;
    }

    /// Takes the next batch from the outbox if the session has room for it.
    fn take_more(&mut self, out: &mut Out) {
        if self.ended
            || self.taking
            || self.hold.is_some()
            || self.paced.is_some()
            || self.session.queued_len() > 0
        {
            return;
        }
        let Some(limits) = self.session.limits() else {
            return;
        };
        if self.session.pushes_in_flight() >= (limits.pushes_in_flight_max as usize).max(1) {
            return;
        }
        let entries_max = (limits.batch_entries_max as usize)
            .min(self.config.push_entries_max)
            .max(1);
        self.taking = true;
        self.batch_entries_max = entries_max;
        let bytes_max = self.config.push_bytes_max;
        self.run(
            Work::Take {
                entries_max,
                bytes_max,
            },
            out,
        );
    }

    fn taken(&mut self, batch: Vec<PendingPush>, now: Now, out: &mut Out) {
        if batch.is_empty() {
            self.drained = true;
            return;
        }
        self.drained = false;
        if batch.len() < self.batch_entries_max {
            self.paced = Some(now.mono_ms + PUSH_SPACING_MS);
        }
        let resent = batch.iter().filter(|p| p.entry.attempts > 1).count();
        out.counters.entry_retries += resent as u64;
        let entries = batch
            .into_iter()
            .map(|p| {
                // Ids only: never field values or change bytes.
                let span = tracing::debug_span!(
                    "push",
                    event_id = %p.entry.event_id,
                    space = %p.entry.space,
                    record = %p.entry.record,
                    outbox_seq = p.entry.seq,
                );
                let sent = Sent {
                    seq: p.entry.seq,
                    created_ms: p.entry.created_ms,
                    span,
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
        self.effects(effects, now, out);
        self.take_more(out);
    }

    /// The relay answered a push: acknowledged entries leave the outbox, refused ones are
    /// marked failed (and resent after a delay when the refusal is for now). Entries the
    /// rate limit refused are not failed: they wait, queued and shown as syncing, and go
    /// out again after the delay the relay asked for.
    fn acked(&mut self, results: Vec<AckResult>, now: Now, out: &mut Out) {
        let mut marks = Marks::default();
        let mut held = Vec::new();
        let mut retry_after = None;
        for result in results {
            let Some(sent) = self.in_flight.remove(&result.event_id) else {
                continue;
            };
            let _entered = sent.span.enter();
            match result.outcome {
                Outcome::Stored { seq } | Outcome::Duplicate { seq } => {
                    let duplicate = matches!(result.outcome, Outcome::Duplicate { .. });
                    tracing::debug!(relay_seq = seq, duplicate, "acked");
                    if duplicate {
                        out.counters.entries_duplicate += 1;
                    } else {
                        out.counters.entries_stored += 1;
                    }
                    let waited = (now.wall_ms as i64).saturating_sub(sent.created_ms).max(0);
                    out.counters.time_to_sync.observe(waited as u64);
                    marks.acked.push((sent.seq, seq));
                }
                Outcome::Rejected {
                    code: RejectCode::RateLimited { retry_after_secs },
                    ..
                } => {
                    // Flow control, not a failure.
                    tracing::debug!(retry_after_secs, "rate limited; sending again later");
                    out.counters
                        .failure(reject_kind(&RejectCode::RateLimited { retry_after_secs }));
                    let wait = Duration::from_secs(retry_after_secs.into());
                    retry_after = Some(retry_after.unwrap_or(wait).max(wait));
                    held.push(sent.seq);
                }
                Outcome::Rejected {
                    code,
                    reason,
                    permanent,
                } => {
                    tracing::warn!(?code, permanent, "rejected: {reason}");
                    out.notes.push(format!(
                        "entry {} rejected ({}): {reason}",
                        sent.seq,
                        if permanent { "permanent" } else { "for now" }
                    ));
                    out.counters.entries_rejected += 1;
                    out.counters.failure(reject_kind(&code));
                    if !permanent {
                        retry_after = Some(retry_after.unwrap_or(Duration::ZERO));
                    }
                    let failed = (sent.seq, code.to_string(), permanent);
                    match code {
                        RejectCode::MissingDependencies | RejectCode::DependencyRejected { .. } => {
                            marks.dependency.push(failed);
                        }
                        _ => marks.failed.push(failed),
                    }
                }
            }
        }
        if !marks.acked.is_empty() && retry_after.is_none() {
            self.push_backoff.reset();
        }
        if let Some((_, reason, _)) = marks.failed.last().or(marks.dependency.last()) {
            out.last_error = Some(reason.clone());
        }
        let delay = retry_after.map(|wait| {
            let random = self.next_random();
            self.push_backoff.next_delay(random).max(wait)
        });
        if let Some(delay) = delay {
            if !held.is_empty() {
                let retry_at_ms = now.wall_ms.saturating_add(delay.as_millis() as u64);
                marks.held = Some((held, retry_at_ms as i64));
            }
            tracing::info!(
                ?delay,
                "the sync server refused changes for now; resending later"
            );
            self.hold = Some(now.mono_ms + delay.as_millis() as u64);
        }
        self.run(Work::Mark(marks), out);
        self.take_more(out);
    }

    /// The spaces pulled to the relay's head and their cursors; see
    /// [`ClientSession::caught_up`]. Store work under way for a space counts as not
    /// caught up (the session hears of an apply only once it is durable).
    pub fn caught_up(&self) -> impl Iterator<Item = (&SpaceId, Cursor)> {
        self.session.caught_up()
    }

    /// 64 jitter bits (splitmix64).
    fn next_random(&mut self) -> u64 {
        self.jitter = self.jitter.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.jitter;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn apply_changes(
        &mut self,
        space: SpaceId,
        entries: Vec<ChangeEntry>,
        next_cursor: Cursor,
        out: &mut Out,
    ) {
        self.received.push(Received::Changes {
            space,
            entries,
            next_cursor,
        });
        self.apply_received(out);
    }

    fn apply_snapshot(
        &mut self,
        space: SpaceId,
        records: Vec<RecordState>,
        cursor: Option<Cursor>,
        out: &mut Out,
    ) {
        self.received.push(Received::Snapshot {
            space,
            records,
            cursor,
        });
        self.apply_received(out);
    }

    /// Starts applying what was received, unless an apply is under way.
    fn apply_received(&mut self, out: &mut Out) {
        if let Some((received, applies)) = self.received.next() {
            self.run(Work::Apply(Apply::new(received, applies)), out);
        }
    }

    /// Starts the conversations the in-flight limit allows; forgets the cursor once
    /// every record is done.
    fn repair_pump(&mut self, space: &SpaceId, out: &mut Out) {
        for record in self.repairs.next_records(space) {
            let space = space.clone();
            self.run(Work::Message { space, record }, out);
        }
        if self.repairs.finished(space) {
            let space = space.clone();
            self.run(Work::Forget { space }, out);
        }
    }

    fn repair_answer(&mut self, space: SpaceId, record: RecordId, message: Vec<u8>, out: &mut Out) {
        let Some(state) = self.repairs.answered(&space, record) else {
            tracing::debug!(%space, %record, "repair message for a record not under repair; ignored");
            return;
        };
        if message.is_empty() {
            // The relay has nothing more to say about this record.
            return self.repair_done(&space, record, out);
        }
        self.run(
            Work::Receive {
                space,
                record,
                state,
                message,
            },
            out,
        );
    }

    fn repair_done(&mut self, space: &SpaceId, record: RecordId, out: &mut Out) {
        self.repairs.done(space, record);
        out.counters.records_repaired += 1;
        self.repair_pump(space, out);
    }
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
