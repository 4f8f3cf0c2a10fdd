//! Locking a mutex whose data stays consistent across a panic. A leaf: it imports none of
//! the store's modules, so every module may use it without reaching into another.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: every mutex of the store keeps its data consistent when a
/// holder panics (a `Tx` rolls back on drop, lists and counters are updated in one step).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
