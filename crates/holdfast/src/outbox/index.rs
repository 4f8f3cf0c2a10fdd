//! The in-memory index of the outbox: every entry's record, state and age, so per-record
//! sync states and the global summary are answered without touching the disk. Rebuilt from
//! the outbox at open; updated after every commit that changes the outbox.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::tables::{OutboxRow, RowState};
use crate::RecordId;

struct Item {
    record: RecordId,
    state: RowState,
    created_ms: i64,
    bytes: u64,
}

#[derive(Default)]
pub(crate) struct OutboxIndex {
    entries: BTreeMap<u64, Item>,
    by_record: HashMap<RecordId, BTreeSet<u64>>,
}

impl OutboxIndex {
    pub fn insert(&mut self, seq: u64, row: &OutboxRow) {
        let item = Item {
            record: row.record,
            state: row.state.clone(),
            created_ms: row.created_ms,
            bytes: row.bytes,
        };
        self.by_record.entry(row.record).or_default().insert(seq);
        self.entries.insert(seq, item);
    }

    pub fn set_state(&mut self, seq: u64, state: RowState) {
        if let Some(item) = self.entries.get_mut(&seq) {
            item.state = state;
        }
    }

    pub fn remove(&mut self, seq: u64) {
        if let Some(item) = self.entries.remove(&seq) {
            if let Some(seqs) = self.by_record.get_mut(&item.record) {
                seqs.remove(&seq);
                if seqs.is_empty() {
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
            .flatten()
            .filter_map(|seq| self.entries.get(seq).map(|i| &i.state))
    }

    /// The seqs of a record's pending entries, in outbox order.
    pub fn record_seqs(&self, record: RecordId) -> Vec<u64> {
        self.by_record
            .get(&record)
            .map(|seqs| seqs.iter().copied().collect())
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
