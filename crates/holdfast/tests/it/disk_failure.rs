//! A disk that fails mid-write: every writer of the failed group commit gets an error, no
//! reader ever sees the failed write, and after a reopen exactly the acknowledged writes are
//! there. A full disk is told apart from damage by every writer of the group.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

use holdfast::{CommitError, Error, Store, StoreConfig, Value};
use redb::backends::FileBackend;
use redb::StorageBackend;

use crate::util::{reopen, schema, space};

/// What a [`FlakyDisk`] does wrong, set by the test while the store runs.
#[derive(Debug, Default)]
struct Faults {
    /// Writes, growing the file and syncs fail.
    failing: AtomicBool,
    /// They fail as a full disk does (ENOSPC) rather than with a generic error.
    full: AtomicBool,
    /// While armed, a sync waits (after its check) until it is disarmed.
    gate: Gate,
}

#[derive(Debug, Default)]
struct Gate {
    /// (armed, a sync is waiting)
    state: Mutex<(bool, bool)>,
    cv: Condvar,
}

impl Gate {
    fn arm(&self) {
        self.state.lock().unwrap().0 = true;
    }

    fn release(&self) {
        self.state.lock().unwrap().0 = false;
        self.cv.notify_all();
    }

    fn pass(&self) {
        let mut state = self.state.lock().unwrap();
        if state.0 {
            state.1 = true;
            self.cv.notify_all();
            drop(self.cv.wait_while(state, |s| s.0).unwrap());
        }
    }

    fn wait_for_sync(&self) {
        let state = self.state.lock().unwrap();
        drop(self.cv.wait_while(state, |s| !s.1).unwrap());
    }
}

/// A file backend whose writes and syncs fail while `faults.failing` is set.
#[derive(Debug)]
struct FlakyDisk {
    file: FileBackend,
    faults: Arc<Faults>,
}

impl FlakyDisk {
    fn check(&self) -> Result<(), io::Error> {
        if !self.faults.failing.load(Ordering::SeqCst) {
            Ok(())
        } else if self.faults.full.load(Ordering::SeqCst) {
            Err(disk_full())
        } else {
            Err(io::Error::other("injected disk failure"))
        }
    }
}

/// The error a write to a full disk returns.
fn disk_full() -> io::Error {
    if cfg!(unix) {
        io::Error::from_raw_os_error(28) // ENOSPC on Linux and macOS
    } else {
        io::Error::from(io::ErrorKind::StorageFull)
    }
}

impl StorageBackend for FlakyDisk {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        // Shrinking (redb does it after a commit's sync) needs no space.
        if len > self.file.len()? {
            self.check()?;
        }
        self.file.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.check()?;
        self.faults.gate.pass();
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.check()?;
        self.file.write(offset, data)
    }
}

fn open_flaky(path: &Path, faults: Arc<Faults>) -> Store {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    let disk = FlakyDisk {
        file: FileBackend::new(file).unwrap(),
        faults,
    };
    Store::open_with_backend(disk, StoreConfig::new(schema())).unwrap()
}

#[test]
fn a_failed_group_commit_fails_its_writers_and_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flaky.redb");
    let faults = Arc::new(Faults::default());
    let store = open_flaky(&path, faults.clone());
    let id = store
        .write(|tx| {
            let id = tx.create("note", &space("t"))?;
            tx.set(id, "title", "saved")?;
            Ok(id)
        })
        .unwrap();

    faults.failing.store(true, Ordering::SeqCst);
    // Several writers at once, so some of them share the failing group.
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                // Both write paths: the exclusive one and the single-record one.
                if i % 2 == 0 {
                    store.write(|tx| tx.set(id, "title", format!("lost {i}")))
                } else {
                    store.update(id, |tx| tx.set(id, "title", format!("lost {i}")))
                }
            })
        })
        .collect();
    for h in handles {
        let result = h.join().unwrap();
        assert!(
            matches!(result, Err(Error::Storage(_)) | Err(Error::CommitFailed(_))),
            "a write on a failing disk must fail: {result:?}"
        );
        let e = result.unwrap_err();
        assert!(!e.is_disk_full() && !e.is_damaged() && !e.is_bug(), "{e}");
    }
    // No reader sees a write that failed: the old value, or an error, never "lost".
    match store.get(id) {
        Ok(record) => assert_eq!(record.get("title").unwrap(), Some(&Value::from("saved"))),
        Err(e) => assert!(matches!(e, Error::Storage(_)), "{e}"),
    }

    faults.failing.store(false, Ordering::SeqCst);
    drop(store);
    let report = Store::check(&path).unwrap();
    assert!(report.is_ok(), "{report:?}");
    let store = reopen(&path);
    assert_eq!(
        store.get(id).unwrap().get("title").unwrap(),
        Some(&Value::from("saved"))
    );
    assert_eq!(
        store.sync_summary().unwrap().pending,
        1,
        "only the acknowledged write's entry"
    );
    store.write(|tx| tx.set(id, "title", "after")).unwrap();
}

#[test]
fn a_full_disk_is_reported_as_full_to_the_leader_and_the_followers_of_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.redb");
    let faults = Arc::new(Faults::default());
    let store = open_flaky(&path, faults.clone());
    let id = store
        .write(|tx| {
            let id = tx.create("note", &space("t"))?;
            tx.set(id, "title", "created")?;
            Ok(id)
        })
        .unwrap();

    // A first commit holds the leader lock in its sync while two writers queue behind it,
    // so they commit together as one group, and the disk is full by then.
    faults.gate.arm();
    let first = {
        let store = store.clone();
        std::thread::spawn(move || store.update(id, |tx| tx.set(id, "title", "first")))
    };
    faults.gate.wait_for_sync();
    let group: Vec<_> = (0..2)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || store.write(|tx| tx.set(id, "title", format!("lost {i}"))))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.stats().unwrap().queued_writes < 2 {
        assert!(Instant::now() < deadline, "the writers never queued");
        std::thread::sleep(Duration::from_millis(1));
    }
    faults.full.store(true, Ordering::SeqCst);
    faults.failing.store(true, Ordering::SeqCst);
    faults.gate.release();
    first.join().unwrap().unwrap();

    let errors: Vec<Error> = group
        .into_iter()
        .map(|h| h.join().unwrap().unwrap_err())
        .collect();
    for e in &errors {
        assert!(e.is_disk_full(), "not reported as a full disk: {e:?}");
        assert_eq!(e.io_kind(), Some(io::ErrorKind::StorageFull));
        assert!(!e.is_damaged() && !e.is_bug(), "{e}");
        assert!(
            matches!(e, Error::CommitFailed(CommitError::Group(_))),
            "both writes were in the failed group: {e:?}"
        );
    }
    // The follower holds the very error the leader's commit returned, not a copy in words.
    let causes: Vec<&Error> = errors
        .iter()
        .map(|e| match e {
            Error::CommitFailed(c) => c.cause(),
            e => e,
        })
        .collect();
    assert!(std::ptr::eq(causes[0], causes[1]));

    faults.failing.store(false, Ordering::SeqCst);
    drop(store);
    let store = reopen(&path);
    assert_eq!(
        store.get(id).unwrap().get("title").unwrap(),
        Some(&Value::from("first"))
    );
}
