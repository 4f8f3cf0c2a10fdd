//! Integration tests of the relay: its log store on real redb files in temporary
//! directories, and the `holdfast-relay` binary on loopback ports.

mod cli;
mod compat;
mod concurrent;
mod deps;
mod epoch;
mod harness;
mod hostile;
mod ops;
mod pull;
mod push;
mod refusals;
mod retention;
mod serve;
mod spaces;
mod tls;
mod wire;

use std::path::Path;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ScalarValue, ROOT};
use holdfast_protocol::{
    AckResult, ChangeEntry, Cursor, EventId, Outcome, PushEntry, RecordId, SpaceId,
};
use holdfast_relay::{LogStore, PullResult, RedbLogStore, StoreConfig};

/// Opens (or creates) the store `relay.redb` in `dir` with the default config.
fn open(dir: &Path) -> RedbLogStore {
    open_with(dir, StoreConfig::default())
}

fn open_with(dir: &Path, config: StoreConfig) -> RedbLogStore {
    RedbLogStore::open(dir.join("relay.redb"), config).expect("store opens")
}

fn space(name: &str) -> SpaceId {
    SpaceId::new(name).expect("valid space id")
}

/// One record's Automerge document, making real changes.
struct Doc {
    record: RecordId,
    doc: AutoCommit,
    puts: u64,
}

impl Doc {
    fn new() -> Self {
        let record = RecordId::new_v7();
        let doc = AutoCommit::new().with_actor(ActorId::from(record.as_bytes().to_vec()));
        Self {
            record,
            doc,
            puts: 0,
        }
    }

    /// Makes one change of a few puts and returns its raw bytes.
    fn change(&mut self) -> Vec<u8> {
        self.puts += 1;
        let n = self.puts;
        self.doc.put(ROOT, format!("field{}", n % 3), n).unwrap();
        self.doc.put(ROOT, "title", format!("title {n}")).unwrap();
        self.doc.commit();
        self.doc
            .get_last_local_change()
            .unwrap()
            .raw_bytes()
            .to_vec()
    }

    /// Makes one change holding `bytes` and returns its raw bytes.
    fn change_with_bytes(&mut self, bytes: Vec<u8>) -> Vec<u8> {
        self.doc
            .put(ROOT, "blob", ScalarValue::Bytes(bytes))
            .unwrap();
        self.doc.commit();
        self.doc
            .get_last_local_change()
            .unwrap()
            .raw_bytes()
            .to_vec()
    }

    /// Every change of the document so far, in causal order.
    fn all(&mut self) -> Vec<Vec<u8>> {
        self.doc
            .get_changes(&[])
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect()
    }
}

/// A push entry of `record` with a new event id.
fn entry(space: &SpaceId, record: RecordId, changes: Vec<Vec<u8>>) -> PushEntry {
    PushEntry {
        event_id: EventId::new_v7(),
        space: space.clone(),
        record,
        changes,
    }
}

fn outcomes(results: &[AckResult]) -> Vec<Outcome> {
    results.iter().map(|r| r.outcome.clone()).collect()
}

/// Stores `entries` and checks the results answer them one for one, in order.
fn push(store: &dyn LogStore, entries: Vec<PushEntry>) -> Vec<Outcome> {
    let ids: Vec<EventId> = entries.iter().map(|e| e.event_id).collect();
    let results = store.store(entries).expect("store succeeds");
    let answered: Vec<EventId> = results.iter().map(|r| r.event_id).collect();
    assert_eq!(answered, ids, "one result per entry, in order");
    outcomes(&results)
}

/// Pulls, expecting changes.
fn changes(
    store: &dyn LogStore,
    space: &SpaceId,
    cursor: Option<Cursor>,
    max_bytes: u64,
) -> (Vec<ChangeEntry>, Cursor, bool) {
    match store.pull(space, cursor, max_bytes).expect("pull succeeds") {
        PullResult::Changes {
            entries,
            next_cursor,
            more,
        } => (entries, next_cursor, more),
        other => panic!("expected changes, got {other:?}"),
    }
}

/// The whole log of `space`, paging through it.
fn pull_all(store: &dyn LogStore, space: &SpaceId) -> Vec<ChangeEntry> {
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let (entries, next, more) = changes(store, space, cursor, 1 << 20);
        all.extend(entries);
        cursor = Some(next);
        if !more {
            return all;
        }
    }
}

fn stored(seq: u64) -> Outcome {
    Outcome::Stored { seq }
}

fn duplicate(seq: u64) -> Outcome {
    Outcome::Duplicate { seq }
}

/// The seed of a randomized test: `HOLDFAST_SEED` if set, else fresh; printed either way.
fn seed() -> u64 {
    let seed = match std::env::var("HOLDFAST_SEED") {
        Ok(s) => s.parse().expect("HOLDFAST_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    eprintln!("seed = {seed} (set HOLDFAST_SEED={seed} to replay)");
    seed
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// `len` random bytes (rounded down to whole words): incompressible.
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len / 8)
            .flat_map(|_| self.next().to_le_bytes())
            .collect()
    }
}

#[test]
fn the_trait_is_object_safe() {
    let dir = tempfile::tempdir().unwrap();
    let shared: std::sync::Arc<dyn LogStore> = std::sync::Arc::new(open(dir.path()));
    assert_ne!(shared.epoch(), 0);
}
