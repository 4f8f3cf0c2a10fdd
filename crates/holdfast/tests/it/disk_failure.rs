//! A disk that fails mid-write: every writer of the failed group commit gets an error, no
//! reader ever sees the failed write, and after a reopen exactly the acknowledged writes are
//! there.

use std::fs::OpenOptions;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use holdfast::{Error, Store, StoreConfig, Value};
use redb::backends::FileBackend;
use redb::StorageBackend;

use crate::util::{reopen, schema, space};

/// A file backend whose writes and syncs fail while `failing` is set.
#[derive(Debug)]
struct FlakyDisk {
    file: FileBackend,
    failing: Arc<AtomicBool>,
}

impl FlakyDisk {
    fn check(&self) -> Result<(), io::Error> {
        if self.failing.load(Ordering::SeqCst) {
            Err(io::Error::other("injected disk failure"))
        } else {
            Ok(())
        }
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
        self.check()?;
        self.file.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.check()?;
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.check()?;
        self.file.write(offset, data)
    }
}

fn open_flaky(path: &Path, failing: Arc<AtomicBool>) -> Store {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    let disk = FlakyDisk {
        file: FileBackend::new(file).unwrap(),
        failing,
    };
    Store::open_with_backend(disk, StoreConfig::new(schema())).unwrap()
}

#[test]
fn a_failed_group_commit_fails_its_writers_and_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flaky.redb");
    let failing = Arc::new(AtomicBool::new(false));
    let store = open_flaky(&path, failing.clone());
    let id = store
        .write(|tx| {
            let id = tx.create("note", &space("t"))?;
            tx.set(id, "title", "saved")?;
            Ok(id)
        })
        .unwrap();

    failing.store(true, Ordering::SeqCst);
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
    }
    // No reader sees a write that failed: the old value, or an error, never "lost".
    match store.get(id) {
        Ok(record) => assert_eq!(record.get("title").unwrap(), Some(&Value::from("saved"))),
        Err(e) => assert!(matches!(e, Error::Storage(_)), "{e}"),
    }

    failing.store(false, Ordering::SeqCst);
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
