//! Who gets in: the budgets of connections that have not authenticated yet and of devices
//! served, and the record of every connection turned away.
//!
//! A socket takes a *handshake* ticket when it is accepted and holds it through the TLS and
//! WebSocket handshakes until its `Hello` is welcomed. Handshakes have a budget of their
//! own (`handshakes_max`) and a cap per peer address (`handshakes_per_ip_max`), both far
//! below the device budget: sockets that never authenticate (a flood of bare connects, a
//! slow handshake) fill only those, and a device with a valid token still gets in. A socket
//! past either is closed at once, before any TLS or WebSocket work. A welcomed device trades
//! its ticket for one of `connections_max` device permits; past that it is told
//! `ServerBusy` (after its token was checked, so a stranger learns nothing).
//!
//! Every refusal counts in `holdfast_relay_connections_refused_total{reason}` and is logged
//! at `info` with the peer address, the subject when known, and the reason (never the
//! token). Lines are rate limited ([`REFUSAL_LINES_PER_SEC`]), so a flood cannot fill a
//! disk with logs: what is left out is counted in the next line that is written.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::ServerLimits;
use crate::metrics::Metrics;

#[cfg(test)]
mod tests;

/// Refusal lines written per second at most; the rest are counted, not written.
pub const REFUSAL_LINES_PER_SEC: u64 = 20;

/// Why a connection was turned away: the `reason` label of the refusal metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The handshake budget was spent.
    Handshakes,
    /// The peer address had its share of handshakes.
    HandshakesPerIp,
    /// TLS or the WebSocket upgrade failed.
    HandshakeFailed,
    /// The handshakes and `Hello` did not finish in time.
    HandshakeTimeout,
    /// The token was not valid (bad signature, expired, not yet valid, malformed).
    Unauthorized,
    /// The token does not grant a space the `Hello` names.
    Forbidden,
    /// The device speaks a protocol version the relay does not.
    UnsupportedVersion,
    /// Something other than a valid `Hello` came first.
    Malformed,
    /// Every device permit was taken.
    Busy,
    /// It pinged faster than the ping budget (its connection was closed, authenticated
    /// or not).
    PingFlood,
}

impl Refusal {
    /// Every reason, for the metric's zeroes.
    pub const ALL: [Refusal; 10] = [
        Refusal::Handshakes,
        Refusal::HandshakesPerIp,
        Refusal::HandshakeFailed,
        Refusal::HandshakeTimeout,
        Refusal::Unauthorized,
        Refusal::Forbidden,
        Refusal::UnsupportedVersion,
        Refusal::Malformed,
        Refusal::Busy,
        Refusal::PingFlood,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Handshakes => "handshake_limit",
            Refusal::HandshakesPerIp => "handshake_limit_per_ip",
            Refusal::HandshakeFailed => "handshake_failed",
            Refusal::HandshakeTimeout => "handshake_timeout",
            Refusal::Unauthorized => "unauthorized",
            Refusal::Forbidden => "forbidden",
            Refusal::UnsupportedVersion => "unsupported_version",
            Refusal::Malformed => "malformed",
            Refusal::Busy => "busy",
            Refusal::PingFlood => "ping_flood",
        }
    }
}

/// The budgets and the refusal record every connection shares.
pub(crate) struct Admission {
    devices: Arc<Semaphore>,
    handshakes: Arc<Semaphore>,
    per_ip_max: usize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    metrics: Arc<Metrics>,
    log: LineBudget,
}

/// A connection's place among the handshakes, given back when dropped.
pub(crate) struct Handshake {
    _permit: OwnedSemaphorePermit,
    ip: IpAddr,
    admission: Arc<Admission>,
}

/// A device's place among the devices served, given back when dropped.
pub(crate) struct Device {
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    pub(crate) fn new(limits: &ServerLimits, metrics: Arc<Metrics>) -> Self {
        Self {
            devices: Arc::new(Semaphore::new(limits.connections_max)),
            handshakes: Arc::new(Semaphore::new(limits.handshakes_max)),
            per_ip_max: limits.handshakes_per_ip_max,
            per_ip: Mutex::new(HashMap::new()),
            metrics,
            log: LineBudget::new(REFUSAL_LINES_PER_SEC),
        }
    }

    /// A ticket for a socket just accepted from `peer`, or why it is turned away (already
    /// counted and logged).
    pub(crate) fn handshake(self: &Arc<Self>, peer: SocketAddr) -> Result<Handshake, Refusal> {
        let ip = peer.ip();
        let permit = match self.handshakes.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let detail = "too many connections are still handshaking";
                return Err(self.refuse(peer, None, Refusal::Handshakes, detail));
            }
        };
        {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let held = per_ip.entry(ip).or_insert(0);
            if self.per_ip_max > 0 && *held >= self.per_ip_max {
                drop(per_ip);
                let detail = "too many connections from this address are still handshaking";
                return Err(self.refuse(peer, None, Refusal::HandshakesPerIp, detail));
            }
            *held += 1;
        }
        Ok(Handshake {
            _permit: permit,
            ip,
            admission: self.clone(),
        })
    }

    /// A permit for a device whose `Hello` was just accepted, if one is free.
    pub(crate) fn device(&self) -> Option<Device> {
        let permit = self.devices.clone().try_acquire_owned().ok()?;
        Some(Device { _permit: permit })
    }

    /// Counts and logs (within the line budget) a connection turned away; returns `reason`.
    pub(crate) fn refuse(
        &self,
        peer: SocketAddr,
        subject: Option<&str>,
        reason: Refusal,
        detail: &str,
    ) -> Refusal {
        self.metrics.refused(reason.label());
        if let Some(suppressed) = self.log.take(now_secs()) {
            let why = reason.label();
            match subject {
                Some(subject) => tracing::info!(
                    %peer, subject, reason = why, suppressed, "refused a connection: {detail}"
                ),
                None => tracing::info!(
                    %peer, reason = why, suppressed, "refused a connection: {detail}"
                ),
            }
        }
        reason
    }

    /// Handshakes held by `ip` now.
    #[cfg(test)]
    fn held_by(&self, ip: IpAddr) -> usize {
        let per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        per_ip.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        let mut per_ip = self
            .admission
            .per_ip
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(held) = per_ip.get_mut(&self.ip) {
            *held -= 1;
            if *held == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// A budget of log lines per second: [`take`](Self::take) says whether a line may be
/// written, and how many were left out since the last one that was.
struct LineBudget {
    per_sec: u64,
    /// The second of the current window, and the lines taken in it.
    window: AtomicU64,
    taken: AtomicU64,
    suppressed: AtomicU64,
}

impl LineBudget {
    fn new(per_sec: u64) -> Self {
        Self {
            per_sec,
            window: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(lines left out before this one)` if a line may be written at `now_secs`.
    fn take(&self, now_secs: u64) -> Option<u64> {
        if self.window.swap(now_secs, Ordering::Relaxed) != now_secs {
            self.taken.store(0, Ordering::Relaxed);
        }
        if self.taken.fetch_add(1, Ordering::Relaxed) < self.per_sec {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
