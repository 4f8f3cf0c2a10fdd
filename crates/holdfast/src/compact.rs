//! Compaction of a closed store file: each record's incremental chunks folded into one
//! snapshot, then redb's own compaction hands free pages back to the file system.
//!
//! Writes fold chunks into a snapshot only once the chunks outgrow it (see
//! [`COMPACT_TAIL_BYTES_MIN`](crate::COMPACT_TAIL_BYTES_MIN)), so a store carries some
//! incremental bytes per record, and freed pages stay in the file. This is the operator's
//! way to reclaim both; nothing a reader sees changes (same documents, same heads).

use std::path::Path;

use automerge::ActorId;
use redb::{Database, ReadableTable};

use crate::damage::{self, Guarded};
use crate::error::{Error, Result};
use crate::store::{load_entry_in_write, record_ids};
use crate::tables;
use crate::Store;

impl Store {
    /// Compacts the store file at `path`, which must not be open elsewhere. Every record
    /// kept as a snapshot plus incremental chunks is rewritten as one snapshot of the same
    /// document (in one durable transaction; a crash leaves the file as it was), then the
    /// file's free space is released. Returns how many records were rewritten.
    ///
    /// A file that holds no store is refused with [`Error::NotAStore`]; one written by a
    /// newer storage format with [`Error::UnsupportedFormat`].
    pub fn compact(path: impl AsRef<Path>) -> Result<u64> {
        let path = path.as_ref();
        if Store::stored_schema(path)?.is_none() {
            return Err(Error::NotAStore(path.display().to_string()));
        }
        damage::contained(|| {
            let mut db = Guarded::new(Database::open(path)?);
            let txn = Guarded::new(tables::begin_durable(&db)?);
            check_format(&txn)?;
            // Documents are only loaded and saved, never changed: the actor is never used.
            let actor = ActorId::random();
            let ids = record_ids(&txn.open_table(tables::RECORDS)?)?;
            let mut rewritten = 0;
            for id in ids {
                let Some(entry) = load_entry_in_write(&txn, id, &actor)? else {
                    continue;
                };
                let mut meta = entry.meta;
                if meta.chunks <= 1 {
                    continue;
                }
                let snapshot = entry.doc.save();
                let old_chunks = meta.chunks;
                meta.chunks = 1;
                meta.snapshot_bytes = snapshot.len() as u64;
                meta.tail_bytes = 0;
                let key = tables::rid(id);
                let mut records = txn.open_table(tables::RECORDS)?;
                for n in 1..old_chunks {
                    records.remove((key, tables::SLOT_SNAPSHOT + n))?;
                }
                records.insert((key, tables::SLOT_SNAPSHOT), snapshot.as_slice())?;
                let row = tables::encode_row(tables::RECORD_ROW_V1, &meta);
                records.insert((key, tables::SLOT_META), row.as_slice())?;
                rewritten += 1;
            }
            txn.into_inner().commit()?;
            db.compact().map_err(redb::Error::from)?;
            Ok(rewritten)
        })
    }
}

/// Refuses a file written by a newer storage format, whose rows this code must not rewrite.
fn check_format(txn: &redb::WriteTransaction) -> Result<()> {
    let meta = txn.open_table(tables::META)?;
    let Some(row) = meta.get(tables::META_FORMAT)? else {
        return Ok(());
    };
    let bytes: [u8; 4] = row
        .value()
        .try_into()
        .map_err(|_| Error::Corrupt("format row".into()))?;
    let found = u32::from_le_bytes(bytes);
    if found > tables::FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            found,
            supported: tables::FORMAT_VERSION,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
