use std::path::Path;
use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, Automerge, ChangeHash, ReadDoc, ROOT};
use holdfast_protocol::limits::CHANGES_PER_ENTRY_MAX;
use holdfast_protocol::limits::MESSAGE_BYTES_MAX;
use holdfast_protocol::{RecordState, RejectCode};

use super::commit::{check, rejected, short, truncate, REASON_HASH_CHARS};
use super::*;
use crate::tables::RecordRow;

mod bootstrap;
mod compaction;
mod events;
mod index;
mod limit;
mod repair;

#[test]
fn reasons_are_cut_to_the_message_limit_at_a_character_boundary() {
    let check = |text: &str, max: usize, want: &str| {
        let mut text = text.to_owned();
        truncate(&mut text, max);
        assert_eq!(text, want);
    };
    check("abc", 3, "abc");
    check("abcd", 3, "abc");
    check("aé", 2, "a");
    check("", 0, "");
    let long = "x".repeat(MESSAGE_BYTES_MAX + 1);
    let Outcome::Rejected { reason, .. } = rejected(RejectCode::Malformed, long, true) else {
        unreachable!("rejected builds a rejection");
    };
    assert_eq!(reason.len(), MESSAGE_BYTES_MAX);
}

#[test]
fn short_hashes_have_the_configured_length() {
    assert_eq!(short(&[0xab; 32]), "ab".repeat(REASON_HASH_CHARS / 2));
}

#[test]
fn an_entry_without_changes_is_malformed() {
    let entry = PushEntry {
        event_id: EventId::from_bytes([1; 16]),
        space: SpaceId::new("s").unwrap(),
        record: RecordId::from_bytes([2; 16]),
        changes: Vec::new(),
    };
    let checked = check(entry);
    assert!(checked.parsed.is_empty());
    assert_eq!(
        checked.malformed.as_deref(),
        Some("the entry carries no changes")
    );
}

#[test]
fn the_trait_with_bootstrap_and_repair_is_object_safe() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn LogStore> = Arc::new(open(dir.path(), quiet()));
    let page = store.bootstrap(&space("s"), None, 1 << 20).unwrap();
    assert!(page.records.is_empty() && page.next.is_none());
}

/// Entries spread over 100 records, 100 per call, with the background compactor running
/// alongside: every one is stored, in order. (Store throughput is measured end to end by
/// `benches`' `relay_load`, not here.)
#[test]
fn entries_over_many_records_are_stored_in_order_beside_the_compactor() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), StoreConfig::default());
    let s = space("s");
    let mut docs: Vec<Doc> = (0..100).map(|_| Doc::new()).collect();
    let entries: Vec<PushEntry> = (0..400)
        .map(|i| {
            let doc = &mut docs[i % 100];
            entry(&s, doc.record, vec![doc.change()])
        })
        .collect();
    for batch in entries.chunks(100) {
        let outcomes = push(&store, batch.to_vec());
        assert!(outcomes.iter().all(|o| matches!(o, Outcome::Stored { .. })));
    }
    assert_eq!(store.last_seq(&s).unwrap(), 400);
}

// Helpers shared by the test modules.

/// A config without the background compactor, so tests decide when snapshots are made.
fn quiet() -> StoreConfig {
    StoreConfig {
        compact_in_background: false,
        ..StoreConfig::default()
    }
}

fn open(dir: &Path, config: StoreConfig) -> RedbLogStore {
    RedbLogStore::open(dir.join("relay.redb"), config).expect("store opens")
}

fn space(name: &str) -> SpaceId {
    SpaceId::new(name).expect("valid space id")
}

/// One record's document on a device, making real changes.
struct Doc {
    record: RecordId,
    doc: AutoCommit,
    puts: u64,
}

impl Doc {
    fn new() -> Self {
        let record = RecordId::new_v7();
        Self::with_record(record)
    }

    fn with_record(record: RecordId) -> Self {
        let doc = AutoCommit::new().with_actor(ActorId::random());
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
        // The actor in the value: two devices never make the same (empty) change.
        let actor = self.doc.get_actor().to_hex_string();
        self.doc
            .put(ROOT, "title", format!("title {n} by {actor}"))
            .unwrap();
        self.commit()
    }

