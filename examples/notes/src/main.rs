//! A small offline notes program on the Holdfast store: add, edit, list and exchange notes.
//! It shows the library's model end to end; the collaborative terminal UI replaces it later.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use holdfast::{
    Field, FieldValue, RecordId, Resolution, ScalarType, Schema, SpaceId, Store, StoreConfig,
    SyncState,
};

#[derive(Parser)]
#[command(about = "Notes kept on this device with Holdfast")]
struct Args {
    /// The store file.
    #[arg(long, env = "NOTES_DB", default_value = "notes.redb")]
    db: PathBuf,
    /// The space notes go in.
    #[arg(long, default_value = "my-notes")]
    space: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a note: `notes add "Groceries" "milk, eggs"`.
    Add { title: String, body: Option<String> },
    /// List notes with their status and sync state.
    List,
    /// Show one note in full.
    Show { id: RecordId },
    /// Append text to a note's body.
    Append { id: RecordId, text: String },
    /// Set a note's status (draft, review, published).
    Status { id: RecordId, status: String },
    /// Settle a status conflict: keep this device's version.
    KeepMine { id: RecordId },
    /// Delete a note (it can be restored).
    Delete { id: RecordId },
    /// Write every change to a bundle file (for another device without a network).
    Export { file: PathBuf },
    /// Merge a bundle file written by another device.
    Import { file: PathBuf },
}

fn schema() -> Schema {
    Schema::new(1).collection(
        "note",
        [
            ("title", Field::lww(ScalarType::String)),
            ("body", Field::text()),
            ("tags", Field::list(ScalarType::String)),
            ("status", Field::versioned(ScalarType::String).indexed()),
        ],
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("notes: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(&args.db, StoreConfig::new(schema()))?;
    let space = SpaceId::new(args.space)?;
    match args.command {
        Command::Add { title, body } => {
            let id = store.write(|tx| {
                let id = tx.create("note", &space)?;
                tx.set(id, "title", title.as_str())?;
                tx.splice_text(id, "body", 0, 0, body.as_deref().unwrap_or(""))?;
                tx.set(id, "status", "draft")?;
                Ok(id)
            })?;
            println!("{id}");
        }
        Command::List => {
            for id in store.all("note")? {
                let note = store.get(id)?;
                let title = note
                    .get("title")?
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                println!(
                    "{id}  {:<10} {:<8} {title}",
                    status(&note),
                    sync_word(&store, id)?
                );
            }
        }
        Command::Show { id } => {
            let note = store.get(id)?;
            println!(
                "{}",
                note.get("title")?
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            );
            println!(
                "status: {}   sync: {}",
                status(&note),
                sync_word(&store, id)?
            );
            println!("\n{}", note.text("body")?);
        }
        Command::Append { id, text } => {
            store.write(|tx| {
                let len = tx.get(id)?.text("body")?.chars().count();
                tx.splice_text(id, "body", len, 0, &text)
            })?;
        }
        Command::Status { id, status } => {
            store.write(|tx| tx.set(id, "status", status.as_str()))?
        }
        Command::KeepMine { id } => store.resolve(id, "status", Resolution::KeepMine)?,
        Command::Delete { id } => store.write(|tx| tx.delete(id))?,
        Command::Export { file } => {
            let export = store.export_changes(None, None)?;
            std::fs::write(&file, &export.bytes)?;
            let (notes, changes) = (
                count(export.records, "note"),
                count(export.changes, "change"),
            );
            println!("wrote {notes} ({changes}) to {}", file.display());
        }
        Command::Import { file } => {
            let summary = store.import_changes(&std::fs::read(&file)?)?;
            let changed = count(summary.records_changed, "note");
            println!(
                "{changed} changed, {} new",
                count(summary.changes_applied, "change")
            );
            for (id, why) in summary.rejected {
                println!("not imported: {id}: {why}");
            }
        }
    }
    let summary = store.sync_summary()?;
    if summary.pending > 0 {
        let s = if summary.pending == 1 { "" } else { "s" };
        eprintln!(
            "{} change{s} saved on this device, waiting to sync",
            summary.pending
        );
    }
    Ok(())
}

/// "1 note", "3 notes".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn status(note: &holdfast::Record) -> String {
    match note.field("status") {
        Ok(FieldValue::Value(v)) => v.to_string(),
        Ok(FieldValue::Conflict(c)) => format!("CONFLICT({})", c.len()),
        _ => "-".into(),
    }
}

fn sync_word(store: &Store, id: RecordId) -> holdfast::Result<&'static str> {
    Ok(match store.sync_state(id)? {
        SyncState::Queued => "queued",
        SyncState::Syncing => "syncing",
        SyncState::Synced => "synced",
        _ => "failed",
    })
}
