//! The worker's life: connect, run a connection until it ends, wait out the backoff (or a
//! pause, or the user after a permanent refusal), and again; or, for `sync_once`, until
//! everything is in sync or the deadline comes.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tracing::Instrument;

use super::backoff;
use super::connection::{self, Ended, Mode};
use super::metrics::Counters;
use super::reconnect::{Next, Reconnect};
use super::status::{ConnectionState, StatusCell, SyncStatus};
use super::transport::Endpoint;
use super::{SyncConfig, SyncError, SyncMetrics, SyncReport};
use crate::subscribe::Watcher;
use crate::Store;

/// Plain words for a paused worker.
const PAUSED: &str = "Sync is paused";
/// Plain words for a stopped worker.
const STOPPED: &str = "Sync is stopped";

/// What the handle asks of the worker.
#[derive(Clone, Debug, Default)]
pub(crate) struct Control {
    pub paused: bool,
    pub stopped: bool,
    /// Bumped by each `retry_now`.
    pub retry: u64,
}

/// What the worker, its connections and its handle share.
pub(crate) struct Shared {
    pub store: Store,
    pub config: SyncConfig,
    pub endpoint: Endpoint,
    pub status: StatusCell,
    pub counters: Mutex<Counters>,
    pub control: watch::Sender<Control>,
    /// Woken when the outbox gets due entries (a local write, a user's retry).
    pub outbox: Arc<Notify>,
    /// Spaces the relay refused to let this device read; not synced until the user
    /// retries or resumes.
    refused: Mutex<std::collections::BTreeSet<crate::SpaceId>>,
    /// Keeps the store's outbox watcher registered for the worker's life.
    _watcher: Watcher,
    ended: Mutex<bool>,
    ended_cv: Condvar,
}

impl Shared {
    pub(super) fn new(store: Store, config: SyncConfig) -> Result<Arc<Shared>, SyncError> {
        if config.spaces.is_empty() {
            return Err(SyncError::NoSpaces);
        }
        let endpoint = Endpoint::new(&config)?;
        let summary = store.sync_summary()?;
        let outbox = Arc::new(Notify::new());
        let wake = outbox.clone();
        let watcher: Watcher = Arc::new(move || wake.notify_one());
        store.inner.outbox_watchers.watch(&watcher);
        Ok(Arc::new(Shared {
            store,
            config,
            endpoint,
            status: StatusCell::new(SyncStatus::new(&summary)),
            counters: Mutex::new(Counters::default()),
            control: watch::Sender::new(Control::default()),
            outbox,
            refused: Mutex::default(),
            _watcher: watcher,
            ended: Mutex::new(false),
            ended_cv: Condvar::new(),
        }))
    }

    /// The spaces to sync now: the configured ones the relay has not refused.
    pub(super) fn spaces(&self) -> Vec<crate::SpaceId> {
        let refused = crate::lock::lock(&self.refused);
        let spaces = self.config.spaces.iter();
        spaces.filter(|s| !refused.contains(*s)).cloned().collect()
    }

    /// Stops syncing `space` (the relay refused it); false if no space is left to sync.
    fn refuse(&self, space: crate::SpaceId) -> bool {
        let mut refused = crate::lock::lock(&self.refused);
        refused.insert(space);
        let no_access: Vec<_> = refused.iter().cloned().collect();
        drop(refused);
        self.status.update(|s| s.no_access = no_access);
        !self.spaces().is_empty()
    }

    /// Syncs every configured space again (the user retried or resumed).
    fn forgive(&self) {
        crate::lock::lock(&self.refused).clear();
        self.status.update(|s| s.no_access.clear());
    }

    pub(super) fn control(&self, f: impl FnOnce(&mut Control)) {
        self.control.send_modify(f);
    }

    pub(super) fn counters(&self) -> std::sync::MutexGuard<'_, Counters> {
        crate::lock::lock(&self.counters)
    }

    pub(super) fn metrics(&self) -> Result<SyncMetrics, crate::Error> {
        let summary = self.store.sync_summary()?;
        let conflicts = self.store.conflict_counts()?;
        let now = self.store.inner.now();
        let age = summary
            .oldest_pending_ms
            .map(|t| Duration::from_millis(now.saturating_sub(t).max(0) as u64));
        let outbox_len = summary.pending + summary.failed;
        Ok(self.counters().snapshot(outbox_len, age, conflicts))
    }

    /// Re-reads the outbox counts into the status (blocking: a read transaction).
    pub(super) fn refresh_counts(&self) {
        match self.store.sync_summary() {
            Ok(summary) => self.status.update(|s| s.set_counts(&summary)),
            Err(e) => tracing::warn!("reading the outbox summary failed: {e}"),
        }
    }

    fn set_ended(&self) {
        *crate::lock::lock(&self.ended) = true;
        self.ended_cv.notify_all();
    }

    pub(super) fn has_ended(&self) -> bool {
        *crate::lock::lock(&self.ended)
    }

    pub(super) fn wait_ended(&self, timeout: Duration) {
        let ended = crate::lock::lock(&self.ended);
        let _ = self
            .ended_cv
            .wait_timeout_while(ended, timeout, |ended| !*ended);
    }

    fn offline(&self, reason: &str, permanent: bool, next_retry_ms: Option<i64>) {
        self.status.update(|s| {
            s.connection = ConnectionState::Offline {
                reason: reason.to_owned(),
                permanent,
            };
            s.next_retry_ms = next_retry_ms;
        });
    }

    async fn refresh_counts_async(self: &Arc<Self>) {
        let shared = self.clone();
        let _ = tokio::task::spawn_blocking(move || shared.refresh_counts()).await;
    }
}

