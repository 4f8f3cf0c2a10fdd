//! The device's side of one connection: handshake, pipelined pushes, pulls and repair.

use std::collections::{BTreeMap, VecDeque};

use uuid::Uuid;

use super::{error_frame, CloseReason, Liveness, Pulse};
use crate::codec::decode;
use crate::frame::{
    AckResult, BootstrapFrom, ChangeEntry, Cursor, ErrorCode, Frame, Limits, PushEntry,
    RecordState, SpaceCursor, Token,
};
use crate::ids::{DeviceId, EventId, RecordId, SpaceId};
use crate::limits::{
    HANDSHAKE_TIMEOUT_MS_DEFAULT, IDLE_TIMEOUT_MS_DEFAULT, KEEPALIVE_INTERVAL_MS_DEFAULT,
    PROTOCOL_VERSION, PULL_BYTES_MAX_DEFAULT, PUSH_BYTES_MAX_DEFAULT,
};

#[cfg(test)]
mod tests;

/// Every setting of a client session, with defaults from [`limits`](crate::limits).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The device.
    pub device: DeviceId,
    /// The bearer token sent in `Hello`.
    pub token: Token,
    /// Most change bytes asked for in one `Pull`.
    pub pull_bytes_max: u64,
    /// Most change bytes put in one `Push`; an entry larger than this goes alone.
    pub push_bytes_max: u64,
    /// Time the relay has to answer `Hello`.
    pub handshake_timeout_ms: u64,
    /// Quiet time after which the device pings the relay.
    pub keepalive_interval_ms: u64,
    /// Quiet time after which the device gives up on the connection.
    pub idle_timeout_ms: u64,
}

impl ClientConfig {
    /// The defaults, for this device and token.
    pub fn new(device: DeviceId, token: Token) -> Self {
        Self {
            device,
            token,
            pull_bytes_max: PULL_BYTES_MAX_DEFAULT,
            push_bytes_max: PUSH_BYTES_MAX_DEFAULT,
            handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS_DEFAULT,
            keepalive_interval_ms: KEEPALIVE_INTERVAL_MS_DEFAULT,
            idle_timeout_ms: IDLE_TIMEOUT_MS_DEFAULT,
        }
    }
}

/// What a [`ClientSession`] asks the sync worker to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEffect {
    /// Encode and send this frame.
    Send(Frame),
    /// The relay accepted the `Hello`.
    Welcomed {
        /// The relay's identity.
        relay_id: Uuid,
        /// The relay's epoch.
        epoch: u64,
    },
    /// The relay answered one push: mark each entry synced, failed or to retry.
    Acked(Vec<AckResult>),
    /// Apply these entries of the space and store `next_cursor` in one transaction, then
    /// call [`ClientSession::handle_applied`]. Applies come in log order; carry them out in
    /// the order given.
    Apply {
        /// The space.
        space: SpaceId,
        /// The entries, in log order, none at or before the cursor already applied.
        entries: Vec<ChangeEntry>,
        /// The cursor to store with them.
        next_cursor: Cursor,
    },
    /// Apply these record states of a space that was never pulled (load each document,
    /// apply its changes) and, when `cursor` is given, store it in the same transaction;
    /// then call [`ClientSession::handle_applied`]. The last page of a bootstrap carries
    /// the cursor; after it the space is pulled from there.
    ApplySnapshot {
        /// The space.
        space: SpaceId,
        /// The records of this page.
        records: Vec<RecordState>,
        /// The cursor to store with the last page.
        cursor: Option<Cursor>,
    },
    /// The relay cannot vouch for the space's stored cursor (it is from another relay
    /// epoch, or the relay was restored from a backup and lost entries the device pulled):
    /// repair it with the Automerge sync protocol through [`ClientSession::send_repair`],
    /// then call [`ClientSession::handle_repaired`], which bootstraps the space again.
    /// Never reset it: nothing the device holds may be thrown away.
    Repair {
        /// The space.
        space: SpaceId,
    },
    /// The relay sent an Automerge sync message for a record.
    RepairMessage {
        /// The space.
        space: SpaceId,
        /// The record.
        record: RecordId,
        /// The sync message.
        message: Vec<u8>,
    },
    /// The connection cannot go on. `reason` is for the user; a `Closed` follows.
    Fatal {
        /// What went wrong.
        code: ErrorCode,
        /// `code` in plain words, for the user.
        reason: String,
        /// Whether reconnecting cannot help until something changes on the device (a new
        /// token, an app update).
        permanent: bool,
        /// Seconds the relay asks to wait before reconnecting, if it said.
        retry_after_secs: Option<u32>,
    },
    /// The connection is over; drop it. Unacked pushes must be sent again on the next one.
    Closed(CloseReason),
}

