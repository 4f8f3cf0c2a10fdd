//! The scheduler: one simulated clock, one generator, and at every step one thing that
//! happens next: a frame arrives, a store job or a storage job finishes, a timer fires, a
//! user writes, a fault strikes. When nothing is ready the clock jumps to the next timer.
//!
//! A run has two phases. In the **storm**, users write on every device while frames are
//! delayed and connections die, devices and the relay crash and restart, clocks jump and
//! the relay forgets event ids or is restored from an older copy of its file. Then the
//! network **heals** (no more faults; connections that carried raw faults are reset, since
//! only a reset recovers from those) and the system runs until it is quiet: every device
//! connected, caught up and its outbox empty, nothing in flight. Then the invariants are
//! checked (`check.rs`).

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use holdfast_protocol::session::RelayConfig;
use holdfast_protocol::{decode, encode, Frame, SpaceId};
use holdfast_relay::StoreConfig as RelayStoreConfig;

use crate::device::{Device, WALL_BASE_MS};
use crate::model::Model;
use crate::net::{Dir, LinkFaults, Packet, Sent, Wire};
use crate::ops::{self, SPACES};
use crate::params::Params;
use crate::relay::{Relay, RelayOut, RelaySetup, SimAuth, Task, TOKEN};
use crate::rng::Rng;
use holdfast::sync::driver::Lost;

use crate::worker::{Out, WorkerConfig};

/// Most steps of the storm (a guard: it ends when its operations are done).
const STORM_STEPS_MAX: u64 = 200_000;
/// Most steps, and simulated ms, to become quiet once the network healed.
const SETTLE_STEPS_MAX: u64 = 200_000;
const SETTLE_MS_MAX: u64 = 60 * 60 * 1_000;
/// Lines of trace kept for a failure report.
const TRACE_TAIL: usize = 400;

/// Counts of what happened in a run.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Steps taken.
    pub steps: u64,
    /// Simulated ms elapsed.
    pub elapsed_ms: u64,
    /// User writes that returned `Ok`, and those refused as they should be.
    pub writes: u32,
    /// See `writes`.
    pub refused: u32,
    /// Frames sent, both ways.
    pub frames: u64,
    /// Connections opened.
    pub connects: u32,
    /// Connections killed by the network.
    pub kills: u32,
    /// Frames dropped, duplicated or reordered inside a live connection.
    pub raw_faults: u32,
    /// Device and relay crashes, relay restores.
    pub device_crashes: u32,
    /// See `device_crashes`.
    pub relay_crashes: u32,
    /// See `device_crashes`.
    pub relay_restores: u32,
    /// Partitions, clock jumps, prunes, compactions.
    pub partitions: u32,
    /// See `partitions`.
    pub clock_jumps: u32,
    /// See `partitions`.
    pub prunes: u32,
    /// See `partitions`.
    pub compactions: u64,
    /// A device's worker stopped for good (after a raw fault) and the user pressed retry.
    pub permanent_stops: u32,
    /// Outbox entries promised (to reach the relay exactly once).
    pub promises: usize,
    /// Records at the end.
    pub records: usize,
    /// How often notable things happened, by name (see `COVERAGE`).
    pub coverage: BTreeMap<&'static str, u32>,
    /// Fingerprint of the schedule: equal for two runs of a seed that made the same
    /// choices.
    pub fingerprint: u64,
}

/// A bug planted on purpose, to show that the checks catch what they claim to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sabotage {
    /// The first outbox entry a user write makes is discarded before it is sent: an
    /// acknowledged write never reaches the relay.
    DiscardWrite,
    /// Pulled `Changes` that device 0 receives with entries made elsewhere lose their
    /// entries and keep their cursor: the device moves its cursor past changes it never
    /// applied, and misses them for good.
    SkipApply,
}

/// What happens next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Deliver(u64, Dir),
    DeviceJob(usize),
    DeviceTimer(usize),
    Connect(usize),
    DeviceStart(usize),
    RelayTask(u64, Task),
    RelayTick(u64),
    RelayStart,
    UserOp(usize),
    Fault,
}

/// One run.
pub struct Sim {
    seed: u64,
    params: Params,
    rng: Rng,
    net: Rng,
    now: u64,
    dir: tempfile::TempDir,
    devices: Vec<Device>,
    relay: Relay,
    relay_down_until: Option<u64>,
    /// Rotate the epoch when the relay next starts (it was restored from a copy).
    rotate_on_start: bool,
    backup: Option<PathBuf>,
    wires: BTreeMap<u64, Wire>,
    wire_next: u64,
    faults: LinkFaults,
    healed: bool,
    next_op_at: Vec<u64>,
    next_fault_at: u64,
    ops_done: u32,
    storm_ends_at: Option<u64>,
    pub(crate) model: Model,
    spaces: Vec<SpaceId>,
    worker: WorkerConfig,
    trace: VecDeque<String>,
    trace_all: bool,
    sabotage: Option<Sabotage>,
    pub(crate) stats: Stats,
}

