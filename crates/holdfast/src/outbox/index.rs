//! The in-memory index of the outbox: every entry's record, state and age, so per-record
//! sync states and the global summary are answered without touching the disk. Rebuilt from
//! the outbox at open; updated after every commit that changes the outbox.
//!
//! A store that was offline for long holds one entry per record it wrote, so the index is
//! laid out for many records with one entry each: a record's entries take no allocation of
//! their own until it has two.
//!
//! Two states live only here, never in a row. An entry is *blocked* while an earlier entry
//! of its record failed for good: a record's later changes build on its earlier ones (each
//! local change depends on the document's heads), so the relay could never store it, and
//! it is not sent until that entry is retried or discarded. An entry is *held* while the
//! relay's rate limit asks the device to wait (flow control, not a failure): its row is
//! queued, and the index keeps when it goes out again. Both are derived again after a
//! restart (blocked) or simply forgotten (held: the entry is sent at once).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::tables::{OutboxRow, RowState};
use crate::RecordId;

#[cfg(test)]
mod tests;

/// What the index keeps of one entry.
pub(crate) struct Item {
    pub record: RecordId,
    pub state: RowState,
    pub created_ms: i64,
    pub bytes: u64,
}

impl Item {
    pub(crate) fn of(row: &OutboxRow) -> Item {
        Item {
            record: row.record,
            state: row.state.clone(),
            created_ms: row.created_ms,
            bytes: row.bytes,
        }
    }
}

#[derive(Default)]
pub(crate) struct OutboxIndex {
    entries: BTreeMap<u64, Item>,
    by_record: HashMap<RecordId, Seqs>,
    /// Entries the relay's rate limit holds back, and when (ms since the epoch, this
    /// device's clock) they go out again. Usually empty.
    held: HashMap<u64, i64>,
}

/// The seqs of one record's entries.
enum Seqs {
    One(u64),
    Many(BTreeSet<u64>),
}

impl Seqs {
    fn insert(&mut self, seq: u64) {
        match self {
            Seqs::One(one) if *one == seq => {}
            Seqs::One(one) => *self = Seqs::Many(BTreeSet::from([*one, seq])),
            Seqs::Many(set) => {
                set.insert(seq);
            }
        }
    }

    /// Removes `seq`; returns whether none is left.
    fn remove(&mut self, seq: u64) -> bool {
        match self {
            Seqs::One(one) => *one == seq,
            Seqs::Many(set) => {
                set.remove(&seq);
                set.is_empty()
            }
        }
    }

    /// In outbox order.
    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let (one, many) = match self {
            Seqs::One(seq) => (Some(*seq), None),
            Seqs::Many(set) => (None, Some(set)),
        };
        one.into_iter().chain(many.into_iter().flatten().copied())
    }
}

impl OutboxIndex {
    /// An index of `entries`, given in outbox order (as a scan of the outbox yields them).
    pub(crate) fn from_ordered(entries: Vec<(u64, Item)>) -> OutboxIndex {
        let mut by_record: HashMap<RecordId, Seqs> = HashMap::with_capacity(entries.len());
        for (seq, item) in &entries {
            by_record
                .entry(item.record)
                .and_modify(|seqs| seqs.insert(*seq))
                .or_insert(Seqs::One(*seq));
        }
        OutboxIndex {
            // Built in bulk from sorted input, without a search per entry.
            entries: entries.into_iter().collect(),
            by_record,
            held: HashMap::new(),
        }
    }

    /// Adds entry `seq` just committed.
    pub(crate) fn insert(&mut self, seq: u64, row: &OutboxRow) {
        self.by_record
            .entry(row.record)
            .and_modify(|seqs| seqs.insert(seq))
            .or_insert(Seqs::One(seq));
        self.entries.insert(seq, Item::of(row));
    }

    /// Sets an entry's state; an entry that changes state is no longer held.
    pub(crate) fn set_state(&mut self, seq: u64, state: RowState) {
        if let Some(item) = self.entries.get_mut(&seq) {
            item.state = state;
            self.held.remove(&seq);
        }
    }

    /// Entry `seq`, queued again, waits for the relay's rate limit until `retry_at_ms`.
    pub(crate) fn hold(&mut self, seq: u64, retry_at_ms: i64) {
        if let Some(item) = self.entries.get_mut(&seq) {
            item.state = RowState::Queued;
            self.held.insert(seq, retry_at_ms);
        }
    }

    /// When a held entry goes out again.
    pub(crate) fn held(&self, seq: u64) -> Option<i64> {
        self.held.get(&seq).copied()
    }

