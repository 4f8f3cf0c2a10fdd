//! Compaction folds chunks into one snapshot and changes nothing a reader sees.

use redb::ReadableDatabase;

use crate::tables::{self, RecordMeta};
use crate::{Error, Field, RecordId, ScalarType, Schema, SpaceId, Store, StoreConfig};

fn schema() -> Schema {
    Schema::new(1).collection(
        "note",
        [
            ("title", Field::lww(ScalarType::String)),
            ("body", Field::text()),
        ],
    )
}

fn chunks(path: &std::path::Path, id: RecordId) -> (u32, usize) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let records = txn.open_table(tables::RECORDS).unwrap();
    let key = tables::rid(id);
    let row = records.get((key, tables::SLOT_META)).unwrap().unwrap();
    let meta: RecordMeta = tables::decode_row(tables::RECORD_ROW_V1, row.value(), "r").unwrap();
    let rows = records.range((key, 0)..=(key, u32::MAX)).unwrap().count();
    (meta.chunks, rows)
}

#[test]
fn records_become_one_snapshot_and_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let space = SpaceId::new("team").unwrap();
    let store = Store::open(&path, StoreConfig::new(schema())).unwrap();
    let id = store
        .write(|tx| {
            let id = tx.create("note", &space)?;
            tx.set(id, "title", "Plan")?;
            Ok(id)
        })
        .unwrap();
    for i in 0..20 {
        store
            .update(id, |tx| tx.splice_text(id, "body", i, 0, "x"))
            .unwrap();
    }
    let untouched = store
        .write(|tx| {
            let id = tx.create("note", &space)?;
            tx.set(id, "title", "Once")?;
            Ok(id)
        })
        .unwrap();
    let before = store.get(id).unwrap();
    let pending = store.sync_summary().unwrap().pending;
    drop(store);
    let (chunks_before, _) = chunks(&path, id);
    assert!(chunks_before > 1, "the edits appended chunks");

    // A record written once holds its changes as a chunk after an empty snapshot, so it
    // is folded too.
    assert_eq!(chunks(&path, untouched).0, 2);
    assert_eq!(Store::compact(&path).unwrap(), 2);
    assert_eq!(chunks(&path, id), (1, 2), "metadata and one snapshot");
    assert_eq!(chunks(&path, untouched), (1, 2));
    assert!(Store::check(&path).unwrap().is_ok());
    assert_eq!(Store::compact(&path).unwrap(), 0, "nothing left to fold");

    let store = Store::open(&path, StoreConfig::new(schema())).unwrap();
    assert_eq!(store.get(id).unwrap(), before);
    assert_eq!(
        store.sync_summary().unwrap().pending,
        pending,
        "outbox kept"
    );
    // Later writes append chunks after the new snapshot.
    store
        .update(id, |tx| tx.splice_text(id, "body", 0, 0, "y"))
        .unwrap();
    assert_eq!(
        store.get(id).unwrap().text("body").unwrap(),
        "y".to_owned() + &"x".repeat(20)
    );
    drop(store);
    assert!(Store::check(&path).unwrap().is_ok());
    let store = Store::open(&path, StoreConfig::new(schema())).unwrap();
    assert_eq!(store.get(id).unwrap().text("body").unwrap().len(), 21);
}

#[test]
fn a_file_without_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.redb");
    assert!(matches!(Store::compact(&missing), Err(Error::NotAStore(_))));
    assert!(!missing.exists(), "nothing created");
    let empty = dir.path().join("empty.redb");
    drop(redb::Database::create(&empty).unwrap());
    assert!(matches!(Store::compact(&empty), Err(Error::NotAStore(_))));
}
