//! Deciding and committing pushes: parsing on the caller's thread, group commit, and the
//! rules each entry is decided by (docs/relay-storage.md, "Deciding a push").

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, TryLockError};
use std::time::Duration;

use holdfast_protocol::limits::MESSAGE_BYTES_MAX;
use holdfast_protocol::{AckResult, EventId, Outcome, PushEntry, RejectCode, SpaceId};
use redb::{Durability, ReadableTable, Table};

use super::compactor::Due;
use super::{lock, RedbLogStore, StoreConfig};
use crate::error::StoreError;
use crate::tables::{self, EventRow, LogRow, RecordRow};

/// How long a waiting caller sleeps before checking the leader lock again; a backstop, as
/// the leader wakes waiters when it is done.
const LEADER_WAIT: Duration = Duration::from_millis(5);

/// Hex digits of a change hash quoted in a rejection reason.
pub(super) const REASON_HASH_CHARS: usize = 12;

impl RedbLogStore {
    /// Queues a parsed batch and returns once it is committed (or failed).
    pub(super) fn commit_batch(
        &self,
        entries: Vec<PushEntry>,
        now_ms: u64,
    ) -> Result<Vec<AckResult>, StoreError> {
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
            Ok((results, due)) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(batches = group.len(), entries, "group committed");
                for (p, r) in group.iter().zip(results) {
                    p.finish(Ok(r));
                }
                self.compactor.enqueue(due);
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

    /// Decides and commits a group; also returns the records the group made due for
    /// compaction.
    fn write_group(&self, batches: Vec<Batch>) -> Result<GroupResults, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        let (results, due) = {
            let mut t = Tables {
                log: txn.open_table(tables::LOG)?,
                changes: txn.open_table(tables::CHANGES)?,
                events: txn.open_table(tables::EVENTS)?,
                times: txn.open_table(tables::EVENT_TIMES)?,
                records: txn.open_table(tables::RECORDS)?,
                record_log: txn.open_table(tables::RECORD_LOG)?,
                config: &self.config,
                next_seq: HashMap::new(),
                due: Vec::new(),
            };
            let results = batches
                .into_iter()
                .map(|b| t.apply_batch(b))
                .collect::<Result<Vec<_>, _>>()?;
            (results, t.due)
        };
        txn.commit()?;
        Ok((results, due))
    }
}

/// Each batch's results, and the records due for compaction.
type GroupResults = (Vec<Vec<AckResult>>, Vec<Due>);

/// One `store` call waiting for its group commit.
pub(super) struct Pending {
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
pub(super) struct Checked {
    entry: PushEntry,
    /// The changes that parsed, in push order, each hash once.
    pub(super) parsed: Vec<Parsed>,
    /// Why the entry is malformed, if it is.
    pub(super) malformed: Option<String>,
}

pub(super) struct Parsed {
    /// Position in `entry.changes`.
    index: usize,
    hash: [u8; 32],
    deps: Vec<[u8; 32]>,
}

/// Parses the headers of an entry's changes. Runs on the caller's thread, outside the
/// leader lock, so parsing is not serialized.
pub(super) fn check(entry: PushEntry) -> Checked {
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

/// The tables a group commit writes, the next seq of each space it touched, and the
/// records it made due for compaction.
struct Tables<'txn> {
    log: Table<'txn, (&'static str, u64), &'static [u8]>,
    changes: Table<'txn, (&'static str, [u8; 32]), u64>,
    events: Table<'txn, (&'static str, u128), &'static [u8]>,
    times: Table<'txn, (u64, &'static str, u128), ()>,
    records: Table<'txn, (&'static str, u128), &'static [u8]>,
    record_log: Table<'txn, (&'static str, u128, u64), (u64, u64)>,
    config: &'txn StoreConfig,
    next_seq: HashMap<String, u64>,
    due: Vec<Due>,
}

