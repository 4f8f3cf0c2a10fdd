//! The app's link to the relay: the sync worker and the sync panel's controls over it
//! (pause and resume, retry now, and simulated offline).
//!
//! Simulated offline is for support and testing: it stops the worker and starts a new one
//! pointed at a local port nothing listens on, so sync fails exactly as it does without a
//! network ("No connection to the sync server", retried with backoff) while edits keep
//! being saved and queued on the device. Going back online stops that worker and starts
//! one against the real relay, which sends the queue and fetches what others wrote.
//!
//! Stopping a worker waits for it to put back what it was sending, which takes up to
//! `holdfast::STOP_WAIT_MAX` when the network stalls mid-send. So the switch happens on a
//! thread of its own and the UI thread never waits: the old worker stops there, then the
//! new one starts there and is taken in at the next [`SyncLink::poll`]. There is never
//! more than one worker, so two never share the outbox.

use std::net::TcpListener;
use std::sync::mpsc;

use holdfast::{SpaceId, Store, SyncConfig, SyncError, SyncHandle, SyncStatus};

/// A running sync worker and the controls the sync panel gives over it.
pub struct SyncLink {
    store: Store,
    config: SyncConfig,
    worker: Worker,
    paused: bool,
    /// Offline is simulated (or is being switched to).
    offline: bool,
}

/// The worker, or a switch to a new one under way.
enum Worker {
    Running {
        handle: SyncHandle,
        /// Whether it is the simulated-offline worker.
        offline: bool,
    },
    Switching {
        /// The old worker's last status, shown meanwhile.
        status: SyncStatus,
        /// Whether the new worker is the simulated-offline one.
        offline: bool,
        /// The new worker, once the old one has stopped.
        next: mpsc::Receiver<Result<SyncHandle, SyncError>>,
    },
    /// The last switch failed; the next toggle tries again.
    Failed { status: SyncStatus },
}

impl SyncLink {
    /// Starts syncing `space` of `store` with the relay at `url`.
    pub fn start(store: &Store, url: &str, token: &str, space: SpaceId) -> Result<Self, SyncError> {
        let config = SyncConfig::new(url, token, vec![space]);
        let handle = store.sync(config.clone())?;
        Ok(SyncLink {
            store: store.clone(),
            config,
            worker: Worker::Running {
                handle,
                offline: false,
            },
            paused: false,
            offline: false,
        })
    }

    /// The relay's address.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// The worker's status (while workers are being switched, the old one's last).
    pub fn status(&self) -> SyncStatus {
        match &self.worker {
            Worker::Running { handle, .. } => handle.status(),
            Worker::Switching { status, .. } | Worker::Failed { status } => status.clone(),
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

    /// Whether a switch between workers is under way.
    pub fn switching(&self) -> bool {
        matches!(self.worker, Worker::Switching { .. })
    }

    /// Pauses, or resumes a paused worker.
    pub fn toggle_pause(&mut self) {
        self.paused = !self.paused;
        if let Worker::Running { handle, .. } = &self.worker {
            if self.paused {
                handle.pause();
            } else {
                handle.resume();
            }
        }
    }

    /// Simulates being offline, or goes back online (see the module docs). Returns at
    /// once; the switch finishes in the background.
    pub fn toggle_offline(&mut self) {
        self.offline = !self.offline;
        self.switch_if_needed();
    }

    /// Takes in a worker whose switch has finished, and starts the next switch if the
    /// user toggled again meanwhile. Never blocks. Returns why the new worker could not
    /// start, once.
    pub fn poll(&mut self) -> Option<SyncError> {
        let Worker::Switching { next, offline, .. } = &self.worker else {
            return None;
        };
        let offline = *offline;
        let started = match next.try_recv() {
            Ok(started) => started,
            Err(mpsc::TryRecvError::Empty) => return None,
            Err(mpsc::TryRecvError::Disconnected) => {
                Err(SyncError::Runtime("the switching thread ended".into()))
            }
        };
        let error = match started {
            Ok(handle) => {
                if self.paused {
                    handle.pause();
                }
                self.worker = Worker::Running { handle, offline };
                None
            }
            Err(e) => {
                self.worker = Worker::Failed {
                    status: self.status(),
                };
                Some(e)
            }
        };
        self.switch_if_needed();
        error
    }

    /// Starts a switch to the worker the user asked for, unless it runs or one is under way.
    fn switch_if_needed(&mut self) {
        match &self.worker {
            Worker::Running { offline, .. } if *offline == self.offline => return,
            Worker::Switching { .. } => return,
            Worker::Running { .. } | Worker::Failed { .. } => {}
        }
        let (tx, next) = mpsc::channel();
        let switching = Worker::Switching {
            status: self.status(),
            offline: self.offline,
            next,
        };
        let old = std::mem::replace(&mut self.worker, switching);
        let mut config = self.config.clone();
        if self.offline {
            config.url = unreachable_url();
        }
        let store = self.store.clone();
        let failed = tx.clone();
        let spawned = std::thread::Builder::new()
            .name("notes-sync-switch".into())
            .spawn(move || {
                // Dropping the old handle stops its worker and waits for it; its unsent
                // changes stay queued.
                drop(old);
                let _ = tx.send(store.sync(config));
            });
        if let Err(e) = spawned {
            let _ = failed.send(Err(SyncError::Runtime(e.to_string())));
        }
    }

    /// Tries now instead of waiting out the backoff, changes refused for good included.
    pub fn retry_now(&self) -> holdfast::Result<()> {
        self.store.outbox().retry_failed()?;
        if let Worker::Running { handle, .. } = &self.worker {
            handle.retry_now();
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
