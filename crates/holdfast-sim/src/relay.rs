//! The relay: a real `RedbLogStore`, and for each connection the server's own
//! `RelayDriver` (`holdfast_relay::server::driver`: the `RelaySession` and the glue
//! `server/connection.rs` runs around it), on the simulated clock, in one thread.
//!
//! The driver hands out storage work, which waits here as on the server's blocking pool
//! until the simulation picks a piece to finish; the driver hands out one store of a
//! connection at a time, so stores still commit in push order, while pulls, bootstraps and
//! repairs finish in any order. Running a piece is this module's stand-in for the server's
//! `server/storage.rs`: the log store's call, then what it stored is published to every
//! connection subscribed to the space, the storing one included (named as its author, so
//! its driver sends it the entries without their changes), through a live queue per
//! connection that the simulation drains at steps of its choosing, as the server's fan-out
//! inboxes are. What is left out: the socket, the send queue and the live inboxes' limits
//! (slow consumers), metrics.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use holdfast_protocol::session::{AuthError, Authenticator, Grants, PullReply, RelayConfig, Role};
use holdfast_protocol::{
    AckResult, BootstrapFrom, ChangeEntry, Cursor, Frame, PushEntry, RecordId, SpaceId, Token,
};
use holdfast_relay::config::TICK_INTERVAL;
use holdfast_relay::server::driver::{self, Done, RelayDriver, Work};
use holdfast_relay::{LogStore, PullResult, RedbLogStore, StoreConfig, StoreError};

use crate::rng::Rng;

/// The token every simulated device presents.
pub const TOKEN: &str = "sim-device";

/// How often the server ticks each connection.
const TICK_MS: u64 = TICK_INTERVAL.as_millis() as u64;

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

/// Entries stored, to deliver live to subscribed connections.
#[derive(Clone, Debug)]
struct LiveBatch {
    space: SpaceId,
    entries: Vec<ChangeEntry>,
    next_cursor: Cursor,
    /// The wire of the connection that stored them (the server's `Author`).
    author: u64,
}

/// The relay's side of one connection.
pub struct RelayConn {
    driver: RelayDriver,
    subscribed: Vec<SpaceId>,
    /// Storage work handed out and not finished: on the server's blocking pool, where any
    /// piece may finish next.
    work: Vec<Work>,
    live: VecDeque<LiveBatch>,
    /// When the session is next ticked, on the relay's clock (the clock of every call
    /// into its driver).
    pub next_tick: u64,
}

impl RelayConn {
    /// Whether the connection reads its next message (backpressure).
    pub fn wants_read(&self) -> bool {
        self.driver.wants_read()
    }

    /// Whether storage work or live batches wait.
    pub fn busy(&self) -> bool {
        !self.work.is_empty() || !self.live.is_empty()
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
        let driver = RelayDriver::new(config, self.auth.clone(), now);
        self.conns.insert(
            wire,
            RelayConn {
                driver,
                subscribed: Vec::new(),
                work: Vec::new(),
                live: VecDeque::new(),
                next_tick: now + TICK_MS,
            },
        );
    }

