//! Holdfast: a local-first document store that never loses a user's work.
//!
//! # The model
//!
//! A [`Store`] is one redb file on the device. It holds **records**, each an Automerge
//! document belonging to one **space** (the unit of sharing: a team notebook, a job site)
//! and one **collection** (a record type declared in the [`Schema`]). A collection declares
//! fields, and a field's [`FieldKind`] decides how concurrent writes from several devices
//! combine:
//!
//! - `Text`, `List` and `Counter` fields merge: edits interleave, increments add up.
//! - `Lww` scalars take one of the concurrent values, chosen by Automerge's deterministic
//!   operation order (never a wall clock).
//! - `Versioned` scalars never pick silently: different concurrent values become a
//!   [`FieldValue::Conflict`] with every [`Candidate`], until the app calls
//!   [`Store::resolve`] (keep mine, use theirs, or a new value).
//!
//! Every write is one closure given to [`Store::write`] (any records, creating them too) or
//! [`Store::update`] (one existing record; such writes prepare in parallel). When it
//! returns, the records' changes, their index entries and an **outbox** entry per changed
//! record are on disk (one redb transaction, `Durability::Immediate`; concurrent writers
//! share the fsync).
//! The outbox is what the sync worker sends; [`Store::sync_state`] and
//! [`Store::sync_summary`] tell the app where each change is. Without a network, two stores
//! exchange work as bundles: [`Store::export_changes`] and [`Store::import_changes`].
//!
//! # Example
//!
//! ```
//! use holdfast::{Field, ScalarType, Schema, SpaceId, Store, StoreConfig};
//!
//! # fn main() -> Result<(), holdfast::Error> {
//! let schema = Schema::new(1).collection("note", [
//!     ("title", Field::lww(ScalarType::String)),
//!     ("body", Field::text()),
//!     ("status", Field::versioned(ScalarType::String).indexed()),
//! ]);
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path().join("notes.redb"), StoreConfig::new(schema))?;
//! let team = SpaceId::new("team-notes").unwrap();
//!
//! let id = store.write(|tx| {
//!     let id = tx.create("note", &team)?;
//!     tx.set(id, "title", "Groceries")?;
//!     tx.splice_text(id, "body", 0, 0, "milk, eggs")?;
//!     tx.set(id, "status", "draft")?;
//!     Ok(id)
//! })?; // durable here, outbox entry included
//!
//! let note = store.get(id)?;
//! assert_eq!(note.text("body")?, "milk, eggs");
//! assert_eq!(store.sync_summary()?.pending, 1);
//! # Ok(()) }
//! ```
//!
//! # Sync
//!
//! With the default `sync` feature, [`Store::sync`] starts a worker that drains the
//! outbox to a relay (`holdfast-relay`) over a WebSocket and applies what other devices
//! wrote, on a tokio runtime the app gives it or one of its own. It reconnects with
//! backoff, and a [`SyncHandle`] pauses, resumes and retries it and reports a
//! [`SyncStatus`] in plain words and [`SyncMetrics`]. [`Store::sync_once`] does one
//! round before a deadline, for OS background tasks.
//!
//! ```no_run
//! # #[cfg(feature = "sync")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::{Duration, Instant};
//! use holdfast::{Schema, SpaceId, Store, StoreConfig, SyncConfig};
//!
//! # let schema = Schema::new(1);
//! let store = Store::open("notes.redb", StoreConfig::new(schema))?;
//! let team = SpaceId::new("team-notes")?;
//! let config = SyncConfig::new("wss://sync.example.com/", "a token", vec![team]);
//!
//! // In the background, for as long as the app runs:
//! let sync = store.sync(config.clone())?;
//! let (status, _) = sync.wait_for(Duration::from_secs(5), |s| s.is_idle());
//! println!("{:?}, {} changes pending", status.connection, status.pending);
//! sync.stop();
//!
//! // Or once, within a background task's time budget:
//! let report = store.sync_once(config, Instant::now() + Duration::from_secs(25))?;
//! println!("sent {}, received {}", report.pushed, report.received);
//! # Ok(()) }
//! # #[cfg(not(feature = "sync"))]
//! # fn main() {}
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]
// What is `pub` is public API. Checked with `internals` on (the workspace build), where
// the fenced seams are reachable; without it they are `pub` inside private modules.
#![cfg_attr(feature = "internals", warn(unreachable_pub))]
// The store's side of sync (taking outbox batches, applying pulled changes) is used only
// by the sync worker, or by the simulation through `internals`: built with neither, it
// is dead code by design.
#![cfg_attr(not(any(feature = "sync", feature = "internals")), allow(dead_code))]

mod apply;
mod bundle;
mod cache;
mod check;
mod commit;
mod compact;
mod conflict;
mod damage;
mod doc;
mod error;
mod inbox;
mod index;
pub mod limits;
mod lock;
mod migrate;
mod outbox;
mod query;
mod record;
#[cfg(feature = "sync")]
mod repair;
mod schema;
mod spaces;
mod store;
mod stored;
#[cfg(feature = "internals")]
pub mod stored_rows;
mod subscribe;
#[cfg(feature = "sync")]
pub mod sync;
mod tables;
mod txn;
mod value;

pub use apply::{ApplySummary, Refusal, RefusalKind};
pub use bundle::{Export, ExportMark, ImportRefused, ImportSummary, BUNDLE_FORMAT};
pub use check::CheckReport;
pub use conflict::{
    Author, Candidate, Conflict, ConflictCounts, Resolution, Resolver, SettledConflict, Settlement,
};
pub use doc::{FieldValue, STATE_FIELD};
pub use error::{BundleError, CommitError, Error, ReadOnlyReason, Result, SchemaError};
pub use holdfast_protocol::{
    ChangeEntry, Cursor, DeviceId, EventId, RecordId, RecordState, SpaceId,
};
pub use inbox::Inbox;
pub use limits::{
    BUNDLE_BYTES_MAX, COMPACT_TAIL_BYTES_MIN, DOC_CACHE_BYTES_DEFAULT, NAME_BYTES_MAX,
    SETTLED_CONFLICTS_MAX, SETTLED_CONFLICT_AGE_MS_MAX, SUBSCRIPTION_BACKLOG_MAX,
};
#[cfg(feature = "internals")]
pub use outbox::PendingPush;
pub use outbox::{Outbox, OutboxEntry, SyncState, SyncSummary};
pub use query::{Page, PageToken, Query};
pub use record::Record;
pub use schema::{Collection, Field, FieldKind, Schema};
pub use store::{Clock, Store, StoreConfig, StoreStats};
pub use subscribe::{ChangeEvent, Notification, Origin, Subscription};
#[cfg(feature = "sync")]
pub use sync::{
    CaughtUp, ConnectionState, SyncConfig, SyncError, SyncHandle, SyncMetrics, SyncReport,
    SyncStatus,
};
pub use txn::Tx;
pub use value::{ScalarType, Value};

#[cfg(test)]
mod tests;

/// The README's embedding example, compiled and run as a doc-test.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
