//! The outbox: every local change waiting for the relay's durable acknowledgement, the sync
//! state derived from it, and the operations the sync worker drives it with.
//!
//! An entry is appended in the same transaction as the change it carries. It moves
//! `Queued → Sending → (acked: removed | Failed)`; a retryable failure is picked up again by
//! the next batch, a permanent one waits for [`Outbox::retry_failed`] or [`Outbox::discard`].
//! `Sending` does not survive a restart: opening the store puts such entries back in the
//! queue, and the relay's event-id idempotency makes the resend harmless.

mod index;

pub(crate) use index::OutboxIndex;

use std::sync::MutexGuard;

use redb::{Durability, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::store::Inner;
use crate::tables::{self, JournalRow, OutboxRow, RowState, LOG_JOURNAL, LOG_OUTBOX};
use crate::{EventId, RecordId, SpaceId, Store};

/// Where a change (or a record's changes) stands on its way to the relay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SyncState {
    /// Saved on this device, waiting to be sent.
    Queued,
    /// Being sent.
    Syncing,
    /// The relay stored it durably.
    Synced,
    /// Sending failed; `reason` is in words a person can act on.
    Failed {
        /// Why, in plain words.
        reason: String,
        /// Whether only the user can unblock it (retry or discard); otherwise it is retried.
        permanent: bool,
    },
}

/// One outbox entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Position in the outbox; later entries have larger numbers.
    pub seq: u64,
    /// The idempotency key the relay deduplicates on.
    pub event_id: EventId,
    /// The record changed.
    pub record: RecordId,
    /// The record's space.
    pub space: SpaceId,
    /// The Automerge changes carried.
    pub change_hashes: Vec<[u8; 32]>,
    /// Size of the changes in bytes.
    pub bytes: u64,
    /// When the change was made (ms since the epoch, this device's clock).
    pub created_ms: i64,
    /// How many times it was handed to the sync worker.
    pub attempts: u32,
    /// Its state. An entry blocked behind an earlier one is `Failed` (permanent), with
    /// the reason in plain words; one the relay's rate limit holds back is `Syncing`.
    pub state: SyncState,
    /// The earlier entry of the same record, refused for good, that this one waits
    /// behind: it builds on that change, so the relay cannot store it first. Retrying
    /// either ([`Outbox::retry`]) sends both; discarding that one discards this one too.
    #[serde(default)]
    pub blocked_by: Option<u64>,
    /// When the relay's rate limit lets this entry go out again (ms since the epoch, this
    /// device's clock); it is still syncing, not failed.
    #[serde(default)]
    pub retry_at_ms: Option<i64>,
}

/// An entry handed to the sync worker, with its change bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingPush {
    /// The entry.
    pub entry: OutboxEntry,
    /// The raw Automerge changes, one per element.
    pub changes: Vec<Vec<u8>>,
}

/// Totals for a status bar: "3 changes pending", "last synced 2 min ago".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncSummary {
    /// Entries queued or being sent.
    pub pending: u64,
    /// Entries being sent.
    pub sending: u64,
    /// Entries that failed (retryable or permanent).
    pub failed: u64,
    /// Entries that failed permanently and wait for the user.
    pub failed_permanent: u64,
    /// When the oldest pending entry was made (ms since the epoch).
    pub oldest_pending_ms: Option<i64>,
    /// When the relay last acknowledged anything (ms since the epoch).
    pub last_synced_ms: Option<i64>,
    /// Failed entries that are blocked behind an earlier entry of their record that the
    /// relay refused for good (counted in `failed` and `failed_permanent` too).
    #[serde(default)]
    pub blocked: u64,
    /// Pending entries the relay's rate limit holds back for a moment (flow control, not
    /// a failure; counted in `pending`).
    #[serde(default)]
    pub held: u64,
    /// When the first held entry goes out again (ms since the epoch, this device's clock).
    #[serde(default)]
    pub retry_at_ms: Option<i64>,
}

