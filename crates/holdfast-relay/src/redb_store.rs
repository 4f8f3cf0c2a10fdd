//! [`RedbLogStore`]: the relay's log in one redb file, with group commit across callers.
//!
//! A `store` call first parses its changes (headers and hashes; no document is loaded)
//! on the caller's thread, then queues the batch. The first waiting caller to take the
//! leader lock commits every queued batch in one redb transaction with
//! `Durability::Immediate`, so one fsync serves all of them, and hands each caller its
//! results only after that commit. Every decision (duplicate, dependency, seq) is made
//! inside the transaction from what the file holds, so batches in one group see each
//! other in queue order exactly as if they had committed one by one.
//!
//! Memory: the store keeps no rows, documents or per-record state in memory; what it
//! holds is the queue of batches waiting for a commit and redb's page cache, bounded by
//! [`StoreConfig::cache_bytes`].

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use holdfast_protocol::limits::{BATCH_ENTRIES_MAX, MESSAGE_BYTES_MAX};
use holdfast_protocol::{
    AckResult, ChangeEntry, Cursor, EventId, Outcome, PushEntry, RejectCode, SpaceId,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, Table};
use uuid::Uuid;

use crate::error::StoreError;
use crate::store::{LogStore, PullResult, RepairReason};
use crate::tables::{self, EventRow, LogRow, FORMAT_VERSION};

#[cfg(test)]
mod tests;

/// Default [`StoreConfig::event_retention_ms`]: 30 days.
pub const EVENT_RETENTION_MS_DEFAULT: u64 = 30 * 24 * 60 * 60 * 1000;

/// Default [`StoreConfig::prune_rows_max`].
pub const PRUNE_ROWS_MAX_DEFAULT: u64 = 100_000;

/// Default [`StoreConfig::cache_bytes`]: 64 MiB.
pub const CACHE_BYTES_DEFAULT: usize = 64 << 20;

/// How long a waiting caller sleeps before checking the leader lock again; a backstop, as
/// the leader wakes waiters when it is done.
const LEADER_WAIT: Duration = Duration::from_millis(5);

/// Hex digits of a change hash quoted in a rejection reason.
const REASON_HASH_CHARS: usize = 12;

/// Every limit of a [`RedbLogStore`], with defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreConfig {
    /// How long the outcome of an event id is remembered, in ms: a repeat within this
    /// window gets the same outcome. Rows older than this are removed by
    /// [`RedbLogStore::prune`], and not before.
    pub event_retention_ms: u64,
    /// Most event rows one [`RedbLogStore::prune`] call removes, so that one call's
    /// transaction stays small.
    pub prune_rows_max: u64,
    /// Most entries one pull answers with, whatever `max_bytes` allows.
    pub pull_entries_max: usize,
    /// redb's page cache, in bytes: the store's memory does not grow beyond it with the
    /// number of stored entries.
    pub cache_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            event_retention_ms: EVENT_RETENTION_MS_DEFAULT,
            prune_rows_max: PRUNE_ROWS_MAX_DEFAULT,
            pull_entries_max: BATCH_ENTRIES_MAX,
            cache_bytes: CACHE_BYTES_DEFAULT,
        }
    }
}

