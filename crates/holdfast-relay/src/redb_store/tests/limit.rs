//! The record size limit: snapshot bytes plus the change bytes after it.

use super::*;

fn too_large(outcome: &Outcome, max: u64) -> bool {
    matches!(
        outcome,
        Outcome::Rejected { code: RejectCode::RecordTooLarge { max: m }, permanent: true, .. }
            if *m == max
    )
}

#[test]
fn an_entry_is_stored_up_to_the_limit_and_rejected_past_it() {
    let seed = seed();
    let mut doc = Doc::new();
    let first = doc.big_change(2000, seed);
    let second = doc.big_change(1000, seed + 1);
    let child = doc.change();
    let at_limit = (first.len() + second.len()) as u64;
    let check = |max: u64, fits: bool| {
        let dir = tempfile::tempdir().unwrap();
        let store = open(
            dir.path(),
            StoreConfig {
                record_bytes_max: max,
                ..quiet()
            },
        );
        let s = space("s");
        assert_eq!(
            push(&store, vec![entry(&s, doc.record, vec![first.clone()])]),
            [stored(1)]
        );
        let last = entry(&s, doc.record, vec![second.clone()]);
        let then = entry(&s, doc.record, vec![child.clone()]);
        let got = push(&store, vec![last.clone(), then]);
        if fits {
            assert_eq!(got[0], stored(2));
            assert_eq!(row(&store, &s, doc.record).unwrap().size(), at_limit);
        } else {
            assert!(too_large(&got[0], max), "{got:?}");
            // Its child cannot be stored either, and the rejection is remembered.
            assert!(
                matches!(&got[1], Outcome::Rejected { code: RejectCode::DependencyRejected { event_id }, permanent: true, .. } if *event_id == last.event_id),
                "{got:?}"
            );
            assert!(too_large(
                &store.event_outcome(&s, last.event_id).unwrap().unwrap(),
                max
            ));
            assert_eq!(push(&store, vec![last])[0], got[0]);
            assert_eq!(store.last_seq(&s).unwrap(), 1);
            // Other records are not affected.
            let mut other = Doc::new();
            assert_eq!(
                push(&store, vec![entry(&s, other.record, vec![other.change()])]),
                [stored(2)]
            );
        }
    };
    check(at_limit + 1, true);
    check(at_limit, true);
    check(at_limit - 1, false);
}

#[test]
fn after_compaction_the_snapshot_counts_instead_of_the_changes() {
    let dir = tempfile::tempdir().unwrap();
    let s = space("s");
    let mut doc = Doc::new();
    // Twenty overwrites of one field: the document keeps the history, but compressed.
    let changes: Vec<Vec<u8>> = (0..20).map(|_| doc.change()).collect();
    let logged: u64 = changes.iter().map(|c| c.len() as u64).sum();
    let config = StoreConfig {
        record_bytes_max: logged + 10_000,
        ..quiet()
    };
    let store = open(dir.path(), config);
    for c in changes {
        push(&store, vec![entry(&s, doc.record, vec![c])]);
    }
    assert_eq!(row(&store, &s, doc.record).unwrap().size(), logged);
    assert_eq!(store.compact_now().unwrap(), 1);
    let after = row(&store, &s, doc.record).unwrap();
    assert_eq!(after.size(), after.snapshot_bytes);
    assert!(after.snapshot_bytes < logged, "{after:?} vs {logged}");
}
