//! The redb tables of a relay's log store and the encoding of their rows
//! (see docs/relay-storage.md).

use holdfast_protocol::{EventId, Outcome, RecordId};
use redb::{ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

#[cfg(test)]
mod tests;

/// The storage layout version this code writes. Bump it, and add a migration at open,
/// whenever a table or row layout changes; a file of a newer format is refused.
pub const FORMAT_VERSION: u32 = 1;

/// Store-wide values: [`META_FORMAT`], [`META_EPOCH`], [`META_RELAY_ID`].
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// (space, seq) → [`LogRow`]. Append-only; seq counts from 1 per space, without gaps.
pub(crate) const LOG: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("log");
/// (space, change hash) → seq of the log entry holding the change.
pub(crate) const CHANGES: TableDefinition<(&str, [u8; 32]), u64> = TableDefinition::new("changes");
/// event id → [`EventRow`]: the outcome an event id got, and when.
pub(crate) const EVENTS: TableDefinition<u128, &[u8]> = TableDefinition::new("events");
/// (stored ms, event id) → (): event rows by age, so pruning reads only expired rows.
pub(crate) const EVENT_TIMES: TableDefinition<(u64, u128), ()> =
    TableDefinition::new("event_times");

/// `u32` little-endian.
pub(crate) const META_FORMAT: &str = "format";
/// `u64` little-endian: cursors of another epoch are answered with repair.
pub(crate) const META_EPOCH: &str = "epoch";
/// 16 bytes: the relay's identity, sent in `Welcome`.
pub(crate) const META_RELAY_ID: &str = "relay_id";

pub(crate) const LOG_ROW_V1: u8 = 1;
pub(crate) const EVENT_ROW_V1: u8 = 1;

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

/// Creates every table, so read transactions never meet a missing one.
pub(crate) fn create_all(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(META)?;
    txn.open_table(LOG)?;
    txn.open_table(CHANGES)?;
    txn.open_table(EVENTS)?;
    txn.open_table(EVENT_TIMES)?;
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
