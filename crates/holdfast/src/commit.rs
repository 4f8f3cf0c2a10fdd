//! Staging and group commit.
//!
//! A write runs in two steps. Staging, under the state lock, applies the write to the cached
//! documents and turns it into the exact rows it will write ([`Staged`]), then appends it to
//! a queue. Committing, outside the state lock, is done by whichever waiting writer takes the
//! leader lock first: it drains the queue and writes every staged write it holds in one redb
//! transaction with `Durability::Immediate`, so one fsync serves the whole group.
//!
//! Invariants:
//! - Writes commit in staging order, so a write staged on top of another never becomes
//!   durable without it.
//! - Readers see documents as of their durable heads (`Entry::committed_heads`).
//! - If a group fails, every write staged after it fails too and their documents are
//!   dropped from the cache, so no later write builds on state that is not on disk.

use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use automerge::{Automerge, ChangeHash};
use redb::WriteTransaction;

use crate::cache::Entry;
use crate::conflict::history::{self, Event};
use crate::conflict::table::{self as conflicts, Flags, Note};
use crate::conflict::{detect, Candidate};
use crate::damage::Guarded;
use crate::doc::View;
use crate::error::{CommitError, Error, Result};
use crate::limits::COMPACT_TAIL_BYTES_MIN;
use crate::lock::lock;
use crate::store::{Inner, State};
use crate::subscribe::{ChangeEvent, Origin};
use crate::tables::{self, JournalRow, OutboxRow, RecordMeta, RowState};
use crate::{EventId, RecordId};

/// The rows one write will put on disk.
#[derive(Default)]
pub(crate) struct Staged {
    records: Vec<StagedRecord>,
    events: Vec<ChangeEvent>,
    /// Sync cursors to store with the records: (space, cursor row), or no row to forget it.
    cursors: Vec<(String, Option<Vec<u8>>)>,
}

impl Staged {
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty() && self.cursors.is_empty()
    }

    /// Stores `row` as the space's sync cursor in the same transaction as the records
    /// (`None` removes it).
    pub(crate) fn set_cursor(&mut self, space: &str, row: Option<Vec<u8>>) {
        self.cursors.push((space.to_owned(), row));
    }
}

struct StagedRecord {
    id: RecordId,
    meta_row: Vec<u8>,
    chunk: ChunkWrite,
    index_add: Vec<Vec<u8>>,
    index_remove: Vec<Vec<u8>>,
    heads_after: Vec<ChangeHash>,
    /// Every versioned field (and `_state`) with whether it is now in conflict.
    conflicts: Vec<(String, bool)>,
    /// Conflicts this write detected or settled, as its document tells.
    notes: Vec<Note>,
    log: StagedLog,
    now_ms: i64,
}

enum ChunkWrite {
    /// A new record: an empty snapshot, then `bytes` as chunk 1.
    First {
        bytes: Vec<u8>,
    },
    Append {
        number: u32,
        bytes: Vec<u8>,
    },
    Replace {
        old_chunks: u32,
        snapshot: Vec<u8>,
    },
}

/// The log row a record's change adds.
enum StagedLog {
    Outbox {
        seq: u64,
        row: Vec<u8>,
        header: OutboxRow,
    },
    Journal {
        seq: u64,
        row: Vec<u8>,
    },
}

/// A staged write waiting to become durable.
pub(crate) struct Pending {
    staged: Mutex<Option<Staged>>,
    done: Mutex<Option<Result<(), CommitError>>>,
    cv: Condvar,
}

/// How long a waiting writer sleeps before checking the leader lock again.
const LEADER_WAIT: Duration = Duration::from_millis(5);

impl Pending {
    fn take_done(&self) -> Option<Result<(), CommitError>> {
        lock(&self.done).take()
    }

    fn finish(&self, result: Result<(), CommitError>) {
        *lock(&self.done) = Some(result);
        self.cv.notify_all();
    }

    fn wake(&self) {
        let _done = lock(&self.done);
        self.cv.notify_all();
    }
}

