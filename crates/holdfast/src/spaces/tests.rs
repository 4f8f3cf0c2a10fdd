//! The spaces a store knows, from its records and its sync cursors.

use crate::{Cursor, Field, Schema, SpaceId, Store, StoreConfig};

#[test]
fn spaces_of_records_deleted_ones_and_cursors() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::new(1).collection("note", [("body", Field::text())]);
    let store = Store::open(dir.path().join("s.redb"), StoreConfig::new(schema)).unwrap();
    assert!(store.spaces().unwrap().is_empty());
    let space = |s: &str| SpaceId::new(s).unwrap();
    store
        .write(|tx| {
            tx.create("note", &space("b-team"))?;
            tx.create("note", &space("a-team"))?;
            tx.create("note", &space("a-team"))?;
            let gone = tx.create("note", &space("gone"))?;
            tx.splice_text(gone, "body", 0, 0, "x")?;
            Ok(())
        })
        .unwrap();
    let gone = store.records_in_space(&space("gone")).unwrap()[0];
    store.write(|tx| tx.delete(gone)).unwrap();
    store
        .inbox()
        .apply_changes(&space("pulled"), &[], Cursor { epoch: 1, seq: 0 })
        .unwrap();
    assert_eq!(
        store.spaces().unwrap(),
        ["a-team", "b-team", "gone", "pulled"].map(space)
    );
}