/// A [`LogStore`] in one redb file.
///
/// Cheap to share: wrap it in an `Arc` and call it from any number of threads. Concurrent
/// [`store`](LogStore::store) calls are committed together (group commit).
pub struct RedbLogStore {
    db: Database,
    config: StoreConfig,
    epoch: AtomicU64,
    relay_id: Uuid,
    commits: AtomicU64,
    queue: Mutex<Vec<Arc<Pending>>>,
    leader: Mutex<()>,
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
    /// Opens the store at `path`, creating it (with a new random epoch and relay id) if the
    /// file does not exist.
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(config.cache_bytes)
            .create(path)?;
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        tables::create_all(&txn)?;
        let (epoch, relay_id) = {
            let mut meta = txn.open_table(tables::META)?;
            match read_meta(&meta, tables::META_FORMAT)? {
                Some(bytes) => {
                    let found = u32::from_le_bytes(fixed(&bytes, "format")?);
                    if found > FORMAT_VERSION {
                        return Err(StoreError::NewerFormat {
                            found,
                            supported: FORMAT_VERSION,
                        });
                    }
                }
                None => {
                    meta.insert(tables::META_FORMAT, &FORMAT_VERSION.to_le_bytes()[..])?;
                }
            }
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
        Ok(Self {
            db,
            config,
            epoch: AtomicU64::new(epoch),
            relay_id,
            commits: AtomicU64::new(0),
            queue: Mutex::new(Vec::new()),
            leader: Mutex::new(()),
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
        let batch = Batch {
            entries: entries.into_iter().map(check).collect(),
            now_ms,
        };
        let pending = Arc::new(Pending {
            batch: Mutex::new(Some(batch)),
            done: Mutex::new(None),
            cv: Condvar::new(),
        });
        lock(&self.queue).push(pending.clone());
        self.wait_durable(&pending)
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
            let expired = times
                .range((0, 0)..=(cutoff, u128::MAX))?
                .take(usize::try_from(self.config.prune_rows_max).unwrap_or(usize::MAX))
                .map(|item| item.map(|(k, _)| k.value()))
                .collect::<Result<Vec<_>, _>>()?;
            for key in &expired {
                times.remove(key)?;
                events.remove(key.1)?;
            }
            expired.len() as u64
        };
        txn.commit()?;
        if removed > 0 {
            tracing::debug!(removed, cutoff, "pruned expired event ids");
        }
        Ok(removed)
    }

    /// The outcome remembered for `event_id`, as first answered, if it is remembered.
    pub fn event_outcome(&self, event_id: EventId) -> Result<Option<Outcome>, StoreError> {
        let txn = self.db.begin_read()?;
        let events = txn.open_table(tables::EVENTS)?;
        let Some(row) = events.get(tables::eid(event_id))? else {
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

    /// The seq of the last entry of `space`'s log; 0 when it is empty.
    pub fn last_seq(&self, space: &SpaceId) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let log = txn.open_table(tables::LOG)?;
        tables::last_seq(&log, space.as_str())
    }

    fn leader(&self) -> MutexGuard<'_, ()> {
        lock(&self.leader)
    }

    /// Returns once `pending` is committed (or failed), committing a group if no other
    /// caller is doing so.
    fn wait_durable(&self, pending: &Arc<Pending>) -> Result<Vec<AckResult>, StoreError> {
        loop {
            if let Some(done) = pending.take_done() {
                return done.map_err(StoreError::CommitFailed);
            }
            let leader = match self.leader.try_lock() {
                Ok(guard) => guard,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    // Another caller is committing, maybe our batch. Wake-ups are sent
                    // under `done`'s lock after the leader lock is free.
                    let done = lock(&pending.done);
                    let _ = pending.cv.wait_timeout_while(done, LEADER_WAIT, |d| {
                        d.is_none() && self.leader_busy()
                    });
                    continue;
                }
            };
            if let Some(done) = pending.take_done() {
                return done.map_err(StoreError::CommitFailed);
            }
            let group = std::mem::take(&mut *lock(&self.queue));
            self.commit_group(group);
            drop(leader);
            // Callers that queued during this group wait for the leader lock.
            for p in lock(&self.queue).iter() {
                p.wake();
            }
        }
    }

    fn leader_busy(&self) -> bool {
        matches!(self.leader.try_lock(), Err(TryLockError::WouldBlock))
    }

    fn commit_group(&self, group: Vec<Arc<Pending>>) {
        // A panic below is a bug, but it must not leave the group's callers waiting forever.
        let mut unfinished = Unfinished(&group);
        let batches: Vec<Batch> = group
            .iter()
            .map(|p| {
                lock(&p.batch)
                    .take()
                    .expect("a queued batch is committed once")
            })
            .collect();
        let entries: usize = batches.iter().map(|b| b.entries.len()).sum();
        match self.write_group(batches) {
            Ok(results) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(batches = group.len(), entries, "group committed");
                for (p, r) in group.iter().zip(results) {
                    p.finish(Ok(r));
                }
            }
            Err(e) => {
                tracing::error!(batches = group.len(), entries, error = %e, "group commit failed");
                let e = e.to_string();
                for p in &group {
                    p.finish(Err(e.clone()));
                }
            }
        }
        unfinished.0 = &[];
    }

    fn write_group(&self, batches: Vec<Batch>) -> Result<Vec<Vec<AckResult>>, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let results = {
            let mut t = Tables {
                log: txn.open_table(tables::LOG)?,
                changes: txn.open_table(tables::CHANGES)?,
                events: txn.open_table(tables::EVENTS)?,
                times: txn.open_table(tables::EVENT_TIMES)?,
                next_seq: HashMap::new(),
            };
            batches
                .into_iter()
                .map(|b| t.apply_batch(b))
                .collect::<Result<Vec<_>, _>>()?
        };
        txn.commit()?;
        Ok(results)
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
        let epoch = {
            let meta = txn.open_table(tables::META)?;
            let bytes = read_meta(&meta, tables::META_EPOCH)?
                .ok_or_else(|| StoreError::Corrupt("meta: no epoch".into()))?;
            u64::from_le_bytes(fixed(&bytes, "epoch")?)
        };
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
}

