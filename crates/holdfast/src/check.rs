//! Integrity check of a store file: redb's own check, then every record's document and
//! every outbox entry decoded and cross-checked.

use std::path::Path;

use redb::{Database, ReadableDatabase};
use serde::{Deserialize, Serialize};

use crate::damage::{self, Guarded};
use crate::error::Result;
use crate::tables;
use crate::Store;

/// What [`Store::check`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// redb's integrity check passed (it repairs what it can on open).
    pub file_ok: bool,
    /// Records whose document loaded and matched its metadata.
    pub records: u64,
    /// Outbox entries that decoded with their changes.
    pub outbox_entries: u64,
    /// Everything wrong, in words; empty when the store is sound.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.file_ok && self.problems.is_empty()
    }
}

impl Store {
    /// Checks the store file at `path`, which must not be open elsewhere.
    pub fn check(path: impl AsRef<Path>) -> Result<CheckReport> {
        damage::contained(|| check_db(Database::open(path.as_ref())?))
    }

    /// Checks a store kept on any redb storage backend (see [`Store::open_with_backend`]),
    /// which must not be open elsewhere.
    pub fn check_backend(backend: impl redb::StorageBackend) -> Result<CheckReport> {
        damage::contained(|| check_db(Database::builder().create_with_backend(backend)?))
    }
}

fn check_db(db: Database) -> Result<CheckReport> {
    let mut db = Guarded::new(db);
    let mut report = CheckReport {
        file_ok: db.check_integrity()?,
        ..Default::default()
    };
    let txn = Guarded::new(db.begin_read()?);
    let actor = automerge::ActorId::random();
    let records = txn.open_table(tables::RECORDS)?;
    for id in crate::store::record_ids(&records)? {
        match crate::store::load_entry(&txn, id, &actor) {
            Ok(Some(_)) => report.records += 1,
            Ok(None) => report
                .problems
                .push(format!("record {id} has chunks but no metadata")),
            Err(e) => report.problems.push(format!("record {id}: {e}")),
        }
    }
    let log = txn.open_table(tables::LOG)?;
    for item in log.range(tables::log_all(tables::LOG_OUTBOX))? {
        let (k, v) = item?;
        let seq = k.value().1;
        let row = match tables::decode_outbox(v.value()) {
            Ok((row, changes)) => match tables::decode_changes(changes) {
                Ok(_) => row,
                Err(e) => {
                    report.problems.push(format!("outbox entry {seq}: {e}"));
                    continue;
                }
            },
            Err(e) => {
                report.problems.push(format!("outbox entry {seq}: {e}"));
                continue;
            }
        };
        let key = tables::rid(row.record);
        if records.get((key, tables::SLOT_META))?.is_none() {
            report.problems.push(format!(
                "outbox entry {seq} names unknown record {}",
                row.record
            ));
        }
        report.outbox_entries += 1;
    }
    Ok(report)
}
