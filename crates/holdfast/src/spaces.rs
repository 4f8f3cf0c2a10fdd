//! The spaces a store knows: those it holds records of and those it has pulled from a
//! relay, for tools that sync or list a store without the app's configuration.

use std::collections::BTreeSet;

use redb::ReadableTable;

use crate::error::Result;
use crate::store::record_ids;
use crate::tables::{self, RecordMeta};
use crate::{SpaceId, Store};

impl Store {
    /// Every space this store holds a record of (deleted ones included) or has a sync
    /// cursor for, in name order. Reads each record's metadata row (no document): meant for
    /// tools and rare whole-store work, not for every screen of an app.
    pub fn spaces(&self) -> Result<Vec<SpaceId>> {
        self.inner.reading(|txn| {
            let mut spaces = BTreeSet::new();
            let records = txn.open_table(tables::RECORDS)?;
            for id in record_ids(&records)? {
                let Some(row) = records.get((tables::rid(id), tables::SLOT_META))? else {
                    continue;
                };
                let meta: RecordMeta =
                    tables::decode_row(tables::RECORD_ROW_V1, row.value(), "record")?;
                spaces.insert(meta.space);
            }
            let cursors = txn.open_table(tables::CURSORS)?;
            for item in cursors.iter()? {
                let (space, _) = item?;
                let space = SpaceId::new(space.value())
                    .map_err(|e| crate::Error::Corrupt(format!("cursor row: {e}")))?;
                spaces.insert(space);
            }
            Ok(spaces.into_iter().collect())
        })
    }
}

#[cfg(test)]
mod tests;
