//! The helpers check what they promise.

use holdfast::{Field, ScalarType, Store, StoreConfig};

use super::{team, Device};
use crate::model;

/// A device whose app knows one more collection than the notes app.
fn newer_device() -> Device {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let schema = model::schema().collection("task", [("name", Field::lww(ScalarType::String))]);
    let store = Store::open(dir.path().join("notes.redb"), StoreConfig::new(schema))
        .expect("the store opens");
    Device { store, dir }
}

#[test]
fn receiving_a_record_the_import_refuses_fails_the_test() {
    let newer = newer_device();
    newer
        .store
        .write(|tx| {
            tx.create(model::NOTE, &team())?;
            tx.create("task", &team()).map(|_| ())
        })
        .expect("a note and a task");
    let older = Device::new();
    // The note applies, the task is refused: a partial import the helper must not pass.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| older.receive(&newer)));
    let panic = outcome.expect_err("the refused task fails the receive");
    let message = panic.downcast_ref::<String>().expect("a formatted message");
    assert!(
        message.starts_with("the import refused records: 1 record imported, but refused record "),
        "{message}"
    );
    assert!(
        message.contains("does not know the collection \"task\""),
        "{message}"
    );
}
