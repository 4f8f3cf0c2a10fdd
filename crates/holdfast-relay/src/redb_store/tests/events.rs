//! Event ids are remembered per space: the same id in another space is a new event, and no
//! answer in one space depends on what another holds. Files of formats 1 and 2, which
//! kept one namespace, are migrated at open.

use redb::{ReadableTableMetadata, TableHandle};

use super::*;
use crate::tables::EventRow;

const T0: u64 = 1_800_000_000_000;

fn duplicate(seq: u64) -> Outcome {
    Outcome::Duplicate { seq }
}

/// `event` pushed again for `record` of `space` with a change of its own.
fn again(event: EventId, space: &SpaceId, doc: &mut Doc) -> PushEntry {
    PushEntry {
        event_id: event,
        ..entry(space, doc.record, vec![doc.change()])
    }
}

#[test]
fn an_event_id_is_looked_up_in_its_own_space() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), quiet());
    let window = store.config().event_retention_ms;
    let (a, b) = (space("a"), space("b"));
    let (mut x, mut y) = (Doc::new(), Doc::new());
    let first = entry(&a, x.record, vec![x.change()]);
    let e = entry(&a, x.record, vec![x.change()]);
    let in_a = store.store_at(vec![first, e.clone()], T0).unwrap();
    assert_eq!(outcomes(&in_a), [stored(1), stored(2)]);
    let log_a = pull_from(&store, &a, None);

    let in_b = again(e.event_id, &b, &mut y);
    let got = store.store_at(vec![in_b.clone()], T0 + 10).unwrap();
    assert_eq!(outcomes(&got), [stored(1)], "B's own seq, not A's");
    let (log_b, _) = pull_from(&store, &b, None);
    assert_eq!(log_b.len(), 1);
    assert_eq!(
        (log_b[0].event_id, &log_b[0].changes),
        (e.event_id, &in_b.changes)
    );

    // Repeats are answered from their own space, even with other changes.
    let got = store.store_at(vec![again(e.event_id, &b, &mut y)], T0 + 20);
    assert_eq!(outcomes(&got.unwrap()), [duplicate(1)]);
    let got = store.store_at(vec![again(e.event_id, &a, &mut x)], T0 + 20);
    assert_eq!(outcomes(&got.unwrap()), [duplicate(2)]);
    assert_eq!(pull_from(&store, &a, None), log_a, "A is unaffected");
    assert_eq!(store.last_seq(&b).unwrap(), 1);
    assert_eq!(
        store.event_outcome(&a, e.event_id).unwrap(),
        Some(stored(2))
    );
    assert_eq!(
        store.event_outcome(&b, e.event_id).unwrap(),
        Some(stored(1))
    );

    // Each row keeps its own retention window.
    assert_eq!(store.prune(T0 + window).unwrap(), 2);
    assert_eq!(store.event_outcome(&a, e.event_id).unwrap(), None);
    assert_eq!(
        store.event_outcome(&b, e.event_id).unwrap(),
        Some(stored(1))
    );
    assert_eq!(store.prune(T0 + 10 + window).unwrap(), 1);
    assert_eq!(store.event_outcome(&b, e.event_id).unwrap(), None);
    assert_eq!(store.prune(u64::MAX).unwrap(), 0);
}

#[test]
fn one_batch_may_carry_an_event_id_in_two_spaces() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), quiet());
    let (a, b) = (space("a"), space("b"));
    let (mut x, mut y) = (Doc::new(), Doc::new());
    let e = entry(&a, x.record, vec![x.change()]);
    let batch = vec![
        e.clone(),
        again(e.event_id, &b, &mut y),
        again(e.event_id, &a, &mut x),
    ];
    assert_eq!(push(&store, batch), [stored(1), stored(1), duplicate(1)]);
}

#[test]
fn a_rejection_in_one_space_is_not_an_answer_in_another() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), quiet());
    let (a, b) = (space("a"), space("b"));
    let mut y = Doc::new();
    let junk = entry(&a, RecordId::new_v7(), vec![b"junk".to_vec()]);
    let got = push(&store, vec![junk.clone()]);
    assert!(matches!(
        &got[0],
        Outcome::Rejected {
            permanent: true,
            ..
        }
    ));
    assert_eq!(
        push(&store, vec![again(junk.event_id, &b, &mut y)]),
        [stored(1)]
    );
    assert_eq!(push(&store, vec![junk]), got, "A still remembers it");
}

