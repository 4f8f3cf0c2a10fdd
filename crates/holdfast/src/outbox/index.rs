//! The in-memory index of the outbox: per-record sync states and the global summary
//! answered without touching the disk, and the candidates of the next batch. Rebuilt from
//! the outbox at open; updated after every commit that changes the outbox.
//!
//! Its memory follows the number of records, not of entries. Every local write is an
//! entry, so a device offline for long holds hundreds of thousands of them; the index
//! keeps whole (an [`Item`]) only a *window* of the oldest entries, at most
//! `window_max` that the worker may send (`OUTBOX_INDEX_WINDOW_ENTRIES`), plus the few
//! past it that were sent already. Entries past the window are only counted: per record
//! (queued, or blocked) and per *segment* of consecutive entries (how many, and the oldest
//! creation time of the queued ones). A counted entry is always a queued row that was never
//! handed to the worker, since only the window's entries are sent; so the counts answer
//! everything the index is asked exactly. As the window drains, it takes whole segments
//! back from the outbox table (one range read); a new entry goes to the window while it has
//! room and nothing is counted past it, else to the last segment (a count, not more).
//!
//! Two states live only here, never in a row. An entry is *blocked* while an earlier entry
//! of its record failed for good: a record's later changes build on its earlier ones (each
//! local change depends on the document's heads), so the relay could never store it, and
//! it is not sent until that entry is retried or discarded. An entry is *held* while the
//! relay's rate limit asks the device to wait (flow control, not a failure): its row is
//! queued, and the index keeps when it goes out again. Both are derived again after a
//! restart (blocked) or simply forgotten (held: the entry is sent at once). A blocked
//! queued entry inside the window is counted too, not kept.
//!
//! When an event changes which counted entries are blocked (a record's first refusal for
//! good while it has counted entries, a retry of one while some are blocked behind it, a
//! discard of counted entries), or an update raced with another one, the index marks
//! itself *stale* and is rebuilt from the table, as at open, before it next answers: rare
//! events, each a user's action or a refusal.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use redb::ReadableTable;

use super::{blocked_reason, public_state, rank, SyncState, SyncSummary};
use crate::error::Result;
use crate::tables::{self, OutboxRow, RowState, LOG_OUTBOX};
use crate::RecordId;

#[cfg(test)]
mod tests;

/// What the index keeps of one entry.
pub(crate) struct Item {
    pub(crate) record: RecordId,
    pub(crate) state: RowState,
    pub(crate) created_ms: i64,
    pub(crate) bytes: u64,
}

impl Item {
    pub(crate) fn of(row: &OutboxRow) -> Item {
        Item {
            record: row.record,
            state: row.state.clone(),
            created_ms: row.created_ms,
            bytes: row.bytes,
        }
    }
}

pub(crate) struct OutboxIndex {
    /// Most entries the window keeps whole that are not waiting for the user.
    window_max: usize,
    /// Every entry up to `edge` but blocked queued ones, and the entries past it that are
    /// not plain queued ones (sent, failed, held).
    items: BTreeMap<u64, Item>,
    /// The window's last seq; the last entry counted when no segment is left.
    edge: u64,
    /// The last seq counted. The store commits entries in seq order, so an entry the table
    /// holds past it is one whose commit has not reached the index yet.
    last: u64,
    records: HashMap<RecordId, Rec>,
    /// The counted entries past the window, in order.
    segments: VecDeque<Segment>,
    /// Counted entries that are queued (all past the window) and blocked.
    queued: u64,
    blocked: u64,
    /// Entries the relay's rate limit holds back, and when (ms since the epoch, this
    /// device's clock) they go out again. Usually empty.
    held: HashMap<u64, i64>,
    /// Items up to `edge` not waiting for the user (failed for good, or blocked), when not
    /// `live_dirty`.
    live: usize,
    live_dirty: bool,
    /// The counts may be wrong: rebuild from the table before answering.
    stale: bool,
}

/// One record's entries.
#[derive(Default)]
struct Rec {
    /// Its items.
    items: Seqs,
    /// Its items whose row failed for good.
    refused: u32,
    /// Its counted entries, queued and blocked.
    queued: u64,
    blocked: u64,
}

/// Consecutive counted entries past the window, from the previous segment's end (or the
/// window's edge) to `end`.
struct Segment {
    end: u64,
    entries: usize,
    /// When the oldest of its queued (not blocked) entries was made.
    oldest_ms: Option<i64>,
}

/// The seqs of one record's items.
#[derive(Default)]
enum Seqs {
    #[default]
    None,
    One(u64),
    Many(BTreeSet<u64>),
}

