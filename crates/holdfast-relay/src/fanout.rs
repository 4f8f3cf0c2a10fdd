//! Live delivery of stored entries to the connections subscribed to their space: the
//! [`Fanout`] trait and its in-process implementation, [`LocalFanout`].
//!
//! A connection subscribes with a [`LiveSink`], the sending end of its own bounded inbox
//! ([`LiveInbox`]). Publishing never waits: a batch is offered to each subscriber's sink,
//! and a subscriber whose inbox is full is marked as overflowed, so its connection drops
//! it as a slow consumer; nobody else is held up. Its device pulls what it missed when it
//! reconnects. Batches of one space may reach a connection out of order (two group commits
//! publish from two threads); devices tolerate it by pulling on a gap.
//!
//! A batch names the connection that stored it (its [`Author`]). That connection is sent
//! the batch's entries without their change bytes: its device pushed them from its own
//! store, so it holds them, and the entries' positions alone move its cursor past them.
//! Every other connection gets them whole.
//!
//! A backend spanning several relays (Postgres `LISTEN/NOTIFY`) implements [`Fanout`] by
//! sending each published batch (or its space and cursor) to the other nodes and offering
//! what it receives to its local sinks, as [`LocalFanout`] does. An [`Author`] cannot leave
//! its process, so a batch from another node has none and reaches every connection whole.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use holdfast_protocol::{ChangeEntry, Cursor, SpaceId};
use tokio::sync::mpsc;

#[cfg(test)]
mod tests;

/// Delivers the entries every connection stores to the connections subscribed to their
/// space, the storing one included (see [`Author`]).
pub trait Fanout: Send + Sync {
    /// Offers `batch` to every subscriber of `batch.space`. Called once per space and
    /// durable store, right after the commit, from a blocking thread; must not wait.
    fn publish(&self, batch: Arc<LiveBatch>);

    /// Delivers batches of `spaces` to `sink` until the returned [`Subscription`] is
    /// dropped.
    fn subscribe(&self, spaces: &[SpaceId], sink: LiveSink) -> Subscription;
}

/// Entries of one space that were just stored durably, in log order.
#[derive(Debug)]
pub struct LiveBatch {
    /// The space.
    pub space: SpaceId,
    /// The entries, each with its log position.
    pub entries: Vec<ChangeEntry>,
    /// The cursor after the last entry.
    pub next_cursor: Cursor,
    /// When the store that holds them returned, for the fan-out latency metric.
    pub stored_at: Instant,
    /// The connection that stored the entries, if it is in this process.
    author: Option<Author>,
    /// The `Changes` frame carrying the batch, encoded once for every subscriber but its
    /// author.
    encoded: OnceLock<Option<Encoded>>,
}

/// A connection that stores entries, named in the batches it publishes so it can be told
/// apart from the other subscribers. Compared by identity: it cannot be forged, copied to
/// another process, or mistaken for a later connection.
#[derive(Clone, Debug, Default)]
pub struct Author(Arc<()>);

impl Author {
    /// A new connection's identity.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `self` and `other` are the same connection.
    pub fn is(&self, other: &Author) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A frame's bytes and its size before compression.
#[derive(Clone, Debug)]
pub(crate) struct Encoded {
    pub(crate) bytes: tokio_tungstenite::tungstenite::Bytes,
    pub(crate) plain_bytes: usize,
}

impl LiveBatch {
    /// A batch stored just now.
    pub fn new(space: SpaceId, entries: Vec<ChangeEntry>, next_cursor: Cursor) -> Self {
        Self {
            space,
            entries,
            next_cursor,
            stored_at: Instant::now(),
            author: None,
            encoded: OnceLock::new(),
        }
    }

    /// The batch as stored by the connection `author`.
    pub fn by(mut self, author: Author) -> Self {
        self.author = Some(author);
        self
    }

    /// Whether `connection` stored this batch: its device holds the entries' changes.
    pub fn is_by(&self, connection: &Author) -> bool {
        self.author.as_ref().is_some_and(|a| a.is(connection))
    }

