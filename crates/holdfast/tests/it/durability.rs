//! Every write the store acknowledges is on disk when it returns: the storage backend has
//! been told to sync after the last byte was written. The store pins
//! `Durability::Immediate` on its write transactions rather than inheriting redb's default.

use std::sync::atomic::Ordering;

use holdfast::{Field, Resolution, ScalarType, Store, StoreConfig};

use crate::util::{open_counting, schema, space, Syncs};

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
    let (store, syncs) = open_counting(&dir.path().join("a.redb"), StoreConfig::new(schema()));
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
    let (other, _) = open_counting(&dir.path().join("b.redb"), StoreConfig::new(schema()));
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
    let (store, _) = open_counting(&path, StoreConfig::new(schema()));
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
    let (store, syncs) = open_counting(&path, StoreConfig::new(v2));
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
