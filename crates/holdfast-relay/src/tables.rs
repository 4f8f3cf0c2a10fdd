//! The redb tables of a relay's log store and the encoding of their rows
//! (see docs/relay-storage.md).

use holdfast_protocol::{EventId, Outcome, RecordId};
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

#[cfg(test)]
mod tests;

/// The storage layout version this code writes. Bump it, and add a migration at open,
/// whenever a table or row layout changes; a file of a newer format is refused.
///
/// 2 added the record index (`records`, `record_log`) and `snapshots`; a format-1 file is
/// migrated at open by indexing its log. 3 keyed event ids by space (`EVENTS` replaced
/// `EVENTS_V2`); an older file's event rows are moved at open by `scope_events`.
pub const FORMAT_VERSION: u32 = 3;

/// Store-wide values: [`META_FORMAT`], [`META_EPOCH`], [`META_RELAY_ID`].
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// (space, seq) → [`LogRow`]. Append-only; seq counts from 1 per space, without gaps.
pub(crate) const LOG: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("log");
/// (space, change hash) → seq of the log entry holding the change.
pub(crate) const CHANGES: TableDefinition<(&str, [u8; 32]), u64> = TableDefinition::new("changes");
/// (space, event id) → [`EventRow`]: the outcome an event id got in a space, and when.
/// Per space, so that no answer in one space depends on what another holds.
pub(crate) const EVENTS: TableDefinition<(&str, u128), &[u8]> =
    TableDefinition::new("space_events");
/// (stored ms, space, event id) → (): event rows by age, so pruning reads only expired rows.
pub(crate) const EVENT_TIMES: TableDefinition<(u64, &str, u128), ()> =
    TableDefinition::new("space_event_times");
/// Formats 1 and 2: event id → [`EventRow`], one namespace for every space. Read and
/// deleted by [`scope_events`] only.
pub(crate) const EVENTS_V2: TableDefinition<u128, &[u8]> = TableDefinition::new("events");
/// Formats 1 and 2: (stored ms, event id) → (). Deleted by [`scope_events`].
pub(crate) const EVENT_TIMES_V2: TableDefinition<(u64, u128), ()> =
    TableDefinition::new("event_times");
/// (space, record) → [`RecordRow`]: each record's snapshot position and tail, kept in step
/// with every append.
pub(crate) const RECORDS: TableDefinition<(&str, u128), &[u8]> = TableDefinition::new("records");
/// (space, record, seq) → (change bytes, change count) of that log entry: each record's
/// entries in log order.
pub(crate) const RECORD_LOG: TableDefinition<(&str, u128, u64), (u64, u64)> =
    TableDefinition::new("record_log");
/// (space, record) → [`SNAPSHOT_ROW_V1`], then a saved Automerge document holding the
/// record's log up to [`RecordRow::snapshot_seq`].
pub(crate) const SNAPSHOTS: TableDefinition<(&str, u128), &[u8]> =
    TableDefinition::new("snapshots");

/// `u32` little-endian.
pub(crate) const META_FORMAT: &str = "format";
/// `u64` little-endian: cursors of another epoch are answered with repair.
pub(crate) const META_EPOCH: &str = "epoch";
/// 16 bytes: the relay's identity, sent in `Welcome`.
pub(crate) const META_RELAY_ID: &str = "relay_id";

pub(crate) const LOG_ROW_V1: u8 = 1;
pub(crate) const EVENT_ROW_V1: u8 = 1;
pub(crate) const RECORD_ROW_V1: u8 = 1;
/// A snapshot row is this byte, then the document bytes as `Automerge::save` wrote them
/// (not bincode: a document of megabytes is copied once, not encoded byte by byte).
pub(crate) const SNAPSHOT_ROW_V1: u8 = 1;

/// One entry of a space's log: what a device pulls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LogRow {
    pub record: RecordId,
    pub event_id: EventId,
    /// Raw Automerge changes, each held nowhere else in the space.
    pub changes: Vec<Vec<u8>>,
}

/// What became of an event id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EventRow {
    /// The outcome as first answered (`Stored`, `Duplicate` or a permanent rejection).
    pub outcome: Outcome,
    /// When it was stored, ms since the Unix epoch; the retention window counts from here.
    pub stored_ms: u64,
}

/// What the relay keeps of one record, next to its log entries.
///
/// The record's state is its snapshot (if `snapshot_seq > 0`) and then its log entries
/// after `snapshot_seq`, the *tail*.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecordRow {
    /// The last log entry the snapshot holds; 0 when there is no snapshot.
    pub snapshot_seq: u64,
    /// Length of the saved document.
    pub snapshot_bytes: u64,
    /// Log entries of the record after `snapshot_seq`.
    pub tail_entries: u64,
    /// Changes in those entries.
    pub tail_changes: u64,
    /// Change bytes in those entries.
    pub tail_bytes: u64,
}

impl RecordRow {
    /// The record's size estimate, the measure `record_bytes_max` bounds: snapshot bytes
    /// and tail change bytes, which is also the `byte_len` of its bootstrap state.
    pub(crate) fn size(&self) -> u64 {
        self.snapshot_bytes.saturating_add(self.tail_bytes)
    }
}

/// Creates every table, so read transactions never meet a missing one.
pub(crate) fn create_all(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(META)?;
    txn.open_table(LOG)?;
    txn.open_table(CHANGES)?;
    txn.open_table(EVENTS)?;
    txn.open_table(EVENT_TIMES)?;
    txn.open_table(RECORDS)?;
    txn.open_table(RECORD_LOG)?;
    txn.open_table(SNAPSHOTS)?;
    Ok(())
}

