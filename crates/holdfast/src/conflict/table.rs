//! The table of open conflicts and the store's conflict counters, as a commit updates them.

use redb::{ReadableTable, WriteTransaction};

use super::ConflictCounts;
use crate::error::Result;
use crate::tables;
use crate::RecordId;

const META_DETECTED: &str = "conflicts_detected";
const META_RESOLVED: &str = "conflicts_resolved";

/// The counters, read from the meta table.
pub(crate) fn counts(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<ConflictCounts> {
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
}

/// The conflicts table within a commit's transaction: flags set per record, counted, and
/// the counters added to when the commit is done with it ([`Flags::finish`]).
pub(crate) struct Flags<'t> {
    table: redb::Table<'t, (u128, &'static str), i64>,
    detected: u64,
    resolved: u64,
}

impl<'t> Flags<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Flags<'t>> {
        Ok(Flags {
            table: txn.open_table(tables::CONFLICTS)?,
            detected: 0,
            resolved: 0,
        })
    }

    /// Records which fields of `id` are in conflict after a write made at `now_ms`.
    pub(crate) fn set(
        &mut self,
        id: RecordId,
        flags: &[(String, bool)],
        now_ms: i64,
    ) -> Result<()> {
        let key = tables::rid(id);
        for (field, conflicted) in flags {
            // Read first: the table is only written when a flag changes.
            let k = (key, field.as_str());
            let present = self.table.get(k)?.is_some();
            if *conflicted && !present {
                self.table.insert(k, now_ms)?;
                self.detected += 1;
            } else if !*conflicted && present {
                self.table.remove(k)?;
                self.resolved += 1;
            }
        }
        Ok(())
    }

    /// Adds what this commit detected and settled to the persisted counters.
    pub(crate) fn finish(self, txn: &WriteTransaction) -> Result<()> {
        drop(self.table);
        if self.detected + self.resolved == 0 {
            return Ok(());
        }
        let mut meta = txn.open_table(tables::META)?;
        for (key, add) in [
            (META_DETECTED, self.detected),
            (META_RESOLVED, self.resolved),
        ] {
            let old = meta
                .get(key)?
                .and_then(|v| v.value().try_into().ok())
                .map_or(0, u64::from_le_bytes);
            meta.insert(key, (old + add).to_le_bytes().as_slice())?;
        }
        Ok(())
    }
}
