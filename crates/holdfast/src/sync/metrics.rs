//! Sync metrics: counters the worker keeps as it goes, and the snapshot an app reads
//! (outbox length and age, retries, time to sync, conflicts, failures by kind, bytes on
//! the wire before and after compression).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ConflictCounts;

/// Upper bounds of the time-to-sync histogram's buckets, in milliseconds; a last bucket
/// counts everything slower.
pub const TIME_TO_SYNC_BOUNDS_MS: [u64; 12] = [
    10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000,
];

/// A histogram of durations in fixed buckets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// Each bucket's upper bound in milliseconds (inclusive); see
    /// [`TIME_TO_SYNC_BOUNDS_MS`].
    pub bounds_ms: Vec<u64>,
    /// Observations per bucket: one more than `bounds_ms`, the last for slower ones.
    pub counts: Vec<u64>,
    /// Observations in all.
    pub count: u64,
    /// Their sum, in milliseconds.
    pub sum_ms: u64,
}

impl Histogram {
    fn new(bounds_ms: &[u64]) -> Self {
        Self {
            bounds_ms: bounds_ms.to_vec(),
            counts: vec![0; bounds_ms.len() + 1],
            count: 0,
            sum_ms: 0,
        }
    }

    /// Adds the observations of `other`, a histogram of the same buckets.
    pub(crate) fn absorb(&mut self, other: &Histogram) {
        debug_assert_eq!(self.bounds_ms, other.bounds_ms);
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_ms = self.sum_ms.saturating_add(other.sum_ms);
    }

    pub(crate) fn observe(&mut self, ms: u64) {
        let bucket = self.bounds_ms.partition_point(|&bound| bound < ms);
        self.counts[bucket] += 1;
        self.count += 1;
        self.sum_ms = self.sum_ms.saturating_add(ms);
    }

    /// The upper bound of the bucket holding quantile `q` (0.0 to 1.0); `None` without
    /// observations or when it falls in the last, unbounded bucket.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return self.bounds_ms.get(i).map(|&ms| Duration::from_millis(ms));
            }
        }
        None
    }
}

/// A snapshot of a sync worker's metrics; see [`SyncHandle::metrics`](super::SyncHandle::metrics).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SyncMetrics {
    /// Outbox entries not yet stored by the relay (pending and failed).
    pub outbox_len: u64,
    /// Age of the oldest entry still to send, by this device's clock.
    pub oldest_pending_age: Option<Duration>,
    /// Connections opened (welcomed or not).
    pub connects: u64,
    /// Reconnect attempts after a failed or lost connection.
    pub reconnects: u64,
    /// `Push` frames sent (the rate a relay's push limit counts).
    pub pushes_sent: u64,
    /// Outbox entries sent, resends included.
    pub entries_sent: u64,
    /// Entries the relay stored.
    pub entries_stored: u64,
    /// Entries the relay already held (a resend after a lost acknowledgement).
    pub entries_duplicate: u64,
    /// Entries the relay refused (each rejection counted).
    pub entries_rejected: u64,
    /// Entries sent again after a rejection the relay called temporary.
    pub entry_retries: u64,
    /// Log entries received from the relay (pulled or live).
    pub entries_received: u64,
    /// Record states received in bootstrap pages.
    pub records_bootstrapped: u64,
    /// Changes new to this device among those received.
    pub changes_applied: u64,
    /// Records reconciled with the relay by a repair.
    pub records_repaired: u64,
    /// Time from a local change to the relay's acknowledgement (this device's clock).
    pub time_to_sync: Histogram,
    /// Conflicts detected and resolved on this device since it was created.
    pub conflicts: ConflictCounts,
    /// Failures by kind: rejections (`forbidden`, `missing_dependencies`, ...) and
    /// connection failures (`unreachable`, `unauthorized`, `server_busy`, ...).
    pub failures: BTreeMap<String, u64>,
    /// Frame bytes sent, before compression.
    pub bytes_sent_plain: u64,
    /// Frame bytes sent, as sent.
    pub bytes_sent_wire: u64,
    /// Frame bytes received, after decompression.
    pub bytes_received_plain: u64,
    /// Frame bytes received, as received.
    pub bytes_received_wire: u64,
}

