//! The redb tables of a device store and the encoding of their rows (see docs/storage.md).

use redb::TableDefinition;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::{EventId, RecordId, SpaceId};

/// The storage layout version this code writes. Bump it, and add a migration in
/// `store::open`, whenever a table or row layout changes.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Largest row this code will decode; a larger length prefix means damage.
const ROW_BYTES_MAX: usize = 256 << 20;

/// Store-wide values: `device_id`, `format`, `schema`, `last_synced_ms`.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Record id → [`RecordMeta`].
pub(crate) const RECORDS: TableDefinition<u128, &[u8]> = TableDefinition::new("records");
/// (record id, chunk number) → Automerge bytes. Chunk 0 is the snapshot (possibly empty),
/// later chunks are incremental changes; loading concatenates them in order.
pub(crate) const CHUNKS: TableDefinition<(u128, u32), &[u8]> = TableDefinition::new("chunks");
/// Outbox sequence → [`OutboxRow`]. Sequences only grow.
pub(crate) const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// Outbox sequence → the raw Automerge changes the entry carries (one length-prefixed list).
pub(crate) const OUTBOX_CHANGES: TableDefinition<u64, &[u8]> =
    TableDefinition::new("outbox_changes");
/// (record id, outbox sequence): the outbox entries of each record.
pub(crate) const OUTBOX_BY_RECORD: TableDefinition<(u128, u64), ()> =
    TableDefinition::new("outbox_by_record");
/// (record id, field) → when the conflict was detected (ms since the epoch).
pub(crate) const CONFLICTS: TableDefinition<(u128, &str), i64> = TableDefinition::new("conflicts");
/// Index keys (see `index.rs`); the value is empty.
pub(crate) const INDEX: TableDefinition<&[u8], ()> = TableDefinition::new("index");
/// Journal sequence → [`JournalRow`]: every change to every record, for `export_changes`.
pub(crate) const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");

pub(crate) const META_DEVICE: &str = "device_id";
pub(crate) const META_FORMAT: &str = "format";
pub(crate) const META_SCHEMA: &str = "schema";
pub(crate) const META_LAST_SYNCED: &str = "last_synced_ms";

/// Creates every table, so read transactions never meet a missing one.
pub(crate) fn create_all(txn: &redb::WriteTransaction) -> Result<()> {
    txn.open_table(META)?;
    txn.open_table(RECORDS)?;
    txn.open_table(CHUNKS)?;
    txn.open_table(OUTBOX)?;
    txn.open_table(OUTBOX_CHANGES)?;
    txn.open_table(OUTBOX_BY_RECORD)?;
    txn.open_table(CONFLICTS)?;
    txn.open_table(INDEX)?;
    txn.open_table(JOURNAL)?;
    Ok(())
}

/// A row: one version byte, then the bincode body.
pub(crate) fn encode_row<T: Serialize>(version: u8, row: &T) -> Vec<u8> {
    let mut out = vec![version];
    // Serializing plain structs into a Vec cannot fail.
    let body =
        bincode::serde::encode_to_vec(row, bincode::config::standard()).expect("row encodes");
    out.extend_from_slice(&body);
    out
}

pub(crate) fn decode_row<T: DeserializeOwned>(version: u8, bytes: &[u8], what: &str) -> Result<T> {
    let corrupt = |why: String| Error::Corrupt(format!("{what} row: {why}"));
    match bytes.first() {
        Some(v) if *v == version => {}
        Some(v) => return Err(corrupt(format!("unknown row version {v}"))),
        None => return Err(corrupt("empty".into())),
    }
    let config = bincode::config::standard().with_limit::<ROW_BYTES_MAX>();
    let (row, used) = bincode::serde::decode_from_slice(&bytes[1..], config)
        .map_err(|e| corrupt(e.to_string()))?;
    if used + 1 != bytes.len() {
        return Err(corrupt("trailing bytes".into()));
    }
    Ok(row)
}

pub(crate) const RECORD_ROW_V1: u8 = 1;
pub(crate) const OUTBOX_ROW_V1: u8 = 1;
pub(crate) const JOURNAL_ROW_V1: u8 = 1;
pub(crate) const CHANGES_ROW_V1: u8 = 1;

/// What the store knows about a record without loading its document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RecordMeta {
    pub collection: String,
    pub space: SpaceId,
    pub deleted: bool,
    pub heads: Vec<[u8; 32]>,
    /// Number of rows in CHUNKS (the snapshot counts as one).
    pub chunks: u32,
    pub snapshot_bytes: u64,
    /// Bytes in the incremental chunks after the snapshot.
    pub tail_bytes: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// The state of an outbox entry as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RowState {
    Queued,
    Sending,
    Failed { reason: String, permanent: bool },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct OutboxRow {
    pub event_id: EventId,
    pub record: RecordId,
    pub space: SpaceId,
    pub change_hashes: Vec<[u8; 32]>,
    pub bytes: u64,
    pub created_ms: i64,
    pub attempts: u32,
    pub state: RowState,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct JournalRow {
    pub record: RecordId,
    /// The record's heads before this change: `save_after(heads_before)` yields the change.
    pub heads_before: Vec<[u8; 32]>,
}

pub(crate) fn heads_to_bytes(heads: &[automerge::ChangeHash]) -> Vec<[u8; 32]> {
    heads.iter().map(|h| h.0).collect()
}

pub(crate) fn heads_from_bytes(heads: &[[u8; 32]]) -> Vec<automerge::ChangeHash> {
    heads.iter().map(|h| automerge::ChangeHash(*h)).collect()
}

/// A record id as a table key.
pub(crate) fn rid(id: RecordId) -> u128 {
    u128::from_be_bytes(*id.as_bytes())
}