/// One `store` call waiting for its group commit.
struct Pending {
    batch: Mutex<Option<Batch>>,
    done: Mutex<Option<Result<Vec<AckResult>, String>>>,
    cv: Condvar,
}

impl Pending {
    fn take_done(&self) -> Option<Result<Vec<AckResult>, String>> {
        lock(&self.done).take()
    }

    fn finish(&self, result: Result<Vec<AckResult>, String>) {
        *lock(&self.done) = Some(result);
        self.cv.notify_all();
    }

    fn wake(&self) {
        let _done = lock(&self.done);
        self.cv.notify_all();
    }
}

/// Fails the callers of a group commit that panicked.
struct Unfinished<'a>(&'a [Arc<Pending>]);

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        for p in self.0 {
            p.finish(Err("the group commit was interrupted".into()));
        }
    }
}

/// The entries of one `store` call, parsed.
struct Batch {
    entries: Vec<Checked>,
    now_ms: u64,
}

/// A pushed entry with its changes parsed.
struct Checked {
    entry: PushEntry,
    /// The changes that parsed, in push order, each hash once.
    parsed: Vec<Parsed>,
    /// Why the entry is malformed, if it is.
    malformed: Option<String>,
}

struct Parsed {
    /// Position in `entry.changes`.
    index: usize,
    hash: [u8; 32],
    deps: Vec<[u8; 32]>,
}

/// Parses the headers of an entry's changes. Runs on the caller's thread, outside the
/// leader lock, so parsing is not serialized.
fn check(entry: PushEntry) -> Checked {
    let total = entry.changes.len();
    let mut malformed = (total == 0).then(|| "the entry carries no changes".to_owned());
    let mut parsed = Vec::with_capacity(total);
    let mut seen = HashSet::with_capacity(total);
    for (index, bytes) in entry.changes.iter().enumerate() {
        // Bad input must not take down the caller, even if the parser has a bug.
        let change = std::panic::catch_unwind(|| automerge::Change::try_from(&bytes[..]))
            .map_err(|_| "the parser failed on it".to_owned())
            .and_then(|parsed| parsed.map_err(|e| e.to_string()));
        match change {
            Ok(change) => {
                let hash = change.hash().0;
                if seen.insert(hash) {
                    let deps = change.deps().iter().map(|h| h.0).collect();
                    parsed.push(Parsed { index, hash, deps });
                }
            }
            Err(e) if malformed.is_none() => {
                malformed = Some(format!(
                    "change {} of {total} is not a valid Automerge change: {e}",
                    index + 1
                ));
            }
            Err(_) => {}
        }
    }
    Checked {
        entry,
        parsed,
        malformed,
    }
}

/// The tables a group commit writes, and the next seq of each space it touched.
struct Tables<'txn> {
    log: Table<'txn, (&'static str, u64), &'static [u8]>,
    changes: Table<'txn, (&'static str, [u8; 32]), u64>,
    events: Table<'txn, u128, &'static [u8]>,
    times: Table<'txn, (u64, u128), ()>,
    next_seq: HashMap<String, u64>,
}

/// Change hashes of entries rejected earlier in the same batch, with the entry's event id
/// and whether its rejection is permanent.
type Refused = HashMap<[u8; 32], (EventId, bool)>;

