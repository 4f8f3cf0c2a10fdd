//! Simulated connections: each is a pair of in-order pipes of encoded frames with
//! delivery times on the simulated clock, as a WebSocket over TCP would carry them.
//!
//! Faults, modelled as they happen on such a link:
//! - **Lost frame = dead connection.** TCP retransmits, so a frame is never lost while the
//!   connection lives; when the network does lose it, the connection dies: everything in
//!   flight is gone and each side notices the close after a delay of its own, or never
//!   (a half-open connection, which only the sessions' idle timeouts end).
//! - **Delay.** Every frame takes the link's latency; some take much longer. Frames stay
//!   in order (a slow frame holds up those behind it, as TCP does).
//! - **Orderly close.** A side that closes sends a close after its last frames; the other
//!   side sees the frames, then the close.
//! - **Raw faults**, at a lower rate and unlike any real WebSocket: a frame silently
//!   dropped, duplicated, or swapped with the one before it, on a connection that stays up.
//!   The sessions must tolerate them or close the connection; data must never be lost.

use std::collections::VecDeque;

use crate::rng::Rng;

/// Which way a frame travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Device to relay.
    Up,
    /// Relay to device.
    Down,
}

/// What a pipe delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    /// One WebSocket message: an encoded frame.
    Frame(Vec<u8>),
    /// The connection ended (the peer closed it, or the network killed it).
    Close,
}

/// One direction of a connection.
#[derive(Debug, Default)]
pub struct Pipe {
    queue: VecDeque<(u64, Packet)>,
}

impl Pipe {
    /// The delivery time of the next packet, if any.
    pub fn next_at(&self) -> Option<u64> {
        self.queue.front().map(|(at, _)| *at)
    }

    /// The next packet, if it is due at `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<Packet> {
        match self.queue.front() {
            Some((at, _)) if *at <= now => self.queue.pop_front().map(|(_, p)| p),
            _ => None,
        }
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn last_at(&self) -> u64 {
        self.queue.back().map_or(0, |(at, _)| *at)
    }

    /// Appends `packet`, delivered no earlier than `at` and after everything before it.
    fn push(&mut self, at: u64, packet: Packet) {
        let at = at.max(self.last_at());
        self.queue.push_back((at, packet));
    }
}

/// How the link of one device behaves, fixed per run.
#[derive(Clone, Debug)]
pub struct LinkFaults {
    /// See [`crate::params::Params::kill_per_mille`].
    pub kill_per_mille: u32,
    /// See [`crate::params::Params::raw_fault_per_mille`].
    pub raw_fault_per_mille: u32,
    /// See [`crate::params::Params::slow_per_mille`].
    pub slow_per_mille: u32,
    /// See [`crate::params::Params::slow_ms_max`].
    pub slow_ms_max: u64,
    /// See [`crate::params::Params::latency_ms`].
    pub latency_ms: (u64, u64),
}

impl LinkFaults {
    /// A healed network: latency only.
    pub fn healed(&self) -> Self {
        Self {
            kill_per_mille: 0,
            raw_fault_per_mille: 0,
            slow_per_mille: 0,
            ..self.clone()
        }
    }
}

/// What became of a frame handed to [`Wire::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// On its way (perhaps late).
    Queued,
    /// The network killed the connection: the frame and everything in flight are lost.
    Killed,
    /// Silently dropped, duplicated or reordered, the connection staying up.
    Raw(&'static str),
    /// The connection was already dead or closed by the sender: nothing was sent.
    Discarded,
}

/// One connection between a device and the relay.
#[derive(Debug)]
pub struct Wire {
    /// Unique in the run, never reused.
    pub id: u64,
    /// The device's index.
    pub device: usize,
    /// Device to relay.
    pub up: Pipe,
    /// Relay to device.
    pub down: Pipe,
    /// The device's side still reads and writes.
    pub device_open: bool,
    /// The relay's side still reads and writes (or has not yet seen the connection).
    pub relay_open: bool,
    /// The network killed it: nothing more is carried.
    pub dead: bool,
    /// Raw faults injected into it.
    pub raw_faults: u32,
}

