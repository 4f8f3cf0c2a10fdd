//! Pushing: acks, idempotency, content dedupe, partial rejection.

use holdfast_protocol::{Outcome, RejectCode};

use super::*;

#[test]
fn entries_are_acked_with_seqs_from_one_and_pulled_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = space("notes");
    let mut doc = Doc::new();
    let mut entries = Vec::new();
    for _ in 0..3 {
        let change = doc.change();
        entries.push(entry(&s, doc.record, vec![change]));
    }
    assert_eq!(
        push(&store, entries.clone()),
        [stored(1), stored(2), stored(3)]
    );
    let log = pull_all(&store, &s);
    assert_eq!(log.len(), 3);
    for (got, pushed) in log.iter().zip(&entries) {
        assert_eq!(
            (got.record, got.event_id, &got.changes),
            (pushed.record, pushed.event_id, &pushed.changes)
        );
    }
    assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
}

#[test]
fn spaces_number_their_logs_independently() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b) = (space("a"), space("b"));
    let (mut da, mut db) = (Doc::new(), Doc::new());
    let batch = vec![
        entry(&a, da.record, vec![da.change()]),
        entry(&b, db.record, vec![db.change()]),
        entry(&a, da.record, vec![da.change()]),
    ];
    assert_eq!(push(&store, batch), [stored(1), stored(1), stored(2)]);
    assert_eq!(store.last_seq(&a).unwrap(), 2);
    assert_eq!(store.last_seq(&b).unwrap(), 1);
}

#[test]
fn the_same_batch_twenty_times_is_stored_once_with_identical_answers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = space("notes");
    let mut docs: Vec<Doc> = (0..3).map(|_| Doc::new()).collect();
    let mut batch = Vec::new();
    for i in 0..6 {
        let doc = &mut docs[i % 3];
        let change = doc.change();
        batch.push(entry(&s, doc.record, vec![change]));
    }
    let first = store.store(batch.clone()).unwrap();
    assert_eq!(
        outcomes(&first),
        (1..=6).map(stored).collect::<Vec<_>>(),
        "first push stores every entry"
    );
    let repeat = store.store(batch.clone()).unwrap();
    assert_eq!(
        outcomes(&repeat),
        (1..=6).map(duplicate).collect::<Vec<_>>()
    );
    for _ in 2..20 {
        assert_eq!(store.store(batch.clone()).unwrap(), repeat, "same answer");
    }
    assert_eq!(store.last_seq(&s).unwrap(), 6);
    assert_eq!(pull_all(&store, &s).len(), 6);
}

#[test]
fn changes_already_held_are_not_stored_twice_under_a_new_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = space("notes");
    let mut doc = Doc::new();
    let (c1, c2) = (doc.change(), doc.change());
    assert_eq!(
        push(&store, vec![entry(&s, doc.record, vec![c1.clone()])]),
        [stored(1)]
    );
    assert_eq!(
        push(&store, vec![entry(&s, doc.record, vec![c2.clone()])]),
        [stored(2)]
    );
    // Every change held: a duplicate of the last entry holding them.
    let again = entry(&s, doc.record, vec![c1.clone(), c2.clone()]);
    assert_eq!(push(&store, vec![again.clone()]), [duplicate(2)]);
    assert_eq!(
        store.event_outcome(&s, again.event_id).unwrap(),
        Some(duplicate(2))
    );
    // One held, one new: only the new change enters the log.
    let c3 = doc.change();
    let mixed = entry(&s, doc.record, vec![c2, c3.clone(), c3.clone()]);
    assert_eq!(push(&store, vec![mixed]), [stored(3)]);
    let log = pull_all(&store, &s);
    assert_eq!(log.len(), 3);
    assert_eq!(log[2].changes, [c3]);
}

#[test]
fn a_partly_rejected_batch_keeps_order_and_stores_the_independent_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = space("notes");
    let (mut a, mut b) = (Doc::new(), Doc::new());
    let a1 = entry(&s, a.record, vec![a.change()]);
    let _b1 = b.change(); // never pushed
    let b2 = entry(&s, b.record, vec![b.change()]);
    let b3 = entry(&s, b.record, vec![b.change()]);
    let a2 = entry(&s, a.record, vec![a.change()]);
    let bad = entry(&s, a.record, vec![b"not an automerge change".to_vec()]);
    let a3 = entry(&s, a.record, vec![a.change()]);
    let batch = vec![a1, b2.clone(), b3, a2, bad, a3];
    let got = push(&store, batch);
    assert_eq!(got[0], stored(1));
    assert!(
        matches!(&got[1], Outcome::Rejected { code: RejectCode::MissingDependencies, permanent: false, reason }
            if reason.contains("has not received")),
        "{:?}",
        got[1]
    );
    assert!(
        matches!(&got[2], Outcome::Rejected { code: RejectCode::DependencyRejected { event_id }, permanent: false, .. }
            if *event_id == b2.event_id),
        "{:?}",
        got[2]
    );
    assert_eq!(got[3], stored(2));
    assert!(
        matches!(
            &got[4],
            Outcome::Rejected {
                code: RejectCode::Malformed,
                permanent: true,
                ..
            }
        ),
        "{:?}",
        got[4]
    );
    assert_eq!(got[5], stored(3));
    assert_eq!(store.last_seq(&s).unwrap(), 3);
}

#[test]
fn malformed_changes_are_rejected_permanently_and_the_same_way_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = space("notes");
    let mut doc = Doc::new();
    let mut truncated = doc.change();
    truncated.truncate(truncated.len() / 2);
    let record = doc.record;
    let check = |changes: Vec<Vec<u8>>| {
        let e = entry(&s, record, changes);
        let first = push(&store, vec![e.clone()]);
        assert!(
            matches!(
                &first[0],
                Outcome::Rejected {
                    code: RejectCode::Malformed,
                    permanent: true,
                    ..
                }
            ),
            "{first:?}"
        );
        assert_eq!(
            push(&store, vec![e.clone()]),
            first,
            "repeat answered the same"
        );
        assert_eq!(
            store.event_outcome(&s, e.event_id).unwrap(),
            Some(first[0].clone())
        );
    };
    check(vec![truncated]);
    check(vec![Vec::new()]);
    check(vec![vec![0xff; 64]]);
    check(Vec::new());
    let good = doc.change();
    check(vec![good, b"junk".to_vec()]);
    assert_eq!(store.last_seq(&s).unwrap(), 0);
}

#[test]
fn transient_rejections_are_not_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = space("notes");
    let mut doc = Doc::new();
    let _parent = doc.change();
    let child = entry(&s, doc.record, vec![doc.change()]);
    let got = push(&store, vec![child.clone()]);
    assert!(matches!(
        got[0],
        Outcome::Rejected {
            permanent: false,
            ..
        }
    ));
    assert_eq!(store.event_outcome(&s, child.event_id).unwrap(), None);
}

#[test]
fn an_event_id_repeated_within_one_batch_is_answered_as_a_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = space("notes");
    let mut doc = Doc::new();
    let e = entry(&s, doc.record, vec![doc.change()]);
    assert_eq!(
        push(&store, vec![e.clone(), e.clone(), e]),
        [stored(1), duplicate(1), duplicate(1)]
    );
}
