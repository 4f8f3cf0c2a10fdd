//! A damaged store file: whatever bytes are flipped, opening it, reading it and checking it
//! answer `Ok` or a typed error, never a panic.
//!
//! redb panics on some damaged pages (cberner/redb#1334); the store turns such a panic into
//! `Error::Corrupt` in one place (`src/damage.rs`). The first test pins redb's behaviour,
//! the others hold the store to its promise for that input and for random damage.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use holdfast::{Error, Query, Store, StoreConfig};
use redb::backends::InMemoryBackend;
use redb::{ReadableDatabase, StorageBackend, TableDefinition};

use crate::util::{schema, space, Rng};

/// Records in the store that is damaged.
const RECORDS: usize = 30;
/// Damaged copies tried per run, at most.
const MUTATIONS_MAX: usize = 200;
/// Seconds a run of the damage loop may take by default (`HOLDFAST_DAMAGE_SECS` sets it).
const RUN_SECS_DEFAULT: u64 = 5;
/// Seconds one damaged copy may take before it counts as a hang. A copy takes well under
/// one, but about one in a thousand damages a page number into one of a page of up to
/// 4 GiB, which redb allocates and zeroes before it finds the read past the end of the
/// file (cberner/redb#1334, "allocation amplification"; a debug build's open visits every
/// page): a minute or two in a debug build, then a typed error.
const ANSWER_SECS_MAX: u64 = 300;

#[test]
fn redb_panics_on_a_damaged_table_definition() {
    // Two tables: in the table tree's leaf the names come first, then the definitions,
    // so the byte after the last name is the first definition's table type byte (3).
    let first: TableDefinition<u64, u64> = TableDefinition::new("a_first");
    let last: TableDefinition<u64, u64> = TableDefinition::new("z_last");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.redb");
    let db = redb::Database::create(&path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(first).unwrap().insert(1, 1).unwrap();
    txn.open_table(last).unwrap().insert(1, 1).unwrap();
    txn.commit().unwrap();
    drop(db);
    assert!(damage_table_type(&path, b"z_last") > 0);

    let opened = catch_unwind(|| -> Result<(), redb::Error> {
        let db = redb::Database::open(&path)?;
        db.begin_read()?.open_table(first)?;
        Ok(())
    });
    // redb 4.5 hits `unreachable!()` (table_tree_base.rs: in `open` in debug builds, in
    // `open_table` in release builds) instead of returning `StorageError::Corrupted`. When
    // this fails, redb reports the damage itself: the guard in `src/damage.rs` may then go,
    // once `damaged_files_give_typed_errors` passes without it.
    assert!(opened.is_err(), "redb now answers {:?}", opened.ok());
}

#[test]
fn the_same_damage_in_a_store_is_a_corrupt_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    build(&path);
    // "records" is the last of the store's table names.
    assert!(damage_table_type(&path, b"records") > 0);
    let check = |what: &str, result: Result<(), Error>| match result {
        Err(Error::Corrupt(detail)) => assert!(!detail.contains("unreachable"), "{detail}"),
        other => panic!("{what}: expected Corrupt, got {other:?}"),
    };
    check(
        "open",
        Store::open(&path, StoreConfig::new(schema())).map(drop),
    );
    check("open_existing", Store::open_existing(&path).map(drop));
    check("check", Store::check(&path).map(drop));
    check("compact", Store::compact(&path).map(drop));
}