/// A record after preparing its write: the entry, and the rows and event to queue (none
/// when nothing changed).
pub(crate) struct Prepared {
    pub entry: Entry,
    write: Option<(StagedRecord, ChangeEvent)>,
}

impl Prepared {
    /// Whether there is anything to write.
    pub(crate) fn changed(&self) -> bool {
        self.write.is_some()
    }
}

/// A record changed in memory, to be staged.
pub(crate) struct Changed {
    pub id: RecordId,
    pub entry: Entry,
    pub before: Before,
    /// The changes the document gained since `before`, in causal order, when the writer
    /// already holds them (changes received from elsewhere); `None` to collect them from
    /// the document, which re-encodes every change and is the costliest step of applying
    /// small remote records.
    pub new_changes: Option<Vec<automerge::Change>>,
}

/// A record's state before a write, to diff index keys against and to journal. `index` is
/// `None` when the write cannot change index keys (no indexed field, no delete or restore):
/// then no keys are computed at all.
pub(crate) struct Before {
    pub heads: Vec<ChangeHash>,
    pub index: Option<BTreeSet<Vec<u8>>>,
    /// The open conflicts and their candidates, to tell what the write settled.
    pub conflicts: Vec<(String, Vec<Candidate>)>,
    /// Fields a resolver settled as the changes arrived.
    pub resolved: Vec<String>,
}

impl Before {
    pub(crate) fn of(inner: &Inner, id: RecordId, doc: &Automerge, meta: &RecordMeta) -> Before {
        Before {
            heads: doc.get_heads(),
            index: Some(index_keys(inner, id, doc, meta)),
            conflicts: open_conflicts(inner, doc, meta),
            resolved: Vec::new(),
        }
    }
}

/// The open conflicts of a record's document (see [`Before::conflicts`]).
pub(crate) fn open_conflicts(
    inner: &Inner,
    doc: &Automerge,
    meta: &RecordMeta,
) -> Vec<(String, Vec<Candidate>)> {
    detect::open(
        &inner.schema,
        &View::latest(doc),
        &meta.collection,
        inner.device,
    )
}

/// The index keys of a record's current state (none if it does not exist yet).
pub(crate) fn index_keys<D: crate::doc::Doc>(
    inner: &Inner,
    id: RecordId,
    doc: &D,
    meta: &RecordMeta,
) -> BTreeSet<Vec<u8>> {
    let view = View::latest(doc);
    match inner.schema.collections.get(&meta.collection) {
        Some(c) if view.exists() => view.index_keys(id, &meta.collection, &meta.space, c),
        _ => BTreeSet::new(),
    }
}

impl Inner {
    /// Turns the changes made to `entry` since `before` into rows, and puts the entry back
    /// into the cache pinned until they are durable. `origin` decides which changes enter the
    /// outbox: local and imported ones do (so they reach the relay), remote ones do not,
    /// except changes this device made while applying them (resolver outcomes).
    pub(crate) fn stage_record(
        &self,
        st: &mut State,
        staged: &mut Staged,
        changed: Changed,
        origin: Origin,
        now_ms: i64,
    ) {
        let id = changed.id;
        let entry = self.install(st, staged, self.prepare_record(changed, origin, now_ms));
        st.cache.insert(id, entry);
    }

    /// Puts a prepared write in the queue's order: takes its log sequence, adds its rows and
    /// event to `staged`, and returns the entry pinned by one more staged write (as it was,
    /// when nothing changed). Call with the state lock held.
    pub(crate) fn install(&self, st: &mut State, staged: &mut Staged, p: Prepared) -> Entry {
        let Prepared { mut entry, write } = p;
        let Some((mut record, event)) = write else {
            return entry;
        };
        let seq = st.log_next;
        st.log_next += 1;
        match &mut record.log {
            StagedLog::Outbox { seq: s, .. } | StagedLog::Journal { seq: s, .. } => *s = seq,
        }
        staged.records.push(record);
        staged.events.push(event);
        entry.dirty += 1;
        entry
    }

