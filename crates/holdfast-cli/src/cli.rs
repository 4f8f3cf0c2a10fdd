//! The command line: every subcommand, its flags, and the example its `--help` ends with.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use holdfast::{RecordId, SpaceId};

/// `holdfast`: inspect and operate a Holdfast store from the shell.
#[derive(Debug, Parser)]
#[command(
    name = "holdfast",
    version,
    about = "Inspect and operate a Holdfast device store from the shell",
    long_about = "Inspect and operate a Holdfast device store from the shell. A store keeps its \
                  schema in its file, so any store can be read without the app that wrote it.",
    after_help = "Examples:\n  holdfast init --db notes.redb --schema schema.toml\n  \
                  holdfast put note --db notes.redb --space team title=Plan status=draft\n  \
                  holdfast status --db notes.redb --json"
)]
pub struct Cli {
    /// The store file.
    #[arg(long, global = true, value_name = "PATH", env = "HOLDFAST_DB")]
    pub db: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new store with the schema in a TOML file.
    #[command(
        after_help = "Example:\n  holdfast init --db notes.redb --schema schema.toml\n\n\
        The schema file:\n  version = 1\n  [collections.note.fields]\n  \
        title  = { kind = \"lww\", type = \"string\" }\n  body   = { kind = \"text\" }\n  \
        tags   = { kind = \"list\" }\n  \
        status = { kind = \"versioned\", type = \"string\", indexed = true }\n\n\
        Kinds: lww, versioned, text, list, counter. \
        Types: string, i64, f64, bool, bytes, timestamp, ref."
    )]
    Init(InitArgs),
    /// The device, schema, counts of records, outbox entries and conflicts, and sync state.
    #[command(after_help = "Example:\n  holdfast status --db notes.redb")]
    Status(JsonArgs),
    /// List records, of one collection or of all, page by page.
    #[command(after_help = "Examples:\n  holdfast records --db notes.redb\n  \
        holdfast records note --db notes.redb --space team --limit 20 --json")]
    Records(RecordsArgs),
    /// Show every field of a record; conflicted fields with each version.
    #[command(
        after_help = "Example:\n  holdfast show --db notes.redb 0190c3d2-8a4e-7b1c-9f00-1a2b3c4d5e6f"
    )]
    Show(ShowArgs),
    /// The changes waiting to be sent to the relay, with their state and any failure.
    #[command(after_help = "Example:\n  holdfast outbox --db notes.redb --json")]
    Outbox(OutboxArgs),
    /// The conflicted fields, with every version to choose from.
    #[command(after_help = "Example:\n  holdfast conflicts --db notes.redb")]
    Conflicts(JsonArgs),
    /// Settle a conflicted field: keep this device's version, take the other, or write a value.
    #[command(
        after_help = "Examples:\n  holdfast resolve --db notes.redb RECORD status --keep-mine\n  \
        holdfast resolve --db notes.redb RECORD status --value published\n  \
        holdfast resolve --db notes.redb RECORD _state --value live   \
        (a deleted record someone else edited: restore it)"
    )]
    Resolve(ResolveArgs),
    /// Create a record; prints its id.
    #[command(
        after_help = "Example:\n  holdfast put note --db notes.redb --space team \
        title=Plan body='Ship on Friday' tags=work,urgent status=draft\n\n\
        Values are read by the field's type: i64 and f64 numbers, bool true or false, bytes \
        in hex, timestamp as milliseconds since 1970 or RFC 3339 (2024-05-01T12:00:00Z), ref \
        as a record id. A text field takes its initial text, a list field comma-separated \
        items or a JSON array ('tags=[\"a,b\",\"c\"]'), a counter its starting number."
    )]
    Put(PutArgs),
    /// Change fields of a record.
    #[command(
        after_help = "Example:\n  holdfast set --db notes.redb RECORD status=review views=+1\n\n\
        Scalars are replaced; a text or list field gets the whole new content; a counter \
        takes +N or -N to add, or N to reach N (by adding the difference)."
    )]
    Set(SetArgs),
    /// Insert into or delete from a text field, merging with concurrent edits.
    #[command(
        after_help = "Examples:\n  holdfast text --db notes.redb RECORD body --insert 0 'Note: '\n  \
        holdfast text --db notes.redb RECORD body --delete 0 6\n\n\
        Positions count characters (Unicode scalar values) from 0."
    )]
    Text(TextArgs),
    /// Delete a record (it syncs as a change; an edit made elsewhere meanwhile becomes a conflict).
    #[command(after_help = "Example:\n  holdfast delete --db notes.redb RECORD")]
    Delete(DeleteArgs),
    /// Write the store's changes to a bundle file, for a device without a network.
    #[command(
        after_help = "Examples:\n  holdfast export --db notes.redb /media/usb/notes.bundle --space team\n  \
        holdfast export --db notes.redb /media/usb/notes-2.bundle --since 41\n\n\
        Each export prints its mark, the number of the last change the store had recorded; \
        --since MARK exports only the changes recorded after it (a mark belongs to the store \
        that printed it; --since 0 exports everything)."
    )]
    Export(ExportArgs),
    /// Merge bundle files written by other devices (importing twice changes nothing).
    #[command(
        after_help = "Examples:\n  holdfast import --db notes.redb /media/usb/notes.bundle\n  \
        holdfast import --db notes.redb monday.bundle tuesday.bundle\n\n\
        Several files are merged in one durable step, in any order. A record whose changes \
        need changes neither the store nor the files hold is refused and left as it was; \
        the command then exits 1 (\"nothing was imported\" when every record was refused)."
    )]
    Import(ImportArgs),
    /// Sync with a relay: send the outbox, receive other devices' changes.
    #[command(
        after_help = "Examples:\n  holdfast sync --db notes.redb --relay ws://127.0.0.1:7700 --token $TOKEN --once\n  \
        holdfast sync --db notes.redb --relay wss://sync.example.com --token $TOKEN --deadline 600\n\n\
        Without --once it stays connected, printing each change of state, until Ctrl-C or \
        the deadline. The spaces synced are those the store holds, and any --space given; \
        a new store with neither syncs the spaces its token names."
    )]
    Sync(SyncArgs),
    /// Check the integrity of the file and of every document and outbox entry.
    #[command(after_help = "Example:\n  holdfast check --db notes.redb")]
    Check(JsonArgs),
    /// Fold every record's incremental changes into one snapshot and shrink the file.
    #[command(after_help = "Example:\n  holdfast compact --db notes.redb\n\n\
        The store must not be open in another program meanwhile.")]
    Compact(JsonArgs),
}

