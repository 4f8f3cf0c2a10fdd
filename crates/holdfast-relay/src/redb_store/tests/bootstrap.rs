//! Bootstrap pages: record states that, with the pull from their base, rebuild every
//! record exactly.

use std::collections::BTreeMap;

use holdfast_protocol::BootstrapFrom;

use super::*;

/// A space's history, made of random pushes.
struct History {
    rng: Rng,
    space: SpaceId,
    docs: Vec<Doc>,
}

impl History {
    /// Pushes one entry: 1-3 changes of a random record (a new one sometimes), now and
    /// then a large one or a delete; sometimes compacts what is due.
    fn step(&mut self, store: &RedbLogStore) {
        let which = if self.docs.is_empty() || self.rng.below(8) == 0 {
            self.docs.push(Doc::new());
            self.docs.len() - 1
        } else {
            self.rng.below(self.docs.len() as u64) as usize
        };
        let n = 1 + self.rng.below(3);
        let mut changes = Vec::new();
        for _ in 0..n {
            let change = match self.rng.below(20) {
                0 => self.docs[which].delete(),
                1 => {
                    let seed = self.rng.next();
                    self.docs[which].big_change(3000, seed)
                }
                _ => self.docs[which].change(),
            };
            changes.push(change);
        }
        let record = self.docs[which].record;
        let got = push(store, vec![entry(&self.space, record, changes)]);
        assert!(matches!(got[0], Outcome::Stored { .. }), "{got:?}");
        if self.rng.below(10) == 0 {
            store.compact_now().unwrap();
        }
    }
}

#[test]
fn pages_and_the_pull_after_them_rebuild_every_record_exactly() {
    let seed = seed();
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        compact_tail_entries_min: 4,
        compact_tail_bytes_min: 4096,
        pull_entries_max: 5,
        ..quiet()
    };
    let store = open(dir.path(), config);
    let mut history = History {
        rng: Rng(seed),
        space: space("s"),
        docs: Vec::new(),
    };
    for _ in 0..150 {
        history.step(&store);
    }
    let s = history.space.clone();
    let log_before: Vec<ChangeEntry> = pull_from(&store, &s, None).0;

    let mut device: BTreeMap<RecordId, Automerge> = BTreeMap::new();
    let mut from: Option<BootstrapFrom> = None;
    let mut base: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let max_bytes = 1 + history.rng.below(8000);
        let page = store.bootstrap(&s, from, max_bytes).unwrap();
        pages += 1;
        assert!(!page.records.is_empty());
        assert!(page.records.len() <= 5);
        let bytes: u64 = page.records.iter().map(RecordState::byte_len).sum();
        assert!(
            page.records.len() == 1 || bytes <= max_bytes,
            "{bytes} > {max_bytes}"
        );
        let ids: Vec<RecordId> = page.records.iter().map(|r| r.record).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "record id order");
        if let Some(from) = from {
            assert!(ids[0] > from.after);
        }
        let base = *base.get_or_insert(page.base);
        assert_eq!(page.base, base);
        for state in page.records {
            let doc = device.entry(state.record).or_default();
            if !state.doc.is_empty() {
                doc.load_incremental(&state.doc).unwrap();
            }
            apply(doc, &state.changes);
            // Every change of the record up to base is in its state.
            for e in log_before
                .iter()
                .filter(|e| e.record == state.record && e.seq <= base.seq)
            {
                for c in &e.changes {
                    let hash = automerge::Change::try_from(&c[..]).unwrap().hash();
                    assert!(
                        doc.get_change_by_hash(&hash).is_some(),
                        "entry {} missing",
                        e.seq
                    );
                }
            }
        }
        // The space goes on changing between pages.
        for _ in 0..history.rng.below(6) {
            history.step(&store);
        }
        match page.next {
            Some(after) => from = Some(BootstrapFrom { base, after }),
            None => break,
        }
    }
    let base = base.unwrap();
    for e in pull_from(&store, &s, Some(base)).0 {
        apply(device.entry(e.record).or_default(), &e.changes);
    }
    eprintln!(
        "{} records, {pages} pages, {} compactions",
        history.docs.len(),
        store.compactions()
    );
    assert!(store.compactions() > 0);
    assert_eq!(device.len(), history.docs.len());
    for doc in &mut history.docs {
        let got = &device[&doc.record];
        let want = log_doc(&store, &s, doc.record);
        assert_eq!(
            sorted_heads(got),
            sorted_heads(&want),
            "record {}",
            doc.record
        );
        let mut own = doc.doc.get_heads();
        own.sort();
        assert_eq!(sorted_heads(got), own, "the device that wrote it agrees");
        assert_eq!(got.hydrate(None), want.hydrate(None));
    }
}

