//! Causality: a change is stored only once the relay holds what it builds on.

use holdfast_protocol::{Outcome, RejectCode};

use super::*;

fn missing(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Rejected {
            code: RejectCode::MissingDependencies,
            permanent: false,
            ..
        }
    )
}

#[test]
fn a_child_before_its_parent_in_one_batch_is_stored_when_resent() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = space("notes");
    let mut doc = Doc::new();
    let parent = entry(&s, doc.record, vec![doc.change()]);
    let child = entry(&s, doc.record, vec![doc.change()]);
    let got = push(&store, vec![child.clone(), parent.clone()]);
    assert!(missing(&got[0]), "{:?}", got[0]);
    assert_eq!(got[1], stored(1));
    assert_eq!(push(&store, vec![child.clone()]), [stored(2)]);
    assert_eq!(
        push(&store, vec![child, parent]),
        [duplicate(2), duplicate(1)]
    );
}

#[test]
fn a_child_pushed_before_its_parent_across_batches_is_stored_once_the_parent_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = space("notes");
    let mut doc = Doc::new();
    let parent = entry(&s, doc.record, vec![doc.change()]);
    let child = entry(&s, doc.record, vec![doc.change()]);
    for _ in 0..3 {
        assert!(missing(&push(&store, vec![child.clone()])[0]));
    }
    assert_eq!(store.last_seq(&s).unwrap(), 0);
    assert_eq!(push(&store, vec![parent]), [stored(1)]);
    assert_eq!(push(&store, vec![child]), [stored(2)]);
    let log = pull_all(&store, &s);
    assert_eq!(log.len(), 2);
}

#[test]
fn changes_of_one_entry_may_come_in_any_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = space("notes");
    let mut doc = Doc::new();
    let mut changes = vec![doc.change(), doc.change(), doc.change()];
    changes.reverse();
    assert_eq!(
        push(&store, vec![entry(&s, doc.record, changes)]),
        [stored(1)]
    );
}

#[test]
fn dependencies_are_looked_up_in_the_entrys_space() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (a, b) = (space("a"), space("b"));
    let mut doc = Doc::new();
    let parent = doc.change();
    let child = doc.change();
    assert_eq!(
        push(&store, vec![entry(&a, doc.record, vec![parent.clone()])]),
        [stored(1)]
    );
    // Space b does not hold the parent, so its readers could not apply the child.
    assert!(missing(
        &push(&store, vec![entry(&b, doc.record, vec![child.clone()])])[0]
    ));
    // The same change in another space is stored there too: spaces share nothing.
    assert_eq!(
        push(&store, vec![entry(&b, doc.record, vec![parent])]),
        [stored(1)]
    );
    assert_eq!(
        push(&store, vec![entry(&b, doc.record, vec![child])]),
        [stored(2)]
    );
}

#[test]
fn a_whole_history_in_one_entry_is_one_log_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = space("notes");
    let mut doc = Doc::new();
    for _ in 0..5 {
        doc.change();
    }
    let all = doc.all();
    assert_eq!(all.len(), 5);
    assert_eq!(
        push(&store, vec![entry(&s, doc.record, all.clone())]),
        [stored(1)]
    );
    assert_eq!(pull_all(&store, &s)[0].changes, all);
}

#[test]
fn a_child_of_a_malformed_entry_is_rejected_permanently() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = space("notes");
    let mut doc = Doc::new();
    let parent = entry(&s, doc.record, vec![doc.change(), b"junk".to_vec()]);
    let child = entry(&s, doc.record, vec![doc.change()]);
    let got = push(&store, vec![parent.clone(), child]);
    assert!(matches!(
        got[0],
        Outcome::Rejected {
            code: RejectCode::Malformed,
            permanent: true,
            ..
        }
    ));
    assert!(
        matches!(&got[1], Outcome::Rejected { code: RejectCode::DependencyRejected { event_id }, permanent: true, .. }
            if *event_id == parent.event_id),
        "{:?}",
        got[1]
    );
}