impl Tables<'_> {
    fn apply_batch(&mut self, batch: Batch) -> Result<Vec<AckResult>, StoreError> {
        let mut refused = Refused::new();
        let mut results = Vec::with_capacity(batch.entries.len());
        for checked in batch.entries {
            let event_id = checked.entry.event_id;
            let outcome = self.apply_entry(checked, &mut refused, batch.now_ms)?;
            tracing::debug!(%event_id, ?outcome, "entry answered");
            results.push(AckResult { event_id, outcome });
        }
        Ok(results)
    }

    fn apply_entry(
        &mut self,
        checked: Checked,
        refused: &mut Refused,
        now_ms: u64,
    ) -> Result<Outcome, StoreError> {
        let event_id = checked.entry.event_id;
        let key = tables::eid(event_id);
        let remembered = match self.events.get(key)? {
            Some(row) => Some(tables::decode_row::<EventRow>(
                tables::EVENT_ROW_V1,
                row.value(),
                "event",
            )?),
            None => None,
        };
        let outcome = match remembered {
            Some(row) => match row.outcome {
                Outcome::Stored { seq } => Outcome::Duplicate { seq },
                other => other,
            },
            None => {
                let outcome = self.decide(&checked, refused)?;
                let outcome = match outcome {
                    Decision::Answer(outcome) => outcome,
                    Decision::Store(new) => self.append(checked.entry, &new)?,
                };
                if is_remembered(&outcome) {
                    let row = EventRow {
                        outcome: outcome.clone(),
                        stored_ms: now_ms,
                    };
                    let row = tables::encode_row(tables::EVENT_ROW_V1, &row);
                    self.events.insert(key, row.as_slice())?;
                    self.times.insert((now_ms, key), ())?;
                }
                outcome
            }
        };
        if let Outcome::Rejected { permanent, .. } = &outcome {
            for p in &checked.parsed {
                refused.insert(p.hash, (event_id, *permanent));
            }
        }
        Ok(outcome)
    }

    /// What to do with a new event id: the changes to store, or the answer.
    fn decide(&mut self, checked: &Checked, refused: &Refused) -> Result<Decision, StoreError> {
        if let Some(reason) = &checked.malformed {
            return Ok(Decision::Answer(rejected(
                RejectCode::Malformed,
                reason.clone(),
                true,
            )));
        }
        let space = checked.entry.space.as_str();
        let mut held_max = None;
        let mut new = Vec::new();
        for p in &checked.parsed {
            match self.changes.get((space, p.hash))? {
                Some(seq) => held_max = held_max.max(Some(seq.value())),
                None => new.push(p),
            }
        }
        if new.is_empty() {
            let seq = held_max.expect("an entry without new changes holds some");
            return Ok(Decision::Answer(Outcome::Duplicate { seq }));
        }
        let in_entry: HashSet<&[u8; 32]> = checked.parsed.iter().map(|p| &p.hash).collect();
        for p in &new {
            for dep in &p.deps {
                if in_entry.contains(dep) || self.changes.get((space, *dep))?.is_some() {
                    continue;
                }
                let answer = match refused.get(dep) {
                    Some(&(parent, permanent)) => rejected(
                        RejectCode::DependencyRejected { event_id: parent },
                        format!(
                            "change {} builds on change {} of entry {parent}, which was refused",
                            short(&p.hash),
                            short(dep)
                        ),
                        permanent,
                    ),
                    None => rejected(
                        RejectCode::MissingDependencies,
                        format!(
                            "change {} builds on change {}, which this relay has not received",
                            short(&p.hash),
                            short(dep)
                        ),
                        false,
                    ),
                };
                return Ok(Decision::Answer(answer));
            }
        }
        Ok(Decision::Store(
            new.iter().map(|p| (p.index, p.hash)).collect(),
        ))
    }

    /// Appends an entry with its new changes (index in the entry, hash) to its space's log.
    fn append(
        &mut self,
        entry: PushEntry,
        new: &[(usize, [u8; 32])],
    ) -> Result<Outcome, StoreError> {
        let space = entry.space.as_str();
        let seq = match self.next_seq.get(space) {
            Some(&seq) => seq,
            None => tables::last_seq(&self.log, space)? + 1,
        };
        self.next_seq.insert(space.to_owned(), seq + 1);
        let mut changes = entry.changes;
        let kept = new
            .iter()
            .map(|&(index, _)| std::mem::take(&mut changes[index]))
            .collect();
        let row = LogRow {
            record: entry.record,
            event_id: entry.event_id,
            changes: kept,
        };
        let row = tables::encode_row(tables::LOG_ROW_V1, &row);
        self.log.insert((space, seq), row.as_slice())?;
        for (_, hash) in new {
            self.changes.insert((space, *hash), seq)?;
        }
        Ok(Outcome::Stored { seq })
    }
}

enum Decision {
    Answer(Outcome),
    /// (index in the entry, hash) of each change to store.
    Store(Vec<(usize, [u8; 32])>),
}

/// Whether an outcome is remembered with its event id. Transient rejections are not: a
/// resend after the cause is gone (the missing parent arrived) must be decided again.
fn is_remembered(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Stored { .. } | Outcome::Duplicate { .. } => true,
        Outcome::Rejected { permanent, .. } => *permanent,
    }
}

fn rejected(code: RejectCode, mut reason: String, permanent: bool) -> Outcome {
    truncate(&mut reason, MESSAGE_BYTES_MAX);
    Outcome::Rejected {
        code,
        reason,
        permanent,
    }
}

/// Cuts `text` to at most `max` bytes, at a character boundary.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let end = (0..=max)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(end);
    }
}

/// The first hex digits of a change hash, enough to find it in logs.
fn short(hash: &[u8; 32]) -> String {
    hash.iter()
        .take(REASON_HASH_CHARS / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
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