/// An entry refused earlier in a batch explains a missing dependency only in its own space.
#[test]
fn a_refusal_in_one_space_is_not_a_rejected_dependency_in_another() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), quiet());
    let (a, b) = (space("a"), space("b"));
    let mut x = Doc::new();
    let _never_pushed = x.change();
    let (c2, c3) = (x.change(), x.change());
    let missing = |o: &Outcome| {
        matches!(
            o,
            Outcome::Rejected {
                code: RejectCode::MissingDependencies,
                permanent: false,
                ..
            }
        )
    };
    let parent = entry(&a, x.record, vec![c2]);
    let got = push(
        &store,
        vec![parent.clone(), entry(&b, x.record, vec![c3.clone()])],
    );
    assert!(missing(&got[0]) && missing(&got[1]), "{got:?}");
    let got = push(&store, vec![parent.clone(), entry(&a, x.record, vec![c3])]);
    assert!(
        matches!(&got[1], Outcome::Rejected { code: RejectCode::DependencyRejected { event_id }, .. } if *event_id == parent.event_id),
        "{got:?}"
    );
}

#[test]
fn a_format_2_file_keeps_its_stored_events_in_their_spaces() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (space("a"), space("b"));
    let (mut x, mut y) = (Doc::new(), Doc::new());
    let (e1, e2) = (
        entry(&a, x.record, vec![x.change()]),
        entry(&a, x.record, vec![x.change()]),
    );
    let e3 = entry(&b, y.record, vec![y.change()]);
    // Reused after it was pruned: stored in A at 3, then in B at 2; the old row is B's.
    let reused = entry(&a, x.record, vec![x.change()]);
    let (dup, junk, lost) = (EventId::new_v7(), EventId::new_v7(), EventId::new_v7());
    let (log_a, log_b) = {
        let store = open(dir.path(), quiet());
        let batch = vec![
            e1.clone(),
            e2.clone(),
            e3.clone(),
            reused.clone(),
            again(reused.event_id, &b, &mut y),
        ];
        let got = push(&store, batch);
        assert_eq!(got, [stored(1), stored(2), stored(1), stored(3), stored(2)]);
        let rejection = rejected(RejectCode::Malformed, "junk".into(), true);
        write_format_2(
            &store,
            &[
                (e1.event_id, stored(1), T0),
                (e2.event_id, stored(2), T0),
                (e3.event_id, stored(1), T0 + 1),
                (reused.event_id, stored(2), T0 + 2),
                (dup, duplicate(1), T0),
                (junk, rejection, T0),
                (lost, stored(9), T0),
            ],
        );
        (pull_from(&store, &a, None), pull_from(&store, &b, None))
    };

    let store = open(dir.path(), quiet());
    assert_eq!(format(&store), FORMAT_VERSION);
    assert_eq!(FORMAT_VERSION, 3);
    let tables: Vec<String> = {
        let txn = store.db.begin_read().unwrap();
        let names = txn.list_tables().unwrap();
        names.map(|t| t.name().to_owned()).collect()
    };
    assert!(!tables.iter().any(|t| t == "events" || t == "event_times"));
    check(&store, &a, e1.event_id, Some(stored(1)));
    check(&store, &a, e2.event_id, Some(stored(2)));
    check(&store, &b, e3.event_id, Some(stored(1)));
    check(&store, &b, reused.event_id, Some(stored(2)));
    check(&store, &a, reused.event_id, None);
    check(&store, &b, e1.event_id, None);
    for event in [dup, junk, lost] {
        check(&store, &a, event, None);
        check(&store, &b, event, None);
    }
    // A device retrying is answered from the moved rows, whatever its entry carries.
    let retries = vec![
        again(e2.event_id, &a, &mut x),
        again(e3.event_id, &b, &mut y),
        again(reused.event_id, &b, &mut y),
        again(e1.event_id, &b, &mut Doc::new()),
    ];
    let got = store.store_at(retries, T0 + 3).unwrap();
    assert_eq!(
        outcomes(&got),
        [duplicate(2), duplicate(1), duplicate(2), stored(3)]
    );
    assert_eq!(pull_from(&store, &a, None), log_a);
    assert_eq!(pull_from(&store, &b, None).0[..2], log_b.0[..]);

    let window = store.config().event_retention_ms;
    assert_eq!(store.prune(T0 + window).unwrap(), 2, "e1 and e2");
    assert_eq!(store.prune(T0 + 2 + window).unwrap(), 2, "e3 and reused");
    check(&store, &b, reused.event_id, None);
    drop(store);
    let store = open(dir.path(), quiet());
    check(&store, &b, e1.event_id, Some(stored(3)));
}

