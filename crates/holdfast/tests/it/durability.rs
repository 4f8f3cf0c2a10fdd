//! Every write the store acknowledges is on disk when it returns: the storage backend has
//! been told to sync after the last byte was written. The store pins
//! `Durability::Immediate` on its write transactions rather than inheriting redb's default.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use holdfast::{Field, Resolution, ScalarType, Schema, Store, StoreConfig};
use redb::backends::FileBackend;
use redb::StorageBackend;

use crate::util::{schema, space};

/// What a [`CountingDisk`] saw.
#[derive(Debug, Default)]
struct Syncs {
    count: AtomicU64,
    /// Bytes written since the last `sync_data` (a length change is not counted: redb
    /// shrinks the file after the flush that makes a commit durable).
    unsynced: AtomicBool,
}

/// A file backend that counts `sync_data` calls and whether writes are waiting for one.
#[derive(Debug)]
struct CountingDisk {
    file: FileBackend,
    syncs: Arc<Syncs>,
}

impl StorageBackend for CountingDisk {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.file.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.file.sync_data()?;
        self.syncs.count.fetch_add(1, Ordering::SeqCst);
        self.syncs.unsynced.store(false, Ordering::SeqCst);
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.syncs.unsynced.store(true, Ordering::SeqCst);
        self.file.write(offset, data)
    }
}

fn open_counting(path: &Path, schema: Schema) -> (Store, Arc<Syncs>) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    let syncs = Arc::new(Syncs::default());
    let disk = CountingDisk {
        file: FileBackend::new(file).unwrap(),
        syncs: syncs.clone(),
    };
    let store = Store::open_with_backend(disk, StoreConfig::new(schema)).unwrap();
    (store, syncs)
}

/// Runs `step` and checks it synced the file after its last write before returning.
fn check<T>(what: &str, syncs: &Syncs, step: impl FnOnce() -> T) -> T {
    let before = syncs.count.load(Ordering::SeqCst);
    let out = step();
    assert!(
        syncs.count.load(Ordering::SeqCst) > before,
        "{what} returned without syncing the file"
    );
    assert!(
        !syncs.unsynced.load(Ordering::SeqCst),
        "{what} returned with bytes written after its last sync"
    );
    out
}

fn assert_synced(what: &str, syncs: &Syncs) {
    assert!(
        syncs.count.load(Ordering::SeqCst) > 0,
        "{what} never synced"
    );
    assert!(
        !syncs.unsynced.load(Ordering::SeqCst),
        "{what} left bytes unsynced"
    );
}

#[test]
fn every_acknowledged_write_is_synced_before_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (store, syncs) = open_counting(&dir.path().join("a.redb"), schema());
    assert_synced("open", &syncs);
    let id = check("write", &syncs, || {
        store
            .write(|tx| {
                let id = tx.create("note", &space("t"))?;
                tx.set(id, "status", "draft")?;
                Ok(id)
            })
            .unwrap()
    });
    check("update", &syncs, || {
        store.update(id, |tx| tx.set(id, "title", "t")).unwrap()
    });
    check("delete", &syncs, || {
        store.write(|tx| tx.delete(id)).unwrap()
    });

    check("restore", &syncs, || {
        store.write(|tx| tx.restore(id)).unwrap()
    });

    // Changes from elsewhere, and a conflict settled.
    let (other, _) = open_counting(&dir.path().join("b.redb"), schema());
    let bundle = store.export_changes(None, None).unwrap();
    let _applied = other.import_changes(&bundle.bytes).unwrap();
    other.write(|tx| tx.set(id, "status", "done")).unwrap();
    store.write(|tx| tx.set(id, "status", "open")).unwrap();
    let theirs = other.export_changes(None, None).unwrap();
    let _applied = check("import", &syncs, || {
        store.import_changes(&theirs.bytes).unwrap()
    });
    check("resolve", &syncs, || {
        store.resolve(id, "status", Resolution::KeepMine).unwrap()
    });
}

#[test]
fn a_migration_at_open_is_synced_before_open_returns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.redb");
    let (store, _) = open_counting(&path, schema());
    store
        .write(|tx| {
            let id = tx.create("item", &space("t"))?;
            tx.set(id, "name", "bolt")
        })
        .unwrap();
    drop(store);
    // Version 2 indexes `item.name`: opening back-fills the index in the open transaction.
    let mut v2 = schema();
    v2.version = 2;
    let item = v2.collections.get_mut("item").unwrap();
    item.fields
        .insert("name".into(), Field::lww(ScalarType::String).indexed());
    let (store, syncs) = open_counting(&path, v2);
    assert_synced("a migrating open", &syncs);
    assert_eq!(store.schema().version, 2);
    // The file as a crash right now would leave it: the migration is in it.
    let copy = dir.path().join("crashed.redb");
    std::fs::copy(&path, &copy).unwrap();
    let stored = Store::stored_schema(&copy).unwrap().unwrap();
    assert_eq!(
        stored.version, 2,
        "the migration was not on disk when open returned"
    );
}
