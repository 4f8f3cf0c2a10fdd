//! Conflicts: the table of conflicted fields, their counters, and resolution.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::doc::{Candidate, FieldValue, STATE_FIELD};
use crate::error::Result;
use crate::tables;
use crate::txn::Resolution;
use crate::{RecordId, Store};

const META_DETECTED: &str = "conflicts_detected";
const META_RESOLVED: &str = "conflicts_resolved";

/// A conflicted field, as listed from the conflicts table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// The record.
    pub record: RecordId,
    /// The field ([`STATE_FIELD`] for a delete/edit conflict).
    pub field: String,
    /// When this device detected it (ms since the epoch, this device's clock).
    pub detected_ms: i64,
}

/// How many conflicts this store has seen since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictCounts {
    /// Conflicts detected.
    pub detected: u64,
    /// Conflicts settled (by the user, a resolver, or a later write).
    pub resolved: u64,
}

impl Store {
    /// Every open conflict, in record order. Read from a table, not by scanning documents.
    pub fn conflicts(&self) -> Result<Vec<Conflict>> {
        self.inner.reading(|txn| {
            let table = txn.open_table(tables::CONFLICTS)?;
            let mut out = Vec::new();
            for item in table.iter()? {
                let (k, v) = item?;
                let (record, field) = k.value();
                out.push(Conflict {
                    record: RecordId::from_bytes(record.to_be_bytes()),
                    field: field.to_owned(),
                    detected_ms: v.value(),
                });
            }
            Ok(out)
        })
    }

    /// The candidates of a conflicted field (empty when it is not in conflict).
    pub fn candidates(&self, id: RecordId, field: &str) -> Result<Vec<Candidate>> {
        let me = self.inner.device;
        self.inner.read(id, |view, meta| {
            if field == STATE_FIELD {
                let conflicted = view.state_conflicted();
                return Ok(if conflicted {
                    view.state_candidates(me)
                } else {
                    Vec::new()
                });
            }
            let def = self.inner.schema.field(&meta.collection, field)?;
            Ok(match view.field(field, def, me) {
                FieldValue::Conflict(c) => c,
                _ => Vec::new(),
            })
        })
    }

    /// Settles a conflict durably (see [`Tx::resolve`](crate::Tx::resolve)).
    pub fn resolve(&self, id: RecordId, field: &str, resolution: Resolution) -> Result<()> {
        self.write(|tx| tx.resolve(id, field, resolution))
    }

    /// Conflicts detected and resolved since the store was created.
    pub fn conflict_counts(&self) -> Result<ConflictCounts> {
        self.inner.reading(|txn| {
            let meta = txn.open_table(tables::META)?;
            let read = |key| -> Result<u64> {
                Ok(meta
                    .get(key)?
                    .and_then(|v| v.value().try_into().ok())
                    .map_or(0, u64::from_le_bytes))
            };
            Ok(ConflictCounts {
                detected: read(META_DETECTED)?,
                resolved: read(META_RESOLVED)?,
            })
        })
    }
}

/// Adds to the persisted conflict counters within `txn`.
pub(crate) fn count(txn: &WriteTransaction, detected: u64, resolved: u64) -> Result<()> {
    let mut meta = txn.open_table(tables::META)?;
    for (key, add) in [(META_DETECTED, detected), (META_RESOLVED, resolved)] {
        let old = meta
            .get(key)?
            .and_then(|v| v.value().try_into().ok())
            .map_or(0, u64::from_le_bytes);
        meta.insert(key, (old + add).to_le_bytes().as_slice())?;
    }
    Ok(())
}