/// The migration is one transaction with the format bump: a failure leaves the file as it
/// was, and the next open runs it again.
#[test]
fn a_failed_migration_leaves_the_format_2_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let s = space("s");
    let mut x = Doc::new();
    let e = entry(&s, x.record, vec![x.change()]);
    {
        let store = open(dir.path(), quiet());
        push(&store, vec![e.clone()]);
        write_format_2(&store, &[(e.event_id, stored(1), T0)]);
        let txn = store.db.begin_write().unwrap();
        txn.open_table(tables::LOG)
            .unwrap()
            .insert(("s", 2), &[9u8][..])
            .unwrap();
        txn.commit().unwrap();
    }
    let path = dir.path().join("relay.redb");
    let err = RedbLogStore::open(&path, quiet()).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let meta = txn.open_table(tables::META).unwrap();
        let found = read_meta(&meta, tables::META_FORMAT).unwrap().unwrap();
        assert_eq!(found, 2u32.to_le_bytes());
        assert_eq!(txn.open_table(tables::EVENTS_V2).unwrap().len().unwrap(), 1);
        assert_eq!(txn.open_table(tables::EVENTS).unwrap().len().unwrap(), 0);
        txn.open_table(tables::LOG)
            .unwrap()
            .remove(("s", 2))
            .unwrap();
        drop(meta);
        txn.commit().unwrap();
    }
    let store = open(dir.path(), quiet());
    assert_eq!(
        store.event_outcome(&s, e.event_id).unwrap(),
        Some(stored(1))
    );
}

fn check(store: &RedbLogStore, space: &SpaceId, event: EventId, want: Option<Outcome>) {
    assert_eq!(store.event_outcome(space, event).unwrap(), want, "{event}");
}

fn outcomes(results: &[AckResult]) -> Vec<Outcome> {
    results.iter().map(|r| r.outcome.clone()).collect()
}

fn format(store: &RedbLogStore) -> u32 {
    let txn = store.db.begin_read().unwrap();
    let meta = txn.open_table(tables::META).unwrap();
    let bytes = read_meta(&meta, tables::META_FORMAT).unwrap().unwrap();
    u32::from_le_bytes(bytes.try_into().unwrap())
}

/// Rewrites the store's event tables as a format-2 relay kept them, holding `rows`
/// (event id, outcome, stored ms): one namespace of event ids, no space in the key.
fn write_format_2(store: &RedbLogStore, rows: &[(EventId, Outcome, u64)]) {
    let txn = store.db.begin_write().unwrap();
    txn.delete_table(tables::EVENTS).unwrap();
    txn.delete_table(tables::EVENT_TIMES).unwrap();
    {
        let mut events = txn.open_table(tables::EVENTS_V2).unwrap();
        let mut times = txn.open_table(tables::EVENT_TIMES_V2).unwrap();
        for (event, outcome, ms) in rows {
            let row = EventRow {
                outcome: outcome.clone(),
                stored_ms: *ms,
            };
            let row = tables::encode_row(tables::EVENT_ROW_V1, &row);
            events.insert(tables::eid(*event), row.as_slice()).unwrap();
            times.insert((*ms, tables::eid(*event)), ()).unwrap();
        }
        txn.open_table(tables::META)
            .unwrap()
            .insert(tables::META_FORMAT, &2u32.to_le_bytes()[..])
            .unwrap();
    }
    txn.commit().unwrap();
}
