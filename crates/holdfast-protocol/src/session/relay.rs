//! The relay's side of one connection: handshake, grants, rate limit and backpressure.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use thiserror::Error;
use uuid::Uuid;

use super::auth::{Authenticator, Grants};
use super::{error_frame, CloseReason, Liveness, Pulse, RequestId};
use crate::codec::decode;
use crate::error::DecodeError;
use crate::frame::{
    AckResult, BootstrapFrom, ChangeEntry, Cursor, ErrorCode, Frame, Limits, Outcome, PushEntry,
    RecordState, RejectCode, Token,
};
use crate::ids::{DeviceId, EventId, RecordId, SpaceId};
use crate::limits::{
    BUSY_RETRY_AFTER_SECS_DEFAULT, HANDSHAKE_TIMEOUT_MS_DEFAULT, IDLE_TIMEOUT_MS_DEFAULT,
    KEEPALIVE_INTERVAL_MS_DEFAULT, PINGS_PER_SEC_MAX_DEFAULT, PING_FLOOD_RETRY_AFTER_SECS,
    PROTOCOL_VERSION, PROTOCOL_VERSION_MIN_SUPPORTED, PULLS_IN_FLIGHT_MAX_DEFAULT,
    PULL_BYTES_MAX_DEFAULT, PUSH_BURST_DEFAULT, PUSH_RATE_PER_SEC_DEFAULT,
};

#[cfg(test)]
mod tests;

/// A driver handed a session a result it did not ask for. This is a bug in the driver,
/// not the peer's fault; the session is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DriverError {
    /// No store or pull with this id is waiting for its result.
    #[error("no request {0:?} is waiting for a result")]
    UnknownRequest(RequestId),
    /// A store result does not answer the entries of the `Store` effect, one for one and in
    /// order.
    #[error("store result {request:?} does not match its entries (expected {expected} results)")]
    ResultMismatch {
        /// The request.
        request: RequestId,
        /// How many results the `Store` effect asked for.
        expected: usize,
    },
}

/// Every limit of a relay session, with defaults from [`limits`](crate::limits).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayConfig {
    /// The relay's identity, sent in `Welcome`.
    pub relay_id: Uuid,
    /// The relay's epoch, sent in `Welcome`.
    pub epoch: u64,
    /// The limits sent in `Welcome` and held to. `pushes_in_flight_max` is also how many
    /// stores of this connection may wait for storage at once: at that many the session
    /// stops reading (see [`RelaySession::wants_read`]).
    pub limits: Limits,
    /// `Push` frames per second a connection may send on average; 0 for no limit.
    pub push_rate_per_sec: u32,
    /// `Push` frames a connection may send at once after a quiet spell.
    pub push_burst: u32,
    /// Pulls of this connection waiting for storage at once; at that many the session stops
    /// reading.
    pub pulls_in_flight_max: u32,
    /// Most change bytes one pull is answered with, whatever the device asks.
    pub pull_bytes_max: u64,
    /// Time a connection has to send its `Hello`.
    pub handshake_timeout_ms: u64,
    /// Quiet time after which the relay pings the device.
    pub keepalive_interval_ms: u64,
    /// Quiet time after which the relay closes the connection.
    pub idle_timeout_ms: u64,
    /// `retry_after_secs` sent with `ServerBusy` on [`RelaySession::shut_down`].
    pub busy_retry_after_secs: u32,
    /// Pings (protocol `Ping` frames, and WebSocket pings the driver reports through
    /// [`RelaySession::websocket_ping`]) a connection may send in one second; past it the
    /// session ends with `RateLimited`. 0 for no limit.
    pub pings_per_sec_max: u32,
}