/// The device's side of one connection, as a state machine.
///
/// [`start`](Self::start) sends the `Hello`. Once `Welcome` arrives the session pulls every
/// space whose cursor is from the relay's epoch (or that was never pulled), asks for
/// repair of the others, and sends queued pushes: at most the relay's
/// `batch_entries_max` entries per `Push` and `pushes_in_flight_max` unacked `Push`
/// frames, each further batch sent as an `Ack` frees a slot.
pub struct ClientSession {
    config: ClientConfig,
    state: State,
    liveness: Liveness,
    started_ms: u64,
    spaces: BTreeMap<SpaceId, Space>,
    queued: VecDeque<PushEntry>,
    /// Event ids of each unacked `Push`, oldest first.
    in_flight: VecDeque<Vec<EventId>>,
}

enum State {
    Idle,
    AwaitingWelcome,
    Ready { epoch: u64, limits: Limits },
    Closed,
}

/// What the session knows of one space.
#[derive(Debug, Default)]
struct Space {
    /// The position after every `Apply` handed out so far.
    cursor: Option<Cursor>,
    /// Being repaired: neither pulled nor applied until repaired.
    repairing: bool,
    /// Without a cursor, repair it at the `Welcome` before bootstrapping it (see
    /// [`ClientSession::repair_before_bootstrap`]).
    repair_first: bool,
    /// The cursor of the pull waiting for its answer.
    pulling: Option<Cursor>,
    /// A bootstrap is under way (a page requested or being applied).
    booting: bool,
    /// The `base` of the bootstrap's first page, once it arrived.
    boot_base: Option<Cursor>,
    /// `Apply` effects not yet reported applied.
    applying: usize,
    /// Pull again once the applies are done: the log goes on, or a gap was seen.
    pull_wanted: bool,
}

impl Space {
    fn caught_up(&self) -> bool {
        !self.repairing
            && self.pulling.is_none()
            && !self.booting
            && self.applying == 0
            && !self.pull_wanted
            && self.cursor.is_some()
    }
}

impl ClientSession {
    /// A session for a device syncing `spaces`, each with its stored cursor.
    pub fn new(config: ClientConfig, spaces: Vec<SpaceCursor>, now_ms: u64) -> Self {
        let liveness = Liveness::new(now_ms, config.keepalive_interval_ms, config.idle_timeout_ms);
        let spaces = spaces
            .into_iter()
            .map(|s| {
                let space = Space {
                    cursor: s.cursor,
                    ..Space::default()
                };
                (s.space, space)
            })
            .collect();
        Self {
            config,
            state: State::Idle,
            liveness,
            started_ms: now_ms,
            spaces,
            queued: VecDeque::new(),
            in_flight: VecDeque::new(),
        }
    }

    /// Starts the conversation: sends the `Hello`.
    pub fn start(&mut self, now_ms: u64) -> Vec<ClientEffect> {
        if !matches!(self.state, State::Idle) {
            return Vec::new();
        }
        self.state = State::AwaitingWelcome;
        self.started_ms = now_ms;
        self.liveness.heard(now_ms);
        let spaces = self
            .spaces
            .iter()
            .map(|(space, s)| SpaceCursor {
                space: space.clone(),
                cursor: s.cursor,
            })
            .collect();
        vec![ClientEffect::Send(Frame::Hello {
            protocol: PROTOCOL_VERSION,
            device: self.config.device,
            token: self.config.token.clone(),
            spaces,
        })]
    }