impl Seqs {
    fn insert(&mut self, seq: u64) {
        match self {
            Seqs::None => *self = Seqs::One(seq),
            Seqs::One(one) if *one == seq => {}
            Seqs::One(one) => *self = Seqs::Many(BTreeSet::from([*one, seq])),
            Seqs::Many(set) => {
                set.insert(seq);
            }
        }
    }

    fn remove(&mut self, seq: u64) {
        match self {
            Seqs::One(one) if *one == seq => *self = Seqs::None,
            Seqs::Many(set) => {
                set.remove(&seq);
                if set.is_empty() {
                    *self = Seqs::None;
                }
            }
            _ => {}
        }
    }

    /// In outbox order.
    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let (one, many) = match self {
            Seqs::None => (None, None),
            Seqs::One(seq) => (Some(*seq), None),
            Seqs::Many(set) => (None, Some(set)),
        };
        one.into_iter().chain(many.into_iter().flatten().copied())
    }
}

impl Rec {
    fn is_empty(&self) -> bool {
        matches!(self.items, Seqs::None) && self.queued == 0 && self.blocked == 0
    }
}

/// The outbox part of the log table, as a read or a write transaction opens it.
pub(crate) trait Log: ReadableTable<(u8, u64), &'static [u8]> {}
impl<T: ReadableTable<(u8, u64), &'static [u8]>> Log for T {}

impl OutboxIndex {
    /// An empty index whose window keeps `window_max` entries.
    pub(crate) fn new(window_max: usize) -> OutboxIndex {
        OutboxIndex {
            window_max: window_max.max(1),
            items: BTreeMap::new(),
            edge: 0,
            last: 0,
            records: HashMap::new(),
            segments: VecDeque::new(),
            queued: 0,
            blocked: 0,
            held: HashMap::new(),
            live: 0,
            live_dirty: false,
            stale: false,
        }
    }

    /// Adds entry `seq` just committed: to the window while it has room and nothing is
    /// counted past it, else to the counts.
    pub(crate) fn insert(&mut self, seq: u64, row: &OutboxRow) {
        if seq <= self.last {
            return;
        }
        self.last = seq;
        let rec = self.records.entry(row.record).or_default();
        // Its record's refusals are all earlier entries.
        let blocked = rec.refused > 0;
        if blocked {
            rec.blocked += 1;
            self.blocked += 1;
        }
        let fits = !self.live_dirty && self.live < self.window_max;
        if self.segments.is_empty() && (blocked || fits) {
            self.edge = seq;
            if !blocked {
                rec.items.insert(seq);
                self.items.insert(seq, Item::of(row));
                self.live += 1;
            }
            return;
        }
        if !blocked {
            rec.queued += 1;
            self.queued += 1;
        }
        self.count_past(seq, row.created_ms, !blocked);
    }

    /// Counts entry `seq`, past the window, in the last segment.
    fn count_past(&mut self, seq: u64, created_ms: i64, queued: bool) {
        let size = (self.window_max / 2).max(1);
        if self.segments.back().is_none_or(|s| s.entries >= size) {
            self.segments.push_back(Segment {
                end: seq,
                entries: 0,
                oldest_ms: None,
            });
        }
        let segment = self.segments.back_mut().expect("just pushed");
        segment.end = seq;
        segment.entries += 1;
        if queued {
            segment.oldest_ms = Some(segment.oldest_ms.map_or(created_ms, |o| o.min(created_ms)));
        }
    }

    /// Whether [`OutboxIndex::catch_up`] has work: a rebuild, or a segment to take back.
    pub(crate) fn behind(&mut self) -> bool {
        self.refresh_live();
        self.stale
            || self
                .segments
                .front()
                .is_some_and(|s| self.live + s.entries <= self.window_max)
    }

    /// Rebuilds the index if it is stale, and refills the window from `log` while it has
    /// room for a whole segment.
    pub(crate) fn catch_up(&mut self, log: &impl Log) -> Result<()> {
        if self.stale {
            return self.rebuild(log);
        }
        self.refresh_live();
        while self
            .segments
            .front()
            .is_some_and(|s| self.live + s.entries <= self.window_max)
        {
            self.take_segment(log)?;
            if self.stale {
                return self.rebuild(log);
            }
        }
        Ok(())
    }