/// What the worker counts as it goes; the snapshot adds the store's figures.
#[derive(Clone, Debug)]
pub(crate) struct Counters {
    pub connects: u64,
    pub reconnects: u64,
    pub pushes_sent: u64,
    pub entries_sent: u64,
    pub entries_stored: u64,
    pub entries_duplicate: u64,
    pub entries_rejected: u64,
    pub entry_retries: u64,
    pub entries_received: u64,
    pub records_bootstrapped: u64,
    pub changes_applied: u64,
    pub records_repaired: u64,
    pub time_to_sync: Histogram,
    pub failures: BTreeMap<String, u64>,
    pub bytes_sent_plain: u64,
    pub bytes_sent_wire: u64,
    pub bytes_received_plain: u64,
    pub bytes_received_wire: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            connects: 0,
            reconnects: 0,
            pushes_sent: 0,
            entries_sent: 0,
            entries_stored: 0,
            entries_duplicate: 0,
            entries_rejected: 0,
            entry_retries: 0,
            entries_received: 0,
            records_bootstrapped: 0,
            changes_applied: 0,
            records_repaired: 0,
            time_to_sync: Histogram::new(&TIME_TO_SYNC_BOUNDS_MS),
            failures: BTreeMap::new(),
            bytes_sent_plain: 0,
            bytes_sent_wire: 0,
            bytes_received_plain: 0,
            bytes_received_wire: 0,
        }
    }
}

impl Counters {
    /// Adds `more` (a connection's counts since it was last absorbed).
    pub(crate) fn absorb(&mut self, more: Counters) {
        self.connects += more.connects;
        self.reconnects += more.reconnects;
        self.pushes_sent += more.pushes_sent;
        self.entries_sent += more.entries_sent;
        self.entries_stored += more.entries_stored;
        self.entries_duplicate += more.entries_duplicate;
        self.entries_rejected += more.entries_rejected;
        self.entry_retries += more.entry_retries;
        self.entries_received += more.entries_received;
        self.records_bootstrapped += more.records_bootstrapped;
        self.changes_applied += more.changes_applied;
        self.records_repaired += more.records_repaired;
        self.time_to_sync.absorb(&more.time_to_sync);
        for (kind, n) in more.failures {
            *self.failures.entry(kind).or_default() += n;
        }
        self.bytes_sent_plain += more.bytes_sent_plain;
        self.bytes_sent_wire += more.bytes_sent_wire;
        self.bytes_received_plain += more.bytes_received_plain;
        self.bytes_received_wire += more.bytes_received_wire;
    }

    pub(crate) fn failure(&mut self, kind: &str) {
        *self.failures.entry(kind.to_owned()).or_default() += 1;
    }

    pub(crate) fn snapshot(
        &self,
        outbox_len: u64,
        oldest_pending_age: Option<Duration>,
        conflicts: ConflictCounts,
    ) -> SyncMetrics {
        SyncMetrics {
            outbox_len,
            oldest_pending_age,
            connects: self.connects,
            reconnects: self.reconnects,
            pushes_sent: self.pushes_sent,
            entries_sent: self.entries_sent,
            entries_stored: self.entries_stored,
            entries_duplicate: self.entries_duplicate,
            entries_rejected: self.entries_rejected,
            entry_retries: self.entry_retries,
            entries_received: self.entries_received,
            records_bootstrapped: self.records_bootstrapped,
            changes_applied: self.changes_applied,
            records_repaired: self.records_repaired,
            time_to_sync: self.time_to_sync.clone(),
            conflicts,
            failures: self.failures.clone(),
            bytes_sent_plain: self.bytes_sent_plain,
            bytes_sent_wire: self.bytes_sent_wire,
            bytes_received_plain: self.bytes_received_plain,
            bytes_received_wire: self.bytes_received_wire,
        }
    }
}

#[cfg(test)]
mod tests;