    /// Tells the session that the device holds changes of `space` that left its outbox
    /// (acked by the relay, or received from it) although it has no cursor for it: a
    /// bootstrap never finished (the first one, cut short after some of the device's
    /// changes were acked, or the one after a repair). The relay may have lost those
    /// changes since (restored from a backup), and neither a bootstrap nor the outbox
    /// would bring them back, so at the `Welcome` the space is repaired first
    /// (`ClientEffect::Repair`), then bootstrapped. Call before `start`.
    pub fn repair_before_bootstrap(&mut self, space: &SpaceId) {
        if let Some(s) = self.spaces.get_mut(space) {
            s.repair_first = s.cursor.is_none();
        }
    }

    /// Queues local commits to push, in order, and sends what the relay's limits allow.
    pub fn push(&mut self, entries: Vec<PushEntry>) -> Vec<ClientEffect> {
        if matches!(self.state, State::Closed) {
            return Vec::new();
        }
        self.queued.extend(entries);
        self.send_queued()
    }

    /// Handles one message read from the connection.
    pub fn handle_bytes(&mut self, bytes: &[u8], now_ms: u64) -> Vec<ClientEffect> {
        if matches!(self.state, State::Closed) {
            return Vec::new();
        }
        match decode(bytes) {
            Ok(frame) => self.handle_frame(frame, now_ms),
            Err(error) => self.fail(error.code(), error.to_string()),
        }
    }

    /// Handles a frame the driver decoded itself.
    pub fn handle_frame(&mut self, frame: Frame, now_ms: u64) -> Vec<ClientEffect> {
        self.liveness.heard(now_ms);
        match (&self.state, frame) {
            (State::Idle | State::Closed, _) => Vec::new(),
            (_, Frame::Ping { nonce }) => vec![ClientEffect::Send(Frame::Pong { nonce })],
            (_, Frame::Pong { .. }) => Vec::new(),
            (_, Frame::Error { code, .. }) => self.relay_error(code),
            (
                State::AwaitingWelcome,
                Frame::Welcome {
                    relay_id,
                    epoch,
                    limits,
                },
            ) => self.welcome(relay_id, epoch, limits),
            (State::Ready { .. }, Frame::Ack { results }) => self.ack(results),
            (
                State::Ready { .. },
                Frame::Changes {
                    space,
                    entries,
                    next_cursor,
                    more,
                },
            ) => self.changes(space, entries, next_cursor, more),
            (
                State::Ready { .. },
                Frame::Snapshot {
                    space,
                    records,
                    base,
                    next,
                },
            ) => self.snapshot(space, records, base, next),
            (
                State::Ready { epoch, .. },
                Frame::Resync {
                    space,
                    epoch: theirs,
                },
            ) if self.spaces.contains_key(&space) && theirs == *epoch => self.resync(space),
            (
                State::Ready { .. },
                Frame::Repair {
                    space,
                    record,
                    message,
                },
            ) if self.spaces.contains_key(&space) => {
                vec![ClientEffect::RepairMessage {
                    space,
                    record,
                    message,
                }]
            }
            (_, frame) => {
                let detail = format!("unexpected {} from the relay", frame.name());
                self.fail(ErrorCode::Malformed, detail)
            }
        }
    }

    /// The worker applied the oldest `Apply` of `space`; pulls on if the log goes on.
    pub fn handle_applied(&mut self, space: &SpaceId) -> Vec<ClientEffect> {
        let Some(s) = self.spaces.get_mut(space) else {
            return Vec::new();
        };
        s.applying = s.applying.saturating_sub(1);
        self.pull_if_wanted(space)
    }

    /// Sends the device's Automerge sync message for a record under repair.
    pub fn send_repair(
        &mut self,
        space: SpaceId,
        record: RecordId,
        message: Vec<u8>,
    ) -> Vec<ClientEffect> {
        if !matches!(self.state, State::Ready { .. }) {
            return Vec::new();
        }
        vec![ClientEffect::Send(Frame::Repair {
            space,
            record,
            message,
        })]
    }

