//! The inbox: changes from the relay applied with their space's cursor in one transaction,
//! bootstrap pages of record states, and what never enters the outbox.

use automerge::Automerge;
use holdfast::{
    ChangeEntry, Cursor, Error, Notification, Origin, Query, RecordId, RecordState, Store,
};

use crate::util::{open, space};

fn cursor(seq: u64) -> Cursor {
    Cursor { epoch: 7, seq }
}

/// `store`'s outbox as the relay would log it, numbered from `seq_first`.
fn log_of(store: &Store, seq_first: u64) -> Vec<ChangeEntry> {
    let batch = store.outbox().take_batch(1000, u64::MAX).unwrap();
    batch
        .into_iter()
        .enumerate()
        .map(|(i, p)| ChangeEntry {
            seq: seq_first + i as u64,
            record: p.entry.record,
            event_id: p.entry.event_id,
            changes: p.changes,
        })
        .collect()
}

fn two_notes(store: &Store) -> (RecordId, RecordId) {
    let a = store
        .write(|tx| {
            let id = tx.create("note", &space("team"))?;
            tx.set(id, "title", "Groceries")?;
            tx.splice_text(id, "body", 0, 0, "milk, eggs")?;
            Ok(id)
        })
        .unwrap();
    let b = store
        .write(|tx| {
            let id = tx.create("note", &space("team"))?;
            tx.set(id, "title", "Plan")?;
            Ok(id)
        })
        .unwrap();
    store
        .update(a, |tx| tx.splice_text(a, "body", 10, 0, ", bread"))
        .unwrap();
    (a, b)
}

#[test]
fn pulled_changes_apply_with_their_cursor_and_never_enter_the_outbox() {
    let alice = open();
    let (a, b) = two_notes(&alice);
    let log = log_of(&alice, 1);
    assert_eq!(log.len(), 3);

    let bob = open();
    let events = bob.subscribe();
    assert_eq!(bob.inbox().cursor(&space("team")).unwrap(), None);
    let summary = bob
        .inbox()
        .apply_changes(&space("team"), &log, cursor(3))
        .unwrap();
    assert_eq!((summary.records_changed, summary.changes_applied), (2, 3));
    assert_eq!(bob.inbox().cursor(&space("team")).unwrap(), Some(cursor(3)));
    assert_eq!(
        bob.get(a).unwrap().text("body").unwrap(),
        "milk, eggs, bread"
    );
    assert_eq!(title(&bob, b), "Plan");
    assert_eq!(bob.sync_summary().unwrap().pending, 0, "not sent back");
    let Some(Notification::Changed(changed)) = events.try_recv() else {
        panic!("remote changes notify like local ones");
    };
    assert_eq!(changed.len(), 2);
    assert!(changed.iter().all(|c| c.origin == Origin::Remote));

    // The same entries again (a live frame overlapping a pull): nothing changes but the
    // cursor, which is stored as given.
    let summary = bob
        .inbox()
        .apply_changes(&space("team"), &log[1..], cursor(3))
        .unwrap();
    assert_eq!(summary.records_changed, 0);

    // The cursor is durable.
    let bob = bob.reopen();
    assert_eq!(bob.inbox().cursor(&space("team")).unwrap(), Some(cursor(3)));
    assert_eq!(bob.inbox().cursor(&space("other")).unwrap(), None);
    bob.inbox().forget_cursor(&space("team")).unwrap();
    assert_eq!(bob.inbox().cursor(&space("team")).unwrap(), None);
    assert_eq!(title(&bob, b), "Plan");
}

/// The relay sends a device's own entries back without their changes (it holds them): they
/// move the cursor, durably, and touch no record, alone or between other devices' entries.
#[test]
fn own_entries_without_changes_move_only_the_cursor() {
    let team = space("team");
    let alice = open();
    let (a, b) = two_notes(&alice);
    let own: Vec<ChangeEntry> = log_of(&alice, 1)
        .into_iter()
        .map(|e| ChangeEntry {
            changes: Vec::new(),
            ..e
        })
        .collect();
    let fields = |store: &Store| [a, b].map(|id| store.get(id).unwrap().fields);
    let before = fields(&alice);
    let events = alice.subscribe();
    let summary = alice.inbox().apply_changes(&team, &own, cursor(3)).unwrap();
    assert_eq!(summary, holdfast::ApplySummary::default());
    assert_eq!(alice.inbox().cursor(&team).unwrap(), Some(cursor(3)));
    assert!(events.try_recv().is_none(), "no record changed");
    assert_eq!(fields(&alice), before);

    // Bob's entry between two of Alice's own: his note arrives, the cursor passes all.
    let bob = open();
    let note = bob
        .write(|tx| {
            let id = tx.create("note", &team)?;
            tx.set(id, "title", "From Bob")?;
            Ok(id)
        })
        .unwrap();
    alice
        .update(a, |tx| tx.set(a, "title", "Shopping"))
        .unwrap();
    alice.update(b, |tx| tx.set(b, "title", "Plans")).unwrap();
    let mut mixed = log_of(&alice, 4);
    mixed.insert(1, log_of(&bob, 5).remove(0));
    mixed[2].seq = 6;
    for own in [0, 2] {
        mixed[own].changes.clear();
    }
    let summary = alice
        .inbox()
        .apply_changes(&team, &mixed, cursor(6))
        .unwrap();
    assert_eq!((summary.records_changed, summary.changes_applied), (1, 1));
    assert!(summary.rejected.is_empty());
    assert_eq!(title(&alice, note), "From Bob");
    assert_eq!(title(&alice, a), "Shopping");

    // An entry without changes of a record this device never held leaves no trace.
    let unknown = ChangeEntry {
        seq: 7,
        record: RecordId::new_v7(),
        event_id: holdfast::EventId::new_v7(),
        changes: Vec::new(),
    };
    let summary = alice
        .inbox()
        .apply_changes(&team, std::slice::from_ref(&unknown), cursor(7))
        .unwrap();
    assert!(summary.rejected.is_empty());
    assert!(!alice.exists(unknown.record).unwrap());

    let alice = alice.reopen();
    assert_eq!(alice.inbox().cursor(&team).unwrap(), Some(cursor(7)));
}

