//! Snapshots: when a record is due, what the compactor writes, and that pulls never change.

use super::*;

#[test]
fn records_are_due_by_the_configured_thresholds() {
    let config = StoreConfig::default();
    let check = |entries, changes, bytes, snapshot_bytes, due: bool| {
        let row = RecordRow {
            snapshot_seq: u64::from(snapshot_bytes > 0),
            snapshot_bytes,
            tail_entries: entries,
            tail_changes: changes,
            tail_bytes: bytes,
        };
        assert_eq!(config.compaction_due(&row), due, "{row:?}");
    };
    check(0, 0, 0, 0, false);
    check(15, 15, 1500, 0, false);
    check(16, 16, 1600, 0, true);
    check(1, 1, COMPACT_TAIL_BYTES_MIN_DEFAULT - 1, 0, false);
    check(1, 1, COMPACT_TAIL_BYTES_MIN_DEFAULT, 0, true);
    // A large snapshot waits for a tail of 10% of it...
    check(16, 16, 99_999, 1_000_000, false);
    check(16, 16, 100_000, 1_000_000, true);
    // ... unless the tail has too many changes to send as changes.
    check(511, 511, 5110, 10_000_000, false);
    check(1, 512, 5120, 10_000_000, true);
}

#[test]
fn due_records_are_urgent_at_the_hard_limits() {
    let config = StoreConfig::default();
    let check = |changes, bytes, snapshot_bytes, urgent: bool| {
        let row = RecordRow {
            snapshot_seq: u64::from(snapshot_bytes > 0),
            snapshot_bytes,
            tail_entries: changes,
            tail_changes: changes,
            tail_bytes: bytes,
        };
        assert_eq!(config.compaction_urgent(&row), urgent, "{row:?}");
    };
    check(0, 0, 0, false);
    // Due (16 entries, 10% of the snapshot) but not urgent: it waits for quiet.
    check(16, 1600, 0, false);
    check(16, 100_000, 1_000_000, false);
    // A tail as large as the snapshot, and at least 64 KiB...
    check(16, 999_999, 1_000_000, false);
    check(16, 1_000_000, 1_000_000, true);
    check(16, COMPACT_TAIL_BYTES_MIN_DEFAULT - 1, 1000, false);
    check(16, COMPACT_TAIL_BYTES_MIN_DEFAULT, 1000, true);
    // ... or too many changes to send as changes.
    check(511, 5110, 10_000_000, false);
    check(512, 5120, 10_000_000, true);
}

/// A record being pushed to is compacted once it is quiet, or at once when urgent; pushes
/// to a queued record put its compaction off again.
#[test]
fn the_background_compactor_waits_for_a_record_to_be_quiet_unless_it_is_urgent() {
    let dir = tempfile::tempdir().unwrap();
    let s = space("s");
    let quiet = Duration::from_millis(600);
    let store = open(
        dir.path(),
        StoreConfig {
            compact_tail_changes_min: 64,
            compact_quiet: quiet,
            ..StoreConfig::default()
        },
    );
    let (mut typed, mut urgent) = (Doc::new(), Doc::new());
    let start = std::time::Instant::now();
    // `typed` is due after 16 pushes, then pushed to every 100 ms for twice the quiet time.
    // `last_push` is taken before the push: it cannot be compacted before `quiet` after.
    let mut last_push = start;
    for i in 0..(COMPACT_TAIL_ENTRIES_MIN_DEFAULT + 12) {
        last_push = std::time::Instant::now();
        push(&store, vec![entry(&s, typed.record, vec![typed.change()])]);
        if i >= COMPACT_TAIL_ENTRIES_MIN_DEFAULT {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // `urgent` gets 64 changes in one entry: compacted while `typed` still waits.
    let changes = (0..64).map(|_| urgent.change()).collect();
    push(&store, vec![entry(&s, urgent.record, changes)]);
    eventually("the urgent record is compacted", || {
        row(&store, &s, urgent.record).unwrap().snapshot_seq > 0 && store.compactions() == 1
    });
    let waited = last_push.elapsed();
    // On a loaded machine the urgent compaction may come later than that.
    if waited < quiet {
        assert_eq!(
            row(&store, &s, typed.record).unwrap().snapshot_seq,
            0,
            "compacted {waited:?} after its last push, before {quiet:?} of quiet"
        );
    }
    eventually("the typed record is compacted once quiet", || {
        row(&store, &s, typed.record).unwrap().snapshot_seq > 0 && store.compactions() == 2
    });
    assert!(
        last_push.elapsed() >= quiet,
        "compacted {:?} after its last push",
        last_push.elapsed()
    );
    assert_eq!(
        row(&store, &s, typed.record).unwrap().snapshot_seq,
        COMPACT_TAIL_ENTRIES_MIN_DEFAULT + 12,
        "one compaction, after the last push"
    );
}

#[test]
fn compaction_writes_a_snapshot_of_the_log_and_pulls_stay_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), quiet());
    let s = space("s");
    let (mut busy, mut calm) = (Doc::new(), Doc::new());
    for i in 0..20 {
        let doc = if i < 3 { &mut calm } else { &mut busy };
        push(&store, vec![entry(&s, doc.record, vec![doc.change()])]);
    }
    let wire_before = wire(&store, &s);
    assert_eq!(store.compact_now().unwrap(), 1);
    assert_eq!(store.compactions(), 1);
    assert_eq!(wire(&store, &s), wire_before, "the log is never rewritten");

    let compacted = row(&store, &s, busy.record).unwrap();
    assert_eq!(
        compacted,
        RecordRow {
            snapshot_seq: 20,
            snapshot_bytes: compacted.snapshot_bytes,
            ..RecordRow::default()
        }
    );
    assert_eq!(row(&store, &s, calm.record).unwrap().snapshot_seq, 0);
    let snapshot = snapshot(&store, &s, busy.record);
    assert_eq!(snapshot.len() as u64, compacted.snapshot_bytes);
    let loaded = Automerge::load(&snapshot).unwrap();
    assert_eq!(
        sorted_heads(&loaded),
        sorted_heads(&log_doc(&store, &s, busy.record))
    );

    // Entries after the snapshot are its new tail; nothing is due until it grows again.
    let more = entry(&s, busy.record, vec![busy.change(), busy.change()]);
    let more_bytes: u64 = more.changes.iter().map(|c| c.len() as u64).sum();
    assert_eq!(push(&store, vec![more]), [stored(21)]);
    let grown = row(&store, &s, busy.record).unwrap();
    assert_eq!(
        (grown.tail_entries, grown.tail_changes, grown.tail_bytes),
        (1, 2, more_bytes)
    );
    assert_eq!(store.compact_now().unwrap(), 0);
}