impl Sim {
    /// Sets up the run of `seed`: its parameters, the relay and the devices in a new
    /// temporary directory (under `HOLDFAST_SIM_DIR`, else `/dev/shm` when there is one,
    /// else the system's).
    pub fn new(seed: u64) -> Result<Self, String> {
        let mut rng = Rng::new(seed);
        let params = Params::draw(&mut rng);
        let dir = temp_dir().map_err(|e| format!("cannot make a temporary directory: {e}"))?;
        let spaces: Vec<SpaceId> = SPACES
            .iter()
            .map(|s| SpaceId::new(*s).expect("a valid space id"))
            .collect();
        let relay = Relay::open(
            dir.path().join("relay.redb"),
            relay_setup(&params),
            SimAuth::new(spaces.clone()),
        )?;
        let mut devices = Vec::new();
        for i in 0..params.devices {
            let offset = rng.range(0, 2 * params.skew_ms_max as u64) as i64 - params.skew_ms_max;
            let path = dir.path().join(format!("device-{i}.redb"));
            devices.push(Device::open(
                i,
                path,
                offset,
                params.price_resolver,
                rng.fork(),
            )?);
        }
        let faults = LinkFaults {
            kill_per_mille: params.kill_per_mille,
            raw_fault_per_mille: params.raw_fault_per_mille,
            slow_per_mille: params.slow_per_mille,
            slow_ms_max: params.slow_ms_max,
            latency_ms: params.latency_ms,
        };
        let worker = WorkerConfig {
            token: TOKEN.into(),
            push_entries_max: 256,
            push_bytes_max: params.push_bytes_max,
            pull_bytes_max: params.pull_bytes_max,
            handshake_timeout_ms: params.handshake_timeout_ms,
            keepalive_interval_ms: params.keepalive_interval_ms,
            idle_timeout_ms: params.idle_timeout_ms,
        };
        let next_op_at = (0..params.devices).map(|_| rng.range(0, 500)).collect();
        let net = rng.fork();
        let next_fault_at = rng.range(0, 3_000);
        Ok(Self {
            seed,
            params,
            rng,
            net,
            now: 0,
            dir,
            devices,
            relay,
            relay_down_until: None,
            rotate_on_start: false,
            backup: None,
            wires: BTreeMap::new(),
            wire_next: 1,
            faults,
            healed: false,
            next_op_at,
            next_fault_at,
            ops_done: 0,
            storm_ends_at: None,
            model: Model::default(),
            spaces,
            worker,
            trace: VecDeque::new(),
            trace_all: std::env::var_os("HOLDFAST_SIM_TRACE").is_some(),
            sabotage: None,
            stats: Stats::default(),
        })
    }

    /// Plants `sabotage` in this run.
    pub fn sabotage(&mut self, sabotage: Sabotage) {
        self.sabotage = Some(sabotage);
    }

    /// The run's parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The last lines of the trace.
    pub fn trace_tail(&self) -> Vec<String> {
        self.trace.iter().cloned().collect()
    }

    /// Runs the storm, heals the network, runs until quiet, and checks the invariants.
    pub fn run(&mut self) -> Result<Stats, String> {
        self.note(format!("seed {} params {:?}", self.seed, self.params));
        self.storm()?;
        self.heal();
        self.settle()?;
        self.stats.elapsed_ms = self.now;
        self.stats.promises = self.model.promises.len();
        self.stats.records = self.model.records.len();
        crate::check::check(self)?;
        Ok(self.stats.clone())
    }

    fn storm(&mut self) -> Result<(), String> {
        for _ in 0..STORM_STEPS_MAX {
            if self.storm_ends_at.is_some_and(|at| self.now >= at) {
                return Ok(());
            }
            self.step()?;
        }
        Err(format!(
            "the storm did not end within {STORM_STEPS_MAX} steps"
        ))
    }

