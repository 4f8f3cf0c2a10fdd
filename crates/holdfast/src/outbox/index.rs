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

    /// Every entry's state and creation time, in outbox order.
    pub fn all(&self) -> impl Iterator<Item = (&RowState, i64)> {
        self.entries.values().map(|i| (&i.state, i.created_ms))
    }
}