impl RelayConfig {
    /// The defaults, for a relay with this identity and epoch.
    pub fn new(relay_id: Uuid, epoch: u64) -> Self {
        Self {
            relay_id,
            epoch,
            limits: Limits::PROTOCOL,
            push_rate_per_sec: PUSH_RATE_PER_SEC_DEFAULT,
            push_burst: PUSH_BURST_DEFAULT,
            pulls_in_flight_max: PULLS_IN_FLIGHT_MAX_DEFAULT,
            pull_bytes_max: PULL_BYTES_MAX_DEFAULT,
            handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS_DEFAULT,
            keepalive_interval_ms: KEEPALIVE_INTERVAL_MS_DEFAULT,
            idle_timeout_ms: IDLE_TIMEOUT_MS_DEFAULT,
            busy_retry_after_secs: BUSY_RETRY_AFTER_SECS_DEFAULT,
            pings_per_sec_max: PINGS_PER_SEC_MAX_DEFAULT,
        }
    }
}

/// What a [`RelaySession`] asks its driver to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayEffect {
    /// Encode and send this frame.
    Send(Frame),
    /// Close the connection. Nothing follows; the session ignores further input.
    Close(CloseReason),
    /// Deliver live changes of these spaces: pass the changes other connections store to
    /// [`RelaySession::handle_live`]. Sent once, after `Welcome`.
    Subscribe {
        /// The spaces, each readable under the session's grants.
        spaces: Vec<SpaceId>,
    },
    /// Store these entries durably, then call [`RelaySession::handle_store_result`] with
    /// one result per entry, in order. Every entry is in a space the grants let the
    /// connection write.
    Store {
        /// Names the result.
        request_id: RequestId,
        /// The entries, in the order pushed.
        entries: Vec<PushEntry>,
    },
    /// Read the space's log after `cursor`, then call [`RelaySession::handle_pulled`]. The
    /// space is readable under the session's grants.
    Pull {
        /// Names the result.
        request_id: RequestId,
        /// The space.
        space: SpaceId,
        /// Where the device's copy ends; from another epoch, answer with
        /// [`PullReply::Repair`].
        cursor: Cursor,
        /// Most change bytes to answer with (at least one entry however large).
        max_bytes: u64,
    },
    /// Read the current state of the space's records after `from`, then call
    /// [`RelaySession::handle_pulled`] with [`PullReply::Snapshot`]. The space is readable
    /// under the session's grants.
    Bootstrap {
        /// Names the result.
        request_id: RequestId,
        /// The space.
        space: SpaceId,
        /// `None` for the first page; else the base of the first page and the last record
        /// sent. A base from another epoch starts again from the first page.
        from: Option<BootstrapFrom>,
        /// Most document and change bytes to answer with (at least one record however
        /// large).
        max_bytes: u64,
    },
    /// The device sent an Automerge sync message for a record of a readable space. Answer
    /// through [`RelaySession::send_repair`].
    Repair {
        /// The space.
        space: SpaceId,
        /// The record.
        record: RecordId,
        /// The sync message.
        message: Vec<u8>,
        /// Whether the grants let the device write the space: if not, the relay must not
        /// take changes from the message.
        may_write: bool,
    },
}

/// Storage's answer to a [`RelayEffect::Pull`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PullReply {
    /// Entries after the cursor, in log order.
    Changes {
        /// The entries.
        entries: Vec<ChangeEntry>,
        /// The cursor after them.
        next_cursor: Cursor,
        /// Whether the log goes on after `next_cursor`.
        more: bool,
    },
    /// The cursor is from another epoch or past the log's end: the session tells the
    /// device to repair the space (`Resync`), then sends these first sync messages, if any.
    Repair {
        /// Records with the relay's first sync message for each.
        messages: Vec<(RecordId, Vec<u8>)>,
    },
    /// One page of the space's current state, the answer to a [`RelayEffect::Bootstrap`].
    Snapshot {
        /// The records, in record id order.
        records: Vec<RecordState>,
        /// The log position every record state covers.
        base: Cursor,
        /// The last record of the page, if more follow.
        next: Option<RecordId>,
    },
    /// Storage failed; the connection ends with `Internal`.
    Failed,
}