    /// The connection ended (its socket closed or failed). The storage work it handed out
    /// finishes if `running_finishes` (it was on the blocking pool already, and the server
    /// cannot cancel it): its store and its repairs write; its reads are dropped.
    pub fn disconnect(&mut self, wire: u64, running_finishes: bool, now: u64, out: &mut RelayOut) {
        let Some(conn) = self.conns.remove(&wire) else {
            return;
        };
        if !running_finishes {
            return;
        }
        // Reads have nothing to finish for a connection that is gone.
        let writes = conn
            .work
            .into_iter()
            .filter(|work| matches!(work, Work::Store { .. } | Work::Repair { .. }));
        for work in writes {
            if let Done::Stored {
                result: Ok(results),
                ..
            } = self.run(wire, work, now, out)
            {
                out.notes.push(format!(
                    "a store of a closed connection finished: {results:?}"
                ));
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
        self.drive(wire, out, |driver, o| driver.received(bytes, now, o));
    }

    /// The once-a-second tick of one connection.
    pub fn tick(&mut self, wire: u64, now: u64, out: &mut RelayOut) {
        if let Some(conn) = self.conns.get_mut(&wire) {
            conn.next_tick = now + TICK_MS;
        }
        self.drive(wire, out, |driver, o| driver.tick(now, o));
    }

    /// What may finish now, as `(wire, task)`: each piece of each connection's storage
    /// work, its next live batch.
    pub fn ready(&self) -> Vec<(u64, Task)> {
        let mut ready = Vec::new();
        for (wire, conn) in &self.conns {
            for i in 0..conn.work.len() {
                ready.push((*wire, Task::Work(i)));
            }
            if !conn.live.is_empty() {
                ready.push((*wire, Task::Live));
            }
        }
        ready
    }

    /// Finishes one task of `wire`.
    pub fn finish(&mut self, wire: u64, task: Task, now: u64, out: &mut RelayOut) {
        let Some(conn) = self.conns.get_mut(&wire) else {
            return;
        };
        match task {
            Task::Work(i) => {
                let work = conn.work.swap_remove(i);
                let done = self.run(wire, work, now, out);
                self.drive(wire, out, |driver, o| driver.done(done, o));
            }
            Task::Live => {
                let batch = conn.live.pop_front().expect("a live batch waits");
                let own = batch.author == wire;
                if own {
                    let (n, space) = (batch.entries.len(), &batch.space);
                    out.notes.push(format!(
                        "wire {wire} hears its own {n} entries of {space} without their changes"
                    ));
                }
                self.drive(wire, out, |driver, o| {
                    driver.live(&batch.space, &batch.entries, batch.next_cursor, own, o);
                });
            }
        }
    }

    /// Feeds the driver of `wire` one event and carries out its answer: frames to send,
    /// storage work to hold, the spaces to deliver live, the close.
    fn drive(
        &mut self,
        wire: u64,
        out: &mut RelayOut,
        event: impl FnOnce(&mut RelayDriver, &mut driver::Out),
    ) {
        let Some(conn) = self.conns.get_mut(&wire) else {
            return;
        };
        let mut asked = driver::Out::default();
        event(&mut conn.driver, &mut asked);
        out.anomalies.extend(asked.problems);
        conn.work.extend(asked.work);
        if let Some(spaces) = asked.subscribe {
            conn.subscribed = spaces;
        }
        out.sends
            .extend(asked.frames.into_iter().map(|frame| (wire, frame)));
        if let Some(reason) = asked.close {
            out.notes.push(format!("relay closes: {reason:?}"));
            out.closes.push(wire);
            self.conns.remove(&wire);
        }
    }

    /// Does a piece of storage work of the connection on `wire`, as the server's
    /// `storage.rs` does. A storage error is an anomaly: the simulation's disk does not
    /// fail, and its devices send no bad sync message.
    fn run(&mut self, wire: u64, work: Work, now: u64, out: &mut RelayOut) -> Done {
        match work {
            Work::Store {
                request_id,
                entries,
            } => Done::Stored {
                request_id,
                result: self.store_entries(wire, entries, now, out),
            },
            Work::Pull {
                request_id,
                space,
                cursor,
                max_bytes,
            } => Done::Pulled {
                request_id,
                reply: self.pull(&space, cursor, max_bytes, out),
            },
            Work::Bootstrap {
                request_id,
                space,
                from,
                max_bytes,
            } => Done::Pulled {
                request_id,
                reply: self.bootstrap(&space, from, max_bytes, out),
            },
            Work::Repair {
                space,
                record,
                message,
                may_write,
            } => {
                let reply = self.sync_record(wire, &space, record, &message, may_write, out);
                Done::Repaired {
                    space,
                    record,
                    reply,
                }
            }
        }
    }

    fn pull(
        &self,
        space: &SpaceId,
        cursor: Cursor,
        max_bytes: u64,
        out: &mut RelayOut,
    ) -> PullReply {
        match self.log().pull(space, Some(cursor), max_bytes) {
            Ok(result) => {
                if let PullResult::Repair { reason } = &result {
                    out.notes
                        .push(format!("pull of {space} needs a repair: {reason:?}"));
                }
                result.into()
            }
            Err(e) => {
                out.anomalies.push(format!("pull of {space} failed: {e}"));
                PullReply::Failed
            }
        }
    }

    fn bootstrap(
        &self,
        space: &SpaceId,
        from: Option<BootstrapFrom>,
        max_bytes: u64,
        out: &mut RelayOut,
    ) -> PullReply {
        match self.log().bootstrap(space, from, max_bytes) {
            Ok(page) => page.into(),
            Err(e) => {
                out.anomalies
                    .push(format!("bootstrap of {space} failed: {e}"));
                PullReply::Failed
            }
        }
    }

    /// Stores entries durably and publishes what was stored, as the server's `store`.
    fn store_entries(
        &mut self,
        wire: u64,
        entries: Vec<PushEntry>,
        now: u64,
        out: &mut RelayOut,
    ) -> Result<Vec<AckResult>, StoreError> {
        let results = self.log().store_at(entries.clone(), now).inspect_err(|e| {
            out.anomalies.push(format!("relay store failed: {e}"));
        })?;
        let batches = holdfast_relay::stored_batches(entries, &results);
        let epoch = self.log().epoch();
        for (space, entries) in batches {
            let seq = entries.last().map_or(0, |e| e.seq);
            self.publish(wire, space, entries, Cursor { epoch, seq });
        }
        Ok(results)
    }

    /// Answers one repair message, storing and publishing what it brings.
    fn sync_record(
        &mut self,
        wire: u64,
        space: &SpaceId,
        record: RecordId,
        message: &[u8],
        may_write: bool,
        out: &mut RelayOut,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let sync = self
            .log()
            .sync_record(space, record, message, may_write)
            .inspect_err(|e| {
                out.anomalies
                    .push(format!("repair of {record} failed: {e}"))
            })?;
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
            self.publish(wire, space.clone(), sync.stored, next_cursor);
        }
        Ok(sync.reply)
    }

    /// Queues what the connection on `wire` stored for every subscribed connection.
    fn publish(
        &mut self,
        wire: u64,
        space: SpaceId,
        entries: Vec<ChangeEntry>,
        next_cursor: Cursor,
    ) {
        let batch = LiveBatch {
            space,
            entries,
            next_cursor,
            author: wire,
        };
        for conn in self.conns.values_mut() {
            if conn.subscribed.contains(&batch.space) {
                conn.live.push_back(batch.clone());
            }
        }
    }
}

/// Something of a connection that can finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// The piece of storage work at this index.
    Work(usize),
    /// The next live batch.
    Live,
}