    /// No more faults: devices and the relay come back, partitions end, connections that
    /// carried raw faults or were killed are reset (both sides notice at once), and a
    /// worker that stopped for good is retried (the user's "retry").
    fn heal(&mut self) {
        self.note("the network heals".into());
        self.healed = true;
        self.faults = self.faults.healed();
        for wire in self.wires.values_mut() {
            if wire.raw_faults > 0 || wire.dead {
                wire.reset(self.now, &mut self.net);
            }
        }
        if self.relay_down_until.is_some() {
            self.relay_down_until = Some(self.now);
        }
        for device in &mut self.devices {
            device.link_down_until = 0;
            if device.store.is_none() {
                device.down_until = self.now;
            }
            if device.stopped {
                self.stats.permanent_stops += 1;
                device.retry_now(self.now);
            }
        }
    }

    fn settle(&mut self) -> Result<(), String> {
        let started = self.now;
        for _ in 0..SETTLE_STEPS_MAX {
            if self.quiet() {
                self.note("quiet".into());
                return Ok(());
            }
            if self.now > started + SETTLE_MS_MAX {
                break;
            }
            self.step()?;
        }
        Err(format!(
            "not quiet {} simulated s after the network healed: {}",
            (self.now - started) / 1000,
            self.why_not_quiet()
        ))
    }

    /// Every device connected, caught up and drained, nothing in flight anywhere.
    fn quiet(&self) -> bool {
        self.why_not_quiet().is_empty()
    }

    fn why_not_quiet(&self) -> String {
        if self.relay.store.is_none() {
            return "the relay is down".into();
        }
        for device in &self.devices {
            let i = device.index;
            if device.store.is_none() {
                return format!("device {i} is down");
            }
            let Some(conn) = &device.conn else {
                return format!("device {i} is not connected");
            };
            if !conn.settled() {
                return format!("device {i} is syncing");
            }
            if !self.relay.conns.contains_key(&conn.wire) {
                return format!("device {i}'s connection is gone on the relay");
            }
        }
        if let Some(wire) = self
            .wires
            .values()
            .find(|w| !w.up.is_empty() || !w.down.is_empty())
        {
            return format!("wire {} carries frames", wire.id);
        }
        if self.relay.conns.values().any(|c| c.busy()) {
            return "the relay has work".into();
        }
        String::new()
    }

    /// One step: the clock moves a little, then one ready action runs (or the clock
    /// jumps to the next timer when none is).
    fn step(&mut self) -> Result<(), String> {
        self.stats.steps += 1;
        self.now += self.rng.below(3);
        for device in &self.devices {
            device.set_clock(self.now);
        }
        let ready = self.ready();
        if ready.is_empty() {
            match self.next_timer() {
                Some(at) if at > self.now => self.now = at,
                Some(_) => {}
                None => return Err("nothing can happen any more".into()),
            }
            return Ok(());
        }
        let weights: Vec<u64> = ready.iter().map(weight).collect();
        let total: u64 = weights.iter().sum();
        let mut pick = self.rng.below(total);
        let mut chosen = ready[0];
        for (action, w) in ready.iter().zip(&weights) {
            if pick < *w {
                chosen = *action;
                break;
            }
            pick -= w;
        }
        self.fingerprint(&chosen);
        self.act(chosen)
    }

    fn fingerprint(&mut self, action: &Action) {
        let text = format!("{action:?}@{}", self.now);
        for b in text.bytes() {
            self.stats.fingerprint ^= u64::from(b);
            self.stats.fingerprint = self.stats.fingerprint.wrapping_mul(0x100_0000_01b3);
        }
    }

    /// Everything that can happen at the current time.
    fn ready(&self) -> Vec<Action> {
        let now = self.now;
        let mut ready = Vec::new();
        for wire in self.wires.values() {
            if wire.down.next_at().is_some_and(|at| at <= now) {
                ready.push(Action::Deliver(wire.id, Dir::Down));
            }
            if wire.up.next_at().is_some_and(|at| at <= now) {
                let reading = self
                    .relay
                    .conns
                    .get(&wire.id)
                    .is_none_or(|c| c.wants_read());
                if reading {
                    ready.push(Action::Deliver(wire.id, Dir::Up));
                }
            }
        }
        for device in &self.devices {
            let i = device.index;
            if device.store.is_none() {
                if device.down_until <= now {
                    ready.push(Action::DeviceStart(i));
                }
                continue;
            }
            match &device.conn {
                Some(conn) => {
                    if conn.has_jobs() {
                        ready.push(Action::DeviceJob(i));
                    }
                    if device_timer(conn).is_some_and(|at| at <= now) {
                        ready.push(Action::DeviceTimer(i));
                    }
                }
                None => {
                    if !device.stopped && device.next_connect_at <= now {
                        ready.push(Action::Connect(i));
                    }
                }
            }
            if self.storming() && self.next_op_at[i] <= now {
                ready.push(Action::UserOp(i));
            }
        }
        if self.relay.store.is_some() {
            for (wire, task) in self.relay.ready() {
                ready.push(Action::RelayTask(wire, task));
            }
            for (wire, conn) in &self.relay.conns {
                if conn.next_tick <= self.relay_ms() {
                    ready.push(Action::RelayTick(*wire));
                }
            }
        } else if self.relay_down_until.is_some_and(|at| at <= now) {
            ready.push(Action::RelayStart);
        }
        if !self.healed && self.next_fault_at <= now {
            ready.push(Action::Fault);
        }
        ready
    }

