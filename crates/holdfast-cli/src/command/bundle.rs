//! `export` and `import`: change bundles for devices that meet without a network. An export
//! prints its mark for the next `--since`; an import takes several files in one durable
//! step, and shows a progress bar while one large bundle is applied.

use std::io::Write;
use std::time::Duration;

use holdfast::{BundleError, ExportMark, ImportSummary, Refusal, RefusalKind, Store};
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
    let spinner = spinner(args.json, "Exporting changes…");
    let export = store.export_changes(args.since.map(ExportMark), args.space.as_ref());
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
        mark: export.mark.0,
    };
    if args.json {
        return json::print(out, &summary);
    }
    say!(
        out,
        "Exported {} ({}, {} bytes) to {}.\nMark {}: export --since {} for the changes after these.",
        count(summary.records as u64, "record"),
        count(summary.changes as u64, "change"),
        summary.bytes,
        summary.file,
        summary.mark,
        summary.mark
    )
}

/// `import`: one file in durable steps with a progress bar, several in one durable step.
pub fn import(store: &Store, args: &ImportArgs, out: &mut dyn Write) -> Result<()> {
    let mut bundles = Vec::with_capacity(args.files.len());
    for file in &args.files {
        bundles.push(std::fs::read(file).map_err(|e| Error::read(file, e))?);
    }
    let imported = match bundles.as_slice() {
        [one] => import_one(store, one, args.json),
        several => {
            let spinner = spinner(args.json, &format!("Importing {} bundles…", several.len()));
            let imported = store.import_many(several);
            spinner.finish_and_clear();
            imported
        }
    };
    let mark = |store: &Store| store.export_mark().map(|m| m.0);
    // Nothing applied is the command's error, but its refusals print like a partial's.
    let (summary, nothing) = match imported {
        Ok(s) => (import_json(&s, &s.refused, mark(store)?), None),
        Err(holdfast::Error::Bundle(BundleError::Refused(e))) => (
            import_json(&ImportSummary::default(), &e.refused, mark(store)?),
            Some(e),
        ),
        Err(holdfast::Error::Bundle(e)) if bundles.len() > 1 => {
            return Err(Error::Failed(format!(
                "one of the {} files could not be imported, so none was (import them one at \
                 a time to find it): {e}",
                bundles.len()
            )))
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        json::print(out, &summary)?;
    } else {
        if nothing.is_some() {
            // Said by the error below.
        } else if summary.changes_applied == 0 && summary.rejected.is_empty() {
            let files = match args.files.as_slice() {
                [one] => one.display().to_string(),
                several => format!("the {} files", several.len()),
            };
            say!(
                out,
                "Nothing new: every change in {files} was already here."
            )?;
        } else {
            say!(
                out,
                "Imported {} to {}.",
                count(summary.changes_applied as u64, "new change"),
                count(summary.records_changed as u64, "record")
            )?;
        }
        for r in &summary.rejected {
            say!(out, "Not imported: record {}: {}", r.record, r.reason)?;
        }
    }
    if let Some(refused) = nothing {
        return Err(holdfast::Error::from(refused).into());
    }
    match summary.rejected.len() {
        0 => Ok(()),
        n => Err(Error::Failed(format!(
            "{} could not be imported; everything else was",
            count(n as u64, "record")
        ))),
    }
}

/// One bundle, applied in steps of a few hundred records with a bar for large ones.
fn import_one(store: &Store, bytes: &[u8], json: bool) -> holdfast::Result<ImportSummary> {
    let draw = show_progress(json);
    let mut bar: Option<ProgressBar> = None;
    let imported = store.import_changes_with_progress(bytes, |done, total| {
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
    imported
}

fn import_json(s: &ImportSummary, refused: &[Refusal], mark: u64) -> json::ImportJson {
    json::ImportJson {
        records_changed: s.records_changed,
        changes_applied: s.changes_applied,
        auto_resolved: s.auto_resolved,
        rejected: refused
            .iter()
            .map(|r| json::RejectedJson {
                record: r.record,
                kind: kind_name(&r.kind),
                reason: r.reason.clone(),
            })
            .collect(),
        mark,
    }
}

/// A refusal's kind in the JSON's words.
fn kind_name(kind: &RefusalKind) -> &'static str {
    match kind {
        RefusalKind::MissingDependencies => "missing_dependencies",
        RefusalKind::UnknownCollection { .. } => "unknown_collection",
        RefusalKind::InvalidChanges => "invalid_changes",
        RefusalKind::NotCreated => "not_created",
        RefusalKind::InvalidSpace { .. } => "invalid_space",
        _ => "other",
    }
}

/// A spinner while a step without progress runs (hidden with `--json` or off a terminal).
fn spinner(json: bool, message: &str) -> ProgressBar {
    if !show_progress(json) {
        return ProgressBar::hidden();
    }
    let spinner = ProgressBar::new_spinner().with_message(message.to_owned());
    spinner.enable_steady_tick(Duration::from_millis(100));
    spinner
}
