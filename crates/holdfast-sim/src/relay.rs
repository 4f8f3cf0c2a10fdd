//! The relay: a real `RedbLogStore` and one `RelaySession` per connection, driven the way
//! the server drives them (`crates/holdfast-relay/src/server/connection.rs` and
//! `storage.rs`), synchronously.
//!
//! As in the server, one connection's stores run one at a time in push order, while its
//! pulls, bootstraps and repairs run in any order (the server runs them on a blocking
//! pool); the simulation picks which finishes next. What a store stored is published to
//! every connection subscribed to the space, the pushing one included, through a live
//! queue per connection that the simulation drains at steps of its choosing, as the
//! server's fan-out inboxes are. The session reads only while it wants to
//! (backpressure). What is left out: the send queue's slow-consumer limit, metrics.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use holdfast_protocol::session::{
    AuthError, Authenticator, Grants, PullReply, RelayConfig, RelayEffect, RelaySession, RequestId,
    Role,
};
use holdfast_protocol::{
    AckResult, BootstrapFrom, ChangeEntry, Cursor, ErrorCode, Frame, PushEntry, RecordId, SpaceId,
    Token,
};
use holdfast_relay::{LogStore, PullResult, RedbLogStore, StoreConfig};

use crate::rng::Rng;

/// The token every simulated device presents.
pub const TOKEN: &str = "sim-device";

/// `Repair` messages of one connection in storage at once (the server's
/// `REPAIRS_IN_FLIGHT_MAX`); at that many it stops reading.
const REPAIRS_IN_FLIGHT_MAX: usize = 4;

/// Grants every simulated device write access to the simulation's spaces.
pub struct SimAuth {
    spaces: Vec<SpaceId>,
}

impl SimAuth {
    /// Write access to `spaces`.
    pub fn new(spaces: Vec<SpaceId>) -> Self {
        Self { spaces }
    }
}

impl Authenticator for SimAuth {
    fn authenticate(&self, token: &Token, _now_ms: u64) -> Result<Grants, AuthError> {
        if token.as_str() != TOKEN {
            return Err(AuthError::Invalid {
                reason: "not the simulation's token".into(),
            });
        }
        Ok(Grants {
            subject: TOKEN.into(),
            spaces: self
                .spaces
                .iter()
                .map(|s| (s.clone(), Role::Write))
                .collect(),
            expires_at_ms: None,
        })
    }
}

/// Storage work of a connection other than stores: any order.
enum Read {
    Pull {
        request_id: RequestId,
        space: SpaceId,
        cursor: Cursor,
        max_bytes: u64,
    },
    Bootstrap {
        request_id: RequestId,
        space: SpaceId,
        from: Option<BootstrapFrom>,
        max_bytes: u64,
    },
    Repair {
        space: SpaceId,
        record: RecordId,
        message: Vec<u8>,
        may_write: bool,
    },
}

/// Entries stored, to deliver live to subscribed connections.
#[derive(Clone, Debug)]
struct LiveBatch {
    space: SpaceId,
    entries: Vec<ChangeEntry>,
    next_cursor: Cursor,
}

/// The relay's side of one connection.
pub struct RelayConn {
    session: RelaySession,
    subscribed: Vec<SpaceId>,
    /// Stores in push order; the first is the one running.
    stores: VecDeque<(RequestId, Vec<PushEntry>)>,
    reads: Vec<Read>,
    live: VecDeque<LiveBatch>,
    repairs_in_flight: usize,
    /// When the session is next ticked.
    pub next_tick: u64,
}

impl RelayConn {
    /// Whether the connection reads its next message (backpressure).
    pub fn wants_read(&self) -> bool {
        self.session.wants_read() && self.repairs_in_flight < REPAIRS_IN_FLIGHT_MAX
    }

    /// Whether storage work or live batches wait.
    pub fn busy(&self) -> bool {
        !self.stores.is_empty() || !self.reads.is_empty() || !self.live.is_empty()
    }
}

/// What a call into the relay produced for the simulation to carry out.
#[derive(Debug, Default)]
pub struct RelayOut {
    /// Frames to send, by wire, in order.
    pub sends: Vec<(u64, Frame)>,
    /// Wires the relay closes (after the frames sent before).
    pub closes: Vec<u64>,
    /// Things that must never happen; each fails the run.
    pub anomalies: Vec<String>,
    /// Lines for the trace.
    pub notes: Vec<String>,
}

