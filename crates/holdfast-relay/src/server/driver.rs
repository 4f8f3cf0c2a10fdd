//! The relay's side of one connection without a socket, a clock or a thread ("sans-IO"):
//! the protocol's [`RelaySession`] plus what the server keeps around it (the stores waiting
//! their turn, the repairs in storage, a shutdown's drain).
//!
//! A [`RelayDriver`] is fed what happens — a message from the device, the once-a-second
//! tick, a batch from the fan-out, the result of storage work, a shutdown — and answers in
//! an [`Out`]: frames to send, storage [`Work`] to run, spaces to subscribe to, and whether
//! to close. It never touches storage itself: the caller runs each piece of work when it
//! chooses and hands its [`Done`] back through [`RelayDriver::done`]. The rules it keeps:
//!
//! - One connection's stores run one at a time, in push order, so a push never commits
//!   before an earlier one it may depend on: the next [`Work::Store`] is handed out only
//!   when the one before it is done. Pulls, bootstraps and repairs may run at once, and
//!   finish in any order.
//! - The caller reads a message only while [`RelayDriver::wants_read`]: the stores and
//!   pulls waiting for storage are bounded by the session's limits, the repairs in storage
//!   by [`REPAIRS_IN_FLIGHT_MAX`], so a device cannot queue unbounded work.
//! - What the session cannot see — storage failing, a text message, a frame the socket
//!   layer refused as too large, a frame that cannot be encoded — ends the connection with
//!   an `Error` frame, then a close.
//! - Entries this connection stored come back to it from the fan-out without their
//!   changes ([`RelayDriver::live`]): its device holds them.
//! - After [`RelayDriver::shut_down`] nothing more is read; once the work handed out is
//!   done (its acks sent), the device is turned away with `ServerBusy`.
//!
//! The server's connection task (`server/connection.rs`) drives this code with a
//! WebSocket, tokio's blocking pool and the fan-out; the deterministic simulation
//! (`crates/holdfast-sim`) drives it on simulated links, running the work at steps of its
//! choosing, so what the simulation checks is the server's own glue.

use std::collections::VecDeque;
use std::sync::Arc;

use holdfast_protocol::session::{
    Authenticator, CloseReason, DriverError, PullReply, RelayConfig, RelayEffect, RelaySession,
    RequestId,
};
use holdfast_protocol::{
    AckResult, BootstrapFrom, ChangeEntry, Cursor, DecodeError, ErrorCode, Frame, PushEntry,
    RecordId, SpaceId,
};

use crate::error::StoreError;

#[cfg(test)]
mod tests;

/// `Repair` messages of one connection in storage at once; at that many the connection
/// stops reading, as for pushes and pulls, so a device cannot queue unbounded work. Counted
/// by the driver, not the session: a repair's answer is not a request the session tracks.
pub const REPAIRS_IN_FLIGHT_MAX: usize = 4;

/// A piece of storage work a [`RelayDriver`] hands out, to run off any async reactor (it
/// blocks on redb and Automerge). Its result goes back through [`RelayDriver::done`]. Not
/// `#[non_exhaustive]`: a caller must run every kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    /// Store the entries durably ([`LogStore::store`](crate::LogStore::store)), publish
    /// what was stored to the fan-out, answer [`Done::Stored`].
    Store {
        /// Names the result.
        request_id: RequestId,
        /// The entries, in the order pushed.
        entries: Vec<PushEntry>,
    },
    /// Read the space's log after `cursor` ([`LogStore::pull`](crate::LogStore::pull)),
    /// answer [`Done::Pulled`].
    Pull {
        /// Names the result.
        request_id: RequestId,
        /// The space.
        space: SpaceId,
        /// Where the device's copy ends.
        cursor: Cursor,
        /// Most change bytes to answer with.
        max_bytes: u64,
    },
    /// Read one page of the space's current state
    /// ([`LogStore::bootstrap`](crate::LogStore::bootstrap)), answer [`Done::Pulled`].
    Bootstrap {
        /// Names the result.
        request_id: RequestId,
        /// The space.
        space: SpaceId,
        /// Where the page starts; `None` for the first.
        from: Option<BootstrapFrom>,
        /// Most document and change bytes to answer with.
        max_bytes: u64,
    },
    /// Answer a device's sync message for one record
    /// ([`LogStore::sync_record`](crate::LogStore::sync_record)), publish what it stored,
    /// answer [`Done::Repaired`].
    Repair {
        /// The space.
        space: SpaceId,
        /// The record.
        record: RecordId,
        /// The device's sync message.
        message: Vec<u8>,
        /// Whether the device may write the space.
        may_write: bool,
    },
}

