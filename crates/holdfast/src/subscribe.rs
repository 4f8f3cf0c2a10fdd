//! Change notifications: which records changed, and whether locally or from elsewhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::limits::SUBSCRIPTION_BACKLOG_MAX;
use crate::{RecordId, SpaceId};

/// Where a change came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Origin {
    /// A write on this device.
    Local,
    /// Another device, through the relay.
    Remote,
    /// Another device, through an imported bundle.
    Import,
}

/// One record changed, durably.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// The record.
    pub record: RecordId,
    /// Its collection.
    pub collection: String,
    /// Its space.
    pub space: SpaceId,
    /// Where the change came from.
    pub origin: Origin,
}

/// What a [`Subscription`] receives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notification {
    /// These records changed (one durable commit's worth).
    Changed(Vec<ChangeEvent>),
    /// The subscriber fell behind and notifications were dropped: refresh everything.
    Lagged,
}

/// A stream of change notifications. Dropping it unsubscribes.
pub struct Subscription {
    rx: Receiver<Vec<ChangeEvent>>,
    lagged: Arc<AtomicBool>,
}

impl Subscription {
    /// Waits up to `timeout` for the next notification.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Notification> {
        if let Some(n) = self.check_lagged() {
            return Some(n);
        }
        match self.rx.recv_timeout(timeout) {
            Ok(events) => Some(Notification::Changed(events)),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => self.check_lagged(),
        }
    }

    /// The next notification if one is waiting.
    pub fn try_recv(&self) -> Option<Notification> {
        self.check_lagged()
            .or_else(|| self.rx.try_recv().ok().map(Notification::Changed))
    }

    fn check_lagged(&self) -> Option<Notification> {
        if self.lagged.swap(false, Ordering::AcqRel) {
            while self.rx.try_recv().is_ok() {}
            return Some(Notification::Lagged);
        }
        None
    }
}

/// A subscriber's channel and its "fell behind" flag.
type Subscriber = (SyncSender<Vec<ChangeEvent>>, Arc<AtomicBool>);

#[derive(Default)]
pub(crate) struct Subscribers {
    list: Mutex<Vec<Subscriber>>,
}

impl Subscribers {
    pub(crate) fn subscribe(&self) -> Subscription {
        let (tx, rx) = sync_channel(SUBSCRIPTION_BACKLOG_MAX);
        let lagged = Arc::new(AtomicBool::new(false));
        crate::lock::lock(&self.list).push((tx, lagged.clone()));
        Subscription { rx, lagged }
    }

    /// Sends `events` to every subscriber without ever blocking the writer.
    pub(crate) fn notify(&self, events: &[ChangeEvent]) {
        if events.is_empty() {
            return;
        }
        crate::lock::lock(&self.list).retain(|(tx, lagged)| match tx.try_send(events.to_vec()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                lagged.store(true, Ordering::Release);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        });
    }
}

/// A function called on an event, without arguments.
pub(crate) type Watcher = Arc<dyn Fn() + Send + Sync>;

/// Cheap wake-ups for internal consumers (the sync worker): each registered function is
/// called after the event, from the thread that caused it, so it must only signal.
#[derive(Default)]
pub(crate) struct Watchers {
    list: Mutex<Vec<std::sync::Weak<dyn Fn() + Send + Sync>>>,
}

impl Watchers {
    /// Registers `watcher` for as long as the caller keeps it alive.
    #[cfg_attr(not(feature = "sync"), allow(dead_code))]
    pub(crate) fn watch(&self, watcher: &Watcher) {
        crate::lock::lock(&self.list).push(Arc::downgrade(watcher));
    }

    /// Calls every live watcher; forgets dropped ones.
    pub(crate) fn fire(&self) {
        let live: Vec<Watcher> = {
            let mut list = crate::lock::lock(&self.list);
            list.retain(|w| w.strong_count() > 0);
            list.iter().filter_map(std::sync::Weak::upgrade).collect()
        };
        for watcher in live {
            watcher();
        }
    }
}

impl crate::Store {
    /// Subscribes to change notifications (local writes, imports, and later remote changes),
    /// each sent once the change is durable.
    pub fn subscribe(&self) -> Subscription {
        self.inner.subscribers.subscribe()
    }
}