/// The relay's side of one connection, as a state machine.
///
/// The connection goes `AwaitingHello → Authenticated → Closed`. Until a `Hello` with a
/// supported version and a valid token arrives, the only frames the session sends are
/// `Error`, `Pong` and `Ping`: no document byte leaves before authentication. Any other
/// frame first is answered with `Error { Unauthorized }` and a close.
///
/// Backpressure: while as many stores or pulls wait for storage as the config allows,
/// [`wants_read`](Self::wants_read) is false and the driver must not read the socket, so
/// that the session's memory is bounded by its config, not by what the device sends.
pub struct RelaySession {
    config: RelayConfig,
    authenticator: Arc<dyn Authenticator>,
    state: State,
    liveness: Liveness,
    started_ms: u64,
    request_next: u64,
    /// The second (of the session clock) pings were last counted in, and how many.
    ping_second: u64,
    pings: u32,
}

enum State {
    AwaitingHello,
    Authenticated(Box<Connection>),
    Closed,
}

/// An authenticated connection.
struct Connection {
    device: DeviceId,
    protocol: u16,
    grants: Grants,
    subscribed: BTreeSet<SpaceId>,
    bucket: TokenBucket,
    /// Reading is paused until then: a repair found the bucket empty.
    paused_until_ms: Option<u64>,
    stores: HashMap<RequestId, Vec<Slot>>,
    pulls: HashMap<RequestId, SpaceId>,
}

/// One entry of a push waiting for its store: either sent to storage, or refused by the
/// session with its result ready.
enum Slot {
    Stored(EventId),
    Refused(AckResult),
}

impl RelaySession {
    /// A session for a connection accepted at `now_ms`, milliseconds since the Unix epoch
    /// (the clock of every call, and of [`Grants::expires_at_ms`]).
    pub fn new(config: RelayConfig, authenticator: Arc<dyn Authenticator>, now_ms: u64) -> Self {
        let liveness = Liveness::new(now_ms, config.keepalive_interval_ms, config.idle_timeout_ms);
        Self {
            config,
            authenticator,
            state: State::AwaitingHello,
            liveness,
            started_ms: now_ms,
            request_next: 0,
            ping_second: 0,
            pings: 0,
        }
    }

    /// Handles one message read from the connection.
    pub fn handle_bytes(&mut self, bytes: &[u8], now_ms: u64) -> Vec<RelayEffect> {
        if matches!(self.state, State::Closed) {
            return Vec::new();
        }
        let frame_bytes_max = self.config.limits.frame_bytes_max;
        if bytes.len() > frame_bytes_max as usize {
            let detail = format!("frame of {} bytes", bytes.len());
            return self.fail(
                ErrorCode::FrameTooLarge {
                    max: frame_bytes_max,
                },
                detail,
            );
        }
        self.handle_decoded(decode(bytes), now_ms)
    }

    /// Handles what [`decode`] made of a message the driver checked against the frame
    /// limit and decoded itself (off its reactor, for a large one): a frame, as
    /// [`handle_frame`](Self::handle_frame), or the decoding's error, which ends the
    /// session as [`handle_bytes`](Self::handle_bytes) would.
    pub fn handle_decoded(
        &mut self,
        decoded: Result<Frame, DecodeError>,
        now_ms: u64,
    ) -> Vec<RelayEffect> {
        match decoded {
            Ok(frame) => self.handle_frame(frame, now_ms),
            Err(_) if matches!(self.state, State::Closed) => Vec::new(),
            Err(error) => self.fail(error.code(), error.to_string()),
        }
    }

