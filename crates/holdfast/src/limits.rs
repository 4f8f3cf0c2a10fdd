//! Every limit of the device library, as a named constant in one place: what it bounds and
//! why its value. The wire protocol's limits (frame and batch sizes the relay enforces) are
//! in [`holdfast_protocol::limits`]; the sync worker's timings (backoff, timeouts) are the
//! defaults of [`SyncConfig`](crate::SyncConfig) and live beside it.

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Default memory budget of the document cache (loaded Automerge documents, LRU), in
/// bytes; [`StoreConfig::cache_bytes`](crate::StoreConfig::cache_bytes) changes it.
pub const DOC_CACHE_BYTES_DEFAULT: usize = 64 * MIB;

/// Bytes of incremental chunks below which a record is never compacted: folding a smaller
/// tail into a new snapshot costs more than reading it.
pub const COMPACT_TAIL_BYTES_MIN: u64 = 16 * KIB as u64;

/// Longest collection or field name, in bytes. Names are stored in every index key and in
/// every record, so they are kept short.
pub const NAME_BYTES_MAX: usize = 64;

/// The largest bundle body accepted once decompressed: a bundle is read whole, so this
/// bounds the memory an import (of a hostile file, too) may take.
pub const BUNDLE_BYTES_MAX: usize = 1 << 30;

/// Records applied in one durable step of
/// [`Store::import_changes_with_progress`](crate::Store::import_changes_with_progress): large
/// enough that the fsync is amortised, small enough that progress moves every fraction of
/// a second.
pub(crate) const IMPORT_STEP_RECORDS: usize = 256;

/// Notifications a subscriber may hold before it is told it lagged: a subscriber that
/// stops reading costs at most this many events, never the writer's progress.
pub const SUBSCRIPTION_BACKLOG_MAX: usize = 1024;

/// Most change bytes of pulled entries applied in one transaction (the first batch is
/// always taken whole): bounds the memory and the length of one apply.
pub(crate) const APPLY_BYTES_MAX: usize = 8 * MIB;

/// Most pulled entries applied in one transaction (the first batch is always taken whole).
pub(crate) const APPLY_ENTRIES_MAX: usize = 1024;

/// Records whose repair conversations run at once (one message each in flight), so a
/// repair of a large space neither floods the relay nor holds every record in memory.
pub const REPAIR_RECORDS_IN_FLIGHT: usize = 8;

/// Settled conflicts kept for [`Store::settled_conflicts`](crate::Store::settled_conflicts):
/// the oldest beyond this many are pruned on write, so the history stays small (about
/// 100 bytes each) however often conflicts happen.
pub const SETTLED_CONFLICTS_MAX: usize = 1000;

/// How long a settled conflict is kept (30 days, by this device's clock), pruned on write.
pub const SETTLED_CONFLICT_AGE_MS_MAX: i64 = 30 * 24 * 3600 * 1000;

/// Outbox entries the in-memory outbox index keeps whole (record, state, age, size): the
/// oldest ones, which the sync worker sends next. Entries past them are only counted, per
/// record and in totals, so the index's memory follows the number of records, not of
/// edits (an offline week of keystroke-level edits is hundreds of thousands of entries).
/// Four full batches (`BATCH_ENTRIES_MAX`), so the window refills (one range read of the
/// outbox table) far less often than batches are taken; about 0.5 MB at most whatever the
/// outbox holds (BENCHMARKS.md, "Outbox index memory").
pub const OUTBOX_INDEX_WINDOW_ENTRIES: usize = 4096;

const _: () = assert!(OUTBOX_INDEX_WINDOW_ENTRIES >= holdfast_protocol::limits::BATCH_ENTRIES_MAX);