    /// Moves the first segment into the window: its queued entries become items.
    fn take_segment(&mut self, log: &impl Log) -> Result<()> {
        let Some(segment) = self.segments.pop_front() else {
            return Ok(());
        };
        let mut blockers: HashMap<RecordId, Option<u64>> = HashMap::new();
        let from = self.edge.saturating_add(1);
        for row in log.range((LOG_OUTBOX, from)..=(LOG_OUTBOX, segment.end))? {
            let (k, v) = row?;
            let seq = k.value().1;
            if self.items.contains_key(&seq) {
                continue;
            }
            let row = tables::decode_outbox_indexed(v.value())?;
            let blocker = *blockers
                .entry(row.record)
                .or_insert_with(|| self.first_refused(row.record));
            if blocker.is_some_and(|b| b < seq) {
                continue;
            }
            let rec = self.records.get_mut(&row.record);
            let Some(rec) = rec.filter(|r| r.queued > 0 && row.state == RowState::Queued) else {
                // An update between its commit and the index's.
                self.stale = true;
                return Ok(());
            };
            rec.queued -= 1;
            rec.items.insert(seq);
            self.queued -= 1;
            self.items.insert(
                seq,
                Item {
                    record: row.record,
                    state: row.state,
                    created_ms: row.created_ms,
                    bytes: row.bytes,
                },
            );
            self.live += 1;
        }
        self.edge = if self.segments.is_empty() {
            self.last
        } else {
            segment.end
        };
        Ok(())
    }

    /// The index of every entry up to `self.last`, read again from `log`.
    fn rebuild(&mut self, log: &impl Log) -> Result<()> {
        let mut build = Build::new(self.window_max, std::mem::take(&mut self.held));
        for row in log.range((LOG_OUTBOX, 0)..=(LOG_OUTBOX, self.last))? {
            let (k, v) = row?;
            let row = tables::decode_outbox_indexed(v.value())?;
            let item = Item {
                record: row.record,
                state: row.state,
                created_ms: row.created_ms,
                bytes: row.bytes,
            };
            build.push(k.value().1, item);
        }
        let last = self.last;
        *self = build.finish(last);
        Ok(())
    }

    /// Recounts the window's entries that may be sent.
    fn refresh_live(&mut self) {
        if !self.live_dirty {
            return;
        }
        let mut stopped = Stopped::default();
        let window = if self.segments.is_empty() {
            self.items.range(..)
        } else {
            self.items.range(..=self.edge)
        };
        self.live = window
            .filter(|(_, i)| !stopped.blocks(i) && !is_refused(&i.state))
            .count();
        self.live_dirty = false;
    }

    /// Sets an entry's state; an entry that changes state is no longer held.
    pub(crate) fn set_state(&mut self, seq: u64, state: RowState) {
        let Some(item) = self.items.get_mut(&seq) else {
            return;
        };
        self.held.remove(&seq);
        self.live_dirty = true;
        let (was, now) = (is_refused(&item.state), is_refused(&state));
        item.state = state;
        let Some(rec) = self.records.get_mut(&item.record) else {
            return;
        };
        if was && !now {
            rec.refused -= 1;
            // Counted entries behind it may be blocked no more.
            self.stale |= rec.blocked > 0;
        }
        if now && !was {
            rec.refused += 1;
            // Its record's counted entries may be blocked from now on.
            self.stale |= rec.queued > 0;
        }
    }

    /// Entry `seq`, queued again, waits for the relay's rate limit until `retry_at_ms`.
    pub(crate) fn hold(&mut self, seq: u64, retry_at_ms: i64) {
        if self.items.contains_key(&seq) {
            self.set_state(seq, RowState::Queued);
            self.held.insert(seq, retry_at_ms);
        }
    }

    /// When a held entry goes out again.
    pub(crate) fn held(&self, seq: u64) -> Option<i64> {
        self.held.get(&seq).copied()
    }

    /// Forgets entry `seq`, which left the outbox. Returns false if it was only counted
    /// (or unknown): then the counts are rebuilt.
    pub(crate) fn remove(&mut self, seq: u64) -> bool {
        self.held.remove(&seq);
        let Some(item) = self.items.remove(&seq) else {
            self.stale |= seq <= self.last;
            return false;
        };
        self.live_dirty = true;
        if let Some(rec) = self.records.get_mut(&item.record) {
            rec.items.remove(seq);
            if is_refused(&item.state) {
                rec.refused -= 1;
                self.stale |= rec.blocked > 0;
            }
            if rec.is_empty() {
                self.records.remove(&item.record);
            }
        }
        true
    }

    /// The last seq the index counts; entries past it are not known yet.
    pub(crate) fn last(&self) -> u64 {
        self.last
    }

    /// Entry `seq`'s record, if the index keeps it whole.
    pub(crate) fn record_of(&self, seq: u64) -> Option<RecordId> {
        self.items.get(&seq).map(|i| i.record)
    }

