//! Shared helpers: the notes schema, opening stores, a seeded PRNG.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use holdfast::{Field, ScalarType, Schema, SpaceId, Store, StoreConfig};
use redb::backends::FileBackend;
use redb::StorageBackend;

pub fn schema() -> Schema {
    Schema::new(1)
        .collection(
            "note",
            [
                ("title", Field::lww(ScalarType::String)),
                ("body", Field::text()),
                ("tags", Field::list(ScalarType::String)),
                ("status", Field::versioned(ScalarType::String).indexed()),
                ("priority", Field::lww(ScalarType::I64).indexed()),
                ("views", Field::counter()),
            ],
        )
        .collection(
            "item",
            [
                ("name", Field::lww(ScalarType::String)),
                ("price", Field::versioned(ScalarType::F64)),
                ("on_hand", Field::counter()),
            ],
        )
}

pub fn space(name: &str) -> SpaceId {
    SpaceId::new(name).unwrap()
}

pub struct TestStore {
    pub store: Store,
    pub path: PathBuf,
    pub dir: tempfile::TempDir,
}

impl TestStore {
    /// Closes the store and opens the same file again.
    pub fn reopen(self) -> TestStore {
        let TestStore { store, path, dir } = self;
        drop(store);
        let store = reopen(&path);
        TestStore { store, path, dir }
    }

    /// Closes the store, leaving the file for `Store::check` or another process.
    pub fn close(self) -> (PathBuf, tempfile::TempDir) {
        (self.path, self.dir)
    }
}

impl std::ops::Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

pub fn open() -> TestStore {
    open_with(StoreConfig::new(schema()))
}

pub fn open_with(config: StoreConfig) -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let store = Store::open(&path, config).unwrap();
    TestStore { store, path, dir }
}

/// A store whose clock is `offset_ms` away from real time and advances 1 ms per call.
pub fn open_skewed(offset_ms: i64) -> TestStore {
    let base = AtomicI64::new(1_800_000_000_000 + offset_ms);
    let base = Arc::new(base);
    open_with(StoreConfig::new(schema()).clock(move || base.fetch_add(1, Ordering::Relaxed)))
}

pub fn reopen(path: &Path) -> Store {
    Store::open(path, StoreConfig::new(schema())).unwrap()
}

/// Creates `n` notes in space "t" with priority 0..n, one write each.
pub fn notes_with_priority(store: &Store, n: i64) -> Vec<holdfast::RecordId> {
    (0..n)
        .map(|i| {
            store
                .write(|tx| {
                    let id = tx.create("note", &space("t"))?;
                    tx.set(id, "priority", i)?;
                    Ok(id)
                })
                .unwrap()
        })
        .collect()
}

/// Moves every change from `from` to `to` through a bundle.
pub fn sync_one_way(from: &Store, to: &Store) {
    let export = from.export_changes(None, None).unwrap();
    let summary = to.import_changes(&export.bytes).unwrap();
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
}

pub fn sync_both(a: &Store, b: &Store) {
    sync_one_way(a, b);
    sync_one_way(b, a);
}

/// splitmix64: small, seedable, good enough to drive tests.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `HOLDFAST_SEED` or the clock; prints the seed so a failure can be replayed.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("HOLDFAST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: seed {seed} (replay with HOLDFAST_SEED={seed})");
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What a [`CountingDisk`] saw.
#[derive(Debug, Default)]
pub struct Syncs {
    pub count: AtomicU64,
    /// Bytes written since the last `sync_data` (a length change is not counted: redb
    /// shrinks the file after the flush that makes a commit durable).
    pub unsynced: AtomicBool,
}

/// A file backend that counts `sync_data` calls and whether writes are waiting for one.
#[derive(Debug)]
pub struct CountingDisk {
    file: FileBackend,
    syncs: Arc<Syncs>,
}

impl StorageBackend for CountingDisk {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.file.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.file.sync_data()?;
        self.syncs.count.fetch_add(1, Ordering::SeqCst);
        self.syncs.unsynced.store(false, Ordering::SeqCst);
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.syncs.unsynced.store(true, Ordering::SeqCst);
        self.file.write(offset, data)
    }
}

pub fn open_counting(path: &Path, config: StoreConfig) -> (Store, Arc<Syncs>) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    let syncs = Arc::new(Syncs::default());
    let disk = CountingDisk {
        file: FileBackend::new(file).unwrap(),
        syncs: syncs.clone(),
    };
    let store = Store::open_with_backend(disk, config).unwrap();
    (store, syncs)
}

/// What the test process's `tracing` subscriber wrote.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<u8>>>);

impl io::Write for Log {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The lines mentioning `what` (a record or event id) that `f` wrote, with other
    /// tests' lines of the same moment left out.
    pub fn during(&self, what: &str, f: impl FnOnce()) -> String {
        let start = self.0.lock().unwrap().len();
        f();
        let bytes = self.0.lock().unwrap()[start..].to_vec();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(what)).collect();
        lines.join("\n")
    }
}

/// The log of the whole test process, at the levels the tests read: conflicts, and the
/// sync worker with its per-entry spans. One global subscriber: per-thread ones lose
/// events when another test's thread, without one, registers a callsite first (tracing
/// caches its interest). Lines are told apart by record, event and device ids.
pub fn log() -> &'static Log {
    static LOG: OnceLock<Log> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(
                "holdfast::conflict=info,holdfast::sync=info,holdfast::sync::driver=debug",
            )
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        log
    })
}