    fn storming(&self) -> bool {
        !self.healed && self.ops_done < self.params.ops
    }

    /// The earliest time something is due.
    fn next_timer(&self) -> Option<u64> {
        let mut times = Vec::new();
        for wire in self.wires.values() {
            times.extend(wire.up.next_at());
            times.extend(wire.down.next_at());
        }
        for device in &self.devices {
            if device.store.is_none() {
                times.push(device.down_until);
                continue;
            }
            match &device.conn {
                Some(conn) => times.extend(device_timer(conn)),
                None if !device.stopped => times.push(device.next_connect_at),
                None => {}
            }
            if self.storming() {
                times.push(self.next_op_at[device.index]);
            }
        }
        // Ticks are due on the relay's clock.
        let relay_base = WALL_BASE_MS as u64;
        times.extend(
            self.relay
                .conns
                .values()
                .map(|c| c.next_tick.saturating_sub(relay_base)),
        );
        times.extend(self.relay_down_until);
        if !self.healed {
            times.push(self.next_fault_at);
        }
        if let Some(at) = self.storm_ends_at {
            times.push(at);
        }
        times.into_iter().min()
    }

    fn act(&mut self, action: Action) -> Result<(), String> {
        match action {
            Action::Deliver(wire, dir) => self.deliver(wire, dir),
            Action::DeviceJob(i) => {
                let mut out = Out::default();
                let device = &mut self.devices[i];
                let wall = device.now(self.now);
                let (Some(conn), Some(store)) = (device.conn.as_mut(), device.store.as_ref())
                else {
                    return Ok(());
                };
                conn.run_job(store, wall, &mut out);
                self.device_out(i, out)?;
                self.scan_outbox(i)
            }
            Action::DeviceTimer(i) => {
                let mut out = Out::default();
                let device = &mut self.devices[i];
                let wall = device.now(self.now);
                if let Some(conn) = device.conn.as_mut() {
                    conn.timers(wall, &mut out);
                }
                self.device_out(i, out)
            }
            Action::Connect(i) => self.connect(i),
            Action::DeviceStart(i) => {
                self.note(format!("device {i} starts"));
                self.devices[i].start()?;
                self.devices[i].next_connect_at = self.now;
                self.scan_outbox(i)
            }
            Action::RelayTask(wire, task) => {
                let mut out = RelayOut::default();
                self.relay.finish(wire, task, self.relay_ms(), &mut out);
                self.relay_out(out)
            }
            Action::RelayTick(wire) => {
                let mut out = RelayOut::default();
                self.relay.tick(wire, self.relay_ms(), &mut out);
                self.relay_out(out)
            }
            Action::RelayStart => self.relay_start(),
            Action::UserOp(i) => self.user_op(i),
            Action::Fault => self.fault(),
        }
    }

    /// The relay's clock: simulated time in ms since the Unix epoch.
    fn relay_ms(&self) -> u64 {
        (WALL_BASE_MS as u64) + self.now
    }

