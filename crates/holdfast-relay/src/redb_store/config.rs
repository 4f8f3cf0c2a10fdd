//! [`StoreConfig`]: every limit and threshold of a [`RedbLogStore`](super::RedbLogStore),
//! with its default, in one place.

use std::time::Duration;

use holdfast_protocol::limits::{
    BATCH_ENTRIES_MAX, CHANGES_PER_ENTRY_MAX, RECORD_BYTES_MAX_DEFAULT,
};

use crate::tables::RecordRow;

/// Default [`StoreConfig::event_retention_ms`]: 30 days.
pub const EVENT_RETENTION_MS_DEFAULT: u64 = 30 * 24 * 60 * 60 * 1000;

/// Default [`StoreConfig::prune_rows_max`].
pub const PRUNE_ROWS_MAX_DEFAULT: u64 = 100_000;

/// Default [`StoreConfig::cache_bytes`]: 64 MiB.
pub const CACHE_BYTES_DEFAULT: usize = 64 << 20;

/// Default [`StoreConfig::compact_tail_entries_min`]: a record is compacted once 16 log
/// entries follow its snapshot, so a bootstrap sends at most about that many of its
/// entries next to the document, and one compaction (a load and a save of the document)
/// is shared by 16 pushes.
pub const COMPACT_TAIL_ENTRIES_MIN_DEFAULT: u64 = 16;

/// Default [`StoreConfig::compact_tail_bytes_min`]: 64 KiB of change bytes after the
/// snapshot make a record due however few entries carry them.
pub const COMPACT_TAIL_BYTES_MIN_DEFAULT: u64 = 64 << 10;

/// Default [`StoreConfig::compact_tail_percent_min`]: the two triggers above wait until
/// the tail is at least 10% of the snapshot's size, so a document of megabytes is not
/// rewritten for every 16 small edits; compaction then costs at most about ten times the
/// bytes pushed, and a bootstrap sends at most about 10% more than the document.
pub const COMPACT_TAIL_PERCENT_MIN_DEFAULT: u64 = 10;

/// Default [`StoreConfig::compact_tail_changes_min`]: half of what one record state may
/// carry (`CHANGES_PER_ENTRY_MAX`), whatever the percentage says, so a bootstrap almost
/// never has to build a record's document itself.
pub const COMPACT_TAIL_CHANGES_MIN_DEFAULT: u64 = (CHANGES_PER_ENTRY_MAX / 2) as u64;

/// Default [`StoreConfig::compact_quiet`]: a record pushed to within the last 2 s waits for
/// the background compactor, unless it is urgent: its tail holds `compact_tail_changes_min`
/// changes, or at least as many bytes as its snapshot and `compact_tail_bytes_min`.
/// A note being typed into is then compacted when its writer pauses, not every few pushes:
/// a compaction loads and saves the whole document, so compacting a growing document at
/// every 10% of its size costs about eleven loads and saves of its final size, which in
/// workload 3 of BENCHMARKS.md took a third of the machine's CPU.
pub(super) const COMPACT_QUIET_DEFAULT: Duration = Duration::from_secs(2);

/// Default [`StoreConfig::compact_queue_max`]: records waiting for the compactor. Past it,
/// a record is left to a later scan of the record table rather than growing the queue.
pub const COMPACT_QUEUE_MAX_DEFAULT: usize = 4096;

