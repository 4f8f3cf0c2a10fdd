//! Errors: one enum per family of operations, and the umbrella [`Error`].

use std::io;
use std::sync::Arc;

use crate::value::ScalarType;
use crate::RecordId;

/// A problem with the schema or with how a call uses it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The schema itself is malformed.
    #[error("invalid schema: {0}")]
    Invalid(String),
    /// No collection of that name.
    #[error("unknown collection {0:?}")]
    UnknownCollection(String),
    /// No field of that name in the collection.
    #[error("collection {collection:?} has no field {field:?}")]
    UnknownField {
        /// The collection.
        collection: String,
        /// The field asked for.
        field: String,
    },
    /// The call does not fit the field's kind (e.g. `splice_text` on a counter).
    #[error("field {field:?} is a {kind} field; {operation} does not apply to it")]
    WrongKind {
        /// The field.
        field: String,
        /// Its kind, in words.
        kind: &'static str,
        /// What was attempted.
        operation: &'static str,
    },
    /// A value of the wrong type for the field.
    #[error("field {field:?} holds {expected:?} values, not {got:?}")]
    WrongType {
        /// The field.
        field: String,
        /// Its declared type.
        expected: ScalarType,
        /// The type given.
        got: ScalarType,
    },
    /// A query by a field that has no index.
    #[error(
        "field {collection}.{field} is not indexed; mark it indexed in the schema to query by it"
    )]
    NotIndexed {
        /// The collection.
        collection: String,
        /// The field.
        field: String,
    },
    /// The same schema version is stored with a different definition.
    #[error("schema version {version} in the database differs from the app's schema version {version}; bump the version when the schema changes")]
    Mismatch {
        /// The version both claim.
        version: u32,
    },
}

/// A problem with a change bundle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not a Holdfast bundle at all.
    #[error("this file is not a Holdfast change bundle")]
    NotABundle,
    /// Written by a newer format version.
    #[error(
        "this bundle was written by a newer version of Holdfast (format {0}); update to import it"
    )]
    UnsupportedVersion(u8),
    /// Damaged: truncated, bit flips, or bytes that do not decode.
    #[error("the bundle is damaged and was not imported: {0}")]
    Corrupt(String),
    /// Larger than the bundle limit.
    #[error("the bundle is larger than {limit} bytes once unpacked")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// Nothing of the import could be applied: the records it would have changed were
    /// refused, listed with why.
    #[error(transparent)]
    Refused(crate::bundle::ImportRefused),
}

/// Why a store refuses writes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadOnlyReason {
    /// The database was written by a newer schema than the app's.
    #[error("this data was saved by a newer version of the app (schema {stored}); this version (schema {app}) can only read it. Update the app to make changes")]
    NewerSchema {
        /// The schema version in the database.
        stored: u32,
        /// The app's schema version.
        app: u32,
    },
}