    fn deliver(&mut self, id: u64, dir: Dir) -> Result<(), String> {
        let Some(wire) = self.wires.get_mut(&id) else {
            return Ok(());
        };
        let (device, device_open, relay_open) = (wire.device, wire.device_open, wire.relay_open);
        let packet = match dir {
            Dir::Up => wire.up.pop_due(self.now),
            Dir::Down => wire.down.pop_due(self.now),
        };
        let Some(packet) = packet else {
            return Ok(());
        };
        let relay_has = self.relay.conns.contains_key(&id);
        let device_has = self.devices[device]
            .conn
            .as_ref()
            .is_some_and(|c| c.wire == id);
        match (dir, packet) {
            (Dir::Up, Packet::Frame(bytes)) => {
                if relay_open && relay_has {
                    let mut out = RelayOut::default();
                    let now = self.relay_ms();
                    self.relay.received(id, &bytes, now, &mut out);
                    self.relay_out(out)?;
                }
            }
            (Dir::Up, Packet::Close) => {
                self.set_open(id, Dir::Down, false);
                if relay_has {
                    self.note(format!("relay sees wire {id} close"));
                    let finishes = self.rng.chance(500);
                    let mut out = RelayOut::default();
                    let now = self.relay_ms();
                    self.relay.disconnect(id, finishes, now, &mut out);
                    self.relay_out(out)?;
                }
            }
            (Dir::Down, Packet::Frame(bytes)) => {
                let bytes = self.sabotage_skip_apply(device, bytes);
                if device_open && device_has {
                    let mut out = Out::default();
                    let d = &mut self.devices[device];
                    let wall = d.now(self.now);
                    let conn = d.conn.as_mut().expect("checked above");
                    conn.received(&bytes, wall, &mut out);
                    self.device_out(device, out)?;
                }
            }
            (Dir::Down, Packet::Close) => {
                self.set_open(id, Dir::Up, false);
                if device_open && device_has {
                    self.note(format!("device {device} sees wire {id} close"));
                    let d = &self.devices[device];
                    let wall = d.now(self.now);
                    let lost = d.conn.as_ref().expect("checked above").lost(wall);
                    self.device_lost(device, &lost)?;
                }
            }
        }
        self.reap(id);
        Ok(())
    }

    /// For [`Sabotage::SkipApply`]: a `Changes` for device 0 holding entries made
    /// elsewhere arrives without its entries but with its cursor.
    fn sabotage_skip_apply(&mut self, device: usize, bytes: Vec<u8>) -> Vec<u8> {
        if self.sabotage != Some(Sabotage::SkipApply) || device != 0 {
            return bytes;
        }
        let Ok(Frame::Changes {
            space,
            entries,
            next_cursor,
            more,
        }) = decode(&bytes)
        else {
            return bytes;
        };
        let promises = &self.model.promises;
        let foreign = |id: &holdfast::EventId| {
            !promises
                .iter()
                .any(|p| p.device == device && p.event_id == *id)
        };
        if !entries.iter().any(|e| foreign(&e.event_id)) {
            return bytes;
        }
        self.note(format!(
            "sabotage: device {device} gets {} entries of {space} as none",
            entries.len()
        ));
        let emptied = Frame::Changes {
            space,
            entries: Vec::new(),
            next_cursor,
            more,
        };
        encode(&emptied).expect("an empty Changes encodes")
    }

    /// Marks one side of a wire closed: `Dir::Up` is the device's side (it sends up),
    /// `Dir::Down` the relay's.
    fn set_open(&mut self, id: u64, side: Dir, open: bool) {
        if let Some(wire) = self.wires.get_mut(&id) {
            match side {
                Dir::Up => wire.device_open = open,
                Dir::Down => wire.relay_open = open,
            }
        }
    }

    /// Forgets a wire both sides are done with.
    fn reap(&mut self, id: u64) {
        if self.wires.get(&id).is_some_and(Wire::finished) {
            self.wires.remove(&id);
        }
    }

    fn connect(&mut self, i: usize) -> Result<(), String> {
        let now = self.now;
        if self.relay.store.is_none() || self.devices[i].link_down_until > now {
            self.devices[i].unreachable(now, &mut self.rng);
            self.note(format!("device {i} cannot reach the relay"));
            return Ok(());
        }
        let id = self.wire_next;
        self.wire_next += 1;
        self.stats.connects += 1;
        self.note(format!("device {i} connects on wire {id}"));
        self.wires.insert(id, Wire::new(id, i));
        let relay_ms = self.relay_ms();
        self.relay.accept(id, relay_ms);
        let mut out = Out::default();
        let device = &mut self.devices[i];
        let store = device.store.as_ref().expect("a connecting device is up");
        let wall = device.now(now);
        let spaces = device.synced(&self.spaces);
        device.conn = crate::worker::Conn::start(
            id,
            store,
            &spaces,
            &self.worker,
            wall,
            &mut self.rng,
            &mut out,
        );
        self.device_out(i, out)
    }

    /// Carries out what a device's connection produced.
    fn device_out(&mut self, i: usize, out: Out) -> Result<(), String> {
        for note in out.notes {
            self.note(format!("device {i}: {note}"));
        }
        if let Some(anomaly) = out.anomalies.first() {
            return Err(format!("device {i}: {anomaly}"));
        }
        let Some(wire_id) = self.devices[i].conn.as_ref().map(|c| c.wire) else {
            return Ok(());
        };
        for frame in out.frames {
            self.send(wire_id, Dir::Up, &frame)?;
        }
        if let Some(lost) = out.ended {
            if let Some(wire) = self.wires.get_mut(&wire_id) {
                wire.close_from(Dir::Up, self.now);
            }
            self.device_lost(i, &lost)?;
            self.reap(wire_id);
        }
        Ok(())
    }