/// Plain words for an entry blocked behind an earlier one the relay refused for good.
pub(crate) fn blocked_reason(parent_reason: &str) -> String {
    format!(
        "Waiting on an earlier change of this record that the sync server refused: {parent_reason}"
    )
}

/// The outbox of a store; see [`Store::outbox`].
pub struct Outbox<'a> {
    store: &'a Store,
}

impl Store {
    /// The outbox: listing for people, batches and outcomes for the sync worker.
    pub fn outbox(&self) -> Outbox<'_> {
        Outbox { store: self }
    }

    /// Where a record's local changes stand. A record with no pending entry is `Synced`.
    /// Entries held back by the relay's rate limit are `Syncing`; entries blocked behind
    /// an earlier one the relay refused are `Failed` with that reason.
    pub fn sync_state(&self, id: RecordId) -> Result<SyncState> {
        Ok(fresh_index(&self.inner)?.record_state(id))
    }

    /// Outbox totals and the last successful sync.
    pub fn sync_summary(&self) -> Result<SyncSummary> {
        let mut s = SyncSummary::default();
        fresh_index(&self.inner)?.summarize(&mut s);
        self.inner.reading(|txn| {
            let meta = txn.open_table(tables::META)?;
            s.last_synced_ms = meta
                .get(tables::META_LAST_SYNCED)?
                .and_then(|v| v.value().try_into().ok())
                .map(i64::from_le_bytes);
            Ok(s)
        })
    }
}

/// The outbox index, caught up with the outbox table (see `index.rs`). Outbox operations
/// update it after their commit, so take it again after one.
fn fresh_index(inner: &Inner) -> Result<MutexGuard<'_, OutboxIndex>> {
    let mut index = crate::lock::lock(&inner.outbox);
    if index.behind() {
        inner.reading(|txn| index.catch_up(&txn.open_table(tables::LOG)?))?;
    }
    Ok(index)
}

/// Failed beats syncing beats queued beats synced, for a record's summary state.
fn rank(s: &SyncState) -> u8 {
    match s {
        SyncState::Synced => 0,
        SyncState::Queued => 1,
        SyncState::Syncing => 2,
        SyncState::Failed { .. } => 3,
    }
}

fn public_state(s: &RowState) -> SyncState {
    match s {
        RowState::Queued => SyncState::Queued,
        RowState::Sending => SyncState::Syncing,
        RowState::Failed { reason, permanent } => SyncState::Failed {
            reason: reason.clone(),
            permanent: *permanent,
        },
    }
}

fn entry(seq: u64, row: OutboxRow) -> OutboxEntry {
    OutboxEntry {
        seq,
        event_id: row.event_id,
        record: row.record,
        space: row.space,
        change_hashes: row.change_hashes,
        bytes: row.bytes,
        created_ms: row.created_ms,
        attempts: row.attempts,
        state: public_state(&row.state),
        blocked_by: None,
        retry_at_ms: None,
    }
}

type LogTable<'t> = redb::Table<'t, (u8, u64), &'static [u8]>;

