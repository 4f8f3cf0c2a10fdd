//! The device's side of one connection: the sync worker's own [`Driver`]
//! (`holdfast::sync::driver`, the code `Store::sync` runs), on the simulated clock.
//!
//! The worker runs the driver's store jobs in order on one blocking thread while its loop
//! goes on reading the socket. Here the jobs wait in [`Conn`] and the simulation runs the
//! oldest one at a step of its choosing, so messages and store work interleave as they
//! may in the worker, and a crash can fall between a frame and the store work it asked
//! for. What the simulation leaves out is the socket and the tokio plumbing around the
//! driver (`crates/holdfast/src/sync/connection.rs`).

use std::collections::VecDeque;

use holdfast::sync::driver::{self, Driver, DriverConfig, Job, Lost, Now};
use holdfast::sync::SyncConfig;
use holdfast::{SpaceId, Store};
use holdfast_protocol::Frame;

use crate::rng::Rng;

/// How the simulated devices' workers are configured.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The bearer token sent in `Hello`.
    pub token: String,
    /// Entries per batch taken from the outbox (`SyncConfig::push_entries_max`).
    pub push_entries_max: usize,
    /// Change bytes per batch and per push (`SyncConfig::push_bytes_max`).
    pub push_bytes_max: u64,
    /// Bytes asked for per pull (`SyncConfig::pull_bytes_max`).
    pub pull_bytes_max: u64,
    /// Session timeouts, in ms.
    pub handshake_timeout_ms: u64,
    /// See `handshake_timeout_ms`.
    pub keepalive_interval_ms: u64,
    /// See `handshake_timeout_ms`.
    pub idle_timeout_ms: u64,
}

impl WorkerConfig {
    /// The driver's settings for `store`, as `Store::sync` would make them from a
    /// `SyncConfig` with these values.
    fn driver(&self, store: &Store, spaces: &[SpaceId], jitter_seed: u64) -> DriverConfig {
        let mut sync = SyncConfig::new("ws://sim.invalid/", self.token.clone(), spaces.to_vec());
        sync.push_entries_max = self.push_entries_max;
        sync.push_bytes_max = self.push_bytes_max;
        sync.pull_bytes_max = self.pull_bytes_max;
        let mut config = DriverConfig::new(store, &sync);
        config.session.handshake_timeout_ms = self.handshake_timeout_ms;
        config.session.keepalive_interval_ms = self.keepalive_interval_ms;
        config.session.idle_timeout_ms = self.idle_timeout_ms;
        config.jitter_seed = jitter_seed;
        config
    }
}

/// What one call into a connection produced for the simulation to carry out.
#[derive(Debug, Default)]
pub struct Out {
    /// Frames to send to the relay, in order.
    pub frames: Vec<Frame>,
    /// The connection ended (the session closed, or store work failed).
    pub ended: Option<Lost>,
    /// Things that must never happen (a store call failing, a received change that
    /// does not apply): each fails the run.
    pub anomalies: Vec<String>,
    /// Lines for the trace.
    pub notes: Vec<String>,
}

impl Out {
    fn take(&mut self, from: driver::Out) {
        self.frames.extend(from.frames.into_iter().map(|o| o.frame));
        if self.ended.is_none() {
            self.ended = from.ended;
        }
        self.anomalies.extend(from.problems);
        self.notes.extend(from.notes);
    }
}

/// The device's side of one connection: the worker's driver and its store jobs waiting
/// to run.
pub struct Conn {
    /// The wire it runs over.
    pub wire: u64,
    driver: Driver,
    jobs: VecDeque<Job>,
}

impl Conn {
    /// Opens a connection: reads the cursors, starts the driver (its `Hello`).
    pub fn start(
        wire: u64,
        store: &Store,
        spaces: &[SpaceId],
        config: &WorkerConfig,
        now: Now,
        rng: &mut Rng,
        out: &mut Out,
    ) -> Option<Conn> {
        let cursors = match driver::read_cursors(store, spaces) {
            Ok(cursors) => cursors,
            Err(e) => {
                out.anomalies.push(format!("reading the cursors: {e}"));
                return None;
            }
        };
        let mut first = driver::Out::default();
        let config = config.driver(store, spaces, rng.next_u64());
        let driver = Driver::start(config, cursors, now, &mut first);
        let mut conn = Conn {
            wire,
            driver,
            jobs: VecDeque::new(),
        };
        conn.take(first, out);
        Some(conn)
    }

    fn take(&mut self, mut from: driver::Out, out: &mut Out) {
        self.jobs.extend(from.jobs.drain(..));
        out.take(from);
    }

    /// Everything is in sync: what the worker reports as idle.
    pub fn settled(&self) -> bool {
        self.driver.settled()
    }

    /// Whether store work is waiting.
    pub fn has_jobs(&self) -> bool {
        !self.jobs.is_empty()
    }

    /// When the driver's next timer is due (simulated ms).
    pub fn next_timer(&self) -> u64 {
        self.driver.next_timer()
    }

    /// How the connection is reported when its wire closes under it.
    pub fn lost(&self, now: Now) -> Lost {
        self.driver.lost(now)
    }

    /// A message from the relay.
    pub fn received(&mut self, bytes: &[u8], now: Now, out: &mut Out) {
        let mut from = driver::Out::default();
        self.driver.received(bytes, now, &mut from);
        self.take(from, out);
    }

    /// Timers that are due at `now`.
    pub fn timers(&mut self, now: Now, out: &mut Out) {
        let mut from = driver::Out::default();
        self.driver.timers(now, &mut from);
        self.take(from, out);
    }

    /// Local writes queued entries (the outbox watcher fired).
    pub fn outbox_notified(&mut self, out: &mut Out) {
        let mut from = driver::Out::default();
        self.driver.outbox_notified(&mut from);
        self.take(from, out);
    }

    /// Runs the oldest store job and hands its result back to the driver.
    pub fn run_job(&mut self, store: &Store, now: Now, out: &mut Out) {
        let Some(job) = self.jobs.pop_front() else {
            return;
        };
        let done = job.run(store);
        let mut from = driver::Out::default();
        self.driver.done(done, now, &mut from);
        self.take(from, out);
    }

    /// The connection ended: the store work already queued still runs (its results
    /// unread), then entries being sent go back to the queue, as the worker's `finish`.
    pub fn finish(self, store: &Store, out: &mut Out) {
        for job in self.jobs.into_iter().chain([Job::requeue()]) {
            if let Some(problem) = job.run(store).problem() {
                out.anomalies
                    .push(format!("store work after the connection ended: {problem}"));
            }
        }
    }
}