    fn device_lost(&mut self, i: usize, lost: &Lost) -> Result<(), String> {
        self.note(format!("device {i} lost its connection: {lost:?}"));
        let mut out = Out::default();
        self.devices[i].lost(lost, &self.spaces, self.now, &mut self.rng, &mut out);
        if let Some(anomaly) = out.anomalies.first() {
            return Err(format!("device {i}: {anomaly}"));
        }
        if lost.permanent {
            self.note(format!("device {i} stopped syncing until the user acts"));
        }
        self.scan_outbox(i)
    }

    /// Carries out what the relay produced.
    fn relay_out(&mut self, out: RelayOut) -> Result<(), String> {
        for note in out.notes {
            self.note(format!("relay: {note}"));
        }
        if let Some(anomaly) = out.anomalies.first() {
            return Err(format!("relay: {anomaly}"));
        }
        for (wire, frame) in out.sends {
            self.send(wire, Dir::Down, &frame)?;
        }
        for wire in out.closes {
            if let Some(w) = self.wires.get_mut(&wire) {
                w.close_from(Dir::Down, self.now);
            }
            self.reap(wire);
        }
        Ok(())
    }

    fn send(&mut self, id: u64, dir: Dir, frame: &Frame) -> Result<(), String> {
        let bytes = encode(frame).map_err(|e| format!("cannot encode {}: {e}", frame.name()))?;
        let Some(wire) = self.wires.get_mut(&id) else {
            return Ok(());
        };
        self.stats.frames += 1;
        let sent = wire.send(dir, bytes, self.now, &self.faults, &mut self.net);
        let line = format!("wire {id} {dir:?} {}: {sent:?}", describe(frame));
        match sent {
            Sent::Killed => self.stats.kills += 1,
            Sent::Raw(_) => self.stats.raw_faults += 1,
            Sent::Queued | Sent::Discarded => {}
        }
        self.note(line);
        Ok(())
    }

    /// Hands new outbox entries to the model; wakes the connection as the outbox watcher
    /// does.
    fn scan_outbox(&mut self, i: usize) -> Result<(), String> {
        let device = &mut self.devices[i];
        if !device.scan_outbox(&mut self.model)? {
            return Ok(());
        }
        let Some(conn) = device.conn.as_mut() else {
            return Ok(());
        };
        let mut out = Out::default();
        conn.outbox_notified(&mut out);
        self.device_out(i, out)
    }

    fn user_op(&mut self, i: usize) -> Result<(), String> {
        self.next_op_at[i] = self.now + self.rng.range(0, 1_500);
        let device = &mut self.devices[i];
        let Some(store) = device.store.as_ref() else {
            return Ok(());
        };
        self.ops_done += 1;
        if self.ops_done >= self.params.ops {
            self.storm_ends_at = Some(self.now + self.rng.range(0, 3_000));
        }
        match ops::random_op(store, &mut self.model, &mut device.rng)? {
            ops::Outcome::Done(desc) => {
                self.stats.writes += 1;
                if self.sabotage == Some(Sabotage::DiscardWrite) {
                    let entries = store.outbox().list(None, 1).map_err(|e| e.to_string())?;
                    if let Some(entry) = entries.first() {
                        store
                            .outbox()
                            .discard(entry.seq)
                            .map_err(|e| e.to_string())?;
                        self.note(format!("sabotage: device {i} discards its write"));
                        self.sabotage = None;
                        self.note(format!("sabotage: device {i} discards entry {}", entry.seq));
                    }
                }
                self.note(format!("device {i}: {desc}"));
            }
            ops::Outcome::Refused(desc) => {
                self.stats.refused += 1;
                self.note(format!("device {i}: refused: {desc}"));
            }
        }
        self.scan_outbox(i)
    }

    fn relay_start(&mut self) -> Result<(), String> {
        self.relay.start()?;
        self.relay_down_until = None;
        if std::mem::take(&mut self.rotate_on_start) {
            let epoch = self
                .relay
                .log()
                .rotate_epoch()
                .map_err(|e| format!("rotating the relay's epoch: {e}"))?;
            self.note(format!("relay restored from a copy; new epoch {epoch:x}"));
        }
        self.note("relay starts".into());
        Ok(())
    }

