//! The record index: every stored entry is indexed under its record, in the same
//! transaction, and a record's log holds its whole history.

use super::*;

#[test]
fn every_stored_entry_is_indexed_under_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), quiet());
    let (a, b) = (space("a"), space("b"));
    let (mut x, mut y) = (Doc::new(), Doc::new());
    let x1 = entry(&a, x.record, vec![x.change(), x.change()]);
    let y1 = entry(&a, y.record, vec![y.change()]);
    let x2 = entry(&a, x.record, vec![x.change()]);
    let x_in_b = entry(
        &b,
        x.record,
        x.doc
            .get_changes(&[])
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect(),
    );
    let bytes = |e: &PushEntry| e.changes.iter().map(|c| c.len() as u64).sum::<u64>();
    let (x1_bytes, y1_bytes, x2_bytes, b_bytes) =
        (bytes(&x1), bytes(&y1), bytes(&x2), bytes(&x_in_b));
    assert_eq!(
        push(&store, vec![x1.clone(), y1, x2, x_in_b]),
        [stored(1), stored(2), stored(3), stored(1)]
    );
    // A repeat and a rejection leave the index alone.
    push(
        &store,
        vec![x1, entry(&a, x.record, vec![b"junk".to_vec()])],
    );

    let want = |entries, changes, bytes| RecordRow {
        tail_entries: entries,
        tail_changes: changes,
        tail_bytes: bytes,
        ..RecordRow::default()
    };
    assert_eq!(
        row(&store, &a, x.record),
        Some(want(2, 3, x1_bytes + x2_bytes))
    );
    assert_eq!(row(&store, &a, y.record), Some(want(1, 1, y1_bytes)));
    assert_eq!(row(&store, &b, x.record), Some(want(1, 3, b_bytes)));
    assert_eq!(row(&store, &b, y.record), None);
    assert_eq!(
        indexed(&store, &a, x.record),
        [(1, (x1_bytes, 2)), (3, (x2_bytes, 1))]
    );
    assert_eq!(indexed(&store, &a, y.record), [(2, (y1_bytes, 1))]);
}

#[test]
fn a_change_building_on_another_records_change_is_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), quiet());
    let s = space("s");
    let mut x = Doc::new();
    let other = RecordId::new_v7();
    let parent = x.change();
    let child = x.change();
    assert_eq!(
        push(&store, vec![entry(&s, x.record, vec![parent.clone()])]),
        [stored(1)]
    );
    // Also when the parent rides along: it is held, and held for another record.
    for changes in [vec![child.clone()], vec![parent, child.clone()]] {
        let got = push(&store, vec![entry(&s, other, changes)]);
        assert!(
            matches!(
                &got[0],
                Outcome::Rejected { code: RejectCode::Malformed, permanent: true, reason }
                    if reason.contains("another record")
            ),
            "{got:?}"
        );
    }
    assert_eq!(
        push(&store, vec![entry(&s, x.record, vec![child])]),
        [stored(2)]
    );
    assert_eq!(row(&store, &s, other), None);
}

#[test]
fn a_format_1_file_is_indexed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let s = space("s");
    let mut docs = [Doc::new(), Doc::new(), Doc::new()];
    let (rows, pulled) = {
        let store = open(dir.path(), quiet());
        for i in 0..12 {
            let doc = &mut docs[i % 3];
            push(&store, vec![entry(&s, doc.record, vec![doc.change()])]);
        }
        let rows: Vec<_> = docs.iter().map(|d| row(&store, &s, d.record)).collect();
        // What a format-1 relay left: no record tables, format 1.
        let txn = store.db.begin_write().unwrap();
        txn.delete_table(tables::RECORDS).unwrap();
        txn.delete_table(tables::RECORD_LOG).unwrap();
        txn.delete_table(tables::SNAPSHOTS).unwrap();
        txn.open_table(tables::META)
            .unwrap()
            .insert(tables::META_FORMAT, &1u32.to_le_bytes()[..])
            .unwrap();
        txn.commit().unwrap();
        (rows, pull_from(&store, &s, None))
    };
    let store = open(dir.path(), quiet());
    let again: Vec<_> = docs.iter().map(|d| row(&store, &s, d.record)).collect();
    assert_eq!(again, rows);
    assert_eq!(pull_from(&store, &s, None), pulled);
    let txn = store.db.begin_read().unwrap();
    let meta = txn.open_table(tables::META).unwrap();
    let format = read_meta(&meta, tables::META_FORMAT).unwrap().unwrap();
    assert_eq!(format, FORMAT_VERSION.to_le_bytes());
    drop((meta, txn));
    let page = store.bootstrap(&s, None, u64::MAX).unwrap();
    assert_eq!(page.records.len(), 3);
}

/// The index rows of a record: (seq, (change bytes, change count)).
fn indexed(store: &RedbLogStore, space: &SpaceId, record: RecordId) -> Vec<(u64, (u64, u64))> {
    let txn = store.db.begin_read().unwrap();
    let table = txn.open_table(tables::RECORD_LOG).unwrap();
    let rid = tables::rid(record);
    table
        .range((space.as_str(), rid, 0)..=(space.as_str(), rid, u64::MAX))
        .unwrap()
        .map(|item| {
            let (k, v) = item.unwrap();
            (k.value().2, v.value())
        })
        .collect()
}