/// Choices of the relay's configuration.
#[derive(Clone, Debug)]
pub struct RelaySetup {
    /// The log store's configuration.
    pub store: StoreConfig,
    /// The sessions' limits and timeouts (its epoch is the store's, set at accept).
    pub session: RelayConfig,
}

/// The relay.
pub struct Relay {
    /// The log store's file.
    pub path: PathBuf,
    setup: RelaySetup,
    auth: Arc<SimAuth>,
    /// The log store, while the relay runs.
    pub store: Option<RedbLogStore>,
    /// Connections by wire id.
    pub conns: BTreeMap<u64, RelayConn>,
}

impl Relay {
    /// A relay on a new file at `path`.
    pub fn open(path: PathBuf, setup: RelaySetup, auth: SimAuth) -> Result<Self, String> {
        let mut relay = Self {
            path,
            setup,
            auth: Arc::new(auth),
            store: None,
            conns: BTreeMap::new(),
        };
        relay.start()?;
        Ok(relay)
    }

    /// Opens the log store from its file.
    pub fn start(&mut self) -> Result<(), String> {
        let store = RedbLogStore::open(&self.path, self.setup.store.clone())
            .map_err(|e| format!("opening the relay store: {e}"))?;
        self.store = Some(store);
        Ok(())
    }

    /// The store, which the caller knows is open.
    pub fn log(&self) -> &RedbLogStore {
        self.store.as_ref().expect("the relay is up")
    }

    /// A new connection.
    pub fn accept(&mut self, wire: u64, now: u64) {
        let store = self.log();
        let mut config = self.setup.session.clone();
        config.relay_id = store.relay_id();
        config.epoch = store.epoch();
        let session = RelaySession::new(config, self.auth.clone(), now);
        self.conns.insert(
            wire,
            RelayConn {
                session,
                subscribed: Vec::new(),
                stores: VecDeque::new(),
                reads: Vec::new(),
                live: VecDeque::new(),
                repairs_in_flight: 0,
                next_tick: now + 1_000,
            },
        );
    }

    /// The connection ended (its socket closed or failed). The store running finishes if
    /// `running_finishes` (it was on the blocking pool already, and the server cannot
    /// cancel it), as does a repair in storage; the rest is dropped.
    pub fn disconnect(&mut self, wire: u64, running_finishes: bool, now: u64, out: &mut RelayOut) {
        let Some(mut conn) = self.conns.remove(&wire) else {
            return;
        };
        if !running_finishes {
            return;
        }
        if let Some((_, entries)) = conn.stores.pop_front() {
            if let Ok(results) = self.store_entries(entries.clone(), now, out) {
                out.notes.push(format!(
                    "a store of a closed connection finished: {results:?}"
                ));
            }
        }
        for read in conn.reads.drain(..) {
            if let Read::Repair {
                space,
                record,
                message,
                may_write,
            } = read
            {
                let _ = self.sync_record(&space, record, &message, may_write, out);
            }
        }
    }

    /// The relay process dies: every connection and its work in memory goes; the store
    /// running on each connection committed or not, by `rng`. Returns the wires to kill.
    pub fn crash(&mut self, now: u64, rng: &mut Rng, out: &mut RelayOut) -> Vec<u64> {
        let wires: Vec<u64> = self.conns.keys().copied().collect();
        for wire in &wires {
            let finishes = rng.chance(500);
            self.disconnect(*wire, finishes, now, out);
        }
        self.store = None;
        wires
    }

    /// A message from the device on `wire`.
    pub fn received(&mut self, wire: u64, bytes: &[u8], now: u64, out: &mut RelayOut) {
        let Some(conn) = self.conns.get_mut(&wire) else {
            return;
        };
        let effects = conn.session.handle_bytes(bytes, now);
        self.apply(wire, effects, out);
    }

    /// The once-a-second tick of one connection.
    pub fn tick(&mut self, wire: u64, now: u64, out: &mut RelayOut) {
        let Some(conn) = self.conns.get_mut(&wire) else {
            return;
        };
        conn.next_tick = now + 1_000;
        let effects = conn.session.handle_tick(now);
        self.apply(wire, effects, out);
    }