/// The last seq of a space's log (0 when empty).
pub(crate) fn last_seq(
    log: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    space: &str,
) -> Result<u64, StoreError> {
    Ok(log
        .range((space, 0)..=(space, u64::MAX))?
        .next_back()
        .transpose()?
        .map_or(0, |(k, _)| k.value().1))
}

/// Builds the record index of a format-1 file from its log: every entry is added to
/// `record_log` and to its record's tail. Runs once, inside the transaction that opens the
/// file; no snapshot exists yet, so the compactor makes them afterwards.
pub(crate) fn index_log(txn: &redb::WriteTransaction) -> Result<u64, StoreError> {
    let log = txn.open_table(LOG)?;
    let mut records = txn.open_table(RECORDS)?;
    let mut record_log = txn.open_table(RECORD_LOG)?;
    let mut indexed = 0;
    for item in log.iter()? {
        let (key, value) = item?;
        let (space, seq) = key.value();
        let row: LogRow = decode_row(LOG_ROW_V1, value.value(), "log")?;
        let rid = rid(row.record);
        let (bytes, count) = change_bytes(&row.changes);
        record_log.insert((space, rid, seq), (bytes, count))?;
        let mut meta = read_record(&records, space, rid)?.unwrap_or_default();
        meta.tail_entries += 1;
        meta.tail_changes += count;
        meta.tail_bytes += bytes;
        records.insert((space, rid), encode_row(RECORD_ROW_V1, &meta).as_slice())?;
        indexed += 1;
    }
    Ok(indexed)
}

/// Moves the event rows of a format-1 or format-2 file, keyed by event id alone, to
/// [`EVENTS`], keyed by (space, event id), and deletes the old tables. Runs once, inside
/// the transaction that opens the file; returns (old rows, rows written).
///
/// An old row does not name its space. A `Stored { seq }` row is moved to each space whose
/// log holds that event id at `seq` (one, unless the id was pruned and reused), found by one
/// pass over the log. Every other row is dropped, as its space cannot be known: a resend is
/// then decided again, which answers a `Duplicate` exactly as before (held changes and
/// their seqs never change) and a permanent rejection from the store's state now.
pub(crate) fn scope_events(txn: &redb::WriteTransaction) -> Result<(u64, u64), StoreError> {
    let old = txn.open_table(EVENTS_V2)?;
    let total = old.len()?;
    let mut moved = 0;
    if total > 0 {
        let log = txn.open_table(LOG)?;
        let mut events = txn.open_table(EVENTS)?;
        let mut times = txn.open_table(EVENT_TIMES)?;
        for item in log.iter()? {
            let (key, value) = item?;
            let (space, seq) = key.value();
            let entry: LogRow = decode_row(LOG_ROW_V1, value.value(), "log")?;
            let id = eid(entry.event_id);
            let Some(bytes) = old.get(id)? else {
                continue;
            };
            let row: EventRow = decode_row(EVENT_ROW_V1, bytes.value(), "event")?;
            if row.outcome != (Outcome::Stored { seq }) {
                continue;
            }
            events.insert((space, id), bytes.value())?;
            times.insert((row.stored_ms, space, id), ())?;
            moved += 1;
        }
    }
    drop(old);
    txn.delete_table(EVENTS_V2)?;
    txn.delete_table(EVENT_TIMES_V2)?;
    Ok((total, moved))
}

/// The record row of (space, record), if the record has log entries.
pub(crate) fn read_record(
    records: &impl ReadableTable<(&'static str, u128), &'static [u8]>,
    space: &str,
    rid: u128,
) -> Result<Option<RecordRow>, StoreError> {
    records
        .get((space, rid))?
        .map(|v| decode_row(RECORD_ROW_V1, v.value(), "record"))
        .transpose()
}

/// Total bytes and count of a list of changes.
pub(crate) fn change_bytes(changes: &[Vec<u8>]) -> (u64, u64) {
    let bytes = changes.iter().map(|c| c.len() as u64).sum();
    (bytes, changes.len() as u64)
}

/// A record id as a table key: its bytes big-endian, so keys sort like ids.
pub(crate) fn rid(id: RecordId) -> u128 {
    u128::from_be_bytes(*id.as_bytes())
}

/// The record id of a table key.
pub(crate) fn record_id(key: u128) -> RecordId {
    RecordId::from_bytes(key.to_be_bytes())
}

/// The document bytes of a snapshot row.
pub(crate) fn snapshot_doc(row: &[u8]) -> Result<&[u8], StoreError> {
    match row.split_first() {
        Some((&SNAPSHOT_ROW_V1, doc)) => Ok(doc),
        Some((v, _)) => Err(StoreError::Corrupt(format!(
            "snapshot row: unknown row version {v}"
        ))),
        None => Err(StoreError::Corrupt("snapshot row: empty".into())),
    }
}

/// A snapshot row holding `doc`.
pub(crate) fn snapshot_row(doc: &[u8]) -> Vec<u8> {
    let mut row = Vec::with_capacity(doc.len() + 1);
    row.push(SNAPSHOT_ROW_V1);
    row.extend_from_slice(doc);
    row
}

/// An event id as a table key.
pub(crate) fn eid(id: EventId) -> u128 {
    u128::from_be_bytes(*id.as_bytes())
}

pub(crate) use holdfast_protocol::row::encode_row;

/// Decodes a row (see [`holdfast_protocol::row`]); damage is reported as `Corrupt`.
pub(crate) fn decode_row<T: DeserializeOwned>(
    version: u8,
    bytes: &[u8],
    what: &str,
) -> Result<T, StoreError> {
    holdfast_protocol::row::decode_row(version, bytes)
        .map_err(|e| StoreError::Corrupt(format!("{what} row: {e}")))
}
