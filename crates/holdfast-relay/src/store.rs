//! The storage interface a relay's sessions are served by: [`LogStore`].

use holdfast_protocol::{AckResult, ChangeEntry, Cursor, PushEntry, SpaceId};

use crate::error::StoreError;

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