    /// Storage work that may finish now, as `(wire, what)`: the running store of each
    /// connection, each of its reads, its next live batch.
    pub fn ready(&self) -> Vec<(u64, Work)> {
        let mut ready = Vec::new();
        for (wire, conn) in &self.conns {
            if !conn.stores.is_empty() {
                ready.push((*wire, Work::Store));
            }
            for i in 0..conn.reads.len() {
                ready.push((*wire, Work::Read(i)));
            }
            if !conn.live.is_empty() {
                ready.push((*wire, Work::Live));
            }
        }
        ready
    }

    /// Finishes one piece of work of `wire`.
    pub fn work(&mut self, wire: u64, work: Work, now: u64, out: &mut RelayOut) {
        let Some(conn) = self.conns.get_mut(&wire) else {
            return;
        };
        match work {
            Work::Store => {
                let Some((request_id, entries)) = conn.stores.pop_front() else {
                    return;
                };
                let effects = match self.store_entries(entries, now, out) {
                    Ok(results) => self
                        .conn(wire)
                        .session
                        .handle_store_result(request_id, results),
                    // Nothing of the push is acknowledged; the device resends it.
                    Err(()) => return self.fail(wire, ErrorCode::Internal, out),
                };
                self.driver_result(wire, effects, out);
            }
            Work::Read(i) => {
                let read = conn.reads.swap_remove(i);
                self.read(wire, read, out);
            }
            Work::Live => {
                let batch = conn.live.pop_front().expect("a live batch waits");
                let effects =
                    conn.session
                        .handle_live(&batch.space, &batch.entries, batch.next_cursor);
                self.apply(wire, effects, out);
            }
        }
    }

    fn conn(&mut self, wire: u64) -> &mut RelayConn {
        self.conns.get_mut(&wire).expect("a live connection")
    }

    fn read(&mut self, wire: u64, read: Read, out: &mut RelayOut) {
        match read {
            Read::Pull {
                request_id,
                space,
                cursor,
                max_bytes,
            } => {
                let reply = match self.log().pull(&space, Some(cursor), max_bytes) {
                    Ok(PullResult::Changes {
                        entries,
                        next_cursor,
                        more,
                    }) => PullReply::Changes {
                        entries,
                        next_cursor,
                        more,
                    },
                    Ok(PullResult::Repair { reason }) => {
                        out.notes
                            .push(format!("pull of {space} needs a repair: {reason:?}"));
                        PullReply::Repair {
                            messages: Vec::new(),
                        }
                    }
                    Ok(other) => {
                        out.anomalies.push(format!("unknown pull result {other:?}"));
                        PullReply::Failed
                    }
                    Err(e) => {
                        out.anomalies.push(format!("pull of {space} failed: {e}"));
                        PullReply::Failed
                    }
                };
                let effects = self.conn(wire).session.handle_pulled(request_id, reply);
                self.driver_result(wire, effects, out);
            }
            Read::Bootstrap {
                request_id,
                space,
                from,
                max_bytes,
            } => {
                let reply = match self.log().bootstrap(&space, from, max_bytes) {
                    Ok(page) => page.into(),
                    Err(e) => {
                        out.anomalies
                            .push(format!("bootstrap of {space} failed: {e}"));
                        PullReply::Failed
                    }
                };
                let effects = self.conn(wire).session.handle_pulled(request_id, reply);
                self.driver_result(wire, effects, out);
            }
            Read::Repair {
                space,
                record,
                message,
                may_write,
            } => {
                self.conn(wire).repairs_in_flight -= 1;
                let reply = match self.sync_record(&space, record, &message, may_write, out) {
                    Ok(reply) => reply,
                    Err(()) => return self.fail(wire, ErrorCode::Internal, out),
                };
                // An empty message ends the device's conversation without a timeout.
                let effects =
                    self.conn(wire)
                        .session
                        .send_repair(space, record, reply.unwrap_or_default());
                self.apply(wire, effects, out);
            }
        }
    }

    /// Stores entries durably and publishes what was stored, as the server's `store`.
    fn store_entries(
        &mut self,
        entries: Vec<PushEntry>,
        now: u64,
        out: &mut RelayOut,
    ) -> Result<Vec<AckResult>, ()> {
        let results = match self.log().store_at(entries.clone(), now) {
            Ok(results) => results,
            Err(e) => {
                out.anomalies.push(format!("relay store failed: {e}"));
                return Err(());
            }
        };
        let batches = holdfast_relay::stored_batches(entries, &results);
        let epoch = self.log().epoch();
        for (space, entries) in batches {
            let seq = entries.last().map_or(0, |e| e.seq);
            self.publish(space, entries, Cursor { epoch, seq });
        }
        Ok(results)
    }

