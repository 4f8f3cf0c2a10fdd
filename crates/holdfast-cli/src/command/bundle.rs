//! `export` and `import`: change bundles for devices that meet without a network, with a
//! progress bar while a large bundle is applied.

use std::io::Write;
use std::time::Duration;

use holdfast::Store;
use indicatif::{ProgressBar, ProgressStyle};

use super::{count, partial_path, path_text, say, show_progress};
use crate::cli::{ExportArgs, ImportArgs};
use crate::error::{Error, Result};
use crate::json;

/// Records from which an import shows a progress bar (it is applied in steps of a few
/// hundred records; smaller bundles take one step).
pub const IMPORT_BAR_RECORDS_MIN: usize = 1000;

/// `export`.
pub fn export(store: &Store, args: &ExportArgs, out: &mut dyn Write) -> Result<()> {
    let spinner = if show_progress(args.json) {
        let spinner = ProgressBar::new_spinner().with_message("Exporting changes…");
        spinner.enable_steady_tick(Duration::from_millis(100));
        spinner
    } else {
        ProgressBar::hidden()
    };
    let export = store.export_changes(None, args.space.as_ref());
    spinner.finish_and_clear();
    let export = export?;
    // Written beside the file and renamed, so an unplugged stick never holds half a bundle
    // under the bundle's name.
    let partial = partial_path(&args.file);
    std::fs::write(&partial, &export.bytes).map_err(|e| Error::write(&partial, e))?;
    std::fs::rename(&partial, &args.file).map_err(|e| Error::write(&args.file, e))?;
    let summary = json::ExportJson {
        file: path_text(&args.file),
        records: export.records,
        changes: export.changes,
        bytes: export.bytes.len(),
    };
    if args.json {
        return json::print(out, &summary);
    }
    say!(
        out,
        "Exported {} ({}, {} bytes) to {}.",
        count(summary.records as u64, "record"),
        count(summary.changes as u64, "change"),
        summary.bytes,
        summary.file
    )
}

/// `import`.
pub fn import(store: &Store, args: &ImportArgs, out: &mut dyn Write) -> Result<()> {
    let bytes = std::fs::read(&args.file).map_err(|e| Error::read(&args.file, e))?;
    let draw = show_progress(args.json);
    let mut bar: Option<ProgressBar> = None;
    let applied = store.import_changes_with_progress(&bytes, |done, total| {
        if draw && total >= IMPORT_BAR_RECORDS_MIN {
            let bar = bar.get_or_insert_with(|| {
                let style = ProgressStyle::with_template(
                    "Importing {bar:40} {pos}/{len} records ({eta} left)",
                )
                .expect("a valid template");
                ProgressBar::new(total as u64).with_style(style)
            });
            bar.set_position(done as u64);
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let applied = applied?;
    let summary = json::ImportJson {
        records_changed: applied.records_changed,
        changes_applied: applied.changes_applied,
        auto_resolved: applied.auto_resolved,
        rejected: applied
            .rejected
            .into_iter()
            .map(|(record, reason)| json::RejectedJson { record, reason })
            .collect(),
    };
    if args.json {
        json::print(out, &summary)?;
    } else if summary.changes_applied == 0 && summary.rejected.is_empty() {
        say!(
            out,
            "Nothing new: every change in {} was already here.",
            args.file.display()
        )?;
    } else {
        say!(
            out,
            "Imported {} to {}.",
            count(summary.changes_applied as u64, "new change"),
            count(summary.records_changed as u64, "record")
        )?;
        for r in &summary.rejected {
            say!(out, "Not imported: record {}: {}", r.record, r.reason)?;
        }
    }
    match summary.rejected.len() {
        0 => Ok(()),
        n => Err(Error::Failed(format!(
            "{} could not be imported; everything else was",
            count(n as u64, "record")
        ))),
    }
}
