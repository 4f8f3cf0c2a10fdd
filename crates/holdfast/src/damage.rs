//! Damage the storage engine meets: redb panics on some damaged pages instead of failing,
//! and [`contained`] is the one place such a panic becomes [`Error::Corrupt`].
//!
//! redb checks page checksums only in `check_integrity` and when it repairs a file; its
//! ordinary reads and writes parse whatever a page holds, and a damaged page can stop them
//! with `unreachable!()`, a slice index out of range, or (debug builds) a `debug_assert!`
//! where release builds return `StorageError::Corrupted`. This is a redb bug, reported
//! upstream as cberner/redb#1334 ("Read paths never verify page checksums: corrupted pages
//! panic/abort instead of returning Corrupted"); the damage tests replay it
//! (`tests/it/damage.rs`). Until it is fixed, every call into redb that reads pages of the
//! file runs under [`contained`]: opening, read transactions (`Inner::reading`), the
//! outbox's write transactions (`Inner::writing`), the group commit's write transaction,
//! the file-level `check`, `compact` and `stored_schema`, and closing the file when a store
//! is dropped ([`Engine`]: redb's close writes, and can panic too, cberner/redb#1303).
//!
//! A panic is caught only where it unwinds: a build with `panic = "abort"` still stops,
//! and the panic hook (by default a line on standard error) still runs first.

use std::any::Any;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};

use redb::Database;

use crate::error::{Error, Result};

/// What a caught panic of the storage engine is reported as, after "the database file is
/// damaged: ".
const ENGINE_STOPPED: &str = "the storage engine stopped on a page it could not read";

/// Runs `f`, which calls into redb; a panic in it is reported as [`Error::Corrupt`].
///
/// `f` must not run the app's code (a write closure): an app's own panic is not damage.
/// What `f` shares with its caller is left as the panic left it; redb poisons its locks,
/// so later calls on the same database fail with a typed error too.
pub(crate) fn contained<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        tracing::error!(
            panic = panic_text(payload.as_ref()),
            "the storage engine panicked: the file is damaged"
        );
        Err(Error::Corrupt(ENGINE_STOPPED.to_owned()))
    })
}

/// The message a panic was raised with, if it has one.
fn panic_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// An open store file: the redb database, closed under [`contained`] when the store is
/// dropped. A drop has no caller to hand an error to: damage met while closing is logged.
pub(crate) struct Engine(Option<Database>);

impl Engine {
    pub(crate) fn new(db: Database) -> Engine {
        Engine(Some(db))
    }
}

impl Deref for Engine {
    type Target = Database;

    fn deref(&self) -> &Database {
        self.0
            .as_ref()
            .expect("the database is open until the store is dropped")
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(db) = self.0.take() {
            // Contained, `Corrupt` is logged: nothing more can be done with it.
            let _ = contained(|| {
                drop(db);
                Ok(())
            });
        }
    }
}