    /// A change of about `bytes` bytes (an incompressible string).
    fn big_change(&mut self, bytes: usize, seed: u64) -> Vec<u8> {
        let mut rng = Rng(seed);
        let text: String = (0..bytes)
            .map(|_| char::from(b'a' + rng.below(26) as u8))
            .collect();
        self.doc.put(ROOT, "body", text).unwrap();
        self.commit()
    }

    /// Deletes the record the way the device library does: `_state` set to "deleted:…".
    fn delete(&mut self) -> Vec<u8> {
        self.puts += 1;
        self.doc
            .put(ROOT, "_state", "deleted:0192d1e2-test")
            .unwrap();
        self.doc.put(ROOT, "deletes", self.puts).unwrap();
        self.commit()
    }

    fn commit(&mut self) -> Vec<u8> {
        self.doc.commit();
        self.doc
            .get_last_local_change()
            .unwrap()
            .raw_bytes()
            .to_vec()
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

fn push(store: &dyn LogStore, entries: Vec<PushEntry>) -> Vec<Outcome> {
    let ids: Vec<EventId> = entries.iter().map(|e| e.event_id).collect();
    let results = store.store(entries).expect("store succeeds");
    let answered: Vec<EventId> = results.iter().map(|r| r.event_id).collect();
    assert_eq!(answered, ids, "one result per entry, in order");
    results.into_iter().map(|r| r.outcome).collect()
}

fn stored(seq: u64) -> Outcome {
    Outcome::Stored { seq }
}

/// The log of `space` after `cursor`, paging through it; and the cursor at its end.
fn pull_from(
    store: &dyn LogStore,
    space: &SpaceId,
    mut cursor: Option<Cursor>,
) -> (Vec<ChangeEntry>, Cursor) {
    let mut all = Vec::new();
    loop {
        match store.pull(space, cursor, 1 << 16).expect("pull succeeds") {
            PullResult::Changes {
                entries,
                next_cursor,
                more,
            } => {
                all.extend(entries);
                cursor = Some(next_cursor);
                if !more {
                    return (all, next_cursor);
                }
            }
            other => panic!("expected changes, got {other:?}"),
        }
    }
}

/// The document a device gets by applying every logged change of `record`.
fn log_doc(store: &dyn LogStore, space: &SpaceId, record: RecordId) -> Automerge {
    let (entries, _) = pull_from(store, space, None);
    let mut doc = Automerge::new();
    apply(
        &mut doc,
        entries
            .iter()
            .filter(|e| e.record == record)
            .flat_map(|e| &e.changes),
    );
    doc
}

fn apply<'a>(doc: &mut Automerge, changes: impl IntoIterator<Item = &'a Vec<u8>>) {
    let changes: Vec<automerge::Change> = changes
        .into_iter()
        .map(|c| automerge::Change::try_from(&c[..]).expect("a stored change parses"))
        .collect();
    doc.apply_changes(changes).expect("changes apply");
}

fn sorted_heads(doc: &Automerge) -> Vec<ChangeHash> {
    let mut heads = doc.get_heads();
    heads.sort();
    heads
}

/// The record's row, read straight from the table.
fn row(store: &RedbLogStore, space: &SpaceId, record: RecordId) -> Option<RecordRow> {
    let txn = store.db.begin_read().unwrap();
    let records = txn.open_table(tables::RECORDS).unwrap();
    tables::read_record(&records, space.as_str(), tables::rid(record)).unwrap()
}

/// The seed of a randomized test: `HOLDFAST_SEED` if set, else fresh; printed either way.
pub(crate) fn seed() -> u64 {
    let seed = match std::env::var("HOLDFAST_SEED") {
        Ok(s) => s.parse().expect("HOLDFAST_SEED is a u64"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    eprintln!("seed = {seed} (set HOLDFAST_SEED={seed} to replay)");
    seed
}

/// A small deterministic generator (SplitMix64).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Waits up to 20 s for `done`, polling.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