    /// The repair of `space` is done: every record the device holds is in sync with the
    /// relay. Bootstraps the space again, which gives it a cursor of the relay's epoch.
    pub fn handle_repaired(&mut self, space: &SpaceId) -> Vec<ClientEffect> {
        let Some(s) = self.spaces.get_mut(space) else {
            return Vec::new();
        };
        s.repairing = false;
        s.cursor = None;
        s.pull_wanted = true;
        self.pull_if_wanted(space)
    }

    /// Handles the passing of time: pings a quiet relay, gives up on an idle one or on a
    /// handshake that takes too long.
    pub fn handle_tick(&mut self, now_ms: u64) -> Vec<ClientEffect> {
        match self.state {
            State::Idle | State::Closed => return Vec::new(),
            State::AwaitingWelcome => {
                if now_ms.saturating_sub(self.started_ms) >= self.config.handshake_timeout_ms {
                    return self.close(CloseReason::HandshakeTimeout);
                }
            }
            State::Ready { .. } => {}
        }
        match self.liveness.tick(now_ms) {
            Pulse::Quiet => Vec::new(),
            Pulse::Ping(frame) => vec![ClientEffect::Send(frame)],
            Pulse::Idle => self.close(CloseReason::IdleTimeout),
        }
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Entries queued and not yet sent.
    pub fn queued_len(&self) -> usize {
        self.queued.len()
    }

    /// `Push` frames sent and not yet acked.
    pub fn pushes_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The relay's limits for this connection, once its `Welcome` came.
    pub fn limits(&self) -> Option<Limits> {
        match self.state {
            State::Ready { limits, .. } => Some(limits),
            _ => None,
        }
    }

    /// Whether every space is caught up: welcomed, and no space has a pull, a bootstrap,
    /// an `Apply` not yet reported applied, or a repair under way. Pushes do not count
    /// (see [`queued_len`](Self::queued_len) and [`pushes_in_flight`](Self::pushes_in_flight)).
    pub fn is_caught_up(&self) -> bool {
        matches!(self.state, State::Ready { .. }) && self.spaces.values().all(Space::caught_up)
    }

    /// The spaces pulled to the relay's head, with their cursors: the relay's latest
    /// answer for the space (a `Changes` with `more: false`, the last `Snapshot` page and
    /// the pull after it, or a live frame continuing the cursor) left nothing to ask for,
    /// and every `Apply` of it was reported applied. While the connection stays up the
    /// relay sends new entries live, so a space leaves this list while they are applied
    /// and comes back with a later cursor. Empty until the `Welcome`.
    pub fn caught_up(&self) -> impl Iterator<Item = (&SpaceId, Cursor)> {
        let ready = matches!(self.state, State::Ready { .. });
        self.spaces
            .iter()
            .filter(move |(_, s)| ready && s.caught_up())
            .filter_map(|(space, s)| Some((space, s.cursor?)))
    }

    /// The position of `space` after every `Apply` handed out so far.
    pub fn cursor(&self, space: &SpaceId) -> Option<Cursor> {
        self.spaces.get(space).and_then(|s| s.cursor)
    }

    fn welcome(&mut self, relay_id: Uuid, epoch: u64, limits: Limits) -> Vec<ClientEffect> {
        self.state = State::Ready { epoch, limits };
        let mut effects = vec![ClientEffect::Welcomed { relay_id, epoch }];
        let names: Vec<SpaceId> = self.spaces.keys().cloned().collect();
        for space in names {
            let s = self.spaces.get_mut(&space).expect("listed above");
            let repair = match s.cursor {
                Some(cursor) => cursor.epoch != epoch,
                None => std::mem::take(&mut s.repair_first),
            };
            if repair {
                s.repairing = true;
                effects.push(ClientEffect::Repair { space });
            } else {
                s.pull_wanted = true;
                effects.extend(self.pull_if_wanted(&space));
            }
        }
        effects.extend(self.send_queued());
        effects
    }

    fn ack(&mut self, results: Vec<AckResult>) -> Vec<ClientEffect> {
        let answers = |ids: &Vec<EventId>| {
            ids.len() == results.len() && ids.iter().zip(&results).all(|(id, r)| *id == r.event_id)
        };
        let Some(index) = self.in_flight.iter().position(answers) else {
            return self.fail(ErrorCode::Malformed, "ack answers no push in flight");
        };
        self.in_flight.remove(index);
        let mut effects = vec![ClientEffect::Acked(results)];
        effects.extend(self.send_queued());
        effects
    }

    fn changes(
        &mut self,
        space: SpaceId,
        mut entries: Vec<ChangeEntry>,
        next_cursor: Cursor,
        more: bool,
    ) -> Vec<ClientEffect> {
        let State::Ready { epoch, .. } = self.state else {
            return Vec::new();
        };
        let Some(s) = self.spaces.get_mut(&space) else {
            let detail = format!("changes of {space}, not synced here");
            return self.fail(ErrorCode::Malformed, detail);
        };
        // Live changes during a bootstrap are covered by the pull from its base.
        let Some(at) = s.cursor else {
            return Vec::new();
        };
        if s.repairing || next_cursor.epoch != epoch {
            return Vec::new();
        }
        let first = entries.first().map_or(next_cursor.seq + 1, |e| e.seq);
        // The answer to the pull in flight starts right after the pulled cursor; a live
        // frame that starts there too answers it as well.
        if s.pulling.is_some_and(|pulled| first <= pulled.seq + 1) {
            s.pulling = None;
        }
        s.pull_wanted |= more;
        entries.retain(|e| e.seq > at.seq);
        // Only the run that continues the cursor without a gap is applied: a live frame
        // may carry entries of one commit with other connections' entries between them.
        let run = entries
            .iter()
            .zip(at.seq + 1..)
            .take_while(|(entry, seq)| entry.seq == *seq)
            .count();
        let mut next_cursor = next_cursor;
        if run > 0 && run < entries.len() {
            entries.truncate(run);
            next_cursor = Cursor {
                epoch,
                seq: at.seq + run as u64,
            };
            s.pull_wanted = true;
        }
        match entries.first() {
            // Nothing new: a repeat, or an empty answer.
            None => {}
            Some(entry) if entry.seq == at.seq + 1 && next_cursor.seq > at.seq => {
                s.cursor = Some(next_cursor);
                s.applying += 1;
                return vec![ClientEffect::Apply {
                    space,
                    entries,
                    next_cursor,
                }];
            }
            // A gap: live changes ran ahead of what is applied. Pull the rest.
            Some(_) => s.pull_wanted = true,
        }
        self.pull_if_wanted(&space)
    }

    /// A page of a bootstrap: hands it out to apply and asks for the next one.
    fn snapshot(
        &mut self,
        space: SpaceId,
        records: Vec<RecordState>,
        base: Cursor,
        next: Option<crate::ids::RecordId>,
    ) -> Vec<ClientEffect> {
        let State::Ready { epoch, .. } = self.state else {
            return Vec::new();
        };
        let Some(s) = self.spaces.get_mut(&space) else {
            let detail = format!("snapshot of {space}, not synced here");
            return self.fail(ErrorCode::Malformed, detail);
        };
        if !s.booting || s.repairing {
            return Vec::new();
        }
        if base.epoch != epoch {
            let detail = format!("snapshot base {base} is not of epoch {epoch}");
            return self.fail(ErrorCode::Malformed, detail);
        }
        let base = *s.boot_base.get_or_insert(base);
        s.applying += 1;
        let mut effects = Vec::with_capacity(2);
        match next {
            Some(after) => {
                effects.push(ClientEffect::ApplySnapshot {
                    space: space.clone(),
                    records,
                    cursor: None,
                });
                effects.push(ClientEffect::Send(Frame::Bootstrap {
                    space,
                    from: Some(BootstrapFrom { base, after }),
                    max_bytes: self.config.pull_bytes_max,
                }));
            }
            None => {
                s.booting = false;
                s.boot_base = None;
                s.cursor = Some(base);
                s.pull_wanted = true;
                effects.push(ClientEffect::ApplySnapshot {
                    space,
                    records,
                    cursor: Some(base),
                });
            }
        }
        effects
    }

    /// The relay cannot vouch for the space's cursor: stops pulling it and asks the worker
    /// to repair it.
    fn resync(&mut self, space: SpaceId) -> Vec<ClientEffect> {
        let s = self.spaces.get_mut(&space).expect("checked by the caller");
        if s.repairing {
            return Vec::new();
        }
        s.repairing = true;
        s.pulling = None;
        s.booting = false;
        s.boot_base = None;
        vec![ClientEffect::Repair { space }]
    }

    /// Asks for the space's log after its cursor (a `Pull`), or for its current state when
    /// it has none yet (a `Bootstrap`), if wanted and nothing of the space is in flight.
    fn pull_if_wanted(&mut self, space: &SpaceId) -> Vec<ClientEffect> {
        if !matches!(self.state, State::Ready { .. }) {
            return Vec::new();
        }
        let Some(s) = self.spaces.get_mut(space) else {
            return Vec::new();
        };
        let busy = s.repairing || s.pulling.is_some() || s.booting || s.applying > 0;
        if !s.pull_wanted || busy {
            return Vec::new();
        }
        s.pull_wanted = false;
        let space = space.clone();
        let max_bytes = self.config.pull_bytes_max;
        let frame = match s.cursor {
            Some(cursor) => {
                s.pulling = Some(cursor);
                Frame::Pull {
                    space,
                    cursor,
                    max_bytes,
                }
            }
            None => {
                s.booting = true;
                Frame::Bootstrap {
                    space,
                    from: None,
                    max_bytes,
                }
            }
        };
        vec![ClientEffect::Send(frame)]
    }

    /// Sends queued entries in batches while the relay's in-flight limit allows.
    fn send_queued(&mut self) -> Vec<ClientEffect> {
        let State::Ready { limits, .. } = self.state else {
            return Vec::new();
        };
        let entries_max = (limits.batch_entries_max as usize).max(1);
        let bytes_max = self.config.push_bytes_max;
        let mut effects = Vec::new();
        while !self.queued.is_empty() && self.in_flight.len() < limits.pushes_in_flight_max as usize
        {
            let mut batch = Vec::new();
            let mut bytes = 0u64;
            while let Some(entry) = self.queued.front() {
                let size: u64 = entry.changes.iter().map(|c| c.len() as u64).sum();
                let full = batch.len() >= entries_max || bytes.saturating_add(size) > bytes_max;
                if !batch.is_empty() && full {
                    break;
                }
                bytes = bytes.saturating_add(size);
                batch.extend(self.queued.pop_front());
            }
            self.in_flight
                .push_back(batch.iter().map(|e: &PushEntry| e.event_id).collect());
            effects.push(ClientEffect::Send(Frame::Push { entries: batch }));
        }
        effects
    }

    fn relay_error(&mut self, code: ErrorCode) -> Vec<ClientEffect> {
        let retry_after_secs = match code {
            ErrorCode::RateLimited { retry_after_secs }
            | ErrorCode::ServerBusy { retry_after_secs } => Some(retry_after_secs),
            _ => None,
        };
        let mut effects = vec![ClientEffect::Fatal {
            reason: code.to_string(),
            permanent: !code.is_transient(),
            retry_after_secs,
            code: code.clone(),
        }];
        effects.extend(self.close(CloseReason::Received(code)));
        effects
    }

    /// Sends `Error { code }` and closes: the relay broke the protocol.
    fn fail(&mut self, code: ErrorCode, detail: impl Into<String>) -> Vec<ClientEffect> {
        let mut effects = vec![ClientEffect::Send(error_frame(code.clone(), detail))];
        effects.extend(self.close(CloseReason::Sent(code)));
        effects
    }

    fn close(&mut self, reason: CloseReason) -> Vec<ClientEffect> {
        self.state = State::Closed;
        vec![ClientEffect::Closed(reason)]
    }
}