impl Wire {
    /// A new connection of `device`.
    pub fn new(id: u64, device: usize) -> Self {
        Self {
            id,
            device,
            up: Pipe::default(),
            down: Pipe::default(),
            device_open: true,
            relay_open: true,
            dead: false,
            raw_faults: 0,
        }
    }

    fn pipe(&mut self, dir: Dir) -> &mut Pipe {
        match dir {
            Dir::Up => &mut self.up,
            Dir::Down => &mut self.down,
        }
    }

    /// Sends `bytes` one way, through the link's faults.
    pub fn send(
        &mut self,
        dir: Dir,
        bytes: Vec<u8>,
        now: u64,
        faults: &LinkFaults,
        rng: &mut Rng,
    ) -> Sent {
        let sender_open = match dir {
            Dir::Up => self.device_open,
            Dir::Down => self.relay_open,
        };
        if self.dead || !sender_open {
            return Sent::Discarded;
        }
        if rng.chance(faults.kill_per_mille) {
            self.kill(now, rng);
            return Sent::Killed;
        }
        let mut at = now + rng.range(faults.latency_ms.0, faults.latency_ms.1);
        if rng.chance(faults.slow_per_mille) {
            at += rng.range(1, faults.slow_ms_max);
        }
        if rng.chance(faults.raw_fault_per_mille) {
            self.raw_faults += 1;
            let pipe = self.pipe(dir);
            return match rng.below(3) {
                0 => Sent::Raw("dropped"),
                1 => {
                    pipe.push(at, Packet::Frame(bytes.clone()));
                    pipe.push(at, Packet::Frame(bytes));
                    Sent::Raw("duplicated")
                }
                _ => {
                    // Swapped with the frame before it, if that one is still in flight.
                    let len = pipe.queue.len();
                    pipe.push(at, Packet::Frame(bytes));
                    if len > 0 && matches!(pipe.queue[len - 1].1, Packet::Frame(_)) {
                        let (a, b) = (pipe.queue[len - 1].0, pipe.queue[len].0);
                        pipe.queue.swap(len - 1, len);
                        pipe.queue[len - 1].0 = a;
                        pipe.queue[len].0 = b;
                    }
                    Sent::Raw("reordered")
                }
            };
        }
        self.pipe(dir).push(at, Packet::Frame(bytes));
        Sent::Queued
    }

    /// One side closes: a close follows its frames in flight, and it stops reading.
    pub fn close_from(&mut self, dir: Dir, now: u64) {
        match dir {
            Dir::Up => self.device_open = false,
            Dir::Down => self.relay_open = false,
        }
        if !self.dead {
            self.pipe(dir).push(now, Packet::Close);
        }
    }

    /// The network kills the connection: everything in flight is lost, and each side sees
    /// the close within two seconds, or never (then only an idle timeout ends it).
    pub fn kill(&mut self, now: u64, rng: &mut Rng) {
        self.kill_noticed(now, rng, 200, 2_000);
    }

    /// Like [`Wire::kill`], but both sides notice at once (a reset when the network heals).
    pub fn reset(&mut self, now: u64, rng: &mut Rng) {
        self.kill_noticed(now, rng, 0, 0);
    }

    fn kill_noticed(
        &mut self,
        now: u64,
        rng: &mut Rng,
        half_open_per_mille: u32,
        notice_ms_max: u64,
    ) {
        self.dead = true;
        for dir in [Dir::Up, Dir::Down] {
            let half_open = rng.chance(half_open_per_mille);
            let at = now + rng.range(0, notice_ms_max);
            let pipe = self.pipe(dir);
            pipe.queue.clear();
            if !half_open {
                pipe.queue.push_back((at, Packet::Close));
            }
        }
    }

    /// Whether both sides are done with it and nothing is in flight.
    pub fn finished(&self) -> bool {
        !self.device_open && !self.relay_open && self.up.is_empty() && self.down.is_empty()
    }
}

#[cfg(test)]
mod tests;
