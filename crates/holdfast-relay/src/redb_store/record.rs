//! A record as the store holds it: its row, snapshot and tail read in one transaction, and
//! the Automerge document they make. Only the compactor, bootstrap and repair build
//! documents; pushes never do.

use automerge::Automerge;
use redb::{ReadOnlyTable, ReadTransaction};

use crate::error::StoreError;
use crate::tables::{self, LogRow, RecordRow};

/// The tables a record's state is read from, opened once per read transaction.
pub(super) struct Reader {
    pub log: ReadOnlyTable<(&'static str, u64), &'static [u8]>,
    pub records: ReadOnlyTable<(&'static str, u128), &'static [u8]>,
    record_log: ReadOnlyTable<(&'static str, u128, u64), (u64, u64)>,
    snapshots: ReadOnlyTable<(&'static str, u128), &'static [u8]>,
}

/// A record's snapshot and the changes after it, as of one read transaction.
pub(super) struct StoredRecord {
    /// The saved document; empty without a snapshot.
    pub doc: Vec<u8>,
    /// Every change of the record's log after the snapshot, in log order.
    pub changes: Vec<Vec<u8>>,
    /// The record's last log entry (the snapshot's when the tail is empty).
    pub last_seq: u64,
}

impl Reader {
    pub(super) fn open(txn: &ReadTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            log: txn.open_table(tables::LOG)?,
            records: txn.open_table(tables::RECORDS)?,
            record_log: txn.open_table(tables::RECORD_LOG)?,
            snapshots: txn.open_table(tables::SNAPSHOTS)?,
        })
    }

    /// The record's row; `None` if the record has no log entry in the space.
    pub(super) fn row(&self, space: &str, rid: u128) -> Result<Option<RecordRow>, StoreError> {
        tables::read_record(&self.records, space, rid)
    }

    /// The record's snapshot and tail, as `row` (read in the same transaction) describes.
    pub(super) fn stored(
        &self,
        space: &str,
        rid: u128,
        row: &RecordRow,
    ) -> Result<StoredRecord, StoreError> {
        let doc = if row.snapshot_seq == 0 {
            Vec::new()
        } else {
            let value = self.snapshots.get((space, rid))?.ok_or_else(|| {
                StoreError::Corrupt(format!("record {space}/{rid:032x}: snapshot missing"))
            })?;
            tables::snapshot_doc(value.value())?.to_vec()
        };
        let mut changes = Vec::new();
        let mut last_seq = row.snapshot_seq;
        let mut entries = 0;
        let tail = (space, rid, row.snapshot_seq + 1)..=(space, rid, u64::MAX);
        for item in self.record_log.range(tail)? {
            let seq = item?.0.value().2;
            let value = self.log.get((space, seq))?.ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "record {space}/{rid:032x}: log entry {seq} missing"
                ))
            })?;
            let entry: LogRow = tables::decode_row(tables::LOG_ROW_V1, value.value(), "log")?;
            if tables::rid(entry.record) != rid {
                return Err(StoreError::Corrupt(format!(
                    "log entry {space}/{seq} is indexed under record {rid:032x} but holds {}",
                    entry.record
                )));
            }
            changes.extend(entry.changes);
            last_seq = seq;
            entries += 1;
        }
        if entries != row.tail_entries {
            return Err(StoreError::Corrupt(format!(
                "record {space}/{rid:032x}: {entries} entries after the snapshot, row says {}",
                row.tail_entries
            )));
        }
        Ok(StoredRecord {
            doc,
            changes,
            last_seq,
        })
    }
}

/// The document of a saved state and the changes after it.
///
/// Automerge 0.12 (hexane 1.0.0-alpha.5) panics on some damaged documents instead of
/// failing, after allocating tens of megabytes (input: `fuzz/artifacts/stored_record_decode/
/// automerge-load-panics`; report for upstream: `docs/upstream/automerge-load-panics.md`).
/// The chunks are checked first (`holdfast_protocol::chunks`: damage never reaches
/// Automerge's parser), and building runs under `catch_unwind` for bytes forged to pass
/// that check; a panic is reported as `Corrupt`.
pub(crate) fn build(doc: &[u8], changes: &[Vec<u8>]) -> Result<Automerge, StoreError> {
    std::panic::catch_unwind(|| build_unguarded(doc, changes)).unwrap_or_else(|_| {
        Err(StoreError::Corrupt(
            "record state: the document does not load (the parser failed)".into(),
        ))
    })
}

fn build_unguarded(doc: &[u8], changes: &[Vec<u8>]) -> Result<Automerge, StoreError> {
    use holdfast_protocol::chunks::{check_chunks, CHUNK_CHANGE, CHUNK_COMPRESSED, CHUNK_DOCUMENT};
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("record state: {e}"));
    check_chunks(doc, &[CHUNK_DOCUMENT, CHUNK_CHANGE]).map_err(|e| corrupt(&e))?;
    for change in changes {
        if check_chunks(change, &[CHUNK_CHANGE, CHUNK_COMPRESSED]).map_err(|e| corrupt(&e))? != 1 {
            return Err(corrupt(&"a stored change is not one chunk"));
        }
    }
    let mut built = if doc.is_empty() {
        Automerge::new()
    } else {
        Automerge::load(doc).map_err(|e| corrupt(&e))?
    };
    let changes = changes
        .iter()
        .map(|c| automerge::Change::try_from(&c[..]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt(&e))?;
    built.apply_changes(changes).map_err(|e| corrupt(&e))?;
    Ok(built)
}