    /// A random fault, by the run's weights.
    fn fault(&mut self) -> Result<(), String> {
        self.next_fault_at = self.now + self.rng.range(200, 3_000);
        let p = &self.params;
        let kinds = [
            (p.partition_weight, 0),
            (p.device_crash_weight, 1),
            (p.relay_crash_weight, 2),
            (p.relay_restore_weight, 3),
            (p.clock_jump_weight, 4),
            (p.prune_weight, 5),
            (p.compact_per_mille / 10, 6),
            (p.relay_restore_weight * 2, 7),
        ];
        let total: u32 = kinds.iter().map(|(w, _)| w).sum();
        if total == 0 {
            return Ok(());
        }
        let mut pick = self.rng.below(u64::from(total)) as u32;
        let mut kind = 0;
        for (w, k) in kinds {
            if pick < w {
                kind = k;
                break;
            }
            pick -= w;
        }
        let n = self.devices.len();
        match kind {
            0 => {
                let i = self.rng.index(n);
                let until = self.now + self.rng.range(500, 20_000);
                self.note(format!("device {i} is partitioned until {until}"));
                self.stats.partitions += 1;
                self.devices[i].link_down_until = until;
                self.kill_device_wires(i);
            }
            1 => {
                let i = self.rng.index(n);
                if self.devices[i].store.is_some() {
                    self.note(format!("device {i} crashes"));
                    self.stats.device_crashes += 1;
                    self.devices[i].crash();
                    self.devices[i].down_until = self.now + self.rng.range(0, 5_000);
                    self.kill_device_wires(i);
                }
            }
            2 => self.crash_relay(false)?,
            3 => self.crash_relay(true)?,
            4 => {
                let i = self.rng.index(n);
                let skew = self.params.skew_ms_max;
                let offset = self.rng.range(0, 2 * skew as u64) as i64 - skew;
                self.note(format!("device {i}'s clock jumps to offset {offset} ms"));
                self.stats.clock_jumps += 1;
                self.devices[i].offset_ms = offset;
            }
            5 => {
                if let Some(store) = &self.relay.store {
                    let later = self.relay_ms() + store.config().event_retention_ms + 1;
                    let removed = store.prune(later).map_err(|e| format!("prune: {e}"))?;
                    self.stats.prunes += 1;
                    self.note(format!("relay forgets {removed} event ids"));
                }
            }
            7 => self.back_up_relay()?,
            _ => {
                if let Some(store) = &self.relay.store {
                    let n = store.compact_now().map_err(|e| format!("compact: {e}"))?;
                    self.stats.compactions += n;
                    self.note(format!("relay compacts {n} records"));
                }
            }
        }
        Ok(())
    }

    /// The relay dies; with `restore`, it comes back from the copy of its file taken
    /// earlier, with a new epoch (as the restore procedure says).
    fn crash_relay(&mut self, restore: bool) -> Result<(), String> {
        if restore && self.backup.is_none() {
            return Ok(());
        }
        if self.relay.store.is_some() {
            self.note("relay crashes".into());
            self.stats.relay_crashes += 1;
            let mut out = RelayOut::default();
            let wires = self.relay.crash(self.relay_ms(), &mut self.rng, &mut out);
            self.relay_out(out)?;
            for id in wires {
                if let Some(wire) = self.wires.get_mut(&id) {
                    wire.kill(self.now, &mut self.net);
                    wire.relay_open = false;
                }
                self.reap(id);
            }
        }
        if restore {
            let backup = self.backup.as_ref().expect("checked above");
            std::fs::copy(backup, &self.relay.path)
                .map_err(|e| format!("restoring the relay: {e}"))?;
            self.note("the relay's file is replaced by its copy".into());
            self.stats.relay_restores += 1;
            self.rotate_on_start = true;
        }
        self.relay_down_until = Some(self.now + self.rng.range(0, 5_000));
        Ok(())
    }

    /// A copy of the relay's file is taken (an online backup: no write is under way
    /// between two steps).
    fn back_up_relay(&mut self) -> Result<(), String> {
        let backup = self.dir.path().join("relay-backup.redb");
        std::fs::copy(&self.relay.path, &backup).map_err(|e| format!("copying the relay: {e}"))?;
        self.note("a copy of the relay's file is taken".into());
        self.backup = Some(backup);
        Ok(())
    }