#[test]
fn the_background_compactor_catches_up_and_stops_with_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = space("s");
    let mut doc = Doc::new();
    {
        let store = open(dir.path(), StoreConfig::default());
        for _ in 0..COMPACT_TAIL_ENTRIES_MIN_DEFAULT {
            push(&store, vec![entry(&s, doc.record, vec![doc.change()])]);
        }
        // The count goes up just after the snapshot's commit: wait for both.
        eventually("the compactor snapshots the record", || {
            row(&store, &s, doc.record).unwrap().snapshot_seq == COMPACT_TAIL_ENTRIES_MIN_DEFAULT
                && store.compactions() >= 1
        });
        assert_eq!(store.compactions(), 1);
    }
    // Dropping the store joined the thread: the file opens again at once.
    let store = open(dir.path(), quiet());
    assert_eq!(row(&store, &s, doc.record).unwrap().snapshot_seq, 16);
}

#[test]
fn records_left_due_are_found_by_a_scan_after_open_and_after_a_full_queue() {
    let dir = tempfile::tempdir().unwrap();
    let s = space("s");
    let mut docs: Vec<Doc> = (0..5).map(|_| Doc::new()).collect();
    let mut entries = Vec::new();
    for doc in &mut docs {
        for _ in 0..COMPACT_TAIL_ENTRIES_MIN_DEFAULT {
            entries.push(entry(&s, doc.record, vec![doc.change()]));
        }
    }
    let (early, late) = entries.split_at(2 * COMPACT_TAIL_ENTRIES_MIN_DEFAULT as usize);
    {
        // Compacted by nobody: a relay stopped before its compactor got to them.
        let store = open(dir.path(), quiet());
        push(&store, early.to_vec());
    }
    // A queue of one: one group commit makes three records due at once.
    let store = open(
        dir.path(),
        StoreConfig {
            compact_queue_max: 1,
            ..StoreConfig::default()
        },
    );
    push(&store, late.to_vec());
    eventually("every record is compacted", || {
        docs.iter()
            .all(|d| row(&store, &s, d.record).unwrap().snapshot_seq > 0)
    });
    assert_eq!(store.compactions(), 5);
}

/// Every pull answer of the space, encoded: what devices receive, byte for byte.
fn wire(store: &RedbLogStore, s: &SpaceId) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut cursor = None;
    loop {
        let PullResult::Changes {
            entries,
            next_cursor,
            more,
        } = store.pull(s, cursor, 300).unwrap()
        else {
            panic!("no repair expected");
        };
        let frame = holdfast_protocol::Frame::Changes {
            space: s.clone(),
            entries,
            next_cursor,
            more,
        };
        frames.push(holdfast_protocol::encode(&frame).unwrap());
        cursor = Some(next_cursor);
        if !more {
            return frames;
        }
    }
}

fn snapshot(store: &RedbLogStore, s: &SpaceId, record: RecordId) -> Vec<u8> {
    let txn = store.db.begin_read().unwrap();
    let table = txn.open_table(tables::SNAPSHOTS).unwrap();
    let row = table
        .get((s.as_str(), tables::rid(record)))
        .unwrap()
        .unwrap();
    tables::snapshot_doc(row.value()).unwrap().to_vec()
}