    /// The batch as the `Changes` frame a session sends for it, encoded by the first
    /// subscriber that needs it; `None` if it cannot be encoded.
    pub(crate) fn encoded(&self, encode: impl FnOnce() -> Option<Encoded>) -> Option<Encoded> {
        self.encoded.get_or_init(encode).clone()
    }
}

/// The sending end of one connection's live inbox.
#[derive(Clone, Debug)]
pub struct LiveSink {
    id: u64,
    tx: mpsc::Sender<Arc<LiveBatch>>,
    overflowed: Arc<AtomicBool>,
}

/// The receiving end of one connection's live inbox.
#[derive(Debug)]
pub struct LiveInbox {
    rx: mpsc::Receiver<Arc<LiveBatch>>,
    overflowed: Arc<AtomicBool>,
}

/// What became of a batch offered to a sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    /// It waits in the inbox.
    Delivered,
    /// The inbox was full: the connection is now marked as a slow consumer.
    Overflowed,
    /// The connection is gone; the sink may be forgotten.
    Gone,
}

/// A live inbox holding at most `capacity` batches.
pub fn live_inbox(capacity: usize) -> (LiveSink, LiveInbox) {
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let overflowed = Arc::new(AtomicBool::new(false));
    let sink = LiveSink {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        tx,
        overflowed: overflowed.clone(),
    };
    (sink, LiveInbox { rx, overflowed })
}

impl LiveSink {
    /// Puts `batch` in the inbox if there is room; never waits.
    pub fn offer(&self, batch: Arc<LiveBatch>) -> Offer {
        match self.tx.try_send(batch) {
            Ok(()) => Offer::Delivered,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflowed.store(true, Ordering::Release);
                Offer::Overflowed
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Gone,
        }
    }
}

impl LiveInbox {
    /// The next batch; `None` once every sink is dropped.
    pub async fn recv(&mut self) -> Option<Arc<LiveBatch>> {
        self.rx.recv().await
    }

    /// Whether a batch was refused because the inbox was full: the connection is too slow
    /// and must be dropped, as it has missed changes.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }
}

/// Keeps a subscription alive; dropping it unsubscribes.
#[must_use = "dropping a subscription ends it"]
pub struct Subscription(Option<Box<dyn FnOnce() + Send>>);

impl Subscription {
    /// A subscription that runs `unsubscribe` when dropped.
    pub fn new(unsubscribe: impl FnOnce() + Send + 'static) -> Self {
        Self(Some(Box::new(unsubscribe)))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(unsubscribe) = self.0.take() {
            unsubscribe();
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription")
    }
}

/// A [`Fanout`] within one relay process: a list of sinks per space.
#[derive(Debug, Default)]
pub struct LocalFanout {
    spaces: Arc<RwLock<HashMap<SpaceId, HashMap<u64, LiveSink>>>>,
}

impl LocalFanout {
    /// A fan-out with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribers of `space`, for tests and metrics.
    pub fn subscribers(&self, space: &SpaceId) -> usize {
        read(&self.spaces).get(space).map_or(0, HashMap::len)
    }
}

impl Fanout for LocalFanout {
    fn publish(&self, batch: Arc<LiveBatch>) {
        let mut gone = false;
        if let Some(sinks) = read(&self.spaces).get(&batch.space) {
            for sink in sinks.values() {
                gone |= sink.offer(batch.clone()) == Offer::Gone;
            }
        }
        if gone {
            let mut spaces = write(&self.spaces);
            if let Some(sinks) = spaces.get_mut(&batch.space) {
                sinks.retain(|_, sink| !sink.tx.is_closed());
                if sinks.is_empty() {
                    spaces.remove(&batch.space);
                }
            }
        }
    }

    fn subscribe(&self, spaces: &[SpaceId], sink: LiveSink) -> Subscription {
        let id = sink.id;
        {
            let mut map = write(&self.spaces);
            for space in spaces {
                map.entry(space.clone())
                    .or_default()
                    .insert(id, sink.clone());
            }
        }
        let map = self.spaces.clone();
        let spaces = spaces.to_vec();
        Subscription::new(move || {
            let mut map = write(&map);
            for space in spaces {
                if let Some(sinks) = map.get_mut(&space) {
                    sinks.remove(&id);
                    if sinks.is_empty() {
                        map.remove(&space);
                    }
                }
            }
        })
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
