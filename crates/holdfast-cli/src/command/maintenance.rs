//! `check` and `compact`: work on the closed file rather than through an open store.

use std::io::Write;
use std::path::Path;

use holdfast::Store;

use super::{count, existing_store, say};
use crate::error::{Error, Result};
use crate::json;

/// `check`: fails when anything is wrong, after listing it.
pub fn check(db: &Path, as_json: bool, out: &mut dyn Write) -> Result<()> {
    existing_store(db)?;
    // Damage the storage engine meets comes back as `Corrupt`, said as `Error::Damaged`.
    let report = Store::check(db).map_err(|e| match e {
        holdfast::Error::Storage(e) => Error::Failed(format!(
            "{} could not be checked: {e} (the file is damaged, or open in another program)",
            db.display()
        )),
        e => e.into(),
    })?;
    let ok = report.is_ok();
    let summary = json::CheckJson {
        ok,
        file_ok: report.file_ok,
        records: report.records,
        outbox_entries: report.outbox_entries,
        problems: report.problems,
    };
    if as_json {
        json::print(out, &summary)?;
    } else if ok {
        say!(
            out,
            "The store is sound: the file passed its integrity check, {} and {} read back intact.",
            count(summary.records, "record"),
            match summary.outbox_entries {
                1 => "1 outbox entry".to_owned(),
                n => format!("{n} outbox entries"),
            }
        )?;
    } else {
        if !summary.file_ok {
            say!(out, "The file failed its integrity check.")?;
        }
        for problem in &summary.problems {
            say!(out, "Problem: {problem}")?;
        }
    }
    if ok {
        Ok(())
    } else {
        let n = summary.problems.len() + usize::from(!summary.file_ok);
        Err(Error::Failed(format!(
            "the store has {} (restore it from a backup, or let the relay repair it)",
            count(n as u64, "problem")
        )))
    }
}

/// `compact`.
pub fn compact(db: &Path, as_json: bool, out: &mut dyn Write) -> Result<()> {
    existing_store(db)?;
    let size = |db: &Path| {
        std::fs::metadata(db)
            .map(|m| m.len())
            .map_err(|e| Error::read(db, e))
    };
    let bytes_before = size(db)?;
    let records_rewritten = Store::compact(db)?;
    let summary = json::CompactJson {
        records_rewritten,
        bytes_before,
        bytes_after: size(db)?,
    };
    if as_json {
        return json::print(out, &summary);
    }
    say!(
        out,
        "Compacted {}: {} rewritten as single snapshots; the file went from {} to {} bytes.",
        db.display(),
        count(summary.records_rewritten, "record"),
        summary.bytes_before,
        summary.bytes_after
    )
}
