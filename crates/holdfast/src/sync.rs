//! The sync worker: connects a store to a relay, drains the outbox to it and applies what
//! other devices wrote, on a tokio runtime, in the background or once.
//!
//! [`Store::sync`] starts a worker and returns a [`SyncHandle`] (controls, status,
//! metrics); [`Store::sync_once`] connects, pushes everything, pulls every space and
//! returns a [`SyncReport`] before a deadline, for OS background tasks. The conversation's
//! rules live in [`holdfast_protocol::ClientSession`]; this module carries out its
//! effects: the `driver` keeps one connection's state without I/O (also driven by the
//! deterministic simulation, `holdfast-sim`); `connection` gives it a socket and a
//! blocking thread for redb and Automerge work; `repair` tracks repair conversations;
//! `worker` reconnects by the policy in `reconnect` (shared with the simulation).

mod backoff;
mod config;
mod connection;
#[cfg(feature = "internals")]
pub mod driver;
#[cfg(not(feature = "internals"))]
mod driver;
mod metrics;
mod reconnect;
mod repair;
mod status;
mod transport;
mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use crate::limits::REPAIR_RECORDS_IN_FLIGHT;
#[cfg(feature = "internals")]
pub use backoff::Backoff;
pub use backoff::{
    HEALTHY_SESSION_MIN, PUSH_RETRY_DELAY_MAX, PUSH_RETRY_DELAY_MIN, RECONNECT_DELAY_MAX,
    RECONNECT_DELAY_MIN,
};
pub use config::{
    SyncConfig, CONNECT_TIMEOUT_DEFAULT, REPAIR_REPLY_TIMEOUT_DEFAULT, STOP_WAIT_MAX, TICK_INTERVAL,
};
pub use metrics::{Histogram, SyncMetrics, TIME_TO_SYNC_BOUNDS_MS};
#[cfg(feature = "internals")]
pub use reconnect::{Next, Reconnect};
pub use status::{CaughtUp, ConnectionState, SyncStatus};

use crate::{SpaceId, Store};
use worker::Shared;

/// Why a sync worker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The relay's address is not a `ws://` or `wss://` URL.
    #[error("the sync server address {url:?} is not valid: {reason}")]
    InvalidUrl {
        /// The address given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A root certificate given for `wss://` could not be read.
    #[error("a sync server certificate could not be read: {0}")]
    Certificate(String),
    /// No space to sync was given.
    #[error("no space to sync was given")]
    NoSpaces,
    /// The worker's own runtime or thread could not start.
    #[error("the sync worker could not start: {0}")]
    Runtime(String),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] crate::Error),
}

/// What one [`Store::sync_once`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SyncReport {
    /// Everything due was pushed and every space pulled to its end.
    pub complete: bool,
    /// Local changes the relay stored (or already held).
    pub pushed: u64,
    /// Local changes the relay refused.
    pub rejected: u64,
    /// Log entries received from the relay.
    pub received: u64,
    /// Changes new to this device among them (and in bootstrap pages).
    pub changes_applied: u64,
    /// Records reconciled by a repair.
    pub records_repaired: u64,
    /// Local changes still waiting to be stored by the relay.
    pub pending: u64,
    /// Local changes whose sending failed.
    pub failed: u64,
    /// Why it is not complete, in plain words.
    pub error: Option<String>,
    /// Time taken.
    pub elapsed: Duration,
}

/// A running sync worker. Dropping it (or [`stop`](Self::stop)) stops the worker, at once
/// even in the middle of a send the network does not drain; what was being sent stays in
/// the outbox and goes out next time.
pub struct SyncHandle {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Store {
    /// Starts syncing with a relay in the background, on `config.runtime` or on a runtime
    /// of the worker's own (one thread). Returns at once; the worker connects, retries
    /// with backoff, and stays connected for live changes until stopped.
    pub fn sync(&self, config: SyncConfig) -> Result<SyncHandle, SyncError> {
        let runtime = config.runtime.clone();
        let shared = Shared::new(self.clone(), config)?;
        let run = worker::run(shared.clone());
        let thread = match runtime {
            Some(handle) => {
                handle.spawn(run);
                None
            }
            None => {
                let rt = own_runtime()?;
                let thread = std::thread::Builder::new()
                    .name("holdfast-sync".into())
                    .spawn(move || rt.block_on(run))
                    .map_err(|e| SyncError::Runtime(e.to_string()))?;
                Some(thread)
            }
        };
        Ok(SyncHandle { shared, thread })
    }

