//! [`RedbLogStore`]: the relay's log in one redb file, with group commit across callers,
//! a record index, per-record snapshots made by a background compactor, bootstrap pages
//! and repair.
//!
//! A `store` call first parses its changes (headers and hashes; no document is loaded)
//! on the caller's thread, then queues the batch. The first waiting caller to take the
//! leader lock commits every queued batch in one redb transaction with
//! `Durability::Immediate`, so one fsync serves all of them, and hands each caller its
//! results only after that commit. Every decision (duplicate, dependency, size, seq) is
//! made inside the transaction from what the file holds, so batches in one group see each
//! other in queue order exactly as if they had committed one by one. The same transaction
//! keeps each record's row (snapshot position, tail size) and entry index in step.
//!
//! Documents are built only off the push path: by the compactor (`compactor.rs`), by a
//! bootstrap that meets a tail too long to send as changes (`bootstrap.rs`), and by repair
//! (`repair.rs`), one record at a time.
//!
//! Memory: the store keeps no rows or per-record state in memory; it holds the queue of
//! batches waiting for a commit, the compactor's bounded queue of record keys, at most one
//! document per compaction, bootstrap or repair under way, and redb's page cache, bounded
//! by [`StoreConfig::cache_bytes`].

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use holdfast_protocol::{
    AckResult, BootstrapFrom, ChangeEntry, Cursor, EventId, Outcome, PushEntry, RecordId, SpaceId,
};
use redb::{Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable};
use uuid::Uuid;

use crate::error::StoreError;
use crate::file_mode;
use crate::store::{LogStore, PullResult, RecordSync, RepairReason, SnapshotPage};
use crate::tables::{self, EventRow, LogRow, FORMAT_VERSION};

mod bootstrap;
mod commit;
mod compactor;
mod config;
mod record;
mod repair;

#[cfg(test)]
pub(crate) mod tests;

use commit::Pending;
use compactor::Compactor;
pub use config::{
    StoreConfig, CACHE_BYTES_DEFAULT, COMPACT_QUEUE_MAX_DEFAULT, COMPACT_TAIL_BYTES_MIN_DEFAULT,
    COMPACT_TAIL_CHANGES_MIN_DEFAULT, COMPACT_TAIL_ENTRIES_MIN_DEFAULT,
    COMPACT_TAIL_PERCENT_MIN_DEFAULT, EVENT_RETENTION_MS_DEFAULT, PRUNE_ROWS_MAX_DEFAULT,
};
#[cfg(feature = "internals")] // for stored_rows
pub(crate) use record::build as build_record;

/// A [`LogStore`] in one redb file.
///
/// Cheap to share: wrap it in an `Arc` and call it from any number of threads. Concurrent
/// [`store`](LogStore::store) calls are committed together (group commit).
pub struct RedbLogStore {
    db: Arc<Database>,
    config: StoreConfig,
    epoch: AtomicU64,
    relay_id: Uuid,
    commits: AtomicU64,
    queue: Mutex<Vec<Arc<Pending>>>,
    leader: Mutex<()>,
    compactor: Compactor,
}

