//! Pulling: determinism, pagination, restarts.

use holdfast_protocol::{encode, Frame};

use super::*;

/// Pushes `n` single-change entries of one record to `s`.
fn fill(store: &RedbLogStore, s: &SpaceId, n: usize) -> Vec<PushEntry> {
    let mut doc = Doc::new();
    let entries: Vec<PushEntry> = (0..n)
        .map(|_| entry(s, doc.record, vec![doc.change()]))
        .collect();
    let got = push(store, entries.clone());
    assert!(got.iter().all(|o| matches!(o, Outcome::Stored { .. })));
    entries
}

/// The bytes of a pull answer, as a `Changes` frame on the wire.
fn wire(store: &dyn LogStore, s: &SpaceId, cursor: Option<Cursor>, max_bytes: u64) -> Vec<u8> {
    let (entries, next_cursor, more) = changes(store, s, cursor, max_bytes);
    encode(&Frame::Changes {
        space: s.clone(),
        entries,
        next_cursor,
        more,
    })
    .unwrap()
}

fn size(entry: &ChangeEntry) -> u64 {
    entry.changes.iter().map(|c| c.len() as u64).sum()
}

#[test]
fn the_same_cursor_yields_the_same_bytes_twice_and_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let s = space("notes");
    let store = open(dir.path());
    fill(&store, &s, 7);
    let epoch = store.epoch();
    let cursors = [
        None,
        Some(Cursor::start(epoch)),
        Some(Cursor { epoch, seq: 3 }),
    ];
    let before: Vec<_> = cursors
        .iter()
        .map(|c| wire(&store, &s, *c, 1 << 20))
        .collect();
    let again: Vec<_> = cursors
        .iter()
        .map(|c| wire(&store, &s, *c, 1 << 20))
        .collect();
    assert_eq!(before, again);
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.epoch(), epoch, "the epoch survives a restart");
    let after: Vec<_> = cursors
        .iter()
        .map(|c| wire(&store, &s, *c, 1 << 20))
        .collect();
    assert_eq!(before, after);
    assert_eq!(before[0], before[1], "no cursor means the start of the log");
}

#[test]
fn a_restart_between_push_and_pull_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = space("notes");
    let store = open(dir.path());
    let relay_id = store.relay_id();
    let pushed = fill(&store, &s, 5);
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.relay_id(), relay_id);
    let log = pull_all(&store, &s);
    let got: Vec<_> = log
        .iter()
        .map(|e| (e.event_id, e.changes.clone()))
        .collect();
    let want: Vec<_> = pushed
        .iter()
        .map(|e| (e.event_id, e.changes.clone()))
        .collect();
    assert_eq!(got, want);
    // The event ids are remembered across the restart too.
    assert_eq!(
        push(&store, pushed),
        (1..=5).map(duplicate).collect::<Vec<_>>()
    );
}

#[test]
fn max_bytes_pages_the_log_with_at_least_one_entry_per_page() {
    let dir = tempfile::tempdir().unwrap();
    let s = space("notes");
    let store = open(dir.path());
    fill(&store, &s, 6);
    let all = pull_all(&store, &s);
    let epoch = store.epoch();
    // Exactly two entries fit; one byte less fits one.
    let two = size(&all[0]) + size(&all[1]);
    let (page, next, more) = changes(&store, &s, None, two);
    assert_eq!(
        (page.len(), next, more),
        (2, Cursor { epoch, seq: 2 }, true)
    );
    let (page, _, _) = changes(&store, &s, None, two - 1);
    assert_eq!(page.len(), 1);
    // Nothing fits: still one entry.
    let (page, next, more) = changes(&store, &s, Some(Cursor { epoch, seq: 5 }), 0);
    assert_eq!(
        (page.len(), next, more),
        (1, Cursor { epoch, seq: 6 }, false)
    );
    // At the end: nothing, the same cursor, no more.
    let end = Cursor { epoch, seq: 6 };
    assert_eq!(
        changes(&store, &s, Some(end), 1 << 20),
        (Vec::new(), end, false)
    );
}

#[test]
fn pull_entries_max_bounds_a_page() {
    let dir = tempfile::tempdir().unwrap();
    let s = space("notes");
    let mut config = StoreConfig::default();
    config.pull_entries_max = 3;
    let store = open_with(dir.path(), config);
    fill(&store, &s, 3);
    let (page, _, more) = changes(&store, &s, None, u64::MAX);
    assert_eq!((page.len(), more), (3, false), "just at the limit");
    fill(&store, &s, 1);
    let (page, _, more) = changes(&store, &s, None, u64::MAX);
    assert_eq!((page.len(), more), (3, true), "just above");
}

#[test]
fn an_empty_space_pulls_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let start = Cursor::start(store.epoch());
    assert_eq!(
        changes(&store, &space("empty"), None, 1 << 20),
        (Vec::new(), start, false)
    );
}

#[test]
fn random_page_sizes_concatenate_to_the_whole_log() {
    let mut rng = Rng(seed());
    let dir = tempfile::tempdir().unwrap();
    let s = space("notes");
    let store = open(dir.path());
    let mut docs: Vec<Doc> = (0..4).map(|_| Doc::new()).collect();
    for _ in 0..40 {
        let doc = &mut docs[rng.below(4) as usize];
        let n = 1 + rng.below(3);
        let changes: Vec<_> = (0..n).map(|_| doc.change()).collect();
        assert!(matches!(
            push(&store, vec![entry(&s, doc.record, changes)])[0],
            Outcome::Stored { .. }
        ));
    }
    let all = pull_all(&store, &s);
    assert_eq!(all.len(), 40);
    assert!(all.iter().zip(1..).all(|(e, seq)| e.seq == seq));
    for _ in 0..20 {
        let max_bytes = rng.below(2_000);
        let mut cursor = None;
        let mut paged = Vec::new();
        loop {
            let (page, next, more) = changes(&store, &s, cursor, max_bytes);
            assert!(!page.is_empty() || !more);
            let bytes: u64 = page.iter().map(size).sum();
            assert!(
                page.len() == 1 || bytes <= max_bytes,
                "{bytes} > {max_bytes}"
            );
            paged.extend(page);
            cursor = Some(next);
            if !more {
                break;
            }
        }
        assert_eq!(paged, all, "max_bytes {max_bytes}");
    }
}