    /// Syncs once, from plain synchronous code: connects, pushes every due change, pulls
    /// every space to its end, and returns before `deadline` with what it did (on a
    /// runtime of its own, on this thread). Reconnects if the connection drops while time
    /// is left.
    pub fn sync_once(
        &self,
        config: SyncConfig,
        deadline: Instant,
    ) -> Result<SyncReport, SyncError> {
        let rt = own_runtime()?;
        rt.block_on(self.sync_once_async(config, deadline))
    }

    /// [`Store::sync_once`] for async code, on the caller's runtime.
    pub async fn sync_once_async(
        &self,
        config: SyncConfig,
        deadline: Instant,
    ) -> Result<SyncReport, SyncError> {
        let shared = Shared::new(self.clone(), config)?;
        Ok(worker::once(shared, deadline).await)
    }
}

fn own_runtime() -> Result<tokio::runtime::Runtime, SyncError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("holdfast-sync")
        .build()
        .map_err(|e| SyncError::Runtime(e.to_string()))
}

impl SyncHandle {
    /// Disconnects (interrupting a send under way) and stays offline until
    /// [`resume`](Self::resume); writes still queue, and what was being sent goes back to
    /// the queue.
    pub fn pause(&self) {
        self.shared.control(|c| c.paused = true);
    }

    /// Connects again after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.shared.control(|c| c.paused = false);
    }

    /// Tries now instead of waiting out the backoff: reconnects, resends changes the relay
    /// refused for now, and tries again after a permanent refusal (a new token given to
    /// the relay, say). Permanently failed changes wait for
    /// [`Outbox::retry_failed`](crate::Outbox::retry_failed).
    pub fn retry_now(&self) {
        self.shared.control(|c| c.retry += 1);
    }

    /// The current status.
    pub fn status(&self) -> SyncStatus {
        self.shared.status.get()
    }

    /// A stream of status changes for async UI code.
    pub fn watch(&self) -> watch::Receiver<SyncStatus> {
        self.shared.status.subscribe()
    }

    /// Blocks until `until` holds for the status or `timeout` passes (for synchronous UI
    /// code and tests); returns the last status and whether it held.
    pub fn wait_for(
        &self,
        timeout: Duration,
        until: impl FnMut(&SyncStatus) -> bool,
    ) -> (SyncStatus, bool) {
        self.shared.status.wait(timeout, until)
    }

    /// Blocks until `space` is pulled to the relay's head ([`SyncStatus::is_caught_up`])
    /// or `timeout` passes; returns the last status and whether it is. A device that just
    /// started is caught up once it downloaded everything the relay held when it
    /// asked.
    pub fn wait_caught_up(&self, space: &SpaceId, timeout: Duration) -> (SyncStatus, bool) {
        self.wait_for(timeout, |s| s.is_caught_up(space))
    }

    /// A snapshot of the metrics (reads the store: call it from a thread that may block).
    pub fn metrics(&self) -> Result<SyncMetrics, crate::Error> {
        self.shared.metrics()
    }

    /// Stops the worker: the connection closes, unacknowledged changes go back to the
    /// queue. Waits for that, unless called on a runtime thread: a send under way is
    /// interrupted, so the wait is for the store work under way (up to
    /// [`STOP_WAIT_MAX`]), not for the network.
    pub fn stop(self) {
        // Dropping stops and waits, once.
        drop(self);
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        self.shared.control(|c| c.stopped = true);
        if tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        self.shared.wait_ended(STOP_WAIT_MAX);
        if let Some(thread) = self.thread.take() {
            if self.shared.has_ended() {
                let _ = thread.join();
            }
        }
    }
}
