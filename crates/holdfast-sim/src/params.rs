//! The shape of one run, drawn from its seed: how many devices and operations, the limits
//! the relay and the sessions run with, and how often each fault strikes. Varying them per
//! seed reaches paging, batching and backpressure paths that defaults never do.

use crate::rng::Rng;

/// Everything one run is configured with.
#[derive(Clone, Debug)]
pub struct Params {
    /// Devices syncing with the relay.
    pub devices: usize,
    /// User operations (writes) to make during the stormy phase, over all devices.
    pub ops: u32,
    /// Largest clock offset of a device from the simulated time, either way, in ms.
    pub skew_ms_max: i64,

    /// `Limits::batch_entries_max` the relay advertises.
    pub batch_entries_max: u32,
    /// `Limits::pushes_in_flight_max` the relay advertises.
    pub pushes_in_flight_max: u32,
    /// `RelayConfig::pulls_in_flight_max`.
    pub pulls_in_flight_max: u32,
    /// Bytes a device asks for per pull or bootstrap page (also the relay's cap).
    pub pull_bytes_max: u64,
    /// Change bytes a device puts in one push.
    pub push_bytes_max: u64,
    /// Entries of one pull and records of one bootstrap page, at most (relay storage).
    pub pull_entries_max: usize,
    /// The relay's push rate limit per connection (0: none) and its burst.
    pub push_rate_per_sec: u32,
    /// See `push_rate_per_sec`.
    pub push_burst: u32,
    /// The relay compacts a record once this many entries follow its snapshot.
    pub compact_tail_entries_min: u64,
    /// Stored records' snapshots are made by `compact_now` at random steps, never in the
    /// background (a thread would make runs irreproducible).
    pub compact_per_mille: u32,

    /// Per mille of sent frames after which the connection dies (a lost frame on a
    /// WebSocket kills it).
    pub kill_per_mille: u32,
    /// Per mille of sent frames silently dropped, duplicated or swapped with the one
    /// before, inside a connection that stays up. A real WebSocket cannot do this; the
    /// sessions must either cope or close the connection, never lose data.
    pub raw_fault_per_mille: u32,
    /// Per mille of sent frames delayed by up to `slow_ms_max`.
    pub slow_per_mille: u32,
    /// See `slow_per_mille`.
    pub slow_ms_max: u64,
    /// Base one-way latency range of a link, in ms.
    pub latency_ms: (u64, u64),
    /// Weight of a network partition of one device (the link is down for a while).
    pub partition_weight: u32,
    /// Weight of a device crash (store and session dropped, reopened from the file).
    pub device_crash_weight: u32,
    /// Weight of a relay crash (log store and every session dropped, reopened).
    pub relay_crash_weight: u32,
    /// Weight of a relay restored from an earlier copy of its file (with its epoch
    /// rotated, as the restore procedure says), losing what was stored since; copies are
    /// taken at twice this weight.
    pub relay_restore_weight: u32,
    /// Weight of a device clock jump (a new offset within the skew).
    pub clock_jump_weight: u32,
    /// Weight of the relay forgetting event ids (a prune far in the future).
    pub prune_weight: u32,
    /// Timeouts of both sides' sessions, in ms: handshake, keepalive, idle.
    pub handshake_timeout_ms: u64,
    /// See `handshake_timeout_ms`.
    pub keepalive_interval_ms: u64,
    /// See `handshake_timeout_ms`.
    pub idle_timeout_ms: u64,
    /// Whether `item.price` conflicts are settled by an app resolver (the highest wins)
    /// on every device.
    pub price_resolver: bool,
}

impl Params {
    /// The parameters of the run with this generator's seed.
    pub fn draw(rng: &mut Rng) -> Self {
        // About one run in five is calm, so that long stretches of plain sync happen too.
        let calm = rng.chance(200);
        let storm = |rng: &mut Rng, lo: u64, hi: u64| {
            if calm {
                0
            } else {
                rng.range(lo, hi) as u32
            }
        };
        let small = rng.chance(400);
        Params {
            devices: rng.range(2, 4) as usize,
            ops: rng.range(12, 40) as u32,
            skew_ms_max: 3 * 24 * 60 * 60 * 1000,
            batch_entries_max: *rng.pick(&[1, 2, 3, 8, 64]),
            pushes_in_flight_max: rng.range(1, 4) as u32,
            pulls_in_flight_max: rng.range(1, 4) as u32,
            pull_bytes_max: if small { rng.range(1, 2048) } else { 4 << 20 },
            push_bytes_max: if small { rng.range(1, 2048) } else { 1 << 20 },
            pull_entries_max: *rng.pick(&[1, 2, 3, 16, 1024]),
            push_rate_per_sec: *rng.pick(&[0, 0, 5, 50]),
            push_burst: rng.range(1, 8) as u32,
            compact_tail_entries_min: rng.range(1, 6),
            compact_per_mille: storm(rng, 0, 60),
            kill_per_mille: storm(rng, 0, 60),
            raw_fault_per_mille: storm(rng, 0, 8),
            slow_per_mille: storm(rng, 0, 60),
            slow_ms_max: rng.range(100, 25_000),
            latency_ms: {
                let lo = rng.range(0, 30);
                (lo, lo + rng.range(0, 60))
            },
            partition_weight: storm(rng, 0, 3),
            device_crash_weight: storm(rng, 0, 3),
            relay_crash_weight: storm(rng, 0, 2),
            relay_restore_weight: if rng.chance(400) { storm(rng, 1, 3) } else { 0 },
            clock_jump_weight: storm(rng, 0, 2),
            prune_weight: storm(rng, 0, 1),
            handshake_timeout_ms: 3_000,
            keepalive_interval_ms: rng.range(1_000, 4_000),
            idle_timeout_ms: rng.range(5_000, 12_000),
            price_resolver: rng.chance(500),
        }
    }
}
