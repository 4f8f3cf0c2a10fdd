//! The event-id retention window.

use holdfast_relay::EVENT_RETENTION_MS_DEFAULT;

use super::*;

const T0: u64 = 1_800_000_000_000;

#[test]
fn the_default_window_is_thirty_days() {
    assert_eq!(EVENT_RETENTION_MS_DEFAULT, 30 * 24 * 3_600_000);
    assert_eq!(
        StoreConfig::default().event_retention_ms,
        EVENT_RETENTION_MS_DEFAULT
    );
}

#[test]
fn an_event_id_is_remembered_just_below_the_window_and_forgotten_at_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let window = store.config().event_retention_ms;
    let s = space("notes");
    let mut doc = Doc::new();
    let e = entry(&s, doc.record, vec![doc.change()]);
    let first = store.store_at(vec![e.clone()], T0).unwrap();
    assert_eq!(outcomes(&first), [stored(1)]);

    assert_eq!(
        store.prune(T0 + window - 1).unwrap(),
        0,
        "just below the window"
    );
    assert_eq!(
        store.event_outcome(&s, e.event_id).unwrap(),
        Some(stored(1))
    );
    let repeat = store.store_at(vec![e.clone()], T0 + window - 1).unwrap();
    assert_eq!(outcomes(&repeat), [duplicate(1)]);

    assert_eq!(store.prune(T0 + window).unwrap(), 1, "at the window");
    assert_eq!(store.event_outcome(&s, e.event_id).unwrap(), None);
    // The changes are still held, so the entry is still not stored twice.
    let late = store.store_at(vec![e.clone()], T0 + window).unwrap();
    assert_eq!(outcomes(&late), [duplicate(1)]);
    assert_eq!(store.last_seq(&s).unwrap(), 1);
}

#[test]
fn a_repeat_does_not_extend_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let window = store.config().event_retention_ms;
    let s = space("notes");
    let mut doc = Doc::new();
    let e = entry(&s, doc.record, vec![doc.change()]);
    store.store_at(vec![e.clone()], T0).unwrap();
    store.store_at(vec![e.clone()], T0 + window / 2).unwrap();
    assert_eq!(store.prune(T0 + window).unwrap(), 1);
}

#[test]
fn prune_removes_at_most_prune_rows_max_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::default();
    config.prune_rows_max = 2;
    config.event_retention_ms = 1_000;
    let store = open_with(dir.path(), config);
    let s = space("notes");
    let mut doc = Doc::new();
    for i in 0..5 {
        let e = entry(&s, doc.record, vec![doc.change()]);
        store.store_at(vec![e], T0 + i).unwrap();
    }
    // Only the first three are expired at T0 + 1002.
    assert_eq!(store.prune(T0 + 1_002).unwrap(), 2);
    assert_eq!(store.prune(T0 + 1_002).unwrap(), 1);
    assert_eq!(store.prune(T0 + 1_002).unwrap(), 0);
    assert_eq!(store.prune(T0 + 5_000).unwrap(), 2);
    assert_eq!(
        store.prune(0).unwrap(),
        0,
        "a clock before the window prunes nothing"
    );
}