    /// Handles a frame the driver decoded itself, as [`handle_bytes`](Self::handle_bytes)
    /// does after its size check and decode (a simulation may skip the bytes).
    ///
    /// Only a frame that shows the device at work or reading keeps the connection from
    /// going idle: a request, or a `Pong` (the answer to the relay's `Ping`). A `Ping` is
    /// answered but is not progress: a peer that pings without reading is pinged in turn,
    /// and closed when it does not answer within the idle timeout.
    pub fn handle_frame(&mut self, frame: Frame, now_ms: u64) -> Vec<RelayEffect> {
        if !matches!(frame, Frame::Ping { .. } | Frame::Error { .. }) {
            self.liveness.heard(now_ms);
        }
        match (&self.state, frame) {
            (State::Closed, _) => Vec::new(),
            (_, Frame::Ping { nonce }) => match self.count_ping(now_ms) {
                Some(flood) => flood,
                None => vec![RelayEffect::Send(Frame::Pong { nonce })],
            },
            (_, Frame::Pong { .. }) => Vec::new(),
            (_, Frame::Error { code, .. }) => self.close(CloseReason::Received(code)),
            (
                State::AwaitingHello,
                Frame::Hello {
                    protocol,
                    device,
                    token,
                    spaces,
                },
            ) => {
                let spaces = spaces.into_iter().map(|s| s.space).collect();
                self.hello(protocol, device, &token, spaces, now_ms)
            }
            (State::AwaitingHello, frame) => {
                let detail = format!("{} before hello", frame.name());
                self.fail(ErrorCode::Unauthorized, detail)
            }
            (State::Authenticated(connection), _) if connection.grants.expired(now_ms) => {
                self.fail(ErrorCode::Unauthorized, "token expired")
            }
            (State::Authenticated(_), Frame::Push { entries }) => self.push(entries, now_ms),
            (
                State::Authenticated(_),
                Frame::Pull {
                    space,
                    cursor,
                    max_bytes,
                },
            ) => self.pull(space, cursor, max_bytes),
            (
                State::Authenticated(_),
                Frame::Bootstrap {
                    space,
                    from,
                    max_bytes,
                },
            ) => self.bootstrap(space, from, max_bytes),
            (
                State::Authenticated(_),
                Frame::Repair {
                    space,
                    record,
                    message,
                },
            ) => self.repair(space, record, message, now_ms),
            (State::Authenticated(_), frame) => {
                let detail = format!("unexpected {} from a device", frame.name());
                self.fail(ErrorCode::Malformed, detail)
            }
        }
    }

    /// The driver's WebSocket layer answered a WebSocket ping (it does so by itself): it
    /// counts against the same ping budget as `Ping` frames, and does not keep the
    /// connection from going idle.
    pub fn websocket_ping(&mut self, now_ms: u64) -> Vec<RelayEffect> {
        if matches!(self.state, State::Closed) {
            return Vec::new();
        }
        self.count_ping(now_ms).unwrap_or_default()
    }

    /// Counts a ping; past the budget of this second, the effects that end the session.
    fn count_ping(&mut self, now_ms: u64) -> Option<Vec<RelayEffect>> {
        let max = self.config.pings_per_sec_max;
        if max == 0 {
            return None;
        }
        let second = now_ms / 1000;
        if second != self.ping_second {
            self.ping_second = second;
            self.pings = 0;
        }
        self.pings += 1;
        if self.pings <= max {
            return None;
        }
        let code = ErrorCode::RateLimited {
            retry_after_secs: PING_FLOOD_RETRY_AFTER_SECS,
        };
        Some(self.fail(code, format!("more than {max} pings in a second")))
    }

    /// Handles storage's results for a [`RelayEffect::Store`]: one per entry, in order.
    ///
    /// Sends the `Ack`, with the entries the session refused merged back in push order.
    pub fn handle_store_result(
        &mut self,
        request_id: RequestId,
        results: Vec<AckResult>,
    ) -> Result<Vec<RelayEffect>, DriverError> {
        let State::Authenticated(connection) = &mut self.state else {
            return self.late_result(request_id);
        };
        let slots = connection
            .stores
            .get(&request_id)
            .ok_or(DriverError::UnknownRequest(request_id))?;
        let mismatch = DriverError::ResultMismatch {
            request: request_id,
            expected: slots
                .iter()
                .filter(|s| matches!(s, Slot::Stored(_)))
                .count(),
        };
        let mut stored = results.into_iter();
        let mut merged = Vec::with_capacity(slots.len());
        for slot in slots {
            match slot {
                Slot::Refused(result) => merged.push(result.clone()),
                Slot::Stored(event_id) => match stored.next() {
                    Some(result) if result.event_id == *event_id => merged.push(result),
                    _ => return Err(mismatch),
                },
            }
        }
        if stored.next().is_some() {
            return Err(mismatch);
        }
        connection.stores.remove(&request_id);
        Ok(vec![RelayEffect::Send(Frame::Ack { results: merged })])
    }