/// The result of a piece of [`Work`].
#[derive(Debug)]
pub enum Done {
    /// A [`Work::Store`] finished: one result per entry, in order, or nothing stored.
    Stored {
        /// The store's request.
        request_id: RequestId,
        /// Its results.
        result: Result<Vec<AckResult>, StoreError>,
    },
    /// A [`Work::Pull`] or [`Work::Bootstrap`] finished.
    Pulled {
        /// The pull's request.
        request_id: RequestId,
        /// Its answer; a storage failure is [`PullReply::Failed`].
        reply: PullReply,
    },
    /// A [`Work::Repair`] finished: the relay's sync message, if it has one to send.
    Repaired {
        /// The space.
        space: SpaceId,
        /// The record.
        record: RecordId,
        /// The relay's answer.
        reply: Result<Option<Vec<u8>>, StoreError>,
    },
}

/// What one call into a [`RelayDriver`] asks of its caller. Each call appends; the caller
/// carries out and drains it.
#[derive(Debug, Default)]
pub struct Out {
    /// Frames to send, in order.
    pub frames: Vec<Frame>,
    /// Storage work to run.
    pub work: Vec<Work>,
    /// From now on deliver the fan-out's batches of these spaces to
    /// [`RelayDriver::live`], instead of those of any earlier subscription.
    pub subscribe: Option<Vec<SpaceId>>,
    /// Close the connection with this reason once `frames` are sent. Nothing follows: the
    /// driver ignores every later event.
    pub close: Option<CloseReason>,
    /// What is never expected (storage failing, a result the session did not ask for), in
    /// words; already logged with `tracing`.
    pub problems: Vec<String>,
}

impl Out {
    /// Whether the call asked for nothing.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))] // the simulation's
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
            && self.work.is_empty()
            && self.subscribe.is_none()
            && self.close.is_none()
            && self.problems.is_empty()
    }
}

/// The relay's side of one connection; see the [module](self).
pub struct RelayDriver {
    session: RelaySession,
    /// Named in `FrameTooLarge`.
    frame_bytes_max: u32,
    /// Pushes waiting for the store in flight. The session bounds how many wait
    /// (`pushes_in_flight_max`).
    stores_waiting: VecDeque<(RequestId, Vec<PushEntry>)>,
    /// A store of this connection is handed out.
    storing: bool,
    /// `Repair` work handed out and not done.
    repairs_in_flight: usize,
    /// Work handed out and not done.
    work_out: usize,
    /// Shutting down: nothing more is read, and the device is turned away once
    /// `work_out` is 0.
    draining: bool,
    /// A close was handed out.
    ended: bool,
}

impl RelayDriver {
    /// A connection accepted at `now_ms` (milliseconds since the Unix epoch, the clock of
    /// every call); its session waits for the device's `Hello`.
    pub fn new(config: RelayConfig, authenticator: Arc<dyn Authenticator>, now_ms: u64) -> Self {
        let frame_bytes_max = config.limits.frame_bytes_max;
        RelayDriver {
            session: RelaySession::new(config, authenticator, now_ms),
            frame_bytes_max,
            stores_waiting: VecDeque::new(),
            storing: false,
            repairs_in_flight: 0,
            work_out: 0,
            draining: false,
            ended: false,
        }
    }

    /// The session: the device and its grants once authenticated.
    pub fn session(&self) -> &RelaySession {
        &self.session
    }

    /// Whether the caller should read the next message. False while the stores, the pulls
    /// or the repairs waiting for storage are at their limits, while shutting down, and
    /// once closed.
    pub fn wants_read(&self) -> bool {
        !self.ended
            && !self.draining
            && self.session.wants_read()
            && self.repairs_in_flight < REPAIRS_IN_FLIGHT_MAX
    }