#[test]
fn deleted_records_are_sent_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), quiet());
    let s = space("s");
    let mut doc = Doc::new();
    push(&store, vec![entry(&s, doc.record, vec![doc.change()])]);
    push(&store, vec![entry(&s, doc.record, vec![doc.delete()])]);
    let page = store.bootstrap(&s, None, u64::MAX).unwrap();
    let mut got = Automerge::new();
    apply(&mut got, &page.records[0].changes);
    let (state, _) = got.get(ROOT, "_state").unwrap().unwrap();
    assert_eq!(state.as_str(), Some("deleted:0192d1e2-test"));
}

#[test]
fn an_empty_space_bootstraps_at_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), quiet());
    let page = store.bootstrap(&space("s"), None, 1).unwrap();
    assert_eq!(
        page,
        SnapshotPage {
            records: Vec::new(),
            base: Cursor::start(store.epoch()),
            next: None
        }
    );
}

#[test]
fn pages_hold_at_most_the_configured_number_of_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        dir.path(),
        StoreConfig {
            pull_entries_max: 3,
            ..quiet()
        },
    );
    let s = space("s");
    for _ in 0..7 {
        let mut doc = Doc::new();
        push(&store, vec![entry(&s, doc.record, vec![doc.change()])]);
    }
    let mut sizes = Vec::new();
    let mut from = None;
    loop {
        let page = store.bootstrap(&s, from, u64::MAX).unwrap();
        sizes.push(page.records.len());
        match page.next {
            Some(after) => {
                from = Some(BootstrapFrom {
                    base: page.base,
                    after,
                })
            }
            None => break,
        }
    }
    assert_eq!(sizes, [3, 3, 1]);
}

#[test]
fn a_base_the_relay_cannot_vouch_for_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), quiet());
    let s = space("s");
    for _ in 0..3 {
        let mut doc = Doc::new();
        push(&store, vec![entry(&s, doc.record, vec![doc.change()])]);
    }
    let first = store.bootstrap(&s, None, 1).unwrap();
    assert_eq!(first.records.len(), 1);
    let after = first.next.unwrap();
    let check = |base: Cursor| {
        let page = store
            .bootstrap(&s, Some(BootstrapFrom { base, after }), 1)
            .unwrap();
        assert_eq!(
            page.base,
            Cursor {
                epoch: store.epoch(),
                seq: 3
            }
        );
        assert_eq!(
            page.records[0].record, first.records[0].record,
            "from the first record"
        );
    };
    check(Cursor {
        epoch: first.base.epoch,
        seq: 4,
    });
    store.rotate_epoch().unwrap();
    check(first.base);
}

#[test]
fn a_tail_too_long_for_one_state_is_sent_as_its_document() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        compact_tail_changes_min: u64::MAX,
        ..quiet()
    };
    let store = open(dir.path(), config);
    let s = space("s");
    let mut doc = Doc::new();
    for _ in 0..2 {
        let changes: Vec<Vec<u8>> = (0..CHANGES_PER_ENTRY_MAX / 2 + 1)
            .map(|_| doc.change())
            .collect();
        assert!(matches!(
            push(&store, vec![entry(&s, doc.record, changes)])[0],
            Outcome::Stored { .. }
        ));
    }
    let page = store.bootstrap(&s, None, u64::MAX).unwrap();
    let state = &page.records[0];
    assert!(state.changes.is_empty() && !state.doc.is_empty());
    let got = Automerge::load(&state.doc).unwrap();
    assert_eq!(
        sorted_heads(&got),
        sorted_heads(&log_doc(&store, &s, doc.record))
    );
    // The log is untouched: the document is built for the answer, not stored.
    assert_eq!(row(&store, &s, doc.record).unwrap().snapshot_seq, 0);
}