    /// Whether some of `record`'s entries are only counted.
    pub(crate) fn counts(&self, record: RecordId) -> bool {
        self.records
            .get(&record)
            .is_some_and(|r| r.queued + r.blocked > 0)
    }

    /// The first entry of `record` that failed for good.
    fn first_refused(&self, record: RecordId) -> Option<u64> {
        let rec = self.records.get(&record).filter(|r| r.refused > 0)?;
        rec.items
            .iter()
            .find(|s| self.items.get(s).is_some_and(|i| is_refused(&i.state)))
    }

    /// The first earlier entry of `record` that failed for good, which its entry `seq`
    /// waits behind, with that failure's reason.
    pub(crate) fn blocker(&self, seq: u64, record: RecordId) -> Option<(u64, &str)> {
        let first = self.first_refused(record).filter(|s| *s < seq)?;
        match &self.items.get(&first)?.state {
            RowState::Failed { reason, .. } => Some((first, reason.as_str())),
            _ => None,
        }
    }

    /// The entries of `record` kept whole from `seq` on, in order.
    pub(crate) fn items_from(&self, record: RecordId, seq: u64) -> Vec<u64> {
        let seqs = self.records.get(&record).map(|r| &r.items);
        seqs.into_iter()
            .flat_map(Seqs::iter)
            .filter(|s| *s >= seq)
            .collect()
    }

    /// Entry `seq`'s state as its row says, if kept whole.
    pub(crate) fn state(&self, seq: u64) -> Option<&RowState> {
        self.items.get(&seq).map(|i| &i.state)
    }

    /// Where `record`'s entries stand, the worst of them: failed beats syncing beats
    /// queued; a record with a refused entry is failed with the refusal's reason, whatever
    /// waits behind it; of two transient failures, the later entry's.
    pub(crate) fn record_state(&self, record: RecordId) -> SyncState {
        let Some(rec) = self.records.get(&record) else {
            return SyncState::Synced;
        };
        let mut stop: Option<&str> = None;
        let mut worst = SyncState::Synced;
        for seq in rec.items.iter() {
            let Some(item) = self.items.get(&seq) else {
                continue;
            };
            let state = match stop {
                Some(reason) => SyncState::Failed {
                    reason: blocked_reason(reason),
                    permanent: true,
                },
                None if self.held.contains_key(&seq) => SyncState::Syncing,
                None => public_state(&item.state),
            };
            if let RowState::Failed {
                reason,
                permanent: true,
            } = &item.state
            {
                stop = stop.or(Some(reason));
            }
            if rank(&state) >= rank(&worst) {
                worst = state;
            }
        }
        if let Some(reason) = stop {
            // The record is stuck on its first refusal: that is what the user must act on
            // (the entries behind it only wait on it, and say so in the listing).
            return SyncState::Failed {
                reason: reason.to_owned(),
                permanent: true,
            };
        }
        if rec.queued > 0 && rank(&worst) < rank(&SyncState::Queued) {
            worst = SyncState::Queued;
        }
        worst
    }

    /// Adds the outbox's totals to `s`.
    pub(crate) fn summarize(&self, s: &mut SyncSummary) {
        let mut oldest: Option<i64> = None;
        let mut stopped = Stopped::default();
        for (seq, item) in &self.items {
            let blocked = stopped.blocks(item);
            match &item.state {
                _ if blocked => {
                    s.failed += 1;
                    s.failed_permanent += 1;
                    s.blocked += 1;
                }
                RowState::Queued => s.pending += 1,
                RowState::Sending => {
                    s.pending += 1;
                    s.sending += 1;
                }
                RowState::Failed { permanent, .. } => {
                    s.failed += 1;
                    s.failed_permanent += u64::from(*permanent);
                }
            }
            if let Some(at) = self.held(*seq) {
                s.held += 1;
                s.retry_at_ms = Some(s.retry_at_ms.map_or(at, |t| t.min(at)));
            }
            if !blocked && !is_refused(&item.state) {
                oldest = Some(oldest.map_or(item.created_ms, |o| o.min(item.created_ms)));
            }
        }
        s.pending += self.queued;
        s.failed += self.blocked;
        s.failed_permanent += self.blocked;
        s.blocked += self.blocked;
        for at in self.segments.iter().filter_map(|s| s.oldest_ms) {
            oldest = Some(oldest.map_or(at, |o| o.min(at)));
        }
        s.oldest_pending_ms = oldest;
    }