    /// Handles storage's answer to a [`RelayEffect::Pull`].
    pub fn handle_pulled(
        &mut self,
        request_id: RequestId,
        reply: PullReply,
    ) -> Result<Vec<RelayEffect>, DriverError> {
        let State::Authenticated(connection) = &mut self.state else {
            return self.late_result(request_id);
        };
        let space = connection
            .pulls
            .remove(&request_id)
            .ok_or(DriverError::UnknownRequest(request_id))?;
        Ok(match reply {
            PullReply::Changes {
                entries,
                next_cursor,
                more,
            } => {
                let frame = Frame::Changes {
                    space,
                    entries,
                    next_cursor,
                    more,
                };
                vec![RelayEffect::Send(frame)]
            }
            PullReply::Snapshot {
                records,
                base,
                next,
            } => vec![RelayEffect::Send(Frame::Snapshot {
                space,
                records,
                base,
                next,
            })],
            PullReply::Repair { messages } => {
                let resync = Frame::Resync {
                    space: space.clone(),
                    epoch: self.config.epoch,
                };
                let repairs = messages.into_iter().map(|(record, message)| {
                    RelayEffect::Send(Frame::Repair {
                        space: space.clone(),
                        record,
                        message,
                    })
                });
                std::iter::once(RelayEffect::Send(resync))
                    .chain(repairs)
                    .collect()
            }
            PullReply::Failed => self.fail(ErrorCode::Internal, "storage failed to pull"),
        })
    }

    /// Forwards changes other connections stored in `space`, if this session subscribed
    /// to it; otherwise nothing.
    pub fn handle_live(
        &mut self,
        space: &SpaceId,
        entries: &[ChangeEntry],
        next_cursor: Cursor,
    ) -> Vec<RelayEffect> {
        let State::Authenticated(connection) = &self.state else {
            return Vec::new();
        };
        if entries.is_empty() || !connection.subscribed.contains(space) {
            return Vec::new();
        }
        debug_assert!(
            connection.grants.can_read(space),
            "subscribed spaces are readable"
        );
        let frame = Frame::Changes {
            space: space.clone(),
            entries: entries.to_vec(),
            next_cursor,
            more: false,
        };
        vec![RelayEffect::Send(frame)]
    }

    /// Sends the relay's Automerge sync message for a record, if the space is readable.
    pub fn send_repair(
        &mut self,
        space: SpaceId,
        record: RecordId,
        message: Vec<u8>,
    ) -> Vec<RelayEffect> {
        match &self.state {
            State::Authenticated(connection) if connection.grants.can_read(&space) => {
                vec![RelayEffect::Send(Frame::Repair {
                    space,
                    record,
                    message,
                })]
            }
            _ => Vec::new(),
        }
    }

    /// Handles the passing of time: pings a quiet device, closes an idle connection, a
    /// handshake that takes too long, or one whose token expired.
    pub fn handle_tick(&mut self, now_ms: u64) -> Vec<RelayEffect> {
        match &mut self.state {
            State::Closed => return Vec::new(),
            State::AwaitingHello => {
                if now_ms.saturating_sub(self.started_ms) >= self.config.handshake_timeout_ms {
                    return self.close(CloseReason::HandshakeTimeout);
                }
            }
            State::Authenticated(connection) => {
                if connection.grants.expired(now_ms) {
                    return self.fail(ErrorCode::Unauthorized, "token expired");
                }
                if connection
                    .paused_until_ms
                    .is_some_and(|until| until <= now_ms)
                {
                    connection.paused_until_ms = None;
                }
            }
        }
        match self.liveness.tick(now_ms) {
            Pulse::Quiet => Vec::new(),
            Pulse::Ping(frame) => vec![RelayEffect::Send(frame)],
            Pulse::Idle => self.close(CloseReason::IdleTimeout),
        }
    }

