//! The compactor: replaces a record's snapshot with a new one holding its tail, off the
//! push path, on a thread of its own (docs/relay-storage.md, "Compaction").
//!
//! A group commit hands it the records it made due; a bounded queue with a dedupe set
//! holds them. When the queue is full, a record is dropped from it and a scan of the
//! record table (also run once after open) finds it later. One record is compacted at a
//! time, so at most one document is in memory. The log is never rewritten.
//!
//! A record still being pushed to waits until it has been quiet for
//! [`StoreConfig::compact_quiet`], unless it is urgent
//! ([`StoreConfig::compaction_urgent`]): every push to a due record puts its compaction
//! off again, so a document being typed into is loaded and saved when its writer pauses,
//! or when its tail reaches the hard limits, instead of every few pushes.

use std::collections::{HashMap, VecDeque};
use std::ops::Bound;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableDatabase, ReadableTable};

use super::record::{self, Reader};
use super::{lock, StoreConfig};
use crate::error::StoreError;
use crate::tables::{self, RecordRow};

/// Record rows one scan step reads, so that one read transaction stays short.
const SCAN_ROWS: usize = 1024;

/// A (space, record) key of the record table.
pub(super) type Key = (String, u128);

/// A record a push made due for compaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Due {
    pub key: Key,
    /// Compacted without waiting for the record to be quiet
    /// ([`StoreConfig::compaction_urgent`]).
    pub urgent: bool,
}

/// The compactor of one store: its queue, and its thread if it runs in the background.
pub(super) struct Compactor {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    db: Arc<Database>,
    config: StoreConfig,
    queue: Mutex<Queue>,
    cv: Condvar,
    /// Held while a record is compacted: one document in memory at a time, and the thread
    /// and [`Compactor::compact_now`] never build the same snapshot twice at once.
    work: Mutex<()>,
    compactions: AtomicU64,
}

#[derive(Default)]
struct Queue {
    /// Queued keys, in the order they were first queued.
    order: VecDeque<Key>,
    /// What the compactor waits for, for each queued key.
    queued: HashMap<Key, Waiting>,
    /// Records may be due that are not queued: at open, and after the queue was full.
    rescan: bool,
    /// Where the scan under way goes on from.
    scan_after: Option<Key>,
    /// Counts restarts of the scan, so a step that ran meanwhile does not undo one.
    scan_restarts: u64,
    stop: bool,
}

/// What a queued record waits for.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    /// The last push that found it due; `None` when a scan found it (nobody pushed it
    /// since the store opened, or the queue was full when they did).
    pushed: Option<Instant>,
    urgent: bool,
}

impl Compactor {
    /// The compactor of `db`; its thread starts if `config.compact_in_background`, with a
    /// scan for records left due by an earlier run.
    pub(super) fn start(db: Arc<Database>, config: &StoreConfig) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared {
            db,
            config: config.clone(),
            queue: Mutex::new(Queue {
                rescan: true,
                ..Queue::default()
            }),
            cv: Condvar::new(),
            work: Mutex::new(()),
            compactions: AtomicU64::new(0),
        });
        let thread = if config.compact_in_background {
            let shared = shared.clone();
            let thread = std::thread::Builder::new()
                .name("holdfast-compactor".into())
                .spawn(move || shared.run())
                .map_err(|e| StoreError::Database(redb::Error::Io(e)))?;
            Some(thread)
        } else {
            None
        };
        Ok(Self { shared, thread })
    }

    /// Queues records a commit made due; a record queued already waits again for quiet
    /// from now. Without a background thread, nothing is queued: [`Self::compact_now`]
    /// finds them.
    pub(super) fn enqueue(&self, due: Vec<Due>) {
        if self.thread.is_none() || due.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut queue = lock(&self.shared.queue);
        let mut wake = false;
        for Due { key, urgent } in due {
            let waiting = Waiting {
                pushed: Some(now),
                urgent,
            };
            wake |= queue.push(key, waiting, self.shared.config.compact_queue_max);
        }
        if wake {
            self.shared.cv.notify_one();
        }
    }

    /// Compacts every due record now, on the calling thread; returns how many.
    pub(super) fn compact_now(&self) -> Result<u64, StoreError> {
        let mut compacted = 0;
        let mut after = None;
        loop {
            let (due, resume) = self.shared.scan_step(after.as_ref(), usize::MAX)?;
            for (space, rid) in due {
                compacted += u64::from(self.shared.compact(&space, rid)?);
            }
            match resume {
                Some(key) => after = Some(key),
                None => return Ok(compacted),
            }
        }
    }

    /// Snapshots written since open.
    pub(super) fn compactions(&self) -> u64 {
        self.shared.compactions.load(Ordering::Relaxed)
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.cv.notify_all();
        if let Some(thread) = self.thread.take() {
            // The thread finishes the record it is on (one document) and stops.
            let _ = thread.join();
        }
    }
}