    /// Turns a changed document into the rows it will write. Needs no lock: the record is
    /// held by the caller (checked out, or under the state lock).
    pub(crate) fn prepare_record(&self, changed: Changed, origin: Origin, now_ms: i64) -> Prepared {
        let Changed {
            id,
            mut entry,
            before,
            new_changes,
        } = changed;
        let doc = &entry.doc;
        let heads_after = doc.get_heads();
        if heads_after == before.heads {
            return Prepared { entry, write: None };
        }
        let (index_add, index_remove) = match &before.index {
            Some(old) => {
                let new = index_keys(self, id, doc, &entry.meta);
                let add = new.difference(old).cloned().collect();
                (add, old.difference(&new).cloned().collect())
            }
            None => (Vec::new(), Vec::new()),
        };
        let view = View::latest(doc);
        let conflicts = detect::flags(&self.schema, &view, &entry.meta.collection);
        let notes = conflicts::notes(
            &self.schema,
            self.device,
            &before.conflicts,
            &before.resolved,
            &conflicts,
            &view,
            &entry.meta.collection,
            origin,
        );
        // Everything not yet handed to the queue: the chunk to append and, usually, exactly
        // the changes this write made (computed once: it is the costliest step here).
        let new_changes = new_changes
            .unwrap_or_else(|| doc.get_changes(&tables::heads_from_bytes(&entry.meta.heads)));
        let chunk = chunk_write(&mut entry.meta, doc, &new_changes);
        let meta = &mut entry.meta;
        meta.heads = tables::heads_to_bytes(&heads_after);
        meta.updated_ms = now_ms;
        // Remote changes are not sent back; what this device added while applying them is.
        let outgoing: Vec<_> = new_changes
            .iter()
            .filter(|c| origin != Origin::Remote || c.actor_id() == &self.actor)
            .collect();
        let log = log_row(id, meta, &before.heads, &outgoing, now_ms);
        let event = ChangeEvent {
            record: id,
            collection: meta.collection.clone(),
            space: meta.space.clone(),
            origin,
        };
        let record = StagedRecord {
            id,
            meta_row: tables::encode_row(tables::RECORD_ROW_V1, &*meta),
            chunk,
            index_add,
            index_remove,
            log,
            heads_after,
            conflicts,
            notes,
            now_ms,
        };
        Prepared {
            entry,
            write: Some((record, event)),
        }
    }

    /// Queues a staged write for the next group commit. Call with the state lock held, right
    /// after staging, so the queue keeps staging order.
    pub(crate) fn enqueue(&self, st: &mut State, staged: Staged) -> Arc<Pending> {
        let pending = Arc::new(Pending {
            staged: Mutex::new(Some(staged)),
            done: Mutex::new(None),
            cv: Condvar::new(),
        });
        st.queue.push(pending.clone());
        pending
    }

    /// Returns once `pending` is durable (or failed), committing a group if no other writer
    /// is doing so.
    pub(crate) fn wait_durable(&self, pending: Arc<Pending>) -> Result<()> {
        loop {
            if let Some(done) = pending.take_done() {
                return done.map_err(Error::CommitFailed);
            }
            match self.leader.try_lock() {
                Ok(leader) => {
                    if let Some(done) = pending.take_done() {
                        return done.map_err(Error::CommitFailed);
                    }
                    let batch = std::mem::take(&mut lock(&self.state).queue);
                    self.commit_group(batch);
                    drop(leader);
                    // Writers that queued during this group wait for the leader lock.
                    let queued = lock(&self.state).queue.clone();
                    for p in queued {
                        p.wake();
                    }
                }
                Err(_) => {
                    // Another writer is committing, maybe ours. The timeout is a backstop:
                    // wake-ups are sent under `done`'s lock after the leader lock is free.
                    let done = lock(&pending.done);
                    let _ = pending.cv.wait_timeout_while(done, LEADER_WAIT, |d| {
                        d.is_none() && self.leader_busy()
                    });
                }
            }
        }
    }

    fn leader_busy(&self) -> bool {
        matches!(
            self.leader.try_lock(),
            Err(std::sync::TryLockError::WouldBlock)
        )
    }

