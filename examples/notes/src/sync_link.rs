//! The app's link to the relay: the sync worker and the sync panel's controls over it
//! (pause and resume, retry now, and simulated offline).
//!
//! Simulated offline is for support and testing: it stops the worker and starts a new one
//! pointed at a local port nothing listens on, so sync fails exactly as it does without a
//! network ("No connection to the sync server", retried with backoff) while edits keep
//! being saved and queued on the device. Going back online stops that worker and starts
//! one against the real relay, which sends the queue and fetches what others wrote.
//!
//! Stopping a worker interrupts its send, even one the network does not drain, and waits
//! only for it to put back what it was sending: store work, like the write of a keystroke.
//! So the switch happens right here, the old worker stopped before the new one starts,
//! and two workers never share the outbox.

use std::net::TcpListener;

use holdfast::{SpaceId, Store, SyncConfig, SyncError, SyncHandle, SyncStatus};

/// A running sync worker and the controls the sync panel gives over it.
pub struct SyncLink {
    store: Store,
    config: SyncConfig,
    /// None once a restart failed; the next toggle tries again.
    worker: Option<SyncHandle>,
    /// The status of the last worker, shown while none runs.
    last_status: SyncStatus,
    paused: bool,
    /// Offline is simulated.
    offline: bool,
}

impl SyncLink {
    /// Starts syncing `space` of `store` with the relay at `url`.
    pub fn start(store: &Store, url: &str, token: &str, space: SpaceId) -> Result<Self, SyncError> {
        let config = SyncConfig::new(url, token, vec![space]);
        let worker = store.sync(config.clone())?;
        Ok(SyncLink {
            store: store.clone(),
            config,
            last_status: worker.status(),
            worker: Some(worker),
            paused: false,
            offline: false,
        })
    }

    /// The relay's address.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// The worker's status (the last one's, if none runs).
    pub fn status(&self) -> SyncStatus {
        match &self.worker {
            Some(worker) => worker.status(),
            None => self.last_status.clone(),
        }
    }

    /// Whether sync is paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Whether offline is being simulated.
    pub fn simulated_offline(&self) -> bool {
        self.offline
    }

    /// Pauses, or resumes a paused worker.
    pub fn toggle_pause(&mut self) {
        self.paused = !self.paused;
        if let Some(worker) = &self.worker {
            if self.paused {
                worker.pause();
            } else {
                worker.resume();
            }
        }
    }

    /// Simulates being offline, or goes back online (see the module docs).
    pub fn toggle_offline(&mut self) -> Result<(), SyncError> {
        self.offline = !self.offline;
        if let Some(old) = self.worker.take() {
            self.last_status = old.status();
            // Its unsent changes stay queued.
            old.stop();
        }
        let mut config = self.config.clone();
        if self.offline {
            config.url = unreachable_url();
        }
        let worker = self.store.sync(config)?;
        if self.paused {
            worker.pause();
        }
        self.worker = Some(worker);
        Ok(())
    }

    /// Tries now instead of waiting out the backoff, changes refused for good included.
    pub fn retry_now(&self) -> holdfast::Result<()> {
        self.store.outbox().retry_failed()?;
        if let Some(worker) = &self.worker {
            worker.retry_now();
        }
        Ok(())
    }
}

/// A loopback address where nothing listens: a port the system just handed out and that
/// was closed again.
fn unreachable_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(9, |a| a.port());
    format!("ws://127.0.0.1:{port}/")
}