    /// Answers one repair message, storing and publishing what it brings.
    fn sync_record(
        &mut self,
        space: &SpaceId,
        record: RecordId,
        message: &[u8],
        may_write: bool,
        out: &mut RelayOut,
    ) -> Result<Option<Vec<u8>>, ()> {
        match self.log().sync_record(space, record, message, may_write) {
            Ok(sync) => {
                if let Some(rejected) = &sync.rejected {
                    out.notes
                        .push(format!("repair changes of {record} rejected: {rejected:?}"));
                }
                if let Some(last) = sync.stored.last() {
                    out.notes.push(format!(
                        "stored by repair: {record}, {} entries",
                        sync.stored.len()
                    ));
                    let next_cursor = Cursor {
                        epoch: self.log().epoch(),
                        seq: last.seq,
                    };
                    self.publish(space.clone(), sync.stored, next_cursor);
                }
                Ok(sync.reply)
            }
            Err(e) => {
                out.anomalies
                    .push(format!("repair of {record} failed: {e}"));
                Err(())
            }
        }
    }

    fn publish(&mut self, space: SpaceId, entries: Vec<ChangeEntry>, next_cursor: Cursor) {
        let batch = LiveBatch {
            space,
            entries,
            next_cursor,
        };
        for conn in self.conns.values_mut() {
            if conn.subscribed.contains(&batch.space) {
                conn.live.push_back(batch.clone());
            }
        }
    }

    fn driver_result(
        &mut self,
        wire: u64,
        effects: Result<Vec<RelayEffect>, holdfast_protocol::session::DriverError>,
        out: &mut RelayOut,
    ) {
        match effects {
            Ok(effects) => self.apply(wire, effects, out),
            Err(e) => {
                out.anomalies.push(format!("relay driver error: {e}"));
                self.fail(wire, ErrorCode::Internal, out);
            }
        }
    }

    /// Ends a connection for a reason the session cannot see: `Error`, then close.
    fn fail(&mut self, wire: u64, code: ErrorCode, out: &mut RelayOut) {
        out.sends.push((
            wire,
            Frame::Error {
                code,
                message: "relay failed".into(),
            },
        ));
        out.closes.push(wire);
        self.conns.remove(&wire);
    }

    /// Carries out a session's effects, in order.
    fn apply(&mut self, wire: u64, effects: Vec<RelayEffect>, out: &mut RelayOut) {
        for effect in effects {
            let Some(conn) = self.conns.get_mut(&wire) else {
                return;
            };
            match effect {
                RelayEffect::Send(frame) => out.sends.push((wire, frame)),
                RelayEffect::Close(reason) => {
                    out.notes.push(format!("relay closes: {reason:?}"));
                    out.closes.push(wire);
                    self.conns.remove(&wire);
                    return;
                }
                RelayEffect::Subscribe { spaces } => conn.subscribed = spaces,
                RelayEffect::Store {
                    request_id,
                    entries,
                } => conn.stores.push_back((request_id, entries)),
                RelayEffect::Pull {
                    request_id,
                    space,
                    cursor,
                    max_bytes,
                } => conn.reads.push(Read::Pull {
                    request_id,
                    space,
                    cursor,
                    max_bytes,
                }),
                RelayEffect::Bootstrap {
                    request_id,
                    space,
                    from,
                    max_bytes,
                } => conn.reads.push(Read::Bootstrap {
                    request_id,
                    space,
                    from,
                    max_bytes,
                }),
                RelayEffect::Repair {
                    space,
                    record,
                    message,
                    may_write,
                } => {
                    conn.repairs_in_flight += 1;
                    conn.reads.push(Read::Repair {
                        space,
                        record,
                        message,
                        may_write,
                    });
                }
                other => out
                    .notes
                    .push(format!("relay effect not handled: {other:?}")),
            }
        }
    }
}

/// A piece of a connection's storage work that can finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// The running store.
    Store,
    /// The read at this index.
    Read(usize),
    /// The next live batch.
    Live,
}