impl std::fmt::Debug for RedbLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbLogStore")
            .field("relay_id", &self.relay_id)
            .field("epoch", &self.epoch())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedbLogStore {
    /// Opens the store at `path`, creating it (readable by its owner only, with a new random
    /// epoch and relay id) if the file does not exist.
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<Self, StoreError> {
        let path = path.as_ref();
        // A new file is private (mode 0600) before redb fills it; an old one others can
        // read is only warned about.
        file_mode::create_private(path).map_err(|e| StoreError::Database(e.into()))?;
        file_mode::warn_if_readable(path, "database");
        let db = Database::builder()
            .set_cache_size(config.cache_bytes)
            .create(path)?;
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        tables::create_all(&txn)?;
        let (epoch, relay_id) = {
            let mut meta = txn.open_table(tables::META)?;
            let found = match read_meta(&meta, tables::META_FORMAT)? {
                Some(bytes) => u32::from_le_bytes(fixed(&bytes, "format")?),
                None => FORMAT_VERSION,
            };
            if found > FORMAT_VERSION {
                return Err(StoreError::NewerFormat {
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            if found == 1 {
                let indexed = tables::index_log(&txn)?;
                tracing::info!(indexed, "relay store migrated from format 1: log indexed");
            }
            if found < 3 {
                let (old, kept) = tables::scope_events(&txn)?;
                tracing::info!(
                    found,
                    old,
                    kept,
                    "relay store migrated: event ids keyed by space"
                );
            }
            meta.insert(tables::META_FORMAT, &FORMAT_VERSION.to_le_bytes()[..])?;
            let epoch = match read_meta(&meta, tables::META_EPOCH)? {
                Some(bytes) => u64::from_le_bytes(fixed(&bytes, "epoch")?),
                None => {
                    let epoch = new_epoch(0);
                    meta.insert(tables::META_EPOCH, &epoch.to_le_bytes()[..])?;
                    epoch
                }
            };
            let relay_id = match read_meta(&meta, tables::META_RELAY_ID)? {
                Some(bytes) => Uuid::from_bytes(fixed(&bytes, "relay id")?),
                None => {
                    let id = Uuid::new_v4();
                    meta.insert(tables::META_RELAY_ID, &id.as_bytes()[..])?;
                    id
                }
            };
            (epoch, relay_id)
        };
        txn.commit()?;
        let db = Arc::new(db);
        let compactor = Compactor::start(db.clone(), &config)?;
        Ok(Self {
            db,
            config,
            epoch: AtomicU64::new(epoch),
            relay_id,
            commits: AtomicU64::new(0),
            queue: Mutex::new(Vec::new()),
            leader: Mutex::new(()),
            compactor,
        })
    }

    /// The relay's identity, created with the file and stable across restarts.
    pub fn relay_id(&self) -> Uuid {
        self.relay_id
    }

    /// The store's limits.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// [`LogStore::store`] with an explicit clock: `now_ms` (ms since the Unix epoch) is
    /// recorded with each new event id and starts its retention window.
    pub fn store_at(
        &self,
        entries: Vec<PushEntry>,
        now_ms: u64,
    ) -> Result<Vec<AckResult>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        self.commit_batch(entries, now_ms)
    }

    /// Starts a new epoch: every cursor devices hold is then answered with repair.
    ///
    /// Run it after restoring the file from a backup (see docs/relay-storage.md). The
    /// log's numbering is kept; only cursors of the old epoch stop being trusted.
    pub fn rotate_epoch(&self) -> Result<u64, StoreError> {
        let _leader = self.leader();
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let epoch = new_epoch(self.epoch());
        txn.open_table(tables::META)?
            .insert(tables::META_EPOCH, &epoch.to_le_bytes()[..])?;
        txn.commit()?;
        self.epoch.store(epoch, Ordering::SeqCst);
        tracing::warn!(
            epoch,
            "relay epoch rotated: devices will repair their spaces"
        );
        Ok(epoch)
    }

    /// Forgets event ids whose retention window has passed at `now_ms`: those stored at or
    /// before `now_ms - event_retention_ms`. Removes at most
    /// [`StoreConfig::prune_rows_max`] rows and returns how many it removed; call again
    /// while it returns that many.
    ///
    /// A change stays deduplicated by its hash after its event id is forgotten.
    pub fn prune(&self, now_ms: u64) -> Result<u64, StoreError> {
        let Some(cutoff) = now_ms.checked_sub(self.config.event_retention_ms) else {
            return Ok(0);
        };
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let removed = {
            let mut times = txn.open_table(tables::EVENT_TIMES)?;
            let mut events = txn.open_table(tables::EVENTS)?;
            let expired = match cutoff.checked_add(1) {
                Some(end) => times.range(..(end, "", 0u128))?,
                None => times.range::<(u64, &str, u128)>(..)?,
            }
            .take(usize::try_from(self.config.prune_rows_max).unwrap_or(usize::MAX))
            .map(|item| {
                item.map(|(k, _)| {
                    let (ms, space, id) = k.value();
                    (ms, space.to_owned(), id)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
            for (ms, space, id) in &expired {
                times.remove((*ms, space.as_str(), *id))?;
                events.remove((space.as_str(), *id))?;
            }
            expired.len() as u64
        };
        txn.commit()?;
        if removed > 0 {
            tracing::debug!(removed, cutoff, "pruned expired event ids");
        }
        Ok(removed)
    }

    /// The outcome remembered for `event_id` in `space`, as first answered, if it is
    /// remembered.
    pub fn event_outcome(
        &self,
        space: &SpaceId,
        event_id: EventId,
    ) -> Result<Option<Outcome>, StoreError> {
        let txn = self.db.begin_read()?;
        let events = txn.open_table(tables::EVENTS)?;
        let Some(row) = events.get((space.as_str(), tables::eid(event_id)))? else {
            return Ok(None);
        };
        let row: EventRow = tables::decode_row(tables::EVENT_ROW_V1, row.value(), "event")?;
        Ok(Some(row.outcome))
    }

    /// How many group commits of `store` calls this process made since opening (a
    /// metric: fewer commits than calls means callers shared fsyncs).
    pub fn group_commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Compacts every record that is due (by the `compact_*` thresholds of
    /// [`StoreConfig`]) on the calling thread, one at a time, and returns how many it
    /// compacted.
    ///
    /// Reads every record row, so it costs time in proportion to the number of records;
    /// the background compactor makes it unnecessary in normal operation. Tests call it to
    /// make snapshots deterministically; a relay may call it before a planned shutdown.
    pub fn compact_now(&self) -> Result<u64, StoreError> {
        self.compactor.compact_now()
    }

    /// How many snapshots were written since opening (a metric), by the background
    /// compactor and by [`Self::compact_now`].
    pub fn compactions(&self) -> u64 {
        self.compactor.compactions()
    }

    /// The seq of the last entry of `space`'s log; 0 when it is empty.
    pub fn last_seq(&self, space: &SpaceId) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let log = txn.open_table(tables::LOG)?;
        tables::last_seq(&log, space.as_str())
    }

    fn leader(&self) -> MutexGuard<'_, ()> {
        lock(&self.leader)
    }
}

impl LogStore for RedbLogStore {
    fn store(&self, entries: Vec<PushEntry>) -> Result<Vec<AckResult>, StoreError> {
        self.store_at(entries, now_ms())
    }

    fn pull(
        &self,
        space: &SpaceId,
        cursor: Option<Cursor>,
        max_bytes: u64,
    ) -> Result<PullResult, StoreError> {
        let txn = self.db.begin_read()?;
        // The epoch is read in the same snapshot as the log, so a rotation is never seen
        // half done.
        let epoch = read_epoch(&txn)?;
        let cursor = cursor.unwrap_or(Cursor::start(epoch));
        if cursor.epoch != epoch {
            let reason = RepairReason::OtherEpoch {
                cursor_epoch: cursor.epoch,
                epoch,
            };
            return Ok(PullResult::Repair { reason });
        }
        let log = txn.open_table(tables::LOG)?;
        let space = space.as_str();
        let last_seq = tables::last_seq(&log, space)?;
        if cursor.seq > last_seq {
            let reason = RepairReason::BeyondEnd {
                cursor_seq: cursor.seq,
                last_seq,
            };
            return Ok(PullResult::Repair { reason });
        }
        let mut entries: Vec<ChangeEntry> = Vec::new();
        let mut bytes = 0u64;
        let from = cursor.seq + 1;
        for (expected, item) in (from..).zip(log.range((space, from)..=(space, u64::MAX))?) {
            if entries.len() >= self.config.pull_entries_max.max(1) {
                break;
            }
            let (key, value) = item?;
            let seq = key.value().1;
            if seq != expected {
                return Err(StoreError::Corrupt(format!(
                    "log of {space}: entry {seq} follows entry {}",
                    expected - 1
                )));
            }
            let row: LogRow = tables::decode_row(tables::LOG_ROW_V1, value.value(), "log")?;
            let size: u64 = row.changes.iter().map(|c| c.len() as u64).sum();
            if !entries.is_empty() && bytes.saturating_add(size) > max_bytes {
                break;
            }
            bytes += size;
            entries.push(ChangeEntry {
                seq,
                record: row.record,
                event_id: row.event_id,
                changes: row.changes,
            });
        }
        let next = entries.last().map_or(cursor.seq, |e| e.seq);
        Ok(PullResult::Changes {
            entries,
            next_cursor: Cursor { epoch, seq: next },
            more: next < last_seq,
        })
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    fn bootstrap(
        &self,
        space: &SpaceId,
        from: Option<BootstrapFrom>,
        max_bytes: u64,
    ) -> Result<SnapshotPage, StoreError> {
        self.bootstrap_page(space, from, max_bytes)
    }

    fn sync_record(
        &self,
        space: &SpaceId,
        record: RecordId,
        message: &[u8],
        may_write: bool,
    ) -> Result<RecordSync, StoreError> {
        self.sync_message(space, record, message, may_write)
    }
}

/// The epoch, as of `txn`.
fn read_epoch(txn: &ReadTransaction) -> Result<u64, StoreError> {
    let meta = txn.open_table(tables::META)?;
    let bytes = read_meta(&meta, tables::META_EPOCH)?
        .ok_or_else(|| StoreError::Corrupt("meta: no epoch".into()))?;
    Ok(u64::from_le_bytes(fixed(&bytes, "epoch")?))
}

fn read_meta(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(meta.get(key)?.map(|v| v.value().to_vec()))
}

fn fixed<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("meta: {what} is {} bytes", bytes.len())))
}

/// A random epoch, different from `old`.
fn new_epoch(old: u64) -> u64 {
    loop {
        let epoch = Uuid::new_v4().as_u64_pair().0;
        if epoch != old {
            return epoch;
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Locks a mutex whose data stays consistent across a panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