    /// The network kills the connections of device `i`; a crashed device's side is gone.
    fn kill_device_wires(&mut self, i: usize) {
        let crashed = self.devices[i].store.is_none();
        let ids: Vec<u64> = self
            .wires
            .values()
            .filter(|w| w.device == i)
            .map(|w| w.id)
            .collect();
        for id in ids {
            let wire = self.wires.get_mut(&id).expect("listed above");
            if !wire.dead {
                self.stats.kills += 1;
                wire.kill(self.now, &mut self.net);
            }
            if crashed {
                wire.device_open = false;
            }
            self.reap(id);
        }
    }

    /// The devices, for the checks.
    pub(crate) fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// The devices, for the checks to close.
    pub(crate) fn devices_mut(&mut self) -> &mut [Device] {
        &mut self.devices
    }

    /// The relay, for the checks.
    pub(crate) fn relay(&self) -> &Relay {
        &self.relay
    }

    /// The spaces, for the checks.
    pub(crate) fn spaces(&self) -> &[SpaceId] {
        &self.spaces
    }

    fn note(&mut self, line: String) {
        for (pattern, name) in COVERAGE {
            if line.contains(pattern) {
                *self.stats.coverage.entry(name).or_default() += 1;
            }
        }
        let line = format!("{:>8} {line}", self.now);
        if self.trace_all {
            eprintln!("{line}");
        }
        if self.trace.len() == TRACE_TAIL {
            self.trace.pop_front();
        }
        self.trace.push_back(line);
    }
}

/// Trace lines counted in [`Stats::coverage`]: (what the line contains, name).
const COVERAGE: [(&str, &str); 16] = [
    ("sabotage: ", "sabotaged"),
    ("repairing ", "repair started"),
    ("repair of ", "repair step"),
    ("no answer in time", "repair timed out"),
    ("stored by repair", "stored by repair"),
    ("needs a repair", "resync"),
    ("rejected (for now)", "rejected for now"),
    ("rejected (permanent)", "rejected permanently"),
    ("Snapshot(", "snapshot page"),
    ("last false", "snapshot page not last"),
    ("more true", "pull page not last"),
    ("relay error", "relay error"),
    ("Error(", "error frame"),
    ("resolve ", "resolve"),
    (
        "a store of a closed connection finished",
        "store after close",
    ),
    ("without their changes", "own entries heard back"),
];

/// How likely an action is chosen among those ready.
fn weight(action: &Action) -> u64 {
    match action {
        Action::UserOp(_) | Action::Fault => 10,
        _ => 20,
    }
}

/// When a connection's next timer fires.
fn device_timer(conn: &crate::worker::Conn) -> Option<u64> {
    Some(conn.next_timer())
}

fn describe(frame: &Frame) -> String {
    match frame {
        Frame::Push { entries } => format!("Push({})", entries.len()),
        Frame::Ack { results } => format!("Ack({})", results.len()),
        Frame::Changes {
            space,
            entries,
            next_cursor,
            more,
        } => format!(
            "Changes({space}, {} entries, to {}, more {more})",
            entries.len(),
            next_cursor.seq
        ),
        Frame::Snapshot {
            space,
            records,
            next,
            ..
        } => format!(
            "Snapshot({space}, {} records, last {})",
            records.len(),
            next.is_none()
        ),
        Frame::Error { code, .. } => format!("Error({code:?})"),
        other => other.name().to_string(),
    }
}

fn relay_setup(params: &Params) -> RelaySetup {
    let mut store = RelayStoreConfig::default();
    store.pull_entries_max = params.pull_entries_max;
    store.compact_tail_entries_min = params.compact_tail_entries_min;
    store.compact_tail_percent_min = 0;
    store.compact_in_background = false;
    store.cache_bytes = 1 << 20;
    let mut session = RelayConfig::new(uuid::Uuid::nil(), 0);
    session.limits.batch_entries_max = params.batch_entries_max;
    session.limits.pushes_in_flight_max = params.pushes_in_flight_max;
    session.pulls_in_flight_max = params.pulls_in_flight_max;
    session.pull_bytes_max = params.pull_bytes_max;
    session.push_rate_per_sec = params.push_rate_per_sec;
    session.push_burst = params.push_burst;
    session.handshake_timeout_ms = params.handshake_timeout_ms;
    session.keepalive_interval_ms = params.keepalive_interval_ms;
    session.idle_timeout_ms = params.idle_timeout_ms;
    RelaySetup { store, session }
}

fn temp_dir() -> std::io::Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("holdfast-sim-");
    if let Some(dir) = std::env::var_os("HOLDFAST_SIM_DIR") {
        return builder.tempdir_in(dir);
    }
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = builder.tempdir_in(shm) {
            return Ok(dir);
        }
    }
    builder.tempdir()
}
