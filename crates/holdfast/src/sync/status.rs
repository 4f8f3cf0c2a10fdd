//! What the app shows about sync: the connection state, pending and failed counts, the
//! last successful sync and the last error, all in plain words; and the cell that
//! publishes each change to async (`watch`) and blocking waiters.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{Cursor, SpaceId, SyncSummary};

/// Whether and how the device is connected to the relay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Not connected; `reason` says why in plain words ("No connection to the sync
    /// server", "Sync is paused", "Your sign-in has expired...").
    Offline {
        /// Why, for the user.
        reason: String,
        /// Whether the worker waits for the user (a new token, an app update,
        /// [`retry_now`](super::SyncHandle::retry_now)) instead of retrying by itself.
        permanent: bool,
    },
    /// Opening a connection.
    Connecting,
    /// Connected, sending or receiving.
    Syncing,
    /// Connected, nothing left to send or receive; new changes go out and come in live.
    Idle,
}

/// A space this device has pulled to the relay's head: see [`SyncStatus::caught_up`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CaughtUp {
    /// How far the device holds the space's log: the relay's head when it last said it
    /// had nothing more.
    pub cursor: Cursor,
    /// When the device got there (ms since the epoch, this device's clock): it held
    /// everything the relay had stored in the space as of about this moment.
    pub as_of_ms: i64,
}

/// A snapshot of sync for a status bar: "Syncing · 3 changes pending", "Synced 2 min ago".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// The connection.
    pub connection: ConnectionState,
    /// Local changes not yet stored by the relay (queued or being sent).
    pub pending: u64,
    /// Local changes whose sending failed (retried by the worker unless permanent).
    pub failed: u64,
    /// Failed changes that wait for the user (`Outbox::retry_failed` or `discard`).
    pub failed_permanent: u64,
    /// When the relay last stored this device's changes (ms since the epoch, this
    /// device's clock), as kept by the store.
    pub last_synced_ms: Option<i64>,
    /// When this worker was last fully in sync, pushed and pulled (ms since the epoch,
    /// this device's clock).
    pub last_caught_up_ms: Option<i64>,
    /// The last problem, in plain words; cleared once a sync completes.
    pub last_error: Option<String>,
    /// When the worker tries again after a failure (ms since the epoch, this device's
    /// clock), if it waits to.
    pub next_retry_ms: Option<i64>,
    /// Whether [`pause`](super::SyncHandle::pause) is in effect.
    pub paused: bool,
    /// Spaces the relay no longer lets this device read ("You no longer have access to
    /// Team Notes"). They are left out of sync, the others go on; `retry_now` or `resume`
    /// tries them again.
    pub no_access: Vec<crate::SpaceId>,
    /// The spaces pulled to the relay's head: connected, the relay's latest answer for
    /// the space said it had nothing more, and everything received is applied and
    /// durable. While connected the relay sends new changes live, so a space leaves this
    /// map while they are being applied and comes back with a later cursor; every space
    /// leaves it when the connection ends. Unlike [`is_idle`](Self::is_idle) (nothing
    /// left to send), this says what was received.
    #[serde(default)]
    pub caught_up: BTreeMap<SpaceId, CaughtUp>,
}

impl SyncStatus {
    pub(crate) fn new(summary: &SyncSummary) -> Self {
        let mut status = SyncStatus {
            connection: ConnectionState::Connecting,
            pending: 0,
            failed: 0,
            failed_permanent: 0,
            last_synced_ms: None,
            last_caught_up_ms: None,
            last_error: None,
            next_retry_ms: None,
            paused: false,
            no_access: Vec::new(),
            caught_up: BTreeMap::new(),
        };
        status.set_counts(summary);
        status
    }

    pub(crate) fn set_counts(&mut self, summary: &SyncSummary) {
        self.pending = summary.pending;
        self.failed = summary.failed;
        self.failed_permanent = summary.failed_permanent;
        self.last_synced_ms = summary.last_synced_ms;
    }

    /// Connected with nothing left to do.
    pub fn is_idle(&self) -> bool {
        self.connection == ConnectionState::Idle
    }

    /// Whether `space` is pulled to the relay's head now; see [`caught_up`](Self::caught_up).
    pub fn is_caught_up(&self, space: &SpaceId) -> bool {
        self.caught_up.contains_key(space)
    }
}

/// The current status, published to `watch` receivers and blocking waiters.
pub(crate) struct StatusCell {
    tx: watch::Sender<SyncStatus>,
    version: Mutex<u64>,
    changed: Condvar,
}

impl StatusCell {
    pub(super) fn new(status: SyncStatus) -> Self {
        Self {
            tx: watch::Sender::new(status),
            version: Mutex::new(0),
            changed: Condvar::new(),
        }
    }

    pub(super) fn get(&self) -> SyncStatus {
        self.tx.borrow().clone()
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<SyncStatus> {
        self.tx.subscribe()
    }

    /// Changes the status with `f`; receivers and waiters hear of it if anything changed.
    pub(super) fn update(&self, f: impl FnOnce(&mut SyncStatus)) {
        let modified = self.tx.send_if_modified(|status| {
            let before = status.clone();
            f(status);
            *status != before
        });
        if modified {
            *crate::lock::lock(&self.version) += 1;
            self.changed.notify_all();
        }
    }

    /// Blocks until `until` holds for the status, or `timeout` passes; returns the last
    /// status seen and whether it held.
    pub(super) fn wait(
        &self,
        timeout: Duration,
        mut until: impl FnMut(&SyncStatus) -> bool,
    ) -> (SyncStatus, bool) {
        let deadline = Instant::now() + timeout;
        let mut version = crate::lock::lock(&self.version);
        loop {
            let status = self.get();
            if until(&status) {
                return (status, true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (status, false);
            }
            let seen = *version;
            version = self
                .changed
                .wait_timeout_while(version, left, |v| *v == seen)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
