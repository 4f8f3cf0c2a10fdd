//! The Holdfast relay: the server devices sync through, and the durable, append-only log
//! it keeps for them.
//!
//! Devices push **entries** (one local commit each: an event id, a space, a record and its
//! Automerge changes) and pull the log of each space they read. This crate keeps that log
//! and serves it. The relay's sessions ([`holdfast_protocol::RelaySession`]) ask for
//! storage work through effects; a driver answers them with a [`LogStore`]:
//!
//! - [`LogStore::store`] answers `RelayEffect::Store`: one [`AckResult`] per entry, in order,
//!   returned only once every stored entry is durable on disk.
//! - [`LogStore::pull`] answers `RelayEffect::Pull`: the entries after a cursor, the same
//!   bytes for the same cursor every time, or [`PullResult::Repair`] when the cursor names a
//!   position this relay cannot vouch for (another epoch, or past the end of the log).
//! - [`LogStore::epoch`] is the epoch the relay announces in `Welcome`.
//! - [`LogStore::bootstrap`] answers `RelayEffect::Bootstrap`: a [`SnapshotPage`] of record
//!   states (a saved document and the changes after it, per record), so that a new device
//!   downloads a space's current state instead of its whole history.
//! - [`LogStore::sync_record`] answers `RelayEffect::Repair`: the relay's side of one
//!   Automerge sync message ([`RecordSync`]), storing what the device brings if it may
//!   write.
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
//! durable transaction (group commit), with an index of each record's entries and its size
//! (a record past [`StoreConfig::record_bytes_max`] is refused). Pushes never load a
//! document: a background compactor owned by the store turns a record's snapshot and the
//! entries after it into a new snapshot once enough have piled up, and never rewrites the
//! log. The trait leaves room for other backends (Postgres) without touching session
//! logic. Byte layouts are in `docs/relay-storage.md`.
//!
//! The server around them ([`Server`] and the `holdfast-relay` binary; see [`server`]):
//!
//! - one task per WebSocket connection drives its `server::driver::RelayDriver` (the
//!   session and the glue around it, without I/O), reads only while the driver wants to,
//!   runs stores, pulls and repairs on the blocking pool and writes through a bounded
//!   send queue; a device that does not read fast enough is disconnected;
//! - [`Fanout`] delivers what one connection stores to every connection subscribed to
//!   the space ([`LocalFanout`] within one process);
//! - [`JwtAuthenticator`] checks HS256 tokens minted by [`mint_token`] (the `token`
//!   subcommand) with the relay's [`Secret`];
//! - [`Metrics`] are served on `/metrics`, next to `/healthz`.
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
//! [`AckResult`]: holdfast_protocol::AckResult

#![warn(missing_docs)]
#![cfg_attr(not(test), forbid(unsafe_code))]
// Tests set the process umask through libc to check the modes files are created with.
#![cfg_attr(test, deny(unsafe_code))]
// What is `pub` is public API. Checked with `internals` on (the workspace build), where
// the fenced driver is reachable; without it, it is `pub` inside a private module.
#![cfg_attr(feature = "internals", warn(unreachable_pub))]

pub mod auth;
pub mod config;
mod error;
pub mod fanout;
mod file_mode;
mod http;
pub mod metrics;
mod redb_store;
pub mod secret;
pub mod server;
mod store;
#[cfg(feature = "internals")]
pub mod stored_rows;
mod tables;

pub use auth::{mint_token, Claims, JwtAuthenticator, MintError, RoleClaim, TokenRequest};
pub use config::{ConfigError, ServerConfig, ServerLimits, TlsFiles};
pub use fanout::{Author, Fanout, LiveBatch, LiveSink, LocalFanout, Subscription};
pub use http::{HEALTH_SPACE, HTTP_CONNECTIONS_PER_IP_MAX, HTTP_CONNECTION_TIME_MAX};
pub use metrics::Metrics;
pub use secret::{Secret, SecretError};
pub use server::{Backends, Server, ServerError, ShutdownSignal};

pub use error::StoreError;
pub use redb_store::{
    RedbLogStore, StoreConfig, CACHE_BYTES_DEFAULT, COMPACT_QUEUE_MAX_DEFAULT,
    COMPACT_TAIL_BYTES_MIN_DEFAULT, COMPACT_TAIL_CHANGES_MIN_DEFAULT,
    COMPACT_TAIL_ENTRIES_MIN_DEFAULT, COMPACT_TAIL_PERCENT_MIN_DEFAULT, EVENT_RETENTION_MS_DEFAULT,
    PRUNE_ROWS_MAX_DEFAULT,
};
pub use store::{stored_batches, LogStore, PullResult, RecordSync, RepairReason, SnapshotPage};
pub use tables::FORMAT_VERSION;
