//! Every detected and settled conflict is logged (who wrote the candidates, how it was
//! settled, never the values), and the settled ones stay queryable within their bounds.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use holdfast::{
    RecordId, Resolution, Settlement, Store, StoreConfig, Value, SETTLED_CONFLICTS_MAX,
    SETTLED_CONFLICT_AGE_MS_MAX,
};

use crate::util::{log, open, open_with, schema, space, sync_both, sync_one_way, TestStore};

/// The conflict log lines of record `id` that `f` wrote.
fn logged(id: RecordId, f: impl FnOnce()) -> String {
    log().during(&id.to_string(), f)
}

/// A note with `status` "draft" written on `a` and received by `b`.
fn shared_draft(a: &Store, b: &Store) -> RecordId {
    let id = a
        .write(|tx| {
            let id = tx.create("note", &space("team"))?;
            tx.set(id, "status", "draft")?;
            Ok(id)
        })
        .unwrap();
    sync_one_way(a, b);
    id
}

/// Two stores whose `status` of one note is in conflict on both ("mine on a" vs "mine on
/// b"); the log of the exchange that detected it on `a`.
fn conflicted(a: &Store, b: &Store) -> (RecordId, String) {
    let id = shared_draft(a, b);
    a.write(|tx| tx.set(id, "status", "mine on a")).unwrap();
    b.write(|tx| tx.set(id, "status", "mine on b")).unwrap();
    let log = logged(id, || sync_both(a, b));
    assert_eq!(a.conflicts().unwrap().len(), 1);
    (id, log)
}

/// Settles a fresh conflict on `a` with `resolution` and checks how it is logged and kept.
fn check(resolution: Resolution, expected: Settlement) {
    let (a, b) = (open(), open());
    let (id, detected) = conflicted(&a, &b);
    let log = logged(id, || a.resolve(id, "status", resolution.clone()).unwrap());
    assert!(log.contains("conflict settled"), "{log}");
    assert!(
        log.contains(&format!("how=\"{}\"", expected.as_str())),
        "{log}"
    );
    for text in [&detected, &log] {
        assert!(text.contains(&id.to_string()), "{text}");
        assert!(text.contains("field=\"status\""), "{text}");
        for device in [a.device_id(), b.device_id()] {
            assert!(
                text.contains(&device.to_string()),
                "{device} missing: {text}"
            );
        }
        assert!(!text.contains("mine on"), "a value was logged: {text}");
    }
    // No line of the process's log, whatever record it names, holds a value.
    let all = crate::util::log().text();
    assert!(!all.contains("mine on"), "a value was logged");
    let settled = a.settled_conflicts(10).unwrap();
    assert_eq!(settled.len(), 1, "{settled:?}");
    let s = &settled[0];
    assert_eq!(
        (s.record, s.field.as_str(), s.how),
        (id, "status", expected)
    );
    assert!(s.detected_ms.is_some_and(|d| d <= s.settled_ms), "{s:?}");
    let mut devices: Vec<_> = s.authors.iter().map(|a| a.device.unwrap()).collect();
    devices.sort();
    let mut both = vec![a.device_id(), b.device_id()];
    both.sort();
    assert_eq!(devices, both);

    // The resolution reaches B: settled there by a change from elsewhere.
    sync_one_way(&a, &b);
    let there = b.settled_conflicts(10).unwrap();
    assert_eq!(there.len(), 1);
    assert_eq!(there[0].how, Settlement::Elsewhere);
}

#[test]
fn a_conflict_is_logged_when_detected_and_settled_with_how_it_was_settled() {
    check(Resolution::KeepMine, Settlement::KeptMine);
    check(Resolution::UseTheirs, Settlement::UsedTheirs);
    check(
        Resolution::Value(Value::from("merged")),
        Settlement::NewValue,
    );
}

#[test]
fn the_detection_is_logged_on_both_devices() {
    let (a, b) = (open(), open());
    let (_, log) = conflicted(&a, &b);
    assert_eq!(log.matches("conflict detected").count(), 2, "{log}");
    assert_eq!(b.conflicts().unwrap().len(), 1);
}