#[test]
fn damaged_files_give_typed_errors() {
    let mut rng = Rng::from_env("damaged_files_give_typed_errors");
    let secs = std::env::var("HOLDFAST_DAMAGE_SECS")
        .map(|s| {
            s.parse()
                .expect("HOLDFAST_DAMAGE_SECS is a number of seconds")
        })
        .unwrap_or(RUN_SECS_DEFAULT);
    let mutations = if secs > RUN_SECS_DEFAULT {
        usize::MAX
    } else {
        MUTATIONS_MAX
    };
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.redb");
    build(&good);
    let pristine = std::fs::read(&good).unwrap();
    exercise(&pristine).expect("the undamaged store reads back");

    // The seed replays the damage, but the store it damages is built anew (random ids):
    // a failing copy is also saved, to be committed under tests/data and replayed. The copy
    // being tried is on disk too, for a failure that ends the process (an abort).
    let current = std::env::temp_dir().join(format!(
        "holdfast-damage-current-{}.redb",
        std::process::id()
    ));
    let started = Instant::now();
    let (mut tried, mut errors) = (0, 0);
    let mut failures = Vec::new();
    while tried < mutations && started.elapsed() < Duration::from_secs(secs) {
        tried += 1;
        let mut bytes = pristine.clone();
        let what = damage(&mut bytes, &mut rng);
        std::fs::write(&current, &bytes).unwrap();
        match guarded(bytes.clone()) {
            Ok(Ok(())) => {}
            Ok(Err(_)) => errors += 1,
            Err(why) => {
                let saved = std::env::temp_dir().join(format!("holdfast-damage-{tried}.redb"));
                std::fs::write(&saved, &bytes).unwrap();
                failures.push(format!("copy {tried}, {what}: {why} (saved as {saved:?})"));
                if why.starts_with("no answer") {
                    break; // Its thread still runs.
                }
            }
        }
    }
    let _ = std::fs::remove_file(&current);
    eprintln!(
        "{tried} damaged copies of {} bytes: {errors} errors, {} failures",
        pristine.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
}

#[test]
fn damaged_files_the_loop_found_give_typed_errors() {
    // Each with what it now answers: `Corrupt`, or anything but a panic or a hang.
    let found: [(&str, &[u8], bool); 4] = [
        (
            "records-scan-loops-1",
            include_bytes!("../data/records-scan-loops-1.redb.zst"),
            true,
        ),
        (
            "records-scan-loops-2",
            include_bytes!("../data/records-scan-loops-2.redb.zst"),
            true,
        ),
        (
            "records-scan-loops-3",
            include_bytes!("../data/records-scan-loops-3.redb.zst"),
            true,
        ),
        (
            "close-panics",
            include_bytes!("../data/close-panics.redb.zst"),
            false,
        ),
    ];
    for (name, compressed, corrupt) in found {
        let bytes = zstd::decode_all(compressed).unwrap();
        match guarded(bytes) {
            Ok(Err(Error::Corrupt(_))) => {}
            Ok(_) if !corrupt => {}
            other => panic!("{name}: expected Corrupt, got {other:?}"),
        }
    }
}

/// [`exercise`] on its own thread: its answer, or why there is none (a panic, or no
/// answer within [`ANSWER_SECS_MAX`]).
fn guarded(bytes: Vec<u8>) -> Result<Result<(), Error>, String> {
    let (send, answer) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(catch_unwind(AssertUnwindSafe(|| exercise(&bytes))));
    });
    match answer.recv_timeout(Duration::from_secs(ANSWER_SECS_MAX)) {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(payload)) => Err(payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into())),
        Err(_) => Err(format!("no answer in {ANSWER_SECS_MAX} s: a hang")),
    }
}

/// A closed store of [`RECORDS`] notes and items, some edited after creation.
fn build(path: &Path) {
    let store = Store::open(path, StoreConfig::new(schema())).unwrap();
    let team = space("team");
    let mut ids = Vec::new();
    for batch in 0..RECORDS / 10 {
        let made = store
            .write(|tx| {
                let mut made = Vec::new();
                for i in 0..10 {
                    let n = batch * 10 + i;
                    let id = if n % 3 == 0 {
                        let id = tx.create("item", &team)?;
                        tx.set(id, "name", format!("item {n}"))?;
                        id
                    } else {
                        let id = tx.create("note", &team)?;
                        // Titles of a few bytes to a few kilobytes: the records table has
                        // leaves, branches and values larger than a page.
                        tx.set(id, "title", format!("note {n} ").repeat(1 + n * n % 500))?;
                        tx.set(id, "priority", n as i64)?;
                        id
                    };
                    made.push(id);
                }
                Ok(made)
            })
            .unwrap();
        ids.extend(made);
    }
    for (n, id) in ids.iter().enumerate().step_by(5) {
        let counter = if n % 3 == 0 { "on_hand" } else { "views" };
        store
            .update(*id, |tx| tx.increment(*id, counter, 1))
            .unwrap();
    }
}