    /// Whether a close was handed out: the driver ignores every later event.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))] // the simulation's
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Pieces of work handed out whose [`Done`] has not come back.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))] // the simulation's
    pub fn work_out(&self) -> usize {
        self.work_out
    }

    /// A binary message from the device.
    pub fn received(&mut self, bytes: &[u8], now_ms: u64, out: &mut Out) {
        if self.ended {
            return;
        }
        let effects = self.session.handle_bytes(bytes, now_ms);
        self.effects(effects, out);
    }

    /// A binary message the caller decoded itself (off its reactor, for a large one); it
    /// was no larger than the frame limit.
    pub fn received_decoded(
        &mut self,
        decoded: Result<Frame, DecodeError>,
        now_ms: u64,
        out: &mut Out,
    ) {
        if self.ended {
            return;
        }
        let effects = self.session.handle_decoded(decoded, now_ms);
        self.effects(effects, out);
    }

    /// The WebSocket layer answered a WebSocket ping from the device: counted with the
    /// session's pings, so a ping flood ends the connection.
    pub fn websocket_ping(&mut self, now_ms: u64, out: &mut Out) {
        if self.ended {
            return;
        }
        let effects = self.session.websocket_ping(now_ms);
        self.effects(effects, out);
    }

    /// A text message from the device: frames are binary messages.
    pub fn received_text(&mut self, out: &mut Out) {
        self.fail(
            ErrorCode::Malformed,
            "text message; frames are binary messages",
            out,
        );
    }

    /// The socket layer refused a message above the frame limit (from its header, before
    /// buffering it); `detail` says what it saw.
    pub fn too_large(&mut self, detail: impl Into<String>, out: &mut Out) {
        let max = self.frame_bytes_max;
        self.fail(ErrorCode::FrameTooLarge { max }, detail, out);
    }

    /// The once-a-second tick: keepalive, idle and handshake timeouts, token expiry.
    pub fn tick(&mut self, now_ms: u64, out: &mut Out) {
        if self.ended {
            return;
        }
        let effects = self.session.handle_tick(now_ms);
        self.effects(effects, out);
    }

    /// Entries of `space` just stored, from the fan-out: sent on if the session subscribed
    /// to the space. `own` when this connection stored them: its device pushed the changes
    /// from its own store, so it is sent the entries without them. Their positions still
    /// move its cursor past them, so a later entry does not look like a gap, and nothing
    /// is pulled again.
    pub fn live(
        &mut self,
        space: &SpaceId,
        entries: &[ChangeEntry],
        next_cursor: Cursor,
        own: bool,
        out: &mut Out,
    ) {
        if self.ended {
            return;
        }
        let effects = if own {
            let positions: Vec<ChangeEntry> = entries
                .iter()
                .map(|entry| ChangeEntry {
                    changes: Vec::new(),
                    ..*entry
                })
                .collect();
            self.session.handle_live(space, &positions, next_cursor)
        } else {
            self.session.handle_live(space, entries, next_cursor)
        };
        self.effects(effects, out);
    }

    /// The result of a piece of work this driver handed out, in any order.
    pub fn done(&mut self, done: Done, out: &mut Out) {
        self.work_out = self.work_out.saturating_sub(1);
        if self.ended {
            return;
        }
        let effects = match done {
            Done::Stored {
                request_id,
                result: Ok(results),
            } => {
                self.storing = false;
                self.store_next(out);
                self.session.handle_store_result(request_id, results)
            }
            Done::Stored {
                result: Err(error), ..
            } => {
                // Nothing of the push is acknowledged; the device resends it on its next
                // connection.
                tracing::error!("store failed: {error}");
                out.problems.push(format!("store failed: {error}"));
                return self.fail(ErrorCode::Internal, "storage failed", out);
            }
            Done::Pulled { request_id, reply } => self.session.handle_pulled(request_id, reply),
            Done::Repaired {
                space,
                record,
                reply,
            } => {
                self.repairs_in_flight = self.repairs_in_flight.saturating_sub(1);
                match reply {
                    // An empty message ends the device's conversation without a timeout.
                    Ok(message) => {
                        let message = message.unwrap_or_default();
                        Ok(self.session.send_repair(space, record, message))
                    }
                    Err(StoreError::BadSyncMessage(detail)) => {
                        return self.fail(ErrorCode::Malformed, detail, out);
                    }
                    Err(error) => {
                        tracing::error!(%space, %record, "repair failed: {error}");
                        out.problems
                            .push(format!("repair of {record} in {space} failed: {error}"));
                        return self.fail(ErrorCode::Internal, "storage failed", out);
                    }
                }
            }
        };
        self.session_result(effects, out);
        self.drain(out);
    }

    /// A piece of work handed out ended without a result (its thread panicked).
    pub fn work_failed(&mut self, out: &mut Out) {
        self.work_out = self.work_out.saturating_sub(1);
        self.fail(ErrorCode::Internal, "storage task failed", out);
    }

    /// The caller's decoding of a large message ended without a result (its thread
    /// panicked): the connection ends with `Internal`.
    pub fn decoding_failed(&mut self, out: &mut Out) {
        self.fail(ErrorCode::Internal, "decoding task failed", out);
    }

    /// The caller could not encode `frame` (one this driver handed out): the connection
    /// ends with `Internal`, unless it is ending already.
    pub fn unsendable(&mut self, frame: &Frame, out: &mut Out) {
        if !matches!(frame, Frame::Error { .. }) {
            self.fail(ErrorCode::Internal, "could not encode a frame", out);
        }
    }

    /// The relay shuts down, or turns this connection away (too many connections): nothing
    /// more is read, and once the work handed out is done (the acks of the stores in
    /// flight sent), the device is told `ServerBusy` and the connection closes.
    pub fn shut_down(&mut self, out: &mut Out) {
        self.draining = true;
        self.drain(out);
    }

    /// Turns the device away once draining and nothing is in storage.
    fn drain(&mut self, out: &mut Out) {
        if !self.draining || self.ended || self.work_out > 0 {
            return;
        }
        let effects = self.session.shut_down();
        self.effects(effects, out);
    }

    fn session_result(&mut self, effects: Result<Vec<RelayEffect>, DriverError>, out: &mut Out) {
        match effects {
            Ok(effects) => self.effects(effects, out),
            Err(error) => {
                tracing::error!("driver bug: {error}");
                out.problems.push(format!("relay driver bug: {error}"));
                self.fail(ErrorCode::Internal, "relay error", out);
            }
        }
    }

    /// Carries out the session's effects, in order.
    fn effects(&mut self, effects: Vec<RelayEffect>, out: &mut Out) {
        for effect in effects {
            if self.ended {
                return;
            }
            match effect {
                RelayEffect::Send(frame) => out.frames.push(frame),
                RelayEffect::Close(reason) => self.close(reason, out),
                RelayEffect::Subscribe { spaces } => out.subscribe = Some(spaces),
                RelayEffect::Store {
                    request_id,
                    entries,
                } => {
                    self.stores_waiting.push_back((request_id, entries));
                    if !self.storing {
                        self.store_next(out);
                    }
                }
                RelayEffect::Pull {
                    request_id,
                    space,
                    cursor,
                    max_bytes,
                } => self.hand_out(
                    Work::Pull {
                        request_id,
                        space,
                        cursor,
                        max_bytes,
                    },
                    out,
                ),
                RelayEffect::Bootstrap {
                    request_id,
                    space,
                    from,
                    max_bytes,
                } => self.hand_out(
                    Work::Bootstrap {
                        request_id,
                        space,
                        from,
                        max_bytes,
                    },
                    out,
                ),
                RelayEffect::Repair {
                    space,
                    record,
                    message,
                    may_write,
                } => {
                    self.repairs_in_flight += 1;
                    let work = Work::Repair {
                        space,
                        record,
                        message,
                        may_write,
                    };
                    self.hand_out(work, out);
                }
                other => {
                    let mut detail = format!("{other:?}");
                    detail.truncate(200);
                    tracing::warn!(effect = detail, "relay effect not handled");
                }
            }
        }
    }

    /// Hands the oldest waiting push to storage, if any.
    fn store_next(&mut self, out: &mut Out) {
        if let Some((request_id, entries)) = self.stores_waiting.pop_front() {
            self.storing = true;
            self.hand_out(
                Work::Store {
                    request_id,
                    entries,
                },
                out,
            );
        }
    }

    fn hand_out(&mut self, work: Work, out: &mut Out) {
        self.work_out += 1;
        out.work.push(work);
    }

    fn close(&mut self, reason: CloseReason, out: &mut Out) {
        tracing::debug!(?reason, "closing");
        out.close = Some(reason);
        self.ended = true;
    }

    /// Ends the connection for a reason the session cannot see: `Error { code }`, then
    /// close.
    fn fail(&mut self, code: ErrorCode, detail: impl Into<String>, out: &mut Out) {
        if self.ended {
            return;
        }
        let detail = detail.into();
        tracing::info!(?code, detail, "ending connection");
        out.frames.push(Frame::Error {
            code: code.clone(),
            message: detail,
        });
        self.close(CloseReason::Sent(code), out);
    }
}
