//! Errors of the relay's storage.

/// Storage failed; no entry of the failed call is acknowledged.
///
/// Bad input from a device is a rejected entry in the results, not a `StoreError`, with
/// one exception: a repair's sync message that does not decode is
/// [`StoreError::BadSyncMessage`], which the driver answers like any malformed frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed (I/O, a full disk, a lock held by another process).
    #[error("relay database error: {0}")]
    Database(#[from] redb::Error),
    /// A row could not be decoded: the file is damaged or was written by other code.
    #[error("relay database is damaged: {0}")]
    Corrupt(String),
    /// The file was written by a newer relay, in a layout this one does not know.
    #[error("relay database format {found} is newer than this relay supports ({supported})")]
    NewerFormat {
        /// The file's format version.
        found: u32,
        /// The newest format this code reads.
        supported: u32,
    },
    /// The group commit that carried this call's entries failed; none of them is durable.
    #[error("relay could not commit a batch of changes: {0}")]
    CommitFailed(String),
    /// A device's Automerge sync message (of a repair) is not valid; nothing was stored.
    #[error("the device sent an invalid sync message: {0}")]
    BadSyncMessage(String),
}

macro_rules! from_redb {
    ($($ty:ty),*) => {$(
        impl From<$ty> for StoreError {
            fn from(e: $ty) -> Self {
                Self::Database(e.into())
            }
        }
    )*};
}

from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