impl Outbox<'_> {
    /// Up to `limit` entries after `after` (from the start when `None`), in order.
    pub fn list(&self, after: Option<u64>, limit: usize) -> Result<Vec<OutboxEntry>> {
        self.store
            .inner
            .reading(|txn| {
                let log = txn.open_table(tables::LOG)?;
                let start = after.map_or(0, |a| a.saturating_add(1));
                let mut out = Vec::new();
                for item in log.range(tables::log_from(LOG_OUTBOX, start))?.take(limit) {
                    let (k, v) = item?;
                    out.push(entry(k.value().1, tables::decode_outbox(v.value())?.0));
                }
                Ok(out)
            })
            .and_then(|mut out| {
                let index = self.index()?;
                for e in &mut out {
                    e.retry_at_ms = index.held(e.seq);
                    if let Some((parent, reason)) = index.blocker(e.seq, e.record) {
                        e.blocked_by = Some(parent);
                        e.state = SyncState::Failed {
                            reason: blocked_reason(reason),
                            permanent: true,
                        };
                    } else if e.retry_at_ms.is_some() {
                        e.state = SyncState::Syncing;
                    }
                }
                Ok(out)
            })
    }

    /// The next entries to send, in outbox order, at most `entries_max` of them and at most
    /// `bytes_max` change bytes (always at least one entry if any is due). They are marked
    /// `Sending`. Permanently failed entries are skipped.
    #[cfg_attr(feature = "internals", visibility::make(pub))]
    pub(crate) fn take_batch(
        &self,
        entries_max: usize,
        bytes_max: u64,
    ) -> Result<Vec<PendingPush>> {
        self.store.inner.writable()?;
        // The in-memory index picks the candidates without scanning the outbox; each row is
        // re-checked, since only rows are the truth.
        let hint = {
            let inner = &self.store.inner;
            let mut index = fresh_index(inner)?;
            inner.reading(|txn| index.due(&txn.open_table(tables::LOG)?, entries_max, bytes_max))?
        };
        // Sending is not kept across a crash anyway (open re-queues it).
        let batch = self.store.inner.writing(Durability::None, |txn| {
            let mut batch = Vec::new();
            {
                let mut log = txn.open_table(tables::LOG)?;
                let mut due = Vec::new();
                for seq in hint {
                    let Some(bytes) = log.get((LOG_OUTBOX, seq))?.map(|v| v.value().to_vec())
                    else {
                        continue;
                    };
                    let (row, changes) = tables::decode_outbox(&bytes)?;
                    if index::is_due(&row.state) {
                        due.push((seq, row, changes.to_vec()));
                    }
                }
                for (seq, mut row, changes) in due {
                    row.state = RowState::Sending;
                    row.attempts += 1;
                    log.insert(
                        (LOG_OUTBOX, seq),
                        tables::encode_outbox(&row, &changes).as_slice(),
                    )?;
                    let changes = tables::decode_changes(&changes)?;
                    batch.push(PendingPush {
                        entry: entry(seq, row),
                        changes,
                    });
                }
            }
            Ok(batch)
        })?;
        let mut index = self.index_as_is();
        for p in &batch {
            index.set_state(p.entry.seq, RowState::Sending);
        }
        Ok(batch)
    }

    /// The relay stored these entries durably (`(seq, relay_seq)` pairs): they leave the
    /// outbox and their records become `Synced` once nothing else is pending for them.
    #[cfg_attr(feature = "internals", visibility::make(pub))]
    pub(crate) fn mark_acked(&self, acked: &[(u64, u64)]) -> Result<()> {
        let retired = self.store.inner.writing(Durability::Immediate, |txn| {
            let mut retired = Vec::new();
            {
                let mut log = txn.open_table(tables::LOG)?;
                for (seq, _relay_seq) in acked {
                    if retire(&mut log, *seq)? {
                        retired.push(*seq);
                    }
                }
                let mut meta = txn.open_table(tables::META)?;
                let now = self.store.inner.now();
                meta.insert(tables::META_LAST_SYNCED, now.to_le_bytes().as_slice())?;
            }
            Ok(retired)
        })?;
        // The window refills when next asked.
        let mut index = self.index_as_is();
        for seq in retired {
            index.remove(seq);
        }
        Ok(())
    }

    /// Sending `seq` failed. `reason` is shown to people; a `permanent` failure waits for the
    /// user, a retryable one goes out with the next batch.
    #[cfg_attr(feature = "internals", visibility::make(pub))]
    pub(crate) fn mark_failed(&self, seq: u64, reason: &str, permanent: bool) -> Result<()> {
        self.store.inner.writable()?;
        self.store.inner.writing(Durability::Immediate, |txn| {
            {
                let mut log = txn.open_table(tables::LOG)?;
                let found = log.get((LOG_OUTBOX, seq))?.map(|v| v.value().to_vec());
                if let Some(bytes) = found {
                    let (mut row, changes) = tables::decode_outbox(&bytes)?;
                    row.state = RowState::Failed {
                        reason: reason.to_owned(),
                        permanent,
                    };
                    log.insert(
                        (LOG_OUTBOX, seq),
                        tables::encode_outbox(&row, changes).as_slice(),
                    )?;
                }
            }
            Ok(())
        })?;
        let failed = RowState::Failed {
            reason: reason.to_owned(),
            permanent,
        };
        self.index_as_is().set_state(seq, failed);
        Ok(())
    }

    /// Puts every `Sending` entry back in the queue (after a disconnect). Returns how many.
    #[cfg_attr(feature = "internals", visibility::make(pub))]
    pub(crate) fn requeue_sending(&self) -> Result<usize> {
        let seqs = self.index()?.matching(|s| *s == RowState::Sending);
        self.update(seqs, Durability::Immediate, requeue)
    }

    /// The relay's rate limit refused these entries for now: they go back to the queue
    /// (not failed) and show as syncing until `retry_at_ms` (ms since the epoch, this
    /// device's clock), when the worker sends them again.
    #[cfg_attr(feature = "internals", visibility::make(pub))]
    pub(crate) fn hold(&self, seqs: &[u64], retry_at_ms: i64) -> Result<()> {
        // Like `Sending`, a hold is not kept across a restart: the entry is queued.
        self.update(seqs.to_vec(), Durability::None, |row| {
            row.state = RowState::Queued;
            true
        })?;
        let mut index = self.index_as_is();
        for seq in seqs {
            index.hold(*seq, retry_at_ms);
        }
        Ok(())
    }

    /// The relay refused entry `seq` because it builds on changes the relay does not hold
    /// (`MissingDependencies`, `DependencyRejected`). If an earlier entry of its record
    /// failed for good, that is why: the entry goes back to the queue, blocked behind
    /// that one (listed as failed with its reason), and is sent again once that one is
    /// retried. Otherwise it is marked failed like any refusal. Returns whether it is
    /// blocked.
    #[cfg_attr(feature = "internals", visibility::make(pub))]
    pub(crate) fn mark_dependency_refused(
        &self,
        seq: u64,
        reason: &str,
        permanent: bool,
    ) -> Result<bool> {
        let blocked = {
            let index = self.index()?;
            let record = index.record_of(seq);
            record.is_some_and(|r| index.blocker(seq, r).is_some())
        };
        if !blocked {
            self.mark_failed(seq, reason, permanent)?;
            return Ok(false);
        }
        self.update(vec![seq], Durability::Immediate, |row| {
            row.state = RowState::Queued;
            true
        })?;
        Ok(true)
    }

    /// Puts every failed entry back in the queue (the user's "Retry now"). Returns how many.
    /// Entries blocked behind them go out after them.
    pub fn retry_failed(&self) -> Result<usize> {
        let seqs = self
            .index()?
            .matching(|s| matches!(s, RowState::Failed { .. }));
        self.retry_seqs(seqs)
    }

    /// Puts failed entry `seq` back in the queue; if it is blocked behind an earlier entry
    /// of its record that the relay refused, that entry (and every failed one of the record
    /// before `seq`) is retried with it, since `seq` cannot be stored without it. Entries
    /// blocked behind a retried one are sent after it. Returns how many failed entries
    /// were queued again (0 if `seq` is neither failed nor blocked); a blocked entry whose
    /// own row never failed is not counted, it simply is no longer blocked.
    pub fn retry(&self, seq: u64) -> Result<usize> {
        let seqs: Vec<u64> = {
            let index = self.index()?;
            let Some(record) = self.record_of(&index, seq)? else {
                return Ok(0);
            };
            let first = index.blocker(seq, record).map_or(seq, |(s, _)| s);
            // Failed entries are all kept whole.
            index
                .items_from(record, first)
                .into_iter()
                .take_while(|s| *s <= seq)
                .filter(|s| matches!(index.state(*s), Some(RowState::Failed { .. })))
                .collect()
        };
        self.retry_seqs(seqs)
    }

    fn retry_seqs(&self, seqs: Vec<u64>) -> Result<usize> {
        let retried = self.update(seqs, Durability::Immediate, |row| {
            let hit = matches!(row.state, RowState::Failed { .. });
            if hit {
                row.state = RowState::Queued;
            }
            hit
        })?;
        if retried > 0 {
            self.store.inner.outbox_watchers.fire();
        }
        Ok(retried)
    }

    /// Gives up sending entry `seq`, and with it every later entry of the same record
    /// still in the outbox: each builds on `seq`'s changes, so the relay could never store
    /// them without it (the entries blocked behind `seq` are listed with `blocked_by`
    /// naming it, so an app can say what a discard takes with it). Returns the entries
    /// given up, `seq` first; empty if there is no such entry.
    ///
    /// The changes stay in the local document: nothing the user wrote is removed, it just
    /// is not sent to the relay. Later edits of the record build on them too, so the
    /// relay refuses those (retried as missing dependencies) until this device's copy
    /// reaches it another way, a repair of the space or a bundle.
    pub fn discard(&self, seq: u64) -> Result<Vec<u64>> {
        self.store.inner.writable()?;
        let (record, kept, last) = {
            let index = self.index()?;
            let Some(record) = self.record_of(&index, seq)? else {
                return Ok(Vec::new());
            };
            // Entries only counted are found in the table, in one scan from `seq`.
            let kept = (!index.counts(record)).then(|| index.items_from(record, seq));
            (record, kept, index.last())
        };
        let discarded = self.store.inner.writing(Durability::Immediate, |txn| {
            let mut log = txn.open_table(tables::LOG)?;
            let seqs = match kept {
                Some(seqs) => seqs,
                None => record_entries(&log, record, seq, last)?,
            };
            let mut discarded = Vec::new();
            for seq in &seqs {
                if retire(&mut log, *seq)? {
                    discarded.push(*seq);
                }
            }
            Ok(discarded)
        })?;
        let mut index = self.index_as_is();
        for seq in &discarded {
            index.remove(*seq);
        }
        if discarded.len() > 1 {
            tracing::info!(
                entry = seq,
                later = discarded.len() - 1,
                "discarded an outbox entry and the later entries of its record"
            );
        }
        Ok(discarded)
    }

    /// Rewrites the rows among `seqs` for which `f` returns true, in one transaction.
    fn update(
        &self,
        seqs: Vec<u64>,
        durability: Durability,
        mut f: impl FnMut(&mut OutboxRow) -> bool,
    ) -> Result<usize> {
        self.store.inner.writable()?;
        let changed = self.store.inner.writing(durability, |txn| {
            let mut changed = Vec::new();
            {
                let mut log = txn.open_table(tables::LOG)?;
                for seq in seqs {
                    let Some(bytes) = log.get((LOG_OUTBOX, seq))?.map(|v| v.value().to_vec())
                    else {
                        continue;
                    };
                    let (mut row, changes) = tables::decode_outbox(&bytes)?;
                    if f(&mut row) {
                        log.insert(
                            (LOG_OUTBOX, seq),
                            tables::encode_outbox(&row, changes).as_slice(),
                        )?;
                        changed.push((seq, row.state));
                    }
                }
            }
            Ok(changed)
        })?;
        let mut index = self.index_as_is();
        for (seq, state) in &changed {
            index.set_state(*seq, state.clone());
        }
        Ok(changed.len())
    }

    /// The index, caught up with the outbox table.
    fn index(&self) -> Result<MutexGuard<'_, OutboxIndex>> {
        fresh_index(&self.store.inner)
    }

    /// The index as it is, to record what a commit did.
    fn index_as_is(&self) -> MutexGuard<'_, OutboxIndex> {
        crate::lock::lock(&self.store.inner.outbox)
    }

    /// Entry `seq`'s record: the index's, or its row's if the index only counts it.
    fn record_of(&self, index: &OutboxIndex, seq: u64) -> Result<Option<RecordId>> {
        if let Some(record) = index.record_of(seq) {
            return Ok(Some(record));
        }
        self.store.inner.reading(|txn| {
            let log = txn.open_table(tables::LOG)?;
            let Some(row) = log.get((LOG_OUTBOX, seq))? else {
                return Ok(None);
            };
            Ok(Some(tables::decode_outbox_indexed(row.value())?.record))
        })
    }
}

