//! The bounded index against the unbounded one, through the store: every answer of a store
//! whose window keeps 2 or 3 entries equals that of one that keeps every entry, over random
//! writes and outbox transitions. And the index's heap, measured.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::tables::{self, OutboxRow, RowState, LOG_OUTBOX};
use crate::{Field, RecordId, ScalarType, Schema, SpaceId, Store, StoreConfig};

/// A small seeded generator (xorshift), so a failure replays from its printed seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Two stores given the same operations: `small` with a tiny window, `whole` keeping all.
struct Pair {
    dir: tempfile::TempDir,
    window: usize,
    clock: Arc<AtomicI64>,
    /// `small` and `whole`, none while they reopen.
    stores: Option<(Store, Store)>,
    /// The records, created in the same order in both.
    ids: Vec<(RecordId, RecordId)>,
    /// Seqs handed to the worker and not yet acknowledged or discarded.
    sent: Vec<u64>,
}

fn open(path: &std::path::Path, clock: &Arc<AtomicI64>, window: usize) -> Store {
    let schema = Schema::new(1).collection("note", [("title", Field::lww(ScalarType::String))]);
    let clock = clock.clone();
    let config = StoreConfig::new(schema)
        .clock(move || clock.load(Ordering::Relaxed))
        .outbox_window(window);
    Store::open(path, config).unwrap()
}

impl Pair {
    fn new(window: usize, records: usize) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(AtomicI64::new(1_000));
        let small = open(&dir.path().join("small"), &clock, window);
        let whole = open(&dir.path().join("whole"), &clock, usize::MAX);
        let space = SpaceId::new("s").unwrap();
        let ids = (0..records)
            .map(|_| {
                let create = |s: &Store| s.write(|tx| tx.create("note", &space)).unwrap();
                (create(&small), create(&whole))
            })
            .collect();
        Pair {
            dir,
            window,
            clock,
            stores: Some((small, whole)),
            ids,
            sent: Vec::new(),
        }
    }

    fn small(&self) -> &Store {
        &self.stores.as_ref().expect("open").0
    }

    fn whole(&self) -> &Store {
        &self.stores.as_ref().expect("open").1
    }

    fn reopen(&mut self) {
        self.stores = None;
        let dir = self.dir.path();
        let small = open(&dir.join("small"), &self.clock, self.window);
        let whole = open(&dir.join("whole"), &self.clock, usize::MAX);
        self.stores = Some((small, whole));
        self.sent.clear();
    }

    /// Runs `f` on both stores and checks they answer alike.
    fn both<T: PartialEq + std::fmt::Debug>(&self, f: impl Fn(&Store) -> T) -> T {
        let (small, whole) = (f(self.small()), f(self.whole()));
        assert_eq!(small, whole);
        small
    }

    fn step(&mut self, rng: &mut Rng) {
        // Creation times that go backwards too, as a device's clock may.
        let now = 1_000 + rng.below(500) as i64;
        self.clock.store(now, Ordering::Relaxed);
        let pick = |rng: &mut Rng, seqs: &[u64]| seqs[rng.below(seqs.len() as u64) as usize];
        let sent = self.sent.clone();
        match rng.below(20) {
            0..=6 => {
                let (a, b) = self.ids[rng.below(self.ids.len() as u64) as usize];
                let value = format!("{now}");
                self.small()
                    .update(a, |tx| tx.set(a, "title", value.as_str()))
                    .unwrap();
                self.whole()
                    .update(b, |tx| tx.set(b, "title", value.as_str()))
                    .unwrap();
            }
            7..=9 => {
                let n = 1 + rng.below(4) as usize;
                let taken = self.both(|s| {
                    let batch = s.outbox().take_batch(n, u64::MAX).unwrap();
                    batch.iter().map(|p| p.entry.seq).collect::<Vec<_>>()
                });
                self.sent.extend(taken);
            }
            10 | 11 if !sent.is_empty() => {
                let k = 1 + rng.below(sent.len() as u64) as usize;
                let acked: Vec<(u64, u64)> = sent[..k].iter().map(|s| (*s, 0)).collect();
                self.both(|s| s.outbox().mark_acked(&acked).unwrap());
                self.sent.drain(..k);
            }
            12 if !sent.is_empty() => {
                let seq = pick(rng, &sent);
                let permanent = rng.below(2) == 0;
                self.both(|s| s.outbox().mark_failed(seq, "refused", permanent).unwrap());
            }
            13 if !sent.is_empty() => {
                let seq = pick(rng, &sent);
                self.both(|s| {
                    let outbox = s.outbox();
                    outbox
                        .mark_dependency_refused(seq, "missing", false)
                        .unwrap()
                });
            }
            14 if !sent.is_empty() => {
                let seq = pick(rng, &sent);
                self.both(|s| s.outbox().hold(&[seq], now + 50).unwrap());
            }
            15 => {
                self.both(|s| s.outbox().requeue_sending().unwrap());
            }
            16 | 17 => {
                let listed = self.listed();
                if listed.is_empty() {
                    return;
                }
                let seq = listed[rng.below(listed.len() as u64) as usize].0;
                match rng.below(3) {
                    0 => {
                        self.both(|s| s.outbox().retry(seq).unwrap());
                    }
                    1 => {
                        self.both(|s| s.outbox().retry_failed().unwrap());
                    }
                    _ => {
                        let gone = self.both(|s| s.outbox().discard(seq).unwrap());
                        self.sent.retain(|s| !gone.contains(s));
                    }
                }
            }
            18 if rng.below(4) == 0 => self.reopen(),
            _ => {}
        }
    }

    /// Every entry as listed, with records named by their position.
    #[allow(clippy::type_complexity)]
    fn listed(&self) -> Vec<(u64, usize, i64, u32, String, Option<u64>, Option<i64>)> {
        self.both(|s| {
            let which = |r: RecordId| self.ids.iter().position(|(a, b)| r == *a || r == *b);
            let entries = s.outbox().list(None, usize::MAX).unwrap();
            entries
                .into_iter()
                .map(|e| {
                    let state = format!("{:?}", e.state);
                    let record = which(e.record).unwrap();
                    let at = e.retry_at_ms;
                    (
                        e.seq,
                        record,
                        e.created_ms,
                        e.attempts,
                        state,
                        e.blocked_by,
                        at,
                    )
                })
                .collect()
        })
    }

    /// Every answer of the index: summary, each record's state, the listing, the next
    /// batch's candidates.
    fn check(&self) {
        self.both(|s| s.sync_summary().unwrap());
        for (a, b) in &self.ids {
            assert_eq!(
                self.small().sync_state(*a).unwrap(),
                self.whole().sync_state(*b).unwrap()
            );
        }
        self.listed();
        self.both(|s| {
            let index = crate::lock::lock(&s.inner.outbox);
            index.matching(|state| matches!(state, RowState::Failed { .. }))
        });
    }
}

