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
//! is dropped: redb's close writes, and can panic too (cberner/redb#1303). The database and
//! the transactions are held in [`Guarded`], so that none is dropped, and none of their
//! destructors panics, while such a panic unwinds.
//!
//! A panic is caught only where it unwinds: a build with `panic = "abort"` still stops,
//! and the panic hook (by default a line on standard error) still runs first.

use std::any::Any;
use std::ops::{Deref, DerefMut};
use std::panic::{catch_unwind, AssertUnwindSafe};

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

/// A redb value (the database, a transaction) dropped under [`contained`], or leaked if it
/// is dropped while a panic unwinds. redb's destructors write and take locks: a panic in one
/// during unwinding would abort the process (seen: `Database`'s close meeting a lock the
/// first panic poisoned). A leaked database keeps its file locked until the process ends.
pub(crate) struct Guarded<T>(Option<T>);

impl<T> Guarded<T> {
    pub(crate) fn new(value: T) -> Guarded<T> {
        Guarded(Some(value))
    }

    /// The value, to consume (a transaction's commit); it is then no longer guarded.
    pub(crate) fn into_inner(mut self) -> T {
        self.0.take().expect("guarded until taken")
    }
}

impl<T> Deref for Guarded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0.as_ref().expect("guarded until taken")
    }
}

impl<T> DerefMut for Guarded<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("guarded until taken")
    }
}

impl<T> Drop for Guarded<T> {
    fn drop(&mut self) {
        let Some(value) = self.0.take() else {
            return;
        };
        if std::thread::panicking() {
            std::mem::forget(value);
            return;
        }
        // A drop has no caller to hand an error to: `contained` has logged it.
        let _ = contained(|| {
            drop(value);
            Ok(())
        });
    }
}