/// Any error from the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage layer (redb, the file system) failed. Damage redb detects is
    /// [`Error::Corrupt`] instead.
    #[error("storage error: {0}")]
    Storage(redb::Error),
    /// Schema misuse or mismatch.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A bad bundle.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// Writes are refused.
    #[error(transparent)]
    ReadOnly(#[from] ReadOnlyReason),
    /// No record with that id (or it is deleted).
    #[error("record {0} not found")]
    NotFound(RecordId),
    /// The record exists but is deleted ([`Store::get_deleted`](crate::Store::get_deleted)
    /// reads it).
    #[error("record {0} is deleted")]
    Deleted(RecordId),
    /// A text or list position past the end.
    #[error("position {index} is past the end ({len}) of field {field:?}")]
    OutOfBounds {
        /// The field.
        field: String,
        /// The position asked for.
        index: usize,
        /// The current length.
        len: usize,
    },
    /// A plain read of a versioned field that is in conflict: read it with
    /// [`Record::field`](crate::Record::field) to get the candidates, then resolve.
    #[error("{field:?} of record {record} has conflicting versions to choose from")]
    Conflicted {
        /// The record.
        record: RecordId,
        /// The field.
        field: String,
    },
    /// The field has no conflict to resolve, or the resolution does not fit it.
    #[error("cannot resolve {field:?} of record {record}: {reason}")]
    Resolve {
        /// The record.
        record: RecordId,
        /// The field.
        field: String,
        /// Why.
        reason: &'static str,
    },
    /// A stored document or row failed to decode, or the storage engine met a damaged
    /// page: the file is damaged.
    #[error("the database file is damaged: {0}")]
    Corrupt(String),
    /// An operation on a record's document failed that cannot fail on a sound document and
    /// valid input: a bug in Holdfast (or Automerge), not damage and not the app's mistake.
    /// Nothing was written.
    #[error("internal error (a bug in Holdfast; nothing was saved): {0}")]
    Internal(String),
    /// A single-record write ([`Store::update`](crate::Store::update)) tried to create or
    /// change another record.
    #[error("this write may only change record {only}; use Store::write to change several records or create one")]
    OutOfScope {
        /// The other record it tried to touch (`None` for a create).
        record: Option<RecordId>,
        /// The record it is confined to.
        only: RecordId,
    },
    /// A store method was called from inside a write closure of the same store.
    #[error(
        "store methods cannot be called inside a write closure; use the transaction's own methods"
    )]
    Reentrant,
    /// A database format newer than this library.
    #[error("this database uses storage format {found}; this version of Holdfast reads up to {supported}")]
    UnsupportedFormat {
        /// The format found.
        found: u32,
        /// The newest format this library reads.
        supported: u32,
    },
    /// The write was not saved: the group commit it belonged to failed, or one staged
    /// before it did. [`CommitError::cause`] is why: a full disk
    /// ([`Error::is_disk_full`]), another I/O error ([`Error::io_kind`]), a damaged file
    /// ([`Error::is_damaged`]).
    #[error("the write was not saved: {0}")]
    CommitFailed(CommitError),
    /// The file does not exist or holds no Holdfast store.
    #[error("{0} is not a Holdfast store (create one with the app, or `holdfast init`)")]
    NotAStore(String),
    /// Data received from the sync server could not be read (a damaged change or
    /// snapshot); nothing of it was applied.
    #[error("data from the sync server is damaged: {0}")]
    Remote(String),
}

impl From<redb::Error> for Error {
    fn from(e: redb::Error) -> Self {
        match e {
            redb::Error::Corrupted(detail) => Error::Corrupt(detail),
            e => Error::Storage(e),
        }
    }
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::from(redb::Error::from(e))
            }
        }
    )*};
}
storage_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// An Automerge error from an operation on a document in memory (a put, a splice, a fork):
/// the input was checked first, so it is a bug. Stored bytes that fail to load are mapped to
/// [`Error::Corrupt`] where they are loaded (`store::document`), received ones to
/// [`Error::Remote`] or a refusal.
impl From<automerge::AutomergeError> for Error {
    fn from(e: automerge::AutomergeError) -> Self {
        Error::Internal(format!("document operation: {e}"))
    }
}

/// Why a write was not saved: the cause of [`Error::CommitFailed`]. The error is shared
/// (an `Arc`) because a group commit fails every write it holds with the one cause, as
/// redb's `CommitError` carries its `StorageError`.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The group commit that held this write failed with this error.
    #[error("{0}")]
    Group(Arc<Error>),
    /// A write staged before this one failed with this error; this one built on it (the
    /// same record, or later in the queue) and was dropped with it.
    #[error("an earlier write failed: {0}")]
    Earlier(Arc<Error>),
}

impl CommitError {
    /// The error the commit failed with.
    pub fn cause(&self) -> &Error {
        match self {
            CommitError::Group(e) | CommitError::Earlier(e) => e,
        }
    }
}

impl Error {
    /// The error itself, or for [`Error::CommitFailed`] the error the commit failed with.
    fn root(&self) -> &Error {
        match self {
            Error::CommitFailed(c) => c.cause().root(),
            e => e,
        }
    }

    /// The kind of the I/O error behind this error, also through a failed commit.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self.root() {
            Error::Storage(redb::Error::Io(e)) => Some(e.kind()),
            _ => None,
        }
    }

    /// Whether the disk (or the user's quota) is full: nothing is damaged, and the write
    /// can be retried once there is space.
    pub fn is_disk_full(&self) -> bool {
        matches!(
            self.io_kind(),
            Some(io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
        )
    }

    /// Whether the database file is damaged ([`Error::Corrupt`]), also when a commit met
    /// the damage.
    pub fn is_damaged(&self) -> bool {
        matches!(self.root(), Error::Corrupt(_))
    }

    /// Whether this is a bug in Holdfast ([`Error::Internal`]), also behind a commit.
    pub fn is_bug(&self) -> bool {
        matches!(self.root(), Error::Internal(_))
    }
}

/// Shorthand for `Result<T, holdfast::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