/// The entries of `record` from `seq` to `last`, in order, read from the table.
fn record_entries(log: &LogTable<'_>, record: RecordId, seq: u64, last: u64) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for row in log.range((LOG_OUTBOX, seq)..=(LOG_OUTBOX, last.max(seq)))? {
        let (k, v) = row?;
        if tables::decode_outbox_indexed(v.value())?.record == record {
            out.push(k.value().1);
        }
    }
    Ok(out)
}

/// Moves outbox entry `seq` to the journal; false if there is no such entry.
fn retire(log: &mut LogTable<'_>, seq: u64) -> Result<bool> {
    let removed = log.remove((LOG_OUTBOX, seq))?.map(|v| v.value().to_vec());
    let Some(bytes) = removed else {
        return Ok(false);
    };
    let (row, _) = tables::decode_outbox(&bytes)?;
    let journal = JournalRow {
        record: row.record,
        heads_before: row.heads_before,
    };
    log.insert(
        (LOG_JOURNAL, seq),
        tables::encode_row(tables::JOURNAL_ROW_V1, &journal).as_slice(),
    )?;
    Ok(true)
}

/// At open, in one pass over the outbox: its in-memory index (a window of `window` entries
/// kept whole, the rest counted), with the entries that were being sent when the process
/// stopped put back in the queue (when `requeue_sending`; a read-only store leaves the file
/// alone). With many pending changes this pass is most of the time `Store::open` takes, so
/// each row's header is decoded once, without allocating what the index does not keep; a
/// damaged row still fails the open.
pub(crate) fn open_index(
    txn: &WriteTransaction,
    requeue_sending: bool,
    window: usize,
) -> Result<OutboxIndex> {
    let mut build = index::Build::new(window, Default::default());
    let mut requeued = Vec::new();
    let mut last = 0;
    {
        let log = txn.open_table(tables::LOG)?;
        for item in log.range(tables::log_all(LOG_OUTBOX))? {
            let (k, v) = item?;
            let seq = k.value().1;
            let row = tables::decode_outbox_indexed(v.value())?;
            let mut item = index::Item {
                record: row.record,
                state: row.state,
                created_ms: row.created_ms,
                bytes: row.bytes,
            };
            if requeue_sending && item.state == RowState::Sending {
                let (mut row, changes) = tables::decode_outbox(v.value())?;
                requeue(&mut row);
                requeued.push((seq, tables::encode_outbox(&row, changes)));
                item.state = RowState::Queued;
            }
            build.push(seq, item);
            last = seq;
        }
    }
    if !requeued.is_empty() {
        tracing::debug!(
            entries = requeued.len(),
            "entries being sent when the store closed are queued again"
        );
        let mut log = txn.open_table(tables::LOG)?;
        for (seq, bytes) in &requeued {
            log.insert((LOG_OUTBOX, *seq), bytes.as_slice())?;
        }
    }
    Ok(build.finish(last))
}

/// A `Sending` entry goes back to the queue; returns whether it was one.
fn requeue(row: &mut OutboxRow) -> bool {
    let hit = row.state == RowState::Sending;
    if hit {
        row.state = RowState::Queued;
    }
    hit
}
