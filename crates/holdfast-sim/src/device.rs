//! One device: its store file, its skewed clock, its connection, and the sync worker's own
//! reconnect policy (`holdfast::sync::Reconnect`, which the worker's loop runs too).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use holdfast::sync::driver::{Lost, Now};
use holdfast::sync::{Next, Reconnect, RECONNECT_DELAY_MAX, RECONNECT_DELAY_MIN};
use holdfast::{SpaceId, Store, StoreConfig, Value};

use crate::model::Model;
use crate::ops;
use crate::rng::Rng;
use crate::worker::{Conn, Out};

/// The simulated epoch: time 0 of the simulation, in ms since the Unix epoch.
pub const WALL_BASE_MS: i64 = 1_800_000_000_000;

/// One device.
pub struct Device {
    /// Its index in the run.
    pub index: usize,
    /// Its store file.
    pub path: PathBuf,
    config: StoreConfig,
    /// Its wall clock, as the store reads it (ms since the Unix epoch).
    clock: Arc<AtomicI64>,
    /// How far its clock is from the simulated time.
    pub offset_ms: i64,
    /// The store, while the app runs.
    pub store: Option<Store>,
    /// The app is down (crashed) until then.
    pub down_until: u64,
    /// The connection, while there is one.
    pub conn: Option<Conn>,
    /// Its network is down (partitioned) until then.
    pub link_down_until: u64,
    reconnect: Reconnect,
    /// Spaces the relay refused to let it read: no longer synced until the user retries.
    pub refused: BTreeSet<SpaceId>,
    /// The worker connects again at this time.
    pub next_connect_at: u64,
    /// The relay refused it for good: the worker waits for the user.
    pub stopped: bool,
    /// The highest outbox seq handed to the model.
    outbox_seen: Option<u64>,
    /// Its user's operations.
    pub rng: Rng,
}

impl Device {
    /// A device with a new store at `path`.
    pub fn open(
        index: usize,
        path: PathBuf,
        offset_ms: i64,
        price_resolver: bool,
        rng: Rng,
    ) -> Result<Self, String> {
        let clock = Arc::new(AtomicI64::new(WALL_BASE_MS + offset_ms));
        let read = clock.clone();
        let mut config =
            StoreConfig::new(ops::schema()).clock(move || read.load(Ordering::Relaxed));
        if price_resolver {
            config = config.resolver("item", "price", |candidates| {
                candidates
                    .iter()
                    .filter_map(|c| match c.value {
                        Value::F64(v) => Some(v),
                        _ => None,
                    })
                    .max_by(f64::total_cmp)
                    .map(Value::F64)
            });
        }
        let mut device = Self {
            index,
            path,
            config,
            clock,
            offset_ms,
            store: None,
            down_until: 0,
            conn: None,
            link_down_until: 0,
            reconnect: Reconnect::new(RECONNECT_DELAY_MIN, RECONNECT_DELAY_MAX),
            refused: BTreeSet::new(),
            next_connect_at: 0,
            stopped: false,
            outbox_seen: None,
            rng,
        };
        device.start()?;
        Ok(device)
    }

    /// Opens the store from its file (the app starts).
    pub fn start(&mut self) -> Result<(), String> {
        let store = Store::open(&self.path, self.config.clone())
            .map_err(|e| format!("device {} cannot open its store: {e}", self.index))?;
        self.store = Some(store);
        Ok(())
    }

    /// The app dies: the store and the connection go with everything in memory.
    pub fn crash(&mut self) {
        self.conn = None;
        self.store = None;
    }

    /// The device's wall clock at simulated time `now`, in ms since the Unix epoch.
    pub fn wall_ms(&self, now: u64) -> u64 {
        (WALL_BASE_MS + now as i64 + self.offset_ms) as u64
    }

    /// Both clocks of the device at simulated time `now`.
    pub fn now(&self, now: u64) -> Now {
        Now {
            wall_ms: self.wall_ms(now),
            mono_ms: now,
        }
    }

    /// Sets the store's clock to simulated time `now`.
    pub fn set_clock(&self, now: u64) {
        self.clock
            .store(self.wall_ms(now) as i64, Ordering::Relaxed);
    }

    /// The connection ended at `now`: the worker's teardown, then its reconnect decision.
    /// `spaces` are the spaces the device syncs when nothing is refused.
    pub fn lost(
        &mut self,
        lost: &Lost,
        spaces: &[SpaceId],
        now: u64,
        rng: &mut Rng,
        out: &mut Out,
    ) {
        if let (Some(conn), Some(store)) = (self.conn.take(), &self.store) {
            conn.finish(store, out);
        }
        let refused = &mut self.refused;
        let next = self.reconnect.on_lost(
            lost,
            || rng.next_u64(),
            |space| {
                refused.insert(space.clone());
                spaces.iter().any(|s| !refused.contains(s))
            },
        );
        match next {
            Next::Reconnect(delay) => self.next_connect_at = now + delay.as_millis() as u64,
            Next::Stop => self.stopped = true,
        }
    }

    /// The spaces the device syncs now: `spaces` less those refused.
    pub fn synced(&self, spaces: &[SpaceId]) -> Vec<SpaceId> {
        spaces
            .iter()
            .filter(|s| !self.refused.contains(*s))
            .cloned()
            .collect()
    }

    /// A connection attempt failed (no network, or no relay).
    pub fn unreachable(&mut self, now: u64, rng: &mut Rng) {
        // As in the worker, a failed connect is a transient loss.
        let lost = Lost::transient("the relay could not be reached");
        match self.reconnect.on_lost(&lost, || rng.next_u64(), |_| true) {
            Next::Reconnect(delay) => self.next_connect_at = now + delay.as_millis() as u64,
            Next::Stop => unreachable!("a transient loss never stops the worker"),
        }
    }

    /// The user pressed "retry" (after a permanent refusal), or the network came back.
    pub fn retry_now(&mut self, now: u64) {
        self.stopped = false;
        self.refused.clear();
        self.reconnect.user_acted();
        self.next_connect_at = now;
    }

    /// Hands the outbox entries written since last time to the model; returns whether
    /// there were any.
    pub fn scan_outbox(&mut self, model: &mut Model) -> Result<bool, String> {
        let Some(store) = &self.store else {
            return Ok(false);
        };
        let entries = store
            .outbox()
            .list(self.outbox_seen, usize::MAX)
            .map_err(|e| format!("listing the outbox: {e}"))?;
        if let Some(last) = entries.last() {
            self.outbox_seen = Some(last.seq);
        }
        Ok(model.saw(self.index, entries) > 0)
    }
}
