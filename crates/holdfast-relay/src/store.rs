//! The storage interface a relay's sessions are served by: [`LogStore`].

use holdfast_protocol::session::PullReply;
use holdfast_protocol::{
    AckResult, BootstrapFrom, ChangeEntry, Cursor, Outcome, PushEntry, RecordId, RecordState,
    SpaceId,
};

use crate::error::StoreError;

/// The entries of a push that were stored, as the log now holds them: one batch per space,
/// in push order (what the relay delivers live to the space's subscribers).
pub fn stored_batches(
    pushed: Vec<PushEntry>,
    results: &[AckResult],
) -> Vec<(SpaceId, Vec<ChangeEntry>)> {
    let mut batches: Vec<(SpaceId, Vec<ChangeEntry>)> = Vec::new();
    for (entry, result) in pushed.into_iter().zip(results) {
        let Outcome::Stored { seq } = result.outcome else {
            continue;
        };
        let change = ChangeEntry {
            seq,
            record: entry.record,
            event_id: entry.event_id,
            changes: entry.changes,
        };
        match batches.iter_mut().find(|(space, _)| *space == entry.space) {
            Some((_, entries)) => entries.push(change),
            None => batches.push((entry.space, vec![change])),
        }
    }
    batches
}

/// A relay's durable log of every space, as the session driver uses it.
///
/// Object safe and `Send + Sync`, so a driver holds an `Arc<dyn LogStore>` and calls it
/// from a blocking pool; another backend (Postgres) implements the same contract:
///
/// - `store` answers with one result per entry, in order, and returns only once every
///   entry it answers `Stored` is durable. A repeated event id gets the outcome it got
///   before; a change already held is not stored again.
/// - `pull` is deterministic: the same cursor yields the same entries, byte for byte,
///   for as long as the epoch lasts.
/// - A cursor from another epoch or past the end of the log is a [`PullResult::Repair`],
///   never an error and never a reset.
/// - `bootstrap` pages through a space's record states; every state of every page holds at
///   least each change of its record up to the first page's `base`.
/// - `sync_record` answers one Automerge sync message of a repair and stores what it
///   brings through the same rules as `store`.
pub trait LogStore: Send + Sync {
    /// Stores pushed entries durably: one [`AckResult`] per entry, in the same order.
    ///
    /// A rejected entry does not fail the call; entries after it that depend on it are
    /// rejected too. `Err` means nothing of this call was acknowledged; the device resends.
    fn store(&self, entries: Vec<PushEntry>) -> Result<Vec<AckResult>, StoreError>;

    /// The entries of `space` after `cursor` (`None`: from the start), in log order, with
    /// at most `max_bytes` of change bytes but at least one entry however large.
    fn pull(
        &self,
        space: &SpaceId,
        cursor: Option<Cursor>,
        max_bytes: u64,
    ) -> Result<PullResult, StoreError>;

    /// The relay's current epoch: cursors of any other epoch are answered with repair.
    fn epoch(&self) -> u64;

    /// One page of the current state of `space`'s records, in record id order.
    ///
    /// `from: None`, or a `from.base` of another epoch (or past the log's end), starts at
    /// the first record with `base` = the log's current end. Otherwise the page starts
    /// after `from.after` and keeps `from.base`. Each [`RecordState`] holds every change of
    /// its record stored so far (so at least those up to `base`). A page holds at most
    /// `max_bytes` of [`RecordState::byte_len`], but at least one record however large;
    /// `next` names its last record when more follow.
    fn bootstrap(
        &self,
        space: &SpaceId,
        from: Option<BootstrapFrom>,
        max_bytes: u64,
    ) -> Result<SnapshotPage, StoreError>;

    /// Answers one Automerge sync message a device sent for `record` (a repair).
    ///
    /// The relay keeps no sync state between messages: the device drives the conversation
    /// and ends it when its own `generate_sync_message` has nothing more to say. Changes the
    /// message brings that the relay lacks are stored durably, as entries with new event
    /// ids, if `may_write`; otherwise they are ignored. A message that does not decode is
    /// [`StoreError::BadSyncMessage`].
    fn sync_record(
        &self,
        space: &SpaceId,
        record: RecordId,
        message: &[u8],
        may_write: bool,
    ) -> Result<RecordSync, StoreError>;
}

/// The answer to [`LogStore::bootstrap`]: one page of record states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotPage {
    /// The records, in record id order.
    pub records: Vec<RecordState>,
    /// The log position every state covers: the first page's, carried by `from.base`.
    pub base: Cursor,
    /// The last record of the page, if more follow.
    pub next: Option<RecordId>,
}

impl From<PullResult> for PullReply {
    /// The session's answer to a pull: the entries, or a repair of the space (the device
    /// drives it, since it knows which records it holds; the session starts it with a
    /// `Resync`, and the relay has no first messages to add).
    fn from(result: PullResult) -> Self {
        match result {
            PullResult::Changes {
                entries,
                next_cursor,
                more,
            } => PullReply::Changes {
                entries,
                next_cursor,
                more,
            },
            PullResult::Repair { .. } => PullReply::Repair {
                messages: Vec::new(),
            },
        }
    }
}

impl From<SnapshotPage> for PullReply {
    fn from(page: SnapshotPage) -> Self {
        PullReply::Snapshot {
            records: page.records,
            base: page.base,
            next: page.next,
        }
    }
}

/// The answer to [`LogStore::sync_record`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordSync {
    /// The relay's sync message for the device, to send back in a `Repair`.
    pub reply: Option<Vec<u8>>,
    /// Entries the message's changes were stored as, in log order, to fan out like pushed
    /// ones. Empty when the message brought nothing new (or `may_write` was false).
    pub stored: Vec<ChangeEntry>,
    /// The rejection, if the relay refused to store the message's changes (the record
    /// would pass its size limit); the reply then does not claim them.
    pub rejected: Option<Outcome>,
}

/// The answer to [`LogStore::pull`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PullResult {
    /// Entries after the cursor, in log order.
    Changes {
        /// The entries; empty when the device is up to date.
        entries: Vec<ChangeEntry>,
        /// The cursor after `entries` (the pulled cursor when there are none).
        next_cursor: Cursor,
        /// Whether the log holds entries after `next_cursor`.
        more: bool,
    },
    /// The cursor names a position this relay cannot vouch for; the session starts an
    /// Automerge sync (repair) of the space instead of sending changes.
    Repair {
        /// Why.
        reason: RepairReason,
    },
}

/// Why a cursor cannot be pulled from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RepairReason {
    /// The cursor is from another epoch: the relay's log was restored or replaced since.
    OtherEpoch {
        /// The cursor's epoch.
        cursor_epoch: u64,
        /// The relay's epoch.
        epoch: u64,
    },
    /// The cursor is past the end of the space's log: the device saw entries this relay
    /// no longer has, so the relay was restored from an older backup.
    BeyondEnd {
        /// The cursor's position.
        cursor_seq: u64,
        /// The last entry of the space's log.
        last_seq: u64,
    },
}
