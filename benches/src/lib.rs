//! Shared set-up for Holdfast benchmarks: the schema and workloads they run, and the raw
//! baselines they are compared against in the same run.

use std::path::Path;

pub mod compare;
pub mod relay_attack;
pub mod relay_client;
pub mod relay_probe;
pub mod relay_sync;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use holdfast::{Field, Query, RecordId, ScalarType, Schema, SpaceId, Store, StoreConfig};

/// The notes schema every benchmark uses.
pub fn schema() -> Schema {
    Schema::new(1).collection(
        "note",
        [
            ("title", Field::lww(ScalarType::String)),
            ("body", Field::text()),
            ("status", Field::versioned(ScalarType::String).indexed()),
            ("count", Field::counter()),
        ],
    )
}

/// Counts the notes a store holds, a page of 1,000 at a time.
pub fn count_notes(store: &Store) -> anyhow::Result<usize> {
    let mut count = 0;
    let mut after = None;
    loop {
        let page = store.query(&Query::Collection("note"), 1000, after.as_ref())?;
        count += page.ids.len();
        match page.next {
            Some(token) => after = Some(token),
            None => return Ok(count),
        }
    }
}

/// `writers` threads make `per_writer` [`small_edit`]s each, writer `w` to notes `w`,
/// `w + writers`, ... of `ids`, all starting together; returns the time until the last
/// one is done.
pub fn timed_writers(store: &Store, ids: &[RecordId], writers: usize, per_writer: u64) -> Duration {
    let barrier = Arc::new(Barrier::new(writers + 1));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let barrier = barrier.clone();
            let mine: Vec<_> = ids.iter().skip(w).step_by(writers).copied().collect();
            std::thread::spawn(move || {
                barrier.wait();
                for n in 0..per_writer {
                    small_edit(&store, mine[n as usize % mine.len()], n);
                }
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    for handle in handles {
        handle.join().expect("a writer panicked");
    }
    started.elapsed()
}

/// Opens a fresh store at `path`.
pub fn open(path: &Path) -> Store {
    Store::open(path, StoreConfig::new(schema())).expect("open store")
}

/// Creates one note to edit.
pub fn create_note(store: &Store) -> RecordId {
    let space = SpaceId::new("bench").expect("valid space");
    store
        .write(|tx| {
            let id = tx.create("note", &space)?;
            tx.set(id, "title", "benchmark")?;
            tx.set(id, "status", "draft")?;
            Ok(id)
        })
        .expect("create")
}

/// One typical small durable write: a title change and ten typed characters.
pub fn small_edit(store: &Store, id: RecordId, n: u64) {
    store
        .update(id, |tx| {
            tx.set(id, "title", format!("title {n}"))?;
            tx.splice_text(id, "body", 0, 0, "0123456789")
        })
        .expect("write");
}

/// The change bytes one [`small_edit`] produces, measured on a scratch store.
pub fn small_edit_change_bytes(dir: &Path) -> u64 {
    let store = open(&dir.join("measure.redb"));
    let id = create_note(&store);
    let before = store.outbox().list(None, usize::MAX).expect("list").len();
    small_edit(&store, id, 0);
    let entries = store.outbox().list(None, usize::MAX).expect("list");
    entries[before].bytes
}

const RAW: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("raw");

/// The baseline: a bare redb database committing `payload` bytes per transaction with
/// `Durability::Immediate` (redb's default).
pub struct RawRedb {
    db: redb::Database,
    payload: Vec<u8>,
    next: u64,
}

impl RawRedb {
    /// A new database at `path` whose commits carry `payload_bytes` each.
    pub fn open(path: &Path, payload_bytes: usize) -> RawRedb {
        let db = redb::Database::create(path).expect("create redb");
        RawRedb {
            db,
            payload: vec![7; payload_bytes],
            next: 0,
        }
    }

    /// One durable commit.
    pub fn commit_one(&mut self) {
        let txn = self.db.begin_write().expect("begin");
        {
            let mut table = txn.open_table(RAW).expect("table");
            table
                .insert(self.next, self.payload.as_slice())
                .expect("insert");
        }
        txn.commit().expect("commit");
        self.next += 1;
    }
}

/// The floor under any Automerge-backed store: the same edit as [`small_edit`] applied to
/// in-memory documents, plus extracting the change bytes that must reach the disk. No I/O.
pub struct BareAutomerge {
    docs: Vec<(automerge::Automerge, automerge::ObjId)>,
    next: usize,
}

impl BareAutomerge {
    /// `notes` documents shaped like the store's notes.
    pub fn new(notes: usize) -> BareAutomerge {
        use automerge::transaction::Transactable;
        let docs = (0..notes)
            .map(|_| {
                let mut doc = automerge::Automerge::new();
                let mut tx = doc.transaction();
                tx.put(automerge::ROOT, "title", "benchmark").expect("put");
                let body = tx
                    .put_object(automerge::ROOT, "body", automerge::ObjType::Text)
                    .expect("obj");
                tx.commit();
                (doc, body)
            })
            .collect();
        BareAutomerge { docs, next: 0 }
    }

    /// One edit: a title change and ten typed characters, committed; returns the change size.
    pub fn edit(&mut self, n: u64) -> usize {
        use automerge::transaction::{CommitOptions, Transactable};
        let i = self.next % self.docs.len();
        self.next += 1;
        let (doc, body) = &mut self.docs[i];
        let heads = doc.get_heads();
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, "title", format!("title {n}"))
            .expect("put");
        tx.splice_text(&*body, 0, 0, "0123456789").expect("splice");
        tx.commit_with(CommitOptions::default().with_time(0));
        doc.get_changes(&heads)
            .iter()
            .map(|c| c.raw_bytes().len())
            .sum()
    }
}