#[test]
fn a_tiny_window_answers_like_the_whole_outbox() {
    let base = std::env::var("HOLDFAST_SEED").map_or(0x5eed_0001, |s| s.parse().unwrap());
    for run in 0..12u64 {
        let seed = base + run;
        println!("seed {seed}");
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut pair = Pair::new(2 + (run % 2) as usize, 3);
        for _ in 0..250 {
            pair.step(&mut rng);
            pair.check();
        }
    }
}

// ---- memory ------------------------------------------------------------------------

/// The heap `index` holds, from its collections' lengths and capacities: a B-tree element
/// at its size plus half again for node slack and edges, a hash table's slot per capacity
/// plus its control byte, a failure's reason at its capacity. (The library forbids
/// `unsafe`, so a counting allocator cannot be installed in its own tests.)
fn heap_bytes(index: &super::OutboxIndex) -> usize {
    use std::mem::size_of;
    let tree = |n: usize, each: usize| n * each * 3 / 2;
    let reasons: usize = index
        .items
        .values()
        .map(|i| match &i.state {
            RowState::Failed { reason, .. } => reason.capacity(),
            _ => 0,
        })
        .sum();
    let sets: usize = index
        .records
        .values()
        .map(|r| match &r.items {
            super::Seqs::Many(set) => tree(set.len(), size_of::<u64>()),
            _ => 0,
        })
        .sum();
    tree(index.items.len(), size_of::<(u64, super::Item)>())
        + reasons
        + index.records.capacity() * (size_of::<(RecordId, super::Rec)>() + 1)
        + sets
        + index.segments.capacity() * size_of::<super::Segment>()
        + index.held.capacity() * (size_of::<(u64, i64)>() + 1)
}

fn row(record: RecordId, created_ms: i64) -> OutboxRow {
    OutboxRow {
        event_id: crate::EventId::new_v7(),
        record,
        space: SpaceId::new("s").unwrap(),
        change_hashes: vec![[7; 32]],
        heads_before: vec![[8; 32]],
        bytes: 40,
        created_ms,
        attempts: 0,
        state: RowState::Queued,
    }
}

/// The index's memory for `entries` pending entries over 100 records, as the store opens it
/// (one pass over the table) and as writes add them (the commit path).
fn index_bytes(entries: u64, window: usize) -> (usize, usize) {
    let records: Vec<RecordId> = (0..100).map(|_| RecordId::new_v7()).collect();
    let db = redb::Database::builder()
        .create_with_backend(redb::backends::InMemoryBackend::new())
        .unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut log = txn.open_table(tables::LOG).unwrap();
        let changes = tables::encode_row(tables::CHANGES_ROW_V1, &vec![vec![0u8; 40]]);
        for seq in 1..=entries {
            let row = row(records[(seq % 100) as usize], seq as i64);
            let bytes = tables::encode_outbox(&row, &changes);
            log.insert((LOG_OUTBOX, seq), bytes.as_slice()).unwrap();
        }
    }
    let opened = super::super::open_index(&txn, true, window).unwrap();
    let mut written = super::OutboxIndex::new(window);
    for seq in 1..=entries {
        written.insert(seq, &row(records[(seq % 100) as usize], seq as i64));
    }
    (heap_bytes(&opened), heap_bytes(&written))
}

#[test]
fn the_index_memory_does_not_grow_with_entries() {
    let window = crate::limits::OUTBOX_INDEX_WINDOW_ENTRIES;
    let (open_50k, write_50k) = index_bytes(50_000, window);
    let (open_200k, write_200k) = index_bytes(200_000, window);
    let (whole_200k, _) = index_bytes(200_000, usize::MAX);
    println!(
        "outbox index, 100 records: 50,000 entries {open_50k} B at open, {write_50k} B by \
         writes; 200,000 entries {open_200k} B at open, {write_200k} B by writes; \
         every entry kept whole: {whole_200k} B"
    );
    for (small, large) in [(open_50k, open_200k), (write_50k, write_200k)] {
        assert!(large <= small + small / 10, "{small} -> {large}");
    }
    assert!(open_200k < 1 << 20, "{open_200k}");
}