#[test]
fn candidates_that_become_equal_settle_by_themselves() {
    let (a, b) = (open(), open());
    let id = shared_draft(&a, &b);
    a.write(|tx| tx.set(id, "status", "mine on a")).unwrap();
    b.write(|tx| tx.set(id, "status", "mine on b")).unwrap();
    sync_one_way(&b, &a);
    assert_eq!(a.conflicts().unwrap().len(), 1);
    // B, which never saw A's value, changes its mind to the same one.
    b.write(|tx| tx.set(id, "status", "mine on a")).unwrap();
    let log = logged(id, || sync_one_way(&b, &a));
    assert!(a.conflicts().unwrap().is_empty());
    assert!(log.contains("how=\"converged\""), "{log}");
    let settled = a.settled_conflicts(10).unwrap();
    assert_eq!(settled[0].how, Settlement::Converged, "{settled:?}");
}

#[test]
fn a_resolver_settlement_is_logged_and_kept() {
    let latest = StoreConfig::new(schema()).resolver("note", "status", |c| {
        c.iter().max_by_key(|c| c.at_ms).map(|c| c.value.clone())
    });
    let (a, b) = (open(), open_with(latest));
    let id = shared_draft(&a, &b);
    a.write(|tx| tx.set(id, "status", "x")).unwrap();
    b.write(|tx| tx.set(id, "status", "y")).unwrap();
    let log = logged(id, || sync_one_way(&a, &b));
    assert!(log.contains("how=\"resolver\""), "{log}");
    let settled = b.settled_conflicts(10).unwrap();
    assert_eq!(settled.len(), 1);
    assert_eq!(
        (settled[0].how, settled[0].detected_ms),
        (Settlement::Resolver, None)
    );
    // Counted too: how often the app's strategy had to choose.
    assert_eq!(
        b.conflict_counts().unwrap(),
        holdfast::ConflictCounts {
            detected: 1,
            resolved: 1
        }
    );
    assert!(b.conflicts().unwrap().is_empty());
}

/// A store whose clock the test sets.
fn open_at(clock: Arc<AtomicI64>) -> TestStore {
    open_with(StoreConfig::new(schema()).clock(move || clock.load(Ordering::SeqCst)))
}

#[test]
fn settled_conflicts_older_than_the_age_bound_are_pruned_on_write() {
    let now = Arc::new(AtomicI64::new(1_800_000_000_000));
    let (a, b) = (open_at(now.clone()), open());
    let (first, _) = conflicted(&a, &b);
    a.resolve(first, "status", Resolution::KeepMine).unwrap();
    assert_eq!(a.settled_conflicts(10).unwrap().len(), 1);

    now.fetch_add(SETTLED_CONFLICT_AGE_MS_MAX + 1, Ordering::SeqCst);
    let (second, _) = conflicted(&a, &b);
    a.resolve(second, "status", Resolution::UseTheirs).unwrap();
    let kept = a.settled_conflicts(10).unwrap();
    assert_eq!(kept.len(), 1, "the old one is pruned: {kept:?}");
    assert_eq!(kept[0].record, second);
}

#[test]
fn settled_conflicts_beyond_the_count_bound_are_pruned_on_write() {
    let (a, b) = (open(), open());
    let n = SETTLED_CONFLICTS_MAX + 5;
    let ids = a
        .write(|tx| {
            (0..n)
                .map(|_| {
                    let id = tx.create("note", &space("team"))?;
                    tx.set(id, "status", "draft")?;
                    Ok(id)
                })
                .collect::<holdfast::Result<Vec<_>>>()
        })
        .unwrap();
    sync_one_way(&a, &b);
    a.write(|tx| ids.iter().try_for_each(|&id| tx.set(id, "status", "a")))
        .unwrap();
    b.write(|tx| ids.iter().try_for_each(|&id| tx.set(id, "status", "b")))
        .unwrap();
    sync_one_way(&b, &a);
    assert_eq!(a.conflicts().unwrap().len(), n);
    a.write(|tx| {
        ids.iter()
            .try_for_each(|&id| tx.resolve(id, "status", Resolution::KeepMine))
    })
    .unwrap();
    let kept = a.settled_conflicts(usize::MAX).unwrap();
    assert_eq!(kept.len(), SETTLED_CONFLICTS_MAX);
    // Newest first; the five settled first are gone.
    assert_eq!(kept[0].record, ids[n - 1]);
    assert!(!kept.iter().any(|s| ids[..5].contains(&s.record)));
    assert_eq!(a.conflict_counts().unwrap().resolved, n as u64);
}
