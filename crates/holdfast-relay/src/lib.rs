//! The Holdfast relay's storage: the durable, append-only log every device syncs through.
//!
//! Devices push **entries** (one local commit each: an event id, a space, a record and its
//! Automerge changes) and pull the log of each space they read. This crate keeps that log.
//! The relay's sessions ([`holdfast_protocol::RelaySession`]) ask for storage work through
//! effects; a driver answers them with a [`LogStore`]:
//!
//! - [`LogStore::store`] answers `RelayEffect::Store`: one [`AckResult`] per entry, in order,
//!   returned only once every stored entry is durable on disk.
//! - [`LogStore::pull`] answers `RelayEffect::Pull`: the entries after a cursor, the same
//!   bytes for the same cursor every time, or [`PullResult::Repair`] when the cursor names a
//!   position this relay cannot vouch for (another epoch, or past the end of the log).
//! - [`LogStore::epoch`] is the epoch the relay announces in `Welcome`.
//!
//! Three rules make retries and duplicates harmless:
//!
//! - **Event ids.** The outcome of every event id is remembered for a retention window; a
//!   repeat is answered with the same outcome (`Duplicate { seq }` for one that was stored).
//! - **Content addressing.** A change is known by its Automerge hash and is never stored
//!   twice in a space, whatever event id carries it.
//! - **Causality.** A change is stored only once the relay holds every change it depends on,
//!   so a device that pulls a space in log order can always apply what it receives.
//!
//! [`RedbLogStore`] keeps the log in one redb file and commits concurrent pushes in one
//! durable transaction (group commit). The trait leaves room for other backends (Postgres)
//! without touching session logic. Byte layouts are in `docs/relay-storage.md`.
//!
//! ```
//! use holdfast_relay::{LogStore, PullResult, RedbLogStore, StoreConfig};
//! use holdfast_protocol::SpaceId;
//!
//! let dir = tempfile::tempdir()?;
//! let store = RedbLogStore::open(dir.path().join("relay.redb"), StoreConfig::default())?;
//! let space = SpaceId::new("team-notes")?;
//! match store.pull(&space, None, 1 << 20)? {
//!     PullResult::Changes { entries, more, .. } => assert!(entries.is_empty() && !more),
//!     other => panic!("an empty log needs no repair: {other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Not here yet: per-record snapshots that let a new device download a space's current
//! state instead of its whole history, and the Automerge sync messages a repair starts
//! with; both come with the relay server.
//!
//! [`AckResult`]: holdfast_protocol::AckResult

#![warn(missing_docs)]

mod error;
mod redb_store;
mod store;
mod tables;

pub use error::StoreError;
pub use redb_store::{
    RedbLogStore, StoreConfig, CACHE_BYTES_DEFAULT, EVENT_RETENTION_MS_DEFAULT,
    PRUNE_ROWS_MAX_DEFAULT,
};
pub use store::{LogStore, PullResult, RepairReason};
pub use tables::FORMAT_VERSION;