    /// The entries due to be sent next, in order: at most `entries_max`, at most
    /// `bytes_max` change bytes, and always at least one if any is due. Blocked entries are
    /// not due. The window grows (from `log`) until it holds them all. A hint: rows are the
    /// truth.
    pub(crate) fn due(
        &mut self,
        log: &impl Log,
        entries_max: usize,
        bytes_max: u64,
    ) -> Result<Vec<u64>> {
        loop {
            let (due, full) = self.due_in_window(entries_max, bytes_max);
            if full || self.segments.is_empty() {
                return Ok(due);
            }
            self.take_segment(log)?;
            if self.stale {
                self.rebuild(log)?;
            }
        }
    }

    /// [`OutboxIndex::due`] among the window's entries, and whether the batch is full.
    fn due_in_window(&self, entries_max: usize, bytes_max: u64) -> (Vec<u64>, bool) {
        let mut out = Vec::new();
        let mut bytes = 0u64;
        let mut stopped = Stopped::default();
        let window = if self.segments.is_empty() {
            self.items.range(..)
        } else {
            self.items.range(..=self.edge)
        };
        for (seq, item) in window {
            if stopped.blocks(item) || !is_due(&item.state) {
                continue;
            }
            if !out.is_empty() && (out.len() >= entries_max || bytes + item.bytes > bytes_max) {
                return (out, true);
            }
            bytes += item.bytes;
            out.push(*seq);
        }
        (out, false)
    }

    /// The entries whose state, as kept whole, matches, in order. Counted entries are all
    /// queued and never handed to the worker.
    pub(crate) fn matching(&self, f: impl Fn(&RowState) -> bool) -> Vec<u64> {
        self.items
            .iter()
            .filter(|(_, i)| f(&i.state))
            .map(|(s, _)| *s)
            .collect()
    }
}

/// An index built from every entry in outbox order (a scan of the outbox table).
pub(crate) struct Build {
    index: OutboxIndex,
    /// Held entries to keep whole wherever they are (a rebuild's).
    held: HashMap<u64, i64>,
    /// Whether the window is closed: an entry did not fit.
    closed: bool,
}

impl Build {
    pub(crate) fn new(window_max: usize, held: HashMap<u64, i64>) -> Build {
        Build {
            index: OutboxIndex::new(window_max),
            held,
            closed: false,
        }
    }

    /// Adds entry `seq`, the next in outbox order.
    pub(crate) fn push(&mut self, seq: u64, item: Item) {
        let index = &mut self.index;
        let rec = index.records.entry(item.record).or_default();
        let blocked = rec.refused > 0;
        let plain = item.state == RowState::Queued && !self.held.contains_key(&seq);
        if plain && blocked {
            rec.blocked += 1;
            index.blocked += 1;
            if self.closed {
                index.count_past(seq, item.created_ms, false);
            } else {
                index.edge = seq;
            }
            return;
        }
        if plain && (self.closed || index.live >= index.window_max) {
            self.closed = true;
            rec.queued += 1;
            index.queued += 1;
            index.count_past(seq, item.created_ms, true);
            return;
        }
        if !self.closed {
            index.edge = seq;
            index.live += usize::from(!blocked && !is_refused(&item.state));
        }
        rec.refused += u32::from(is_refused(&item.state));
        rec.items.insert(seq);
        index.items.insert(seq, item);
    }

    /// The index, with `last` the last seq it counts (at least the last pushed).
    pub(crate) fn finish(mut self, last: u64) -> OutboxIndex {
        let index = &mut self.index;
        index.last = last;
        if index.segments.is_empty() {
            index.edge = last;
        }
        self.held.retain(|seq, _| index.items.contains_key(seq));
        index.held = self.held;
        index.live_dirty = true;
        index.refresh_live();
        self.index
    }
}

/// The records with an entry that failed for good, seen so far in a walk in outbox order:
/// their later entries are blocked.
#[derive(Default)]
struct Stopped(HashSet<RecordId>);

impl Stopped {
    /// Whether `item`, next in outbox order, is blocked; notes its record if it stops it.
    fn blocks(&mut self, item: &Item) -> bool {
        if self.0.contains(&item.record) {
            return true;
        }
        if is_refused(&item.state) {
            self.0.insert(item.record);
        }
        false
    }
}

/// Failed for good: waits for the user.
fn is_refused(state: &RowState) -> bool {
    matches!(
        state,
        RowState::Failed {
            permanent: true,
            ..
        }
    )
}

/// Queued, or failed in a way the worker retries by itself.
pub(crate) fn is_due(state: &RowState) -> bool {
    matches!(
        state,
        RowState::Queued
            | RowState::Failed {
                permanent: false,
                ..
            }
    )
}