/// Runs the background worker until stopped.
pub(crate) async fn run(shared: Arc<Shared>) {
    let span =
        tracing::info_span!("sync", device = %shared.store.device_id(), url = %shared.config.url);
    run_inner(&shared).instrument(span).await;
    shared.offline(STOPPED, false, None);
    shared.set_ended();
}

async fn run_inner(shared: &Arc<Shared>) {
    let config = &shared.config;
    let mut policy = Reconnect::new(config.reconnect_delay_min, config.reconnect_delay_max);
    let mut control = shared.control.subscribe();
    let mut retried = control.borrow().retry;
    loop {
        let now = control.borrow_and_update().clone();
        if now.stopped {
            return;
        }
        if now.retry != retried || now.paused {
            retried = now.retry;
            shared.forgive();
        }
        shared.status.update(|s| s.paused = now.paused);
        if now.paused {
            shared.offline(PAUSED, false, None);
            if !wait_offline(shared, &mut control, None).await {
                return;
            }
            policy.user_acted();
            continue;
        }
        let ended = connection::run(shared, &mut control, Mode::Live).await;
        let lost = match ended {
            Ended::Stopped => return,
            Ended::Paused | Ended::Complete | Ended::Deadline => continue,
            Ended::Lost(lost) => lost,
        };
        shared.counters().reconnects += 1;
        shared
            .status
            .update(|s| s.last_error = Some(lost.reason.clone()));
        let next = policy.on_lost(&lost, backoff::random, |space| shared.refuse(space.clone()));
        match next {
            Next::Reconnect(delay) if delay.is_zero() => {
                tracing::warn!(reason = %lost.reason, "a space is no longer synced");
            }
            Next::Reconnect(delay) => {
                tracing::info!(reason = %lost.reason, ?delay, "reconnecting later");
                let retry_ms = shared.store.inner.now() + delay.as_millis() as i64;
                shared.offline(&lost.reason, false, Some(retry_ms));
                if !wait_offline(shared, &mut control, Some(delay)).await {
                    return;
                }
            }
            Next::Stop => {
                tracing::warn!(reason = %lost.reason, "sync stopped until the user acts");
                shared.offline(&lost.reason, true, None);
                if !wait_offline(shared, &mut control, None).await {
                    return;
                }
                policy.user_acted();
            }
        }
    }
}

/// Waits offline for `delay` (or, with none, for the user), keeping the counts current as
/// local writes queue. Returns false once the worker is to stop; returns early on any
/// control change (`retry_now`, `pause`, `resume`).
async fn wait_offline(
    shared: &Arc<Shared>,
    control: &mut watch::Receiver<Control>,
    delay: Option<Duration>,
) -> bool {
    let until = delay.map(|d| tokio::time::Instant::now() + d);
    loop {
        let sleep = async {
            match until {
                Some(until) => tokio::time::sleep_until(until).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = control.changed() => {
                return changed.is_ok() && !control.borrow().stopped;
            }
            () = sleep => return true,
            () = shared.outbox.notified() => shared.refresh_counts_async().await,
        }
    }
}

/// Runs `sync_once`: connections until everything is in sync, a permanent refusal, or the
/// deadline.
pub(crate) async fn once(shared: Arc<Shared>, deadline: Instant) -> SyncReport {
    let started = Instant::now();
    let span = tracing::info_span!("sync_once", device = %shared.store.device_id(), url = %shared.config.url);
    let (complete, error) = once_inner(&shared, deadline).instrument(span).await;
    shared.refresh_counts_async().await;
    let status = shared.status.get();
    let c = shared.counters().clone();
    SyncReport {
        complete,
        pushed: c.entries_stored + c.entries_duplicate,
        rejected: c.entries_rejected,
        received: c.entries_received,
        changes_applied: c.changes_applied,
        records_repaired: c.records_repaired,
        pending: status.pending,
        failed: status.failed,
        error,
        elapsed: started.elapsed(),
    }
}

async fn once_inner(shared: &Arc<Shared>, deadline: Instant) -> (bool, Option<String>) {
    let config = &shared.config;
    // Room to close the connection and put unacknowledged entries back before the deadline.
    let budget = deadline.saturating_duration_since(Instant::now());
    let margin = (budget / 10).min(Duration::from_millis(500));
    let stop_at = deadline - margin;
    let mut policy = Reconnect::new(config.reconnect_delay_min, config.reconnect_delay_max);
    let mut control = shared.control.subscribe();
    let mut last_error = None;
    loop {
        if Instant::now() >= stop_at {
            let error = last_error.unwrap_or_else(|| "Sync did not finish in time".to_owned());
            return (false, Some(error));
        }
        let until = tokio::time::Instant::from_std(stop_at);
        let lost = match connection::run(shared, &mut control, Mode::Once { until }).await {
            Ended::Complete => return (true, None),
            Ended::Deadline => {
                return (false, Some("Sync did not finish in time".to_owned()));
            }
            Ended::Stopped | Ended::Paused => return (false, Some(STOPPED.to_owned())),
            Ended::Lost(lost) => lost,
        };
        let next = policy.on_lost(&lost, backoff::random, |space| shared.refuse(space.clone()));
        match next {
            Next::Reconnect(delay) if delay.is_zero() => last_error = Some(lost.reason),
            Next::Reconnect(delay) => {
                if Instant::now() + delay >= stop_at {
                    return (false, Some(lost.reason));
                }
                last_error = Some(lost.reason);
                shared.counters().reconnects += 1;
                tokio::time::sleep(delay).await;
            }
            Next::Stop => return (false, Some(lost.reason)),
        }
    }
}
