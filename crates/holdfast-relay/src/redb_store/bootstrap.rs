//! Bootstrap pages: a space's record states in record id order, each a snapshot and the
//! changes after it, read in one transaction (docs/relay-storage.md, "Bootstrap").

use std::ops::Bound;

use holdfast_protocol::limits::CHANGES_PER_ENTRY_MAX;
use holdfast_protocol::{BootstrapFrom, Cursor, RecordState, SpaceId};
use redb::ReadableDatabase;

use super::compactor::Due;
use super::record::{self, Reader};
use super::{read_epoch, RedbLogStore};
use crate::error::StoreError;
use crate::store::SnapshotPage;
use crate::tables::{self, RecordRow};

impl RedbLogStore {
    pub(super) fn bootstrap_page(
        &self,
        space: &SpaceId,
        from: Option<BootstrapFrom>,
        max_bytes: u64,
    ) -> Result<SnapshotPage, StoreError> {
        let txn = self.db.begin_read()?;
        let epoch = read_epoch(&txn)?;
        let reader = Reader::open(&txn)?;
        let name = space.as_str();
        let last_seq = tables::last_seq(&reader.log, name)?;
        // A base this relay cannot vouch for (another epoch, or past the log's end) starts
        // the bootstrap again: the device replaces what it has of it with this page.
        let (base, start) = match from {
            Some(from) if from.base.epoch == epoch && from.base.seq <= last_seq => {
                (from.base, Bound::Excluded((name, tables::rid(from.after))))
            }
            _ => (
                Cursor {
                    epoch,
                    seq: last_seq,
                },
                Bound::Included((name, 0)),
            ),
        };
        let mut records: Vec<RecordState> = Vec::new();
        let mut bytes = 0u64;
        let mut next = None;
        let mut built = Vec::new();
        let rows = reader
            .records
            .range::<(&str, u128)>((start, Bound::Included((name, u128::MAX))))?;
        for item in rows {
            let (key, value) = item?;
            let rid = key.value().1;
            let row: RecordRow =
                tables::decode_row(tables::RECORD_ROW_V1, value.value(), "record")?;
            let full = records.len() >= self.config.page_records_max();
            // `size` is the state's exact byte_len unless the state must be built.
            if full || !fits(&records, bytes, row.size(), max_bytes) {
                next = records.last().map(|r| r.record);
                break;
            }
            let (state, was_built) = record_state(&reader, name, rid, &row)?;
            if was_built {
                // Its tail is past what a record state may carry: past the hard limits.
                built.push(Due {
                    key: (name.to_owned(), rid),
                    urgent: true,
                });
                if !fits(&records, bytes, state.byte_len(), max_bytes) {
                    next = records.last().map(|r| r.record);
                    break;
                }
            }
            bytes += state.byte_len();
            records.push(state);
        }
        self.compactor.enqueue(built);
        Ok(SnapshotPage {
            records,
            base,
            next,
        })
    }
}

/// Whether a state of `size` bytes joins a page holding `records` of `bytes`: always the
/// first, any other within `max_bytes`.
fn fits(records: &[RecordState], bytes: u64, size: u64, max_bytes: u64) -> bool {
    records.is_empty() || bytes.saturating_add(size) <= max_bytes
}

/// The record's state: its snapshot and every change after it. A tail of more changes
/// than a state may carry (`CHANGES_PER_ENTRY_MAX`; the compactor has not caught up) is
/// built into the document instead, and the state is that document saved, with no
/// changes; the second value says so.
fn record_state(
    reader: &Reader,
    space: &str,
    rid: u128,
    row: &RecordRow,
) -> Result<(RecordState, bool), StoreError> {
    let stored = reader.stored(space, rid, row)?;
    let record = tables::record_id(rid);
    if stored.changes.len() <= CHANGES_PER_ENTRY_MAX {
        let state = RecordState {
            record,
            doc: stored.doc,
            changes: stored.changes,
        };
        return Ok((state, false));
    }
    let doc = record::build(&stored.doc, &stored.changes)?.save();
    let state = RecordState {
        record,
        doc,
        changes: Vec::new(),
    };
    Ok((state, true))
}