    fn commit_group(&self, batch: Vec<Arc<Pending>>) {
        let staged: Vec<Staged> = batch
            .iter()
            .filter_map(|p| lock(&p.staged).take())
            .collect();
        // Shared: every write of the group, and every one queued after it, fails with it.
        let result = crate::damage::contained(|| self.write_group(&staged)).map_err(Arc::new);
        let mut failed_later = Vec::new();
        {
            let mut st = lock(&self.state);
            match &result {
                Ok(_) => {
                    let mut outbox = lock(&self.outbox);
                    for r in staged.iter().flat_map(|s| &s.records) {
                        if !st.cache.committed(&r.id, r.heads_after.clone()) {
                            if let Some(out) = st.out.get_mut(&r.id) {
                                out.committed += 1;
                                out.heads = Some(r.heads_after.clone());
                            }
                        }
                        if let StagedLog::Outbox { seq, header, .. } = &r.log {
                            outbox.insert(*seq, header);
                        }
                    }
                }
                Err(cause) => {
                    failed_later = std::mem::take(&mut st.queue);
                    let later = failed_later.iter().filter_map(|p| lock(&p.staged).take());
                    for s in staged.iter().chain(later.collect::<Vec<_>>().iter()) {
                        for r in &s.records {
                            match st.out.get_mut(&r.id) {
                                Some(out) => out.failed = Some(cause.clone()),
                                None => st.cache.forget(&r.id),
                            }
                        }
                    }
                }
            }
        }
        if let Ok(conflict_events) = &result {
            history::log(conflict_events);
            let queued = staged
                .iter()
                .flat_map(|s| &s.records)
                .any(|r| matches!(r.log, StagedLog::Outbox { .. }));
            let events: Vec<ChangeEvent> = staged.into_iter().flat_map(|s| s.events).collect();
            self.subscribers.notify(&events);
            if queued {
                self.outbox_watchers.fire();
            }
        }
        for p in batch.iter().chain(&failed_later) {
            let later = failed_later.iter().any(|f| Arc::ptr_eq(f, p));
            p.finish(match &result {
                Ok(_) => Ok(()),
                Err(cause) if later => Err(CommitError::Earlier(cause.clone())),
                Err(cause) => Err(CommitError::Group(cause.clone())),
            });
        }
    }

    /// Writes a group in one durable transaction; returns the conflicts it detected and
    /// settled, to log once it is durable.
    fn write_group(&self, group: &[Staged]) -> Result<Vec<Event>> {
        use tables::{LOG_JOURNAL, LOG_OUTBOX, SLOT_META, SLOT_SNAPSHOT};
        let txn = Guarded::new(tables::begin_durable(&self.db)?);
        let events = {
            let mut records = txn.open_table(tables::RECORDS)?;
            let mut log = txn.open_table(tables::LOG)?;
            let mut index = txn.open_table(tables::INDEX)?;
            let mut conflicts = Flags::open(&txn)?;
            for r in group.iter().flat_map(|s| &s.records) {
                let key = tables::rid(r.id);
                records.insert((key, SLOT_META), r.meta_row.as_slice())?;
                match &r.chunk {
                    ChunkWrite::First { bytes } => {
                        records.insert((key, SLOT_SNAPSHOT), [].as_slice())?;
                        records.insert((key, SLOT_SNAPSHOT + 1), bytes.as_slice())?;
                    }
                    ChunkWrite::Append { number, bytes } => {
                        records.insert((key, SLOT_SNAPSHOT + number), bytes.as_slice())?;
                    }
                    ChunkWrite::Replace {
                        old_chunks,
                        snapshot,
                    } => {
                        for n in 1..*old_chunks {
                            records.remove((key, SLOT_SNAPSHOT + n))?;
                        }
                        records.insert((key, SLOT_SNAPSHOT), snapshot.as_slice())?;
                    }
                }
                match &r.log {
                    StagedLog::Outbox { seq, row, .. } => {
                        log.insert((LOG_OUTBOX, *seq), row.as_slice())?;
                    }
                    StagedLog::Journal { seq, row } => {
                        log.insert((LOG_JOURNAL, *seq), row.as_slice())?;
                    }
                }
                for k in &r.index_remove {
                    index.remove(k.as_slice())?;
                }
                for k in &r.index_add {
                    index.insert(k.as_slice(), ())?;
                }
                conflicts.set(r.id, &r.conflicts, &r.notes, r.now_ms)?;
            }
            conflicts.finish(&txn)?
        };
        let cursors: Vec<_> = group.iter().flat_map(|s| &s.cursors).collect();
        if !cursors.is_empty() {
            let mut table = txn.open_table(tables::CURSORS)?;
            for (space, row) in cursors {
                match row {
                    Some(row) => table.insert(space.as_str(), row.as_slice())?,
                    None => table.remove(space.as_str())?,
                };
            }
        }
        txn.into_inner().commit()?;
        Ok(events)
    }
}

