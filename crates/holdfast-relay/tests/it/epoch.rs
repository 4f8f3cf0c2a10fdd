//! Epochs: cursors this relay cannot vouch for are answered with repair.

use holdfast_relay::{RepairReason, StoreError, FORMAT_VERSION};

use super::*;

fn repair(store: &dyn LogStore, s: &SpaceId, cursor: Cursor) -> RepairReason {
    match store.pull(s, Some(cursor), 1 << 20).unwrap() {
        PullResult::Repair { reason } => reason,
        other => panic!("expected repair, got {other:?}"),
    }
}

fn fill(store: &RedbLogStore, s: &SpaceId, doc: &mut Doc, n: usize) {
    for _ in 0..n {
        let e = entry(s, doc.record, vec![doc.change()]);
        assert!(matches!(push(store, vec![e])[0], Outcome::Stored { .. }));
    }
}

#[test]
fn each_store_gets_its_own_epoch_kept_across_restarts() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open(d1.path()), open(d2.path()));
    assert_ne!(a.epoch(), b.epoch());
    assert_ne!(a.relay_id(), b.relay_id());
    let epoch = a.epoch();
    drop(a);
    assert_eq!(open(d1.path()).epoch(), epoch);
}

#[test]
fn a_cursor_just_beyond_the_end_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = space("notes");
    fill(&store, &s, &mut Doc::new(), 3);
    let epoch = store.epoch();
    let (page, _, more) = changes(&store, &s, Some(Cursor { epoch, seq: 3 }), 1 << 20);
    assert!(page.is_empty() && !more, "at the end: nothing to send");
    assert_eq!(
        repair(&store, &s, Cursor { epoch, seq: 4 }),
        RepairReason::BeyondEnd {
            cursor_seq: 4,
            last_seq: 3
        }
    );
    assert_eq!(
        repair(&store, &space("empty"), Cursor { epoch, seq: 1 }),
        RepairReason::BeyondEnd {
            cursor_seq: 1,
            last_seq: 0
        }
    );
}

#[test]
fn a_cursor_of_another_epoch_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = space("notes");
    fill(&store, &s, &mut Doc::new(), 2);
    let other = store.epoch().wrapping_add(1);
    assert_eq!(
        repair(
            &store,
            &s,
            Cursor {
                epoch: other,
                seq: 0
            }
        ),
        RepairReason::OtherEpoch {
            cursor_epoch: other,
            epoch: store.epoch()
        }
    );
}

#[test]
fn a_relay_restored_from_an_older_backup_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.redb");
    let backup = dir.path().join("backup.redb");
    let s = space("notes");
    let mut doc = Doc::new();
    let store = open(dir.path());
    fill(&store, &s, &mut doc, 3);
    drop(store);
    std::fs::copy(&path, &backup).unwrap();

    // After the backup, devices push more and one pulls to the end.
    let store = open(dir.path());
    fill(&store, &s, &mut doc, 2);
    let (_, device_cursor, _) = changes(&store, &s, None, 1 << 20);
    assert_eq!(device_cursor.seq, 5);
    drop(store);

    // The relay's disk is lost and the backup restored.
    std::fs::copy(&backup, &path).unwrap();
    let store = open(dir.path());
    assert_eq!(
        store.epoch(),
        device_cursor.epoch,
        "a backup carries its epoch"
    );
    assert_eq!(
        repair(&store, &s, device_cursor),
        RepairReason::BeyondEnd {
            cursor_seq: 5,
            last_seq: 3
        }
    );
    // The restore procedure rotates the epoch: every cursor of before is repaired, even
    // one that happens to be within the restored log.
    let old = store.epoch();
    let new = store.rotate_epoch().unwrap();
    assert_ne!(new, old);
    assert_eq!(store.epoch(), new);
    for seq in [0, 3, 5] {
        assert_eq!(
            repair(&store, &s, Cursor { epoch: old, seq }),
            RepairReason::OtherEpoch {
                cursor_epoch: old,
                epoch: new
            }
        );
    }
    // Devices continue in the new epoch; the numbering of the log is kept.
    let (page, next, _) = changes(&store, &s, None, 1 << 20);
    assert_eq!((page.len(), next), (3, Cursor { epoch: new, seq: 3 }));
    drop(store);
    assert_eq!(open(dir.path()).epoch(), new, "the rotation is durable");
}

#[test]
fn a_file_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let db = redb::Database::create(dir.path().join("relay.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
        let mut meta = txn.open_table(meta).unwrap();
        meta.insert("format", &(FORMAT_VERSION + 1).to_le_bytes()[..])
            .unwrap();
    }
    txn.commit().unwrap();
    drop(db);
    let err =
        RedbLogStore::open(dir.path().join("relay.redb"), StoreConfig::default()).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerFormat { found, supported }
            if found == FORMAT_VERSION + 1 && supported == FORMAT_VERSION),
        "{err:?}"
    );
}