/// Every limit of a [`RedbLogStore`](super::RedbLogStore), with defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreConfig {
    /// How long the outcome of an event id is remembered, in ms: a repeat within this
    /// window gets the same outcome. Rows older than this are removed by
    /// [`RedbLogStore::prune`](super::RedbLogStore::prune), and not before.
    pub event_retention_ms: u64,
    /// Most event rows one [`RedbLogStore::prune`](super::RedbLogStore::prune) call
    /// removes, so that one call's transaction stays small.
    pub prune_rows_max: u64,
    /// Most entries one pull answers with, and most records one bootstrap page holds,
    /// whatever `max_bytes` allows (at most `BATCH_ENTRIES_MAX` either way).
    pub pull_entries_max: usize,
    /// redb's page cache, in bytes: the store's memory does not grow beyond it with the
    /// number of stored entries.
    pub cache_bytes: usize,
    /// Largest size estimate of one record (snapshot bytes plus the change bytes after
    /// it): an entry that would pass it is rejected with `RecordTooLarge`, permanently.
    pub record_bytes_max: u64,
    /// A record is due for compaction once this many log entries follow its snapshot...
    pub compact_tail_entries_min: u64,
    /// ... or this many change bytes do,
    pub compact_tail_bytes_min: u64,
    /// ... provided the tail's bytes are at least this percentage of the snapshot's.
    pub compact_tail_percent_min: u64,
    /// A record is due anyway once this many changes follow its snapshot.
    pub compact_tail_changes_min: u64,
    /// A due record pushed to within this time waits for the background compactor, unless
    /// it is urgent (its tail holds `compact_tail_changes_min` changes, or at least as many
    /// bytes as its snapshot and `compact_tail_bytes_min`);
    /// [`RedbLogStore::compact_now`](super::RedbLogStore::compact_now) does not wait.
    pub compact_quiet: Duration,
    /// Most records waiting for the background compactor.
    pub compact_queue_max: usize,
    /// Whether a background thread compacts records as they become due. Without it,
    /// snapshots are made only by [`RedbLogStore::compact_now`](super::RedbLogStore::compact_now).
    pub compact_in_background: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            event_retention_ms: EVENT_RETENTION_MS_DEFAULT,
            prune_rows_max: PRUNE_ROWS_MAX_DEFAULT,
            pull_entries_max: BATCH_ENTRIES_MAX,
            cache_bytes: CACHE_BYTES_DEFAULT,
            record_bytes_max: RECORD_BYTES_MAX_DEFAULT,
            compact_tail_entries_min: COMPACT_TAIL_ENTRIES_MIN_DEFAULT,
            compact_tail_bytes_min: COMPACT_TAIL_BYTES_MIN_DEFAULT,
            compact_tail_percent_min: COMPACT_TAIL_PERCENT_MIN_DEFAULT,
            compact_tail_changes_min: COMPACT_TAIL_CHANGES_MIN_DEFAULT,
            compact_quiet: COMPACT_QUIET_DEFAULT,
            compact_queue_max: COMPACT_QUEUE_MAX_DEFAULT,
            compact_in_background: true,
        }
    }
}

impl StoreConfig {
    /// Whether a record is due for compaction: the one rule, used after every append, by
    /// the compactor's scans and by [`RedbLogStore::compact_now`](super::RedbLogStore::compact_now).
    pub(crate) fn compaction_due(&self, row: &RecordRow) -> bool {
        if row.tail_entries == 0 {
            return false;
        }
        if row.tail_changes >= self.compact_tail_changes_min {
            return true;
        }
        let triggered = row.tail_entries >= self.compact_tail_entries_min
            || row.tail_bytes >= self.compact_tail_bytes_min;
        let large_enough = u128::from(row.tail_bytes) * 100
            >= u128::from(row.snapshot_bytes) * u128::from(self.compact_tail_percent_min);
        triggered && large_enough
    }

    /// Whether a due record is compacted even while it is being pushed to: its tail has
    /// `compact_tail_changes_min` changes (a record state must stay sendable as changes),
    /// or at least as many bytes as its snapshot and `compact_tail_bytes_min` (a bootstrap
    /// sends at most about twice the document). Compacting at every doubling costs about
    /// two loads and saves of the final document.
    pub(crate) fn compaction_urgent(&self, row: &RecordRow) -> bool {
        row.tail_entries > 0
            && (row.tail_changes >= self.compact_tail_changes_min
                || row.tail_bytes >= row.snapshot_bytes.max(self.compact_tail_bytes_min))
    }

    /// Most records in one bootstrap page.
    pub(crate) fn page_records_max(&self) -> usize {
        self.pull_entries_max.clamp(1, BATCH_ENTRIES_MAX)
    }
}