/// `--json` alone.
#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON (the shapes are in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

/// `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The schema, in TOML.
    #[arg(long, value_name = "FILE")]
    pub schema: PathBuf,
}

/// `records`.
#[derive(Debug, Args)]
pub struct RecordsArgs {
    /// Only this collection (all of them when absent).
    pub collection: Option<String>,
    /// Only records of this space.
    #[arg(long, value_name = "S")]
    pub space: Option<SpaceId>,
    /// At most this many records; the output then names where the next page starts.
    #[arg(long, value_name = "N")]
    pub limit: Option<NonZeroUsize>,
    /// Start after this page token (from a previous `--limit` listing).
    #[arg(long, value_name = "TOKEN")]
    pub after: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The record's id.
    pub record: RecordId,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `outbox`.
#[derive(Debug, Args)]
pub struct OutboxArgs {
    /// At most this many entries, oldest first.
    #[arg(long, value_name = "N")]
    pub limit: Option<NonZeroUsize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `resolve`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("how").required(true).multiple(false))]
pub struct ResolveArgs {
    /// The record's id.
    pub record: RecordId,
    /// The conflicted field (`_state` for a record deleted on one device and edited on another).
    pub field: String,
    /// Keep the version written on this device.
    #[arg(long, group = "how")]
    pub keep_mine: bool,
    /// Take the other device's version.
    #[arg(long, group = "how")]
    pub use_theirs: bool,
    /// Write this value instead (read by the field's type).
    #[arg(long, group = "how", value_name = "V", allow_hyphen_values = true)]
    pub value: Option<String>,
}

/// `put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The collection of the new record.
    pub collection: String,
    /// The space the record belongs to (the unit of sharing).
    #[arg(long, value_name = "S")]
    pub space: SpaceId,
    /// Initial values, as field=value.
    #[arg(value_name = "FIELD=VALUE")]
    pub values: Vec<String>,
}

/// `set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// The record's id.
    pub record: RecordId,
    /// New values, as field=value.
    #[arg(value_name = "FIELD=VALUE", required = true)]
    pub values: Vec<String>,
}

/// `text`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("edit").required(true).multiple(false))]
pub struct TextArgs {
    /// The record's id.
    pub record: RecordId,
    /// The text field.
    pub field: String,
    /// Insert TEXT at position POS.
    #[arg(long, group = "edit", num_args = 2, value_names = ["POS", "TEXT"], allow_hyphen_values = true)]
    pub insert: Option<Vec<String>>,
    /// Delete LEN characters from position POS.
    #[arg(long, group = "edit", num_args = 2, value_names = ["POS", "LEN"])]
    pub delete: Option<Vec<usize>>,
}

/// `delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The record's id.
    pub record: RecordId,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The bundle file to write.
    pub file: PathBuf,
    /// Only records of this space.
    #[arg(long, value_name = "S")]
    pub space: Option<SpaceId>,
    /// Only the changes recorded after this mark (printed by an earlier export).
    #[arg(long, value_name = "MARK")]
    pub since: Option<u64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The bundle files to read, merged in one durable step.
    #[arg(required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The relay, ws://host:port/ or wss://host:port/.
    #[arg(long, value_name = "URL")]
    pub relay: String,
    /// The token the relay's operator gave this device (`holdfast-relay token`).
    #[arg(long, value_name = "T", env = "HOLDFAST_TOKEN", hide_env_values = true)]
    pub token: String,
    /// A space to sync besides those the store holds; repeatable. A new store given none
    /// syncs the spaces its token names.
    #[arg(long = "space", value_name = "S")]
    pub spaces: Vec<SpaceId>,
    /// Send and receive everything once, then exit.
    #[arg(long)]
    pub once: bool,
    /// Stop after this many seconds (with --once: give up then; default 30).
    #[arg(long, value_name = "SECS")]
    pub deadline: Option<u64>,
    /// Print the summary as JSON (and no progress).
    #[arg(long)]
    pub json: bool,
}
