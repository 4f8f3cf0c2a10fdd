//! The redb tables of a device store and the encoding of their rows (see docs/storage.md).

use redb::TableDefinition;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::{EventId, RecordId, SpaceId};

#[cfg(test)]
mod tests;

/// The storage layout version this code writes. Bump it, and add a migration in
/// `store::open`, whenever a table or row layout changes.
pub(crate) const FORMAT_VERSION: u32 = 1;

// A redb commit costs about one disk page write per B-tree leaf it dirties, so a local
// write is laid out to dirty two: the record's rows (metadata and new chunk sit at adjacent
// keys) and the end of the outbox. Per-record outbox states live in memory (`OutboxIndex`). Journal rows are written when an
// entry leaves the outbox (acked or discarded), in batches, or directly for changes that
// never enter it (received from the relay). See docs/storage.md.

/// Store-wide values: `device_id`, `format`, `schema`, `last_synced_ms`, conflict counters.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// (record id, slot) → bytes: [`SLOT_META`] holds the [`RecordMeta`] row, [`SLOT_SNAPSHOT`]
/// the document snapshot (possibly empty), and chunk `n ≥ 1` of incremental changes sits at
/// slot `SLOT_SNAPSHOT + n`. Loading concatenates the chunks in order.
pub(crate) const RECORDS: TableDefinition<(u128, u32), &[u8]> = TableDefinition::new("records");
pub(crate) const SLOT_META: u32 = 0;
pub(crate) const SLOT_SNAPSHOT: u32 = 1;
/// (kind, sequence) → bytes. One sequence counter serves both kinds, so together they give
/// every change to every record in order.
pub(crate) const LOG: TableDefinition<(u8, u64), &[u8]> = TableDefinition::new("log");
/// `(LOG_OUTBOX, seq)` → an outbox row: [`OutboxRow`] header and the raw changes.
pub(crate) const LOG_OUTBOX: u8 = 1;
/// `(LOG_JOURNAL, seq)` → [`JournalRow`]: a change no longer (or never) in the outbox.
pub(crate) const LOG_JOURNAL: u8 = 2;
/// (record id, field) → when the conflict was detected (ms since the epoch).
pub(crate) const CONFLICTS: TableDefinition<(u128, &str), i64> = TableDefinition::new("conflicts");
/// Sequence → a settled conflict ([`SETTLED_ROW_V1`], `conflict::history`): who wrote the
/// candidates, when, and how it was settled, never the values. Bounded, pruned on write.
pub(crate) const CONFLICTS_SETTLED: TableDefinition<u64, &[u8]> =
    TableDefinition::new("conflicts_settled");
/// Index keys (see `index.rs`); the value is empty.
pub(crate) const INDEX: TableDefinition<&[u8], ()> = TableDefinition::new("index");
/// Space id → its sync cursor (a [`CURSOR_ROW_V1`] row of `holdfast_protocol::Cursor`):
/// how far this device has applied the space's log on the relay.
pub(crate) const CURSORS: TableDefinition<&str, &[u8]> = TableDefinition::new("cursors");

/// Every key of one log kind.
pub(crate) fn log_all(kind: u8) -> std::ops::RangeInclusive<(u8, u64)> {
    (kind, 0)..=(kind, u64::MAX)
}

/// The keys of one log kind from sequence `from` on.
pub(crate) fn log_from(kind: u8, from: u64) -> std::ops::RangeInclusive<(u8, u64)> {
    (kind, from)..=(kind, u64::MAX)
}

/// The last sequence used in a log kind (0 when empty).
pub(crate) fn log_last(
    table: &impl redb::ReadableTable<(u8, u64), &'static [u8]>,
    kind: u8,
) -> Result<u64> {
    Ok(table
        .range(log_all(kind))?
        .next_back()
        .transpose()?
        .map_or(0, |(k, _)| k.value().1))
}

/// An outbox row: version byte, header length (u32 LE), header, then the changes, so the
/// header can be read without decoding the changes.
pub(crate) fn encode_outbox(row: &OutboxRow, changes: &[u8]) -> Vec<u8> {
    let header = encode_row(OUTBOX_ROW_V1, row);
    let mut out = Vec::with_capacity(4 + header.len() + changes.len());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(changes);
    out
}

/// The header of an outbox row and the encoded changes after it.
pub(crate) fn decode_outbox(bytes: &[u8]) -> Result<(OutboxRow, &[u8])> {
    let (header, changes) = split_outbox(bytes)?;
    Ok((decode_row(OUTBOX_ROW_V1, header, "outbox")?, changes))
}