impl Queue {
    /// Queues `key`, or updates what a queued key waits for (its last push, urgent if
    /// either is); past `max` keys, leaves it to a scan. Returns whether the thread may
    /// have work sooner than it thought: a new key, a key now urgent, or a scan. A later
    /// push to a queued key only puts it off, which needs no wake-up.
    fn push(&mut self, key: Key, waiting: Waiting, max: usize) -> bool {
        if let Some(queued) = self.queued.get_mut(&key) {
            queued.pushed = queued.pushed.max(waiting.pushed);
            let now_urgent = waiting.urgent && !queued.urgent;
            queued.urgent |= waiting.urgent;
            return now_urgent;
        }
        if self.order.len() >= max {
            self.rescan = true;
            self.scan_after = None;
            self.scan_restarts += 1;
            return true;
        }
        self.queued.insert(key.clone(), waiting);
        self.order.push_back(key);
        true
    }

    /// The first key in queue order that is urgent or quiet for `quiet` at `now`, taken
    /// from the queue; otherwise when the first one becomes quiet (`None`: nothing queued).
    fn pop_ready(&mut self, now: Instant, quiet: Duration) -> Result<Key, Option<Instant>> {
        let mut next = None;
        for (i, key) in self.order.iter().enumerate() {
            let waiting = self.queued[key];
            let ready_at = waiting.pushed.map(|pushed| pushed + quiet);
            match ready_at {
                Some(at) if !waiting.urgent && at > now => {
                    next = Some(next.map_or(at, |n: Instant| n.min(at)));
                }
                _ => {
                    let key = self.order.remove(i).expect("the index is in range");
                    self.queued.remove(&key);
                    return Ok(key);
                }
            }
        }
        Err(next)
    }
}

enum Job {
    Record(Key),
    /// A scan step after this key, in this scan (its restart count).
    Scan(Option<Key>, u64),
}