    /// The first earlier entry of `seq`'s record that failed for good, which `seq` waits
    /// behind, with that failure's reason.
    pub(crate) fn blocker(&self, seq: u64) -> Option<(u64, &str)> {
        let record = self.entries.get(&seq)?.record;
        self.by_record
            .get(&record)?
            .iter()
            .take_while(|s| *s < seq)
            .find_map(|s| match &self.entries.get(&s)?.state {
                RowState::Failed {
                    reason,
                    permanent: true,
                } => Some((s, reason.as_str())),
                _ => None,
            })
    }

    /// The entries of `seq`'s record from `seq` on, in order.
    pub(crate) fn record_from(&self, seq: u64) -> Vec<u64> {
        let Some(item) = self.entries.get(&seq) else {
            return Vec::new();
        };
        let seqs = self.by_record.get(&item.record);
        seqs.into_iter()
            .flat_map(Seqs::iter)
            .filter(|s| *s >= seq)
            .collect()
    }

    pub(crate) fn remove(&mut self, seq: u64) {
        self.held.remove(&seq);
        if let Some(item) = self.entries.remove(&seq) {
            if let Some(seqs) = self.by_record.get_mut(&item.record) {
                if seqs.remove(seq) {
                    self.by_record.remove(&item.record);
                }
            }
        }
    }

    /// Entry `seq`'s state as its row says.
    pub(crate) fn state(&self, seq: u64) -> Option<&RowState> {
        self.entries.get(&seq).map(|i| &i.state)
    }

    /// The states of a record's pending entries.
    #[cfg(test)]
    pub(crate) fn record_states(&self, record: RecordId) -> impl Iterator<Item = &RowState> {
        self.by_record
            .get(&record)
            .into_iter()
            .flat_map(Seqs::iter)
            .filter_map(|seq| self.entries.get(&seq).map(|i| &i.state))
    }

    /// The seqs of a record's pending entries, in outbox order.
    pub(crate) fn record_seqs(&self, record: RecordId) -> Vec<u64> {
        self.by_record
            .get(&record)
            .map(|seqs| seqs.iter().collect())
            .unwrap_or_default()
    }

    /// Every entry in outbox order: its state, creation time, whether it is blocked and
    /// when it goes out again if held.
    pub(crate) fn all(&self) -> impl Iterator<Item = Listed<'_>> {
        let mut stopped = Stopped::default();
        self.entries.iter().map(move |(seq, i)| Listed {
            state: &i.state,
            created_ms: i.created_ms,
            blocked: stopped.blocks(i),
            held: self.held(*seq),
        })
    }

    /// The entries due to be sent next, in order: at most `entries_max`, at most `bytes_max`
    /// change bytes, and always at least one if any is due. Blocked entries are not due.
    /// A hint: rows are the truth.
    pub(crate) fn due(&self, entries_max: usize, bytes_max: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut bytes = 0u64;
        let mut stopped = Stopped::default();
        for (seq, item) in &self.entries {
            if stopped.blocks(item) || !is_due(&item.state) {
                continue;
            }
            if !out.is_empty() && (out.len() >= entries_max || bytes + item.bytes > bytes_max) {
                break;
            }
            bytes += item.bytes;
            out.push(*seq);
        }
        out
    }

    /// The entries whose state matches, in order.
    pub(crate) fn matching(&self, f: impl Fn(&RowState) -> bool) -> Vec<u64> {
        self.entries
            .iter()
            .filter(|(_, i)| f(&i.state))
            .map(|(s, _)| *s)
            .collect()
    }
}

/// One entry as [`OutboxIndex::all`] lists it.
pub(crate) struct Listed<'a> {
    pub state: &'a RowState,
    pub created_ms: i64,
    pub blocked: bool,
    pub held: Option<i64>,
}

/// The records with an entry that failed for good, seen so far in a walk in outbox order:
/// their later entries are blocked.
#[derive(Default)]
struct Stopped(std::collections::HashSet<RecordId>);

impl Stopped {
    /// Whether `item`, next in outbox order, is blocked; notes its record if it stops it.
    fn blocks(&mut self, item: &Item) -> bool {
        if self.0.contains(&item.record) {
            return true;
        }
        if let RowState::Failed {
            permanent: true, ..
        } = item.state
        {
            self.0.insert(item.record);
        }
        false
    }
}

/// Queued, or failed in a way the worker retries by itself.
pub(crate) fn is_due(state: &RowState) -> bool {
    matches!(
        state,
        RowState::Queued
            | RowState::Failed {
                permanent: false,
                ..
            }
    )
}