/// What the in-memory outbox index keeps of an outbox row, read for every entry at open:
/// the header is decoded and checked as [`decode_outbox`] does, but the fields the index does
/// not keep are not allocated (most of the work when every record has a pending entry).
pub(crate) fn decode_outbox_indexed(bytes: &[u8]) -> Result<OutboxRowIndexed> {
    decode_row(OUTBOX_ROW_V1, split_outbox(bytes)?.0, "outbox")
}

/// An outbox row's header and the encoded changes after it.
fn split_outbox(bytes: &[u8]) -> Result<(&[u8], &[u8])> {
    let corrupt = || Error::Corrupt("outbox row: truncated".into());
    let len = bytes.get(..4).ok_or_else(corrupt)?;
    let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
    let header = bytes.get(4..4 + len).ok_or_else(corrupt)?;
    Ok((header, &bytes[4 + len..]))
}

/// The changes of an outbox row, from the part [`decode_outbox`] returned.
pub(crate) fn decode_changes(part: &[u8]) -> Result<Vec<Vec<u8>>> {
    decode_row(CHANGES_ROW_V1, part, "outbox changes")
}

pub(crate) const META_DEVICE: &str = "device_id";
pub(crate) const META_FORMAT: &str = "format";
pub(crate) const META_SCHEMA: &str = "schema";
pub(crate) const META_LAST_SYNCED: &str = "last_synced_ms";

/// Begins a write transaction whose commit returns only once it is on disk
/// (`Durability::Immediate`, set here rather than inherited from redb's default, which a
/// redb release could change). Every write transaction of the store that must survive a
/// crash begins here; the outbox's `Inner::writing` names its durability at each call.
pub(crate) fn begin_durable(db: &redb::Database) -> Result<redb::WriteTransaction> {
    let mut txn = db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate)?;
    Ok(txn)
}

/// Creates every table, so read transactions never meet a missing one.
pub(crate) fn create_all(txn: &redb::WriteTransaction) -> Result<()> {
    txn.open_table(META)?;
    txn.open_table(RECORDS)?;
    txn.open_table(LOG)?;
    txn.open_table(CONFLICTS)?;
    txn.open_table(CONFLICTS_SETTLED)?;
    txn.open_table(INDEX)?;
    txn.open_table(CURSORS)?;
    Ok(())
}

pub(crate) use holdfast_protocol::row::encode_row;

/// Decodes a row (see [`holdfast_protocol::row`]); damage is reported as `Corrupt`.
pub(crate) fn decode_row<T: DeserializeOwned>(version: u8, bytes: &[u8], what: &str) -> Result<T> {
    holdfast_protocol::row::decode_row(version, bytes)
        .map_err(|e| Error::Corrupt(format!("{what} row: {e}")))
}

pub(crate) const RECORD_ROW_V1: u8 = 1;
pub(crate) const OUTBOX_ROW_V1: u8 = 1;
pub(crate) const JOURNAL_ROW_V1: u8 = 1;
pub(crate) const CHANGES_ROW_V1: u8 = 1;
pub(crate) const CURSOR_ROW_V1: u8 = 1;
pub(crate) const SETTLED_ROW_V1: u8 = 1;

/// What the store knows about a record without loading its document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RecordMeta {
    pub collection: String,
    pub space: SpaceId,
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
    /// The record's heads before these changes, for exports (see [`JournalRow`]).
    pub heads_before: Vec<[u8; 32]>,
    pub bytes: u64,
    pub created_ms: i64,
    pub attempts: u32,
    pub state: RowState,
}

/// [`OutboxRow`] as [`decode_outbox_indexed`] reads it: the same fields in the same order
/// (a test keeps them in step), the ones the index does not keep checked and dropped.
#[derive(Debug, Deserialize)]
pub(crate) struct OutboxRowIndexed {
    _event_id: EventId,
    pub record: RecordId,
    _space: SpaceId,
    _change_hashes: Skipped<[u8; 32]>,
    _heads_before: Skipped<[u8; 32]>,
    pub bytes: u64,
    pub created_ms: i64,
    _attempts: u32,
    pub state: RowState,
}

/// A list whose elements are decoded, and so checked, one by one and not kept.
#[derive(Debug)]
struct Skipped<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Skipped<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Elements<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Elements<T> {
            type Value = Skipped<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Skipped<T>, A::Error> {
                while seq.next_element::<T>()?.is_some() {}
                Ok(Skipped(std::marker::PhantomData))
            }
        }
        deserializer.deserialize_seq(Elements(std::marker::PhantomData))
    }
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