impl Shared {
    fn run(&self) {
        loop {
            let job = {
                let mut queue = lock(&self.queue);
                loop {
                    if queue.stop {
                        return;
                    }
                    let next = match queue.pop_ready(Instant::now(), self.config.compact_quiet) {
                        Ok(key) => break Job::Record(key),
                        Err(next) => next,
                    };
                    if queue.rescan {
                        break Job::Scan(queue.scan_after.clone(), queue.scan_restarts);
                    }
                    queue = match next {
                        // Sleeps until the first queued record is quiet, or a push or a
                        // stop wakes it.
                        Some(at) => {
                            let wait = at.saturating_duration_since(Instant::now());
                            self.cv
                                .wait_timeout(queue, wait)
                                .map(|(queue, _)| queue)
                                .unwrap_or_else(|e| e.into_inner().0)
                        }
                        None => self.cv.wait(queue).unwrap_or_else(|e| e.into_inner()),
                    };
                }
            };
            // A failure (or a bug) on one record must not stop compaction of the others.
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| self.work(job)));
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "compaction failed"),
                Err(_) => tracing::error!("compaction panicked"),
            }
        }
    }

    fn work(&self, job: Job) -> Result<(), StoreError> {
        match job {
            Job::Record((space, rid)) => {
                self.compact(&space, rid)?;
            }
            Job::Scan(after, restarts) => {
                let room = {
                    let queue = lock(&self.queue);
                    self.config
                        .compact_queue_max
                        .saturating_sub(queue.order.len())
                };
                let scanned = self.scan_step(after.as_ref(), room.max(1));
                let mut queue = lock(&self.queue);
                let (due, resume) = match scanned {
                    Ok(scanned) => scanned,
                    Err(e) => {
                        // Try again from the start when next due, not in a tight loop.
                        queue.rescan = false;
                        queue.scan_after = None;
                        return Err(e);
                    }
                };
                // A push that overflowed the queue meanwhile restarted the scan: keep that.
                if queue.scan_restarts == restarts {
                    queue.rescan = resume.is_some();
                    queue.scan_after = resume;
                }
                let found = Waiting {
                    pushed: None,
                    urgent: false,
                };
                for key in due {
                    // This thread is the one that would be woken.
                    queue.push(key, found, usize::MAX);
                }
            }
        }
        Ok(())
    }

    /// Reads up to [`SCAN_ROWS`] record rows after `after` and returns the keys of at most
    /// `room` due records, with the key to go on after (`None` at the end of the table).
    fn scan_step(
        &self,
        after: Option<&Key>,
        room: usize,
    ) -> Result<(Vec<Key>, Option<Key>), StoreError> {
        let txn = self.db.begin_read()?;
        let records = txn.open_table(tables::RECORDS)?;
        let start = match after {
            Some((space, rid)) => Bound::Excluded((space.as_str(), *rid)),
            None => Bound::Unbounded,
        };
        let mut due = Vec::new();
        let mut last = None;
        for item in records
            .range::<(&str, u128)>((start, Bound::Unbounded))?
            .take(SCAN_ROWS)
        {
            let (key, value) = item?;
            let (space, rid) = key.value();
            let row: RecordRow =
                tables::decode_row(tables::RECORD_ROW_V1, value.value(), "record")?;
            last = Some((space.to_owned(), rid));
            if self.config.compaction_due(&row) {
                due.push((space.to_owned(), rid));
                if due.len() >= room {
                    return Ok((due, last));
                }
            }
        }
        let end = match &last {
            None => true,
            Some((space, rid)) => records
                .range::<(&str, u128)>((Bound::Excluded((space.as_str(), *rid)), Bound::Unbounded))?
                .next()
                .is_none(),
        };
        Ok((due, if end { None } else { last }))
    }

    /// Makes a new snapshot of the record if it is still due; returns whether it did.
    fn compact(&self, space: &str, rid: u128) -> Result<bool, StoreError> {
        let _work = lock(&self.work);
        let stored = {
            let txn = self.db.begin_read()?;
            let reader = Reader::open(&txn)?;
            let Some(row) = reader.row(space, rid)? else {
                return Ok(false);
            };
            if !self.config.compaction_due(&row) {
                return Ok(false);
            }
            reader.stored(space, rid, &row)?
        };
        let saved = record::build(&stored.doc, &stored.changes)?.save();
        let covered = stored.last_seq;
        drop(stored);

        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut records = txn.open_table(tables::RECORDS)?;
            let record_log = txn.open_table(tables::RECORD_LOG)?;
            let mut snapshots = txn.open_table(tables::SNAPSHOTS)?;
            let Some(old) = tables::read_record(&records, space, rid)? else {
                return Ok(false);
            };
            if old.snapshot_seq >= covered {
                return Ok(false);
            }
            // Entries appended since the read stay in the tail.
            let mut row = RecordRow {
                snapshot_seq: covered,
                snapshot_bytes: saved.len() as u64,
                ..RecordRow::default()
            };
            for item in record_log.range((space, rid, covered + 1)..=(space, rid, u64::MAX))? {
                let (bytes, count) = item?.1.value();
                row.tail_entries += 1;
                row.tail_changes += count;
                row.tail_bytes += bytes;
            }
            snapshots.insert((space, rid), tables::snapshot_row(&saved).as_slice())?;
            let row = tables::encode_row(tables::RECORD_ROW_V1, &row);
            records.insert((space, rid), row.as_slice())?;
        }
        txn.commit()?;
        self.compactions.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            space,
            record = %tables::record_id(rid),
            seq = covered,
            bytes = saved.len(),
            "record compacted"
        );
        Ok(true)
    }
}
