//! Running a parsed command line: opening the store, then one subcommand (`read` lists
//! and shows, `write` edits, `bundle` exports and imports, `maintenance` checks and
//! compacts, `sync` talks to a relay).

mod bundle;
mod maintenance;
mod read;
mod sync;
mod write;

use std::io::{IsTerminal, Write};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use holdfast::{Store, Value};

use crate::cli::{Cli, Command};
use crate::error::{Error, Result};
use crate::input::{hex_encode, rfc3339_ms};

/// Runs `cli`, printing what it shows to `out` (progress and notes go to standard error).
///
/// A damaged file is an error like any other (`Error::Damaged`); a panic, which would be a
/// bug, is still reported in words rather than as a crash with a backtrace.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    contained(|| dispatch(cli, out)).unwrap_or_else(|why| {
        Err(Error::Failed(format!(
            "stopped unexpectedly: {why}. If the store file may be damaged, \
             `holdfast check` tells; a backup or the relay can restore it"
        )))
    })
}

fn dispatch(cli: Cli, out: &mut dyn Write) -> Result<()> {
    let db = cli
        .db
        .ok_or_else(|| Error::input("no store given: pass --db PATH (or set HOLDFAST_DB)"))?;
    match cli.command {
        Command::Init(args) => return write::init(&db, &args, out),
        Command::Check(args) => return maintenance::check(&db, args.json, out),
        Command::Compact(args) => return maintenance::compact(&db, args.json, out),
        _ => {}
    }
    let store = open(&db)?;
    match cli.command {
        Command::Status(args) => read::status(&store, &db, args.json, out),
        Command::Records(args) => read::records(&store, &args, out),
        Command::Show(args) => read::show(&store, args.record, args.json, out),
        Command::Outbox(args) => read::outbox(&store, args.limit, args.json, out),
        Command::Conflicts(args) => read::conflicts(&store, args.json, out),
        Command::Resolve(args) => write::resolve(&store, &args, out),
        Command::Put(args) => write::put(&store, &args, out),
        Command::Set(args) => write::set(&store, &args, out),
        Command::Text(args) => write::text(&store, &args, out),
        Command::Delete(args) => write::delete(&store, args.record, out),
        Command::Export(args) => bundle::export(&store, &args, out),
        Command::Import(args) => bundle::import(&store, &args, out),
        Command::Sync(args) => sync::sync(&store, &args, out),
        Command::Init(_) | Command::Check(_) | Command::Compact(_) => unreachable!("run above"),
    }
}

/// Opens an existing store with the schema it keeps.
fn open(db: &Path) -> Result<Store> {
    Store::open_existing(db).map_err(|e| match e {
        holdfast::Error::Storage(e) => Error::input(format!(
            "could not open {}: {e} (is it a Holdfast store, and not open in another program?)",
            db.display()
        )),
        e => e.into(),
    })
}

/// Refuses a path that holds no store before a command that reads the file directly.
fn existing_store(db: &Path) -> Result<()> {
    let not_a_store = || holdfast::Error::NotAStore(db.display().to_string());
    match Store::stored_schema(db) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(not_a_store().into()),
        Err(holdfast::Error::Storage(e)) => Err(Error::input(format!(
            "could not open {}: {e} (is it a Holdfast store, and not open in another program?)",
            db.display()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Runs `f`, turning a panic into `Err` with its message, printed by no one.
fn contained<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no reason given".to_owned())
    })
}

/// Writes a line to the output.
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {
        writeln!($out, $($arg)*).map_err(crate::output_error)
    };
}
use say;

/// Whether progress may be drawn: standard output is a terminal and no JSON is wanted.
fn show_progress(json: bool) -> bool {
    !json && std::io::stdout().is_terminal()
}

/// "1 change", "3 changes".
fn count(n: impl Into<u64>, noun: &str) -> String {
    match n.into() {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// A scalar for people: strings quoted, timestamps as times, bytes in hex.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Timestamp(ms) => rfc3339_ms(*ms),
        Value::Bytes(b) => format!("0x{}", hex_encode(b)),
        other => other.to_string(),
    }
}

/// A time for people: "2024-05-01T12:00:00.000Z (3 minutes ago)".
fn time_text(ms: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let secs = (now - ms) / 1000;
    let ago = match secs {
        s if s < 0 => "in the future by this clock".to_owned(),
        s if s < 60 => "just now".to_owned(),
        s if s < 3600 => format!("{} ago", count((s / 60) as u64, "minute")),
        s if s < 86_400 => format!("{} ago", count((s / 3600) as u64, "hour")),
        s => format!("{} ago", count((s / 86_400) as u64, "day")),
    };
    format!("{} ({ago})", rfc3339_ms(ms))
}

/// The file's path as given, for messages and JSON.
fn path_text(path: &Path) -> String {
    path.display().to_string()
}

/// A sibling path to write first and rename over `path`, so a reader never sees half a file.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}