/// Sets the byte after each copy of `name` in the file at `path` (the table type byte of a
/// table definition) to a type redb does not know; returns how many it changed.
fn damage_table_type(path: &Path, name: &[u8]) -> usize {
    let mut bytes = std::fs::read(path).unwrap();
    let at: Vec<usize> = bytes
        .windows(name.len() + 1)
        .enumerate()
        .filter(|(_, w)| w.starts_with(name) && w[name.len()] == 3)
        .map(|(i, _)| i + name.len())
        .collect();
    for &i in &at {
        bytes[i] = 0x77;
    }
    std::fs::write(path, bytes).unwrap();
    at.len()
}

/// Opens, reads, closes and checks a store file of these bytes as `holdfast status`,
/// `records` and `check` do, going on after an error to reach as many pages as it can;
/// returns the first error. The file is kept in memory: the same bytes and the same redb
/// code as on disk, without a disk's fsyncs, so that a run tries many copies.
fn exercise(bytes: &[u8]) -> Result<(), Error> {
    let file = Memory::of(bytes);
    let read = match Store::open_with_backend(file.clone(), StoreConfig::new(schema())) {
        Ok(store) => read_everything(&store),
        Err(e) => Err(e),
    };
    let check = Store::check_backend(file).map(drop);
    read.and(check)
}

/// A store file in memory that outlives the store opened on it, for the check after.
#[derive(Clone, Debug)]
struct Memory(Arc<InMemoryBackend>);

impl Memory {
    fn of(bytes: &[u8]) -> Memory {
        let memory = InMemoryBackend::new();
        memory.set_len(bytes.len() as u64).unwrap();
        memory.write(0, bytes).unwrap();
        Memory(Arc::new(memory))
    }
}

impl StorageBackend for Memory {
    fn len(&self) -> Result<u64, io::Error> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.0.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.0.write(offset, data)
    }
}

fn read_everything(store: &Store) -> Result<(), Error> {
    let mut first = Ok(());
    let mut keep = |result: Result<(), Error>| {
        if first.is_ok() {
            first = result;
        }
    };
    keep(store.sync_summary().map(drop));
    keep(store.conflict_counts().map(drop));
    keep(store.conflicts().map(drop));
    keep(store.spaces().map(drop));
    keep(store.outbox().list(None, usize::MAX).map(drop));
    for collection in ["note", "item"] {
        let query = Query::Space(&space("team"), collection);
        keep(store.query(&query, 10, None).map(drop));
        let ids = match store.all(collection) {
            Ok(ids) => ids,
            Err(e) => {
                keep(Err(e));
                continue;
            }
        };
        for id in ids {
            keep(store.get(id).map(drop));
            keep(store.heads(id).map(drop));
            keep(store.sync_state(id).map(drop));
        }
    }
    first
}

/// Damages `bytes` one of three ways at a random offset; says how, for the failure message.
fn damage(bytes: &mut [u8], rng: &mut Rng) -> String {
    let len = bytes.len() as u64;
    match rng.below(3) {
        0 => {
            let at = rng.below(len) as usize;
            let with = 1 + rng.below(255) as u8;
            bytes[at] ^= with;
            format!("byte {at} xor {with:#04x}")
        }
        1 => {
            let at = rng.below(len) as usize;
            let end = (at + 1 + rng.below(512) as usize).min(bytes.len());
            let with = 1 + rng.below(255) as u8;
            bytes[at..end].iter_mut().for_each(|b| *b ^= with);
            format!("bytes {at}..{end} xor {with:#04x}")
        }
        _ => {
            let page = rng.below(len / 4096) as usize * 4096;
            bytes[page..page + 4096].fill(0);
            format!("page at {page} zeroed")
        }
    }
}