    /// Turns the device away because the relay is shutting down or overloaded: sends
    /// `Error { ServerBusy }` and closes.
    pub fn shut_down(&mut self) -> Vec<RelayEffect> {
        if matches!(self.state, State::Closed) {
            return Vec::new();
        }
        let retry_after_secs = self.config.busy_retry_after_secs;
        self.fail(
            ErrorCode::ServerBusy { retry_after_secs },
            "relay shutting down",
        )
    }

    /// Whether the driver should read the next message. False while the stores or the
    /// pulls waiting for storage are at their limit, while repairs have spent the rate
    /// limit (until a [`handle_tick`](Self::handle_tick) finds it refilled), and once
    /// closed.
    pub fn wants_read(&self) -> bool {
        match &self.state {
            State::AwaitingHello => true,
            State::Authenticated(connection) => {
                connection.stores.len() < self.config.limits.pushes_in_flight_max as usize
                    && connection.pulls.len() < self.config.pulls_in_flight_max as usize
                    && connection.paused_until_ms.is_none()
            }
            State::Closed => false,
        }
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The authenticated device, once its `Hello` is accepted.
    pub fn device(&self) -> Option<DeviceId> {
        self.connection().map(|c| c.device)
    }

    /// The protocol version the device speaks, once its `Hello` is accepted.
    pub fn protocol(&self) -> Option<u16> {
        self.connection().map(|c| c.protocol)
    }

    /// The grants of the authenticated device.
    pub fn grants(&self) -> Option<&Grants> {
        self.connection().map(|c| &c.grants)
    }

    /// Stores and pulls waiting for storage.
    pub fn requests_in_flight(&self) -> usize {
        self.connection()
            .map_or(0, |c| c.stores.len() + c.pulls.len())
    }

    fn connection(&self) -> Option<&Connection> {
        match &self.state {
            State::Authenticated(connection) => Some(connection),
            _ => None,
        }
    }

    fn hello(
        &mut self,
        protocol: u16,
        device: DeviceId,
        token: &Token,
        spaces: BTreeSet<SpaceId>,
        now_ms: u64,
    ) -> Vec<RelayEffect> {
        let supported = PROTOCOL_VERSION_MIN_SUPPORTED..=PROTOCOL_VERSION;
        if !supported.contains(&protocol) {
            let code = ErrorCode::UnsupportedVersion {
                min: PROTOCOL_VERSION_MIN_SUPPORTED,
                max: PROTOCOL_VERSION,
            };
            return self.fail(code, format!("device speaks protocol {protocol}"));
        }
        let grants = match self.authenticator.authenticate(token, now_ms) {
            Ok(grants) if !grants.expired(now_ms) => grants,
            Ok(grants) => {
                let detail = format!("the token of {} expired", grants.subject);
                return self.fail(ErrorCode::Unauthorized, detail);
            }
            Err(error) => return self.fail(ErrorCode::Unauthorized, error.to_string()),
        };
        if let Some(space) = spaces.iter().find(|space| !grants.can_read(space)) {
            let code = ErrorCode::Forbidden {
                space: space.clone(),
            };
            let detail = format!("hello names {space}, which {} may not read", grants.subject);
            return self.fail(code, detail);
        }
        let bucket = TokenBucket::new(
            self.config.push_rate_per_sec,
            self.config.push_burst,
            now_ms,
        );
        self.state = State::Authenticated(Box::new(Connection {
            device,
            protocol,
            grants,
            subscribed: spaces.clone(),
            bucket,
            paused_until_ms: None,
            stores: HashMap::new(),
            pulls: HashMap::new(),
        }));
        let welcome = Frame::Welcome {
            relay_id: self.config.relay_id,
            epoch: self.config.epoch,
            limits: self.config.limits,
        };
        vec![
            RelayEffect::Send(welcome),
            RelayEffect::Subscribe {
                spaces: spaces.into_iter().collect(),
            },
        ]
    }

    fn push(&mut self, entries: Vec<PushEntry>, now_ms: u64) -> Vec<RelayEffect> {
        let limits = self.config.limits;
        if entries.len() > limits.batch_entries_max as usize {
            let detail = format!("push of {} entries", entries.len());
            return self.fail(ErrorCode::Malformed, detail);
        }
        if entries
            .iter()
            .any(|e| e.changes.len() > limits.changes_per_entry_max as usize)
        {
            return self.fail(ErrorCode::Malformed, "entry with too many changes");
        }
        let request_id = self.next_request_id();
        let State::Authenticated(connection) = &mut self.state else {
            unreachable!("push is only handled when authenticated");
        };
        if connection.stores.len() >= limits.pushes_in_flight_max as usize {
            let detail = "more pushes in flight than the welcome allows";
            return self.fail(ErrorCode::Malformed, detail);
        }
        if let Err(wait_ms) = connection.bucket.take(now_ms) {
            let retry_after_secs = u32::try_from(wait_ms.div_ceil(1000))
                .unwrap_or(u32::MAX)
                .max(1);
            let results = entries
                .into_iter()
                .map(|entry| {
                    refused(
                        entry.event_id,
                        RejectCode::RateLimited { retry_after_secs },
                        false,
                    )
                })
                .collect();
            return vec![RelayEffect::Send(Frame::Ack { results })];
        }

        let mut slots = Vec::with_capacity(entries.len());
        let mut allowed = Vec::new();
        for entry in entries {
            if connection.grants.can_write(&entry.space) {
                slots.push(Slot::Stored(entry.event_id));
                allowed.push(entry);
            } else {
                let code = RejectCode::Forbidden {
                    space: entry.space.clone(),
                };
                slots.push(Slot::Refused(refused(entry.event_id, code, true)));
            }
        }
        if allowed.is_empty() {
            let results = slots
                .into_iter()
                .filter_map(|slot| match slot {
                    Slot::Refused(result) => Some(result),
                    Slot::Stored(_) => None,
                })
                .collect();
            return vec![RelayEffect::Send(Frame::Ack { results })];
        }
        connection.stores.insert(request_id, slots);
        vec![RelayEffect::Store {
            request_id,
            entries: allowed,
        }]
    }

    fn pull(&mut self, space: SpaceId, cursor: Cursor, max_bytes: u64) -> Vec<RelayEffect> {
        match self.admit_read(&space, "pull") {
            Ok(request_id) => vec![RelayEffect::Pull {
                request_id,
                space,
                cursor,
                max_bytes: max_bytes.min(self.config.pull_bytes_max),
            }],
            Err(effects) => effects,
        }
    }

    fn bootstrap(
        &mut self,
        space: SpaceId,
        from: Option<BootstrapFrom>,
        max_bytes: u64,
    ) -> Vec<RelayEffect> {
        match self.admit_read(&space, "bootstrap") {
            Ok(request_id) => vec![RelayEffect::Bootstrap {
                request_id,
                space,
                from,
                max_bytes: max_bytes.min(self.config.pull_bytes_max),
            }],
            Err(effects) => effects,
        }
    }

    /// Admits a read of `space` (a pull or a bootstrap) as one of the connection's pulls
    /// in flight, or fails the session.
    fn admit_read(&mut self, space: &SpaceId, what: &str) -> Result<RequestId, Vec<RelayEffect>> {
        let request_id = self.next_request_id();
        let pulls_in_flight_max = self.config.pulls_in_flight_max as usize;
        let State::Authenticated(connection) = &mut self.state else {
            unreachable!("reads are only handled when authenticated");
        };
        if !connection.grants.can_read(space) {
            let detail = format!("{what} of {space}, not readable");
            let space = space.clone();
            return Err(self.fail(ErrorCode::Forbidden { space }, detail));
        }
        if connection.pulls.len() >= pulls_in_flight_max {
            let retry_after_secs = self.config.busy_retry_after_secs;
            let detail = "driver read past wants_read";
            return Err(self.fail(ErrorCode::ServerBusy { retry_after_secs }, detail));
        }
        connection.pulls.insert(request_id, space.clone());
        Ok(request_id)
    }

    /// A repair message is charged to the push rate limit: it may carry changes, and
    /// answering it costs the relay more than a pull. It is never refused for the rate
    /// (the device's conversation would stall): when the bucket is empty the message is
    /// still handled, and reading pauses until the bucket has refilled.
    fn repair(
        &mut self,
        space: SpaceId,
        record: RecordId,
        message: Vec<u8>,
        now_ms: u64,
    ) -> Vec<RelayEffect> {
        let State::Authenticated(connection) = &mut self.state else {
            return Vec::new();
        };
        if !connection.grants.can_read(&space) {
            let detail = format!("repair of {space}, not readable");
            return self.fail(ErrorCode::Forbidden { space }, detail);
        }
        if let Err(wait_ms) = connection.bucket.take(now_ms) {
            connection.paused_until_ms = Some(now_ms.saturating_add(wait_ms));
        }
        let may_write = connection.grants.can_write(&space);
        vec![RelayEffect::Repair {
            space,
            record,
            message,
            may_write,
        }]
    }

    /// Sends `Error { code }` and closes.
    fn fail(&mut self, code: ErrorCode, detail: impl Into<String>) -> Vec<RelayEffect> {
        let mut effects = vec![RelayEffect::Send(error_frame(code.clone(), detail))];
        effects.extend(self.close(CloseReason::Sent(code)));
        effects
    }

    fn close(&mut self, reason: CloseReason) -> Vec<RelayEffect> {
        self.state = State::Closed;
        vec![RelayEffect::Close(reason)]
    }

    /// A result for a session that is closed, or never authenticated.
    fn late_result(&self, request_id: RequestId) -> Result<Vec<RelayEffect>, DriverError> {
        if self.is_closed() && request_id.0 < self.request_next {
            Ok(Vec::new())
        } else {
            Err(DriverError::UnknownRequest(request_id))
        }
    }

    fn next_request_id(&mut self) -> RequestId {
        let id = RequestId(self.request_next);
        self.request_next += 1;
        id
    }
}

fn refused(event_id: EventId, code: RejectCode, permanent: bool) -> AckResult {
    let reason = code.to_string();
    AckResult {
        event_id,
        outcome: Outcome::Rejected {
            code,
            reason,
            permanent,
        },
    }
}

/// A token bucket in thousandths of a push, so refilling needs no floating point.
#[derive(Debug)]
struct TokenBucket {
    /// Thousandths of a push refilled per millisecond: pushes per second. 0: no limit.
    rate: u64,
    capacity: u64,
    level: u64,
    refilled_ms: u64,
}

const PUSH_COST: u64 = 1000;

impl TokenBucket {
    fn new(per_sec: u32, burst: u32, now_ms: u64) -> Self {
        let capacity = u64::from(burst.max(1)) * PUSH_COST;
        Self {
            rate: u64::from(per_sec),
            capacity,
            level: capacity,
            refilled_ms: now_ms,
        }
    }

    /// Takes one push, or says in how many milliseconds one will be available.
    fn take(&mut self, now_ms: u64) -> Result<(), u64> {
        if self.rate == 0 {
            return Ok(());
        }
        let elapsed = now_ms.saturating_sub(self.refilled_ms);
        self.refilled_ms = self.refilled_ms.max(now_ms);
        self.level = self
            .level
            .saturating_add(elapsed.saturating_mul(self.rate))
            .min(self.capacity);
        if self.level >= PUSH_COST {
            self.level -= PUSH_COST;
            return Ok(());
        }
        Err((PUSH_COST - self.level).div_ceil(self.rate))
    }
}
