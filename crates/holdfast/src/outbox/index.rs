//! The in-memory index of the outbox: every entry's record, state and age, so per-record
//! sync states and the global summary are answered without touching the disk. Rebuilt from
//! the outbox at open; updated after every commit that changes the outbox.
//!
//! A store that was offline for long holds one entry per record it wrote, so the index is
//! laid out for many records with one entry each: a record's entries take no allocation of
//! their own until it has two.

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
    pub fn of(row: &OutboxRow) -> Item {
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
    pub fn from_ordered(entries: Vec<(u64, Item)>) -> OutboxIndex {
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
        }
    }

    /// Adds entry `seq` just committed.
    pub fn insert(&mut self, seq: u64, row: &OutboxRow) {
        self.by_record
            .entry(row.record)
            .and_modify(|seqs| seqs.insert(seq))
            .or_insert(Seqs::One(seq));
        self.entries.insert(seq, Item::of(row));
    }

    pub fn set_state(&mut self, seq: u64, state: RowState) {
        if let Some(item) = self.entries.get_mut(&seq) {
            item.state = state;
        }
    }

    pub fn remove(&mut self, seq: u64) {
        if let Some(item) = self.entries.remove(&seq) {
            if let Some(seqs) = self.by_record.get_mut(&item.record) {
                if seqs.remove(seq) {
                    self.by_record.remove(&item.record);
                }
            }
        }
    }

    /// The states of a record's pending entries.
    pub fn record_states(&self, record: RecordId) -> impl Iterator<Item = &RowState> {
        self.by_record
            .get(&record)
            .into_iter()
            .flat_map(Seqs::iter)
            .filter_map(|seq| self.entries.get(&seq).map(|i| &i.state))
    }

    /// The seqs of a record's pending entries, in outbox order.
    pub fn record_seqs(&self, record: RecordId) -> Vec<u64> {
        self.by_record
            .get(&record)
            .map(|seqs| seqs.iter().collect())
            .unwrap_or_default()
    }

    /// Every entry's state and creation time, in outbox order.
    pub fn all(&self) -> impl Iterator<Item = (&RowState, i64)> {
        self.entries.values().map(|i| (&i.state, i.created_ms))
    }

    /// The entries due to be sent next, in order: at most `entries_max`, at most `bytes_max`
    /// change bytes, and always at least one if any is due. A hint: rows are the truth.
    pub fn due(&self, entries_max: usize, bytes_max: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for (seq, item) in &self.entries {
            if !is_due(&item.state) {
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
    pub fn matching(&self, f: impl Fn(&RowState) -> bool) -> Vec<u64> {
        self.entries
            .iter()
            .filter(|(_, i)| f(&i.state))
            .map(|(s, _)| *s)
            .collect()
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