/// (space, change hash) of entries rejected earlier in the same batch, with the entry's
/// event id and whether its rejection is permanent. Per space, like every other lookup: a
/// change refused in one space says nothing about a dependency in another.
type Refused = HashMap<(SpaceId, [u8; 32]), (EventId, bool)>;

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
        let space = checked.entry.space.clone();
        let key = (space.as_str(), tables::eid(event_id));
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
                    Decision::Store(new, record) => self.append(checked.entry, &new, record)?,
                };
                if is_remembered(&outcome) {
                    let row = EventRow {
                        outcome: outcome.clone(),
                        stored_ms: now_ms,
                    };
                    let row = tables::encode_row(tables::EVENT_ROW_V1, &row);
                    self.events.insert(key, row.as_slice())?;
                    self.times.insert((now_ms, key.0, key.1), ())?;
                }
                outcome
            }
        };
        if let Outcome::Rejected { permanent, .. } = &outcome {
            for p in &checked.parsed {
                refused.insert((space.clone(), p.hash), (event_id, *permanent));
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
        let rid = tables::rid(checked.entry.record);
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
        // Held changes count through the table, so that their record is checked too.
        let in_entry: HashSet<&[u8; 32]> = new.iter().map(|p| &p.hash).collect();
        for p in &new {
            for dep in &p.deps {
                if in_entry.contains(dep) {
                    continue;
                }
                if let Some(seq) = self.changes.get((space, *dep))? {
                    // A record's log must hold its whole history, or its document could
                    // not be built from it (a snapshot would silently miss the change).
                    if self.record_log.get((space, rid, seq.value()))?.is_some() {
                        continue;
                    }
                    let reason = format!(
                        "change {} builds on change {}, which belongs to another record",
                        short(&p.hash),
                        short(dep)
                    );
                    return Ok(Decision::Answer(rejected(
                        RejectCode::Malformed,
                        reason,
                        true,
                    )));
                }
                let answer = match refused.get(&(checked.entry.space.clone(), *dep)) {
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
        let record = tables::read_record(&self.records, space, rid)?.unwrap_or_default();
        let adding: u64 = new
            .iter()
            .map(|p| checked.entry.changes[p.index].len() as u64)
            .sum();
        let max = self.config.record_bytes_max;
        let size = record.size().saturating_add(adding);
        if size > max {
            let reason = format!(
                "record {} would hold {size} bytes, over the limit of {max}",
                checked.entry.record
            );
            let code = RejectCode::RecordTooLarge { max };
            return Ok(Decision::Answer(rejected(code, reason, true)));
        }
        let new = new.iter().map(|p| (p.index, p.hash)).collect();
        Ok(Decision::Store(new, record))
    }

    /// Appends an entry with its new changes (index in the entry, hash) to its space's log
    /// and to its record's index; `record` is the record's row before.
    fn append(
        &mut self,
        entry: PushEntry,
        new: &[(usize, [u8; 32])],
        mut record: RecordRow,
    ) -> Result<Outcome, StoreError> {
        let space = entry.space.as_str();
        let seq = match self.next_seq.get(space) {
            Some(&seq) => seq,
            None => tables::last_seq(&self.log, space)? + 1,
        };
        self.next_seq.insert(space.to_owned(), seq + 1);
        let mut changes = entry.changes;
        let kept: Vec<Vec<u8>> = new
            .iter()
            .map(|&(index, _)| std::mem::take(&mut changes[index]))
            .collect();
        let (bytes, count) = tables::change_bytes(&kept);
        let rid = tables::rid(entry.record);
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
        self.record_log.insert((space, rid, seq), (bytes, count))?;
        record.tail_entries += 1;
        record.tail_changes += count;
        record.tail_bytes += bytes;
        let row = tables::encode_row(tables::RECORD_ROW_V1, &record);
        self.records.insert((space, rid), row.as_slice())?;
        if self.config.compaction_due(&record) {
            self.due.push(Due {
                key: (space.to_owned(), rid),
                urgent: self.config.compaction_urgent(&record),
            });
        }
        Ok(Outcome::Stored { seq })
    }
}

enum Decision {
    Answer(Outcome),
    /// (index in the entry, hash) of each change to store, and the record's row before.
    Store(Vec<(usize, [u8; 32])>, RecordRow),
}

/// Whether an outcome is remembered with its event id. Transient rejections are not: a
/// resend after the cause is gone (the missing parent arrived) must be decided again.
fn is_remembered(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Stored { .. } | Outcome::Duplicate { .. } => true,
        Outcome::Rejected { permanent, .. } => *permanent,
    }
}

pub(super) fn rejected(code: RejectCode, mut reason: String, permanent: bool) -> Outcome {
    truncate(&mut reason, MESSAGE_BYTES_MAX);
    Outcome::Rejected {
        code,
        reason,
        permanent,
    }
}

/// Cuts `text` to at most `max` bytes, at a character boundary.
pub(super) fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let end = (0..=max)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(end);
    }
}

/// The first hex digits of a change hash, enough to find it in logs.
pub(super) fn short(hash: &[u8; 32]) -> String {
    hash.iter()
        .take(REASON_HASH_CHARS / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}