/// Writes a record's full state in `txn` (used by migrations, outside the group commit).
pub(crate) fn index_rows(txn: &WriteTransaction, add: &BTreeSet<Vec<u8>>) -> Result<()> {
    let mut index = txn.open_table(tables::INDEX)?;
    for k in add {
        index.insert(k.as_slice(), ())?;
    }
    Ok(())
}

/// The chunk a write appends, or a new snapshot replacing every chunk once the incremental
/// bytes outgrow it; updates the chunk bookkeeping in `meta`.
fn chunk_write(
    meta: &mut RecordMeta,
    doc: &Automerge,
    new_changes: &[automerge::Change],
) -> ChunkWrite {
    let tail: Vec<u8> = new_changes
        .iter()
        .flat_map(|c| c.raw_bytes().iter().copied())
        .collect();
    let tail_after = meta.tail_bytes + tail.len() as u64;
    if meta.chunks == 0 {
        // A new record: its changes are its first chunk after an empty snapshot. Saving a
        // whole document for it would cost more than the changes (a `save()` per created
        // or downloaded record); compaction makes the first snapshot once the tail grows.
        meta.snapshot_bytes = 0;
        meta.tail_bytes = tail_after;
        meta.chunks = 2;
        return ChunkWrite::First { bytes: tail };
    }
    if tail_after > meta.snapshot_bytes && tail_after > COMPACT_TAIL_BYTES_MIN {
        let snapshot = doc.save();
        let old_chunks = meta.chunks;
        meta.snapshot_bytes = snapshot.len() as u64;
        meta.tail_bytes = 0;
        meta.chunks = 1;
        ChunkWrite::Replace {
            old_chunks,
            snapshot,
        }
    } else {
        let number = meta.chunks;
        meta.tail_bytes = tail_after;
        meta.chunks += 1;
        ChunkWrite::Append {
            number,
            bytes: tail,
        }
    }
}

/// The log row of a record's write: an outbox entry when something must be sent (its
/// heads-before make it a journal row too), else a journal row. The sequence is taken in
/// [`Inner::install`], in queue order.
fn log_row(
    id: RecordId,
    meta: &RecordMeta,
    heads_before: &[ChangeHash],
    outgoing: &[&automerge::Change],
    now_ms: i64,
) -> StagedLog {
    let heads_before = tables::heads_to_bytes(heads_before);
    if outgoing.is_empty() {
        let journal = JournalRow {
            record: id,
            heads_before,
        };
        let row = tables::encode_row(tables::JOURNAL_ROW_V1, &journal);
        return StagedLog::Journal { seq: 0, row };
    }
    let raw: Vec<Vec<u8>> = outgoing.iter().map(|c| c.raw_bytes().to_vec()).collect();
    let header = OutboxRow {
        event_id: EventId::new_v7(),
        record: id,
        space: meta.space.clone(),
        change_hashes: outgoing.iter().map(|c| c.hash().0).collect(),
        heads_before,
        bytes: raw.iter().map(|c| c.len() as u64).sum(),
        created_ms: now_ms,
        attempts: 0,
        state: RowState::Queued,
    };
    let changes = tables::encode_row(tables::CHANGES_ROW_V1, &raw);
    StagedLog::Outbox {
        seq: 0,
        row: tables::encode_outbox(&header, &changes),
        header,
    }
}