fn title(store: &Store, id: RecordId) -> String {
    let record = store.get(id).unwrap();
    record.get("title").unwrap().unwrap().to_string()
}

#[test]
fn a_damaged_change_applies_nothing_and_keeps_the_cursor() {
    let alice = open();
    two_notes(&alice);
    let mut log = log_of(&alice, 1);
    let bob = open();
    bob.inbox()
        .apply_changes(&space("team"), &log[..1], cursor(1))
        .unwrap();
    log[2].changes[0].truncate(20);
    let result = bob.inbox().apply_changes(&space("team"), &log, cursor(3));
    assert!(matches!(result, Err(Error::Remote(_))), "{result:?}");
    assert_eq!(bob.inbox().cursor(&space("team")).unwrap(), Some(cursor(1)));
    let notes = bob.query(&Query::Space(&space("team"), "note"), 10, None);
    assert_eq!(notes.unwrap().ids.len(), 1);
}

#[test]
fn bootstrap_pages_give_the_same_records_and_the_cursor_with_the_last_page() {
    let alice = open();
    let (a, b) = two_notes(&alice);
    let log = log_of(&alice, 1);

    // The relay's state of `a`: a saved document of its first two changes, the third
    // after it; of `b`: changes only (no snapshot yet).
    let mut doc = Automerge::new();
    let changes_of = |id: RecordId| -> Vec<Vec<u8>> {
        log.iter()
            .filter(|e| e.record == id)
            .flat_map(|e| e.changes.clone())
            .collect()
    };
    let a_changes = changes_of(a);
    assert_eq!(a_changes.len(), 2);
    doc.load_incremental(&a_changes[0]).unwrap();
    let page_one = vec![RecordState {
        record: a,
        doc: doc.save(),
        changes: a_changes[1..].to_vec(),
    }];
    let page_two = vec![RecordState {
        record: b,
        doc: Vec::new(),
        changes: changes_of(b),
    }];

    let bob = open();
    bob.inbox()
        .apply_snapshot(&space("team"), &page_one, None)
        .unwrap();
    assert_eq!(bob.inbox().cursor(&space("team")).unwrap(), None);
    bob.inbox()
        .apply_snapshot(&space("team"), &page_two, Some(cursor(3)))
        .unwrap();
    assert_eq!(bob.inbox().cursor(&space("team")).unwrap(), Some(cursor(3)));
    for id in [a, b] {
        assert_eq!(bob.get(id).unwrap().fields, alice.get(id).unwrap().fields);
    }
    assert_eq!(bob.sync_summary().unwrap().pending, 0);

    // Pulling from the base afterwards repeats nothing harmful.
    let summary = bob
        .inbox()
        .apply_changes(&space("team"), &log, cursor(3))
        .unwrap();
    assert_eq!(summary.changes_applied, 0);

    // A damaged snapshot is refused whole.
    let damaged = vec![RecordState {
        record: RecordId::new_v7(),
        doc: vec![1, 2, 3],
        changes: vec![],
    }];
    let result = bob
        .inbox()
        .apply_snapshot(&space("team"), &damaged, Some(cursor(9)));
    assert!(matches!(result, Err(Error::Remote(_))), "{result:?}");
    assert_eq!(bob.inbox().cursor(&space("team")).unwrap(), Some(cursor(3)));
}

/// Changes that left the outbox (acked, or received) are what a device without a cursor
/// must repair before bootstrapping; work that never left the device is not.
#[test]
fn synced_changes_are_told_from_work_never_sent() {
    let team = space("team");
    let alice = open();
    assert!(!alice.inbox().holds_synced_changes(&team).unwrap());
    let (a, _) = two_notes(&alice);
    assert!(
        !alice.inbox().holds_synced_changes(&team).unwrap(),
        "three local writes, never sent"
    );

    // Acked, then edited again: the edit waits in the outbox, its parents do not.
    let batch = alice.outbox().take_batch(1000, u64::MAX).unwrap();
    let acked: Vec<(u64, u64)> = batch.iter().map(|p| (p.entry.seq, 1)).collect();
    alice.outbox().mark_acked(&acked).unwrap();
    alice
        .update(a, |tx| tx.splice_text(a, "body", 0, 0, "("))
        .unwrap();
    assert!(alice.inbox().holds_synced_changes(&team).unwrap());
    assert!(!alice.inbox().holds_synced_changes(&space("other")).unwrap());

    // Received from the relay.
    let carol = open();
    let sender = open();
    two_notes(&sender);
    let log = log_of(&sender, 1);
    carol.inbox().apply_changes(&team, &log, cursor(3)).unwrap();
    assert!(carol.inbox().holds_synced_changes(&team).unwrap());
}
