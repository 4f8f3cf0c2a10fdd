//! What can go wrong in a command, each in words an operator can act on.

use std::path::PathBuf;

use crate::schema_file::SchemaFileError;

/// Why a command failed. Displayed as the whole message; there are no codes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store refused or failed.
    #[error(transparent)]
    Store(holdfast::Error),
    /// The store file is damaged: what was found, and what to do about it. The same words
    /// whichever command found it (`check`, `status`, `records`...), and whether a read or
    /// a write's commit met it.
    #[error("the file is damaged: {0}; restore it from a backup, or let the relay repair it")]
    Damaged(String),
    /// The disk (or the user's quota) is full: nothing was saved and nothing is damaged.
    /// The store's error is kept for `Debug`; the message is the remedy.
    #[error("the disk is full: free space and try again")]
    DiskFull(holdfast::Error),
    /// The schema file is not valid.
    #[error(transparent)]
    SchemaFile(#[from] SchemaFileError),
    /// A file could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    File {
        /// What was being done ("could not read").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The command line asks for something that does not fit the store (an unknown
    /// field, a value of the wrong type).
    #[error("{0}")]
    Input(String),
    /// The sync worker could not start.
    #[error(transparent)]
    Sync(#[from] holdfast::SyncError),
    /// The command ran and found a problem it already reported (a failed check, an
    /// unfinished sync): the message sums it up.
    #[error("{0}")]
    Failed(String),
}

impl Error {
    pub(crate) fn input(message: impl Into<String>) -> Error {
        Error::Input(message.into())
    }

    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::File {
            what: "could not read",
            path: path.into(),
            source,
        }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::File {
            what: "could not write",
            path: path.into(),
            source,
        }
    }
}

impl From<holdfast::Error> for Error {
    fn from(e: holdfast::Error) -> Self {
        if let Some(what) = damage(&e) {
            return Error::Damaged(what.to_owned());
        }
        if e.is_disk_full() {
            return Error::DiskFull(e);
        }
        Error::Store(e)
    }
}

/// What damage `e` met, also behind a failed commit ([`holdfast::Error::is_damaged`]).
fn damage(e: &holdfast::Error) -> Option<&str> {
    match e {
        holdfast::Error::Corrupt(what) => Some(what),
        holdfast::Error::CommitFailed(c) => damage(c.cause()),
        _ => None,
    }
}

impl From<holdfast::SchemaError> for Error {
    fn from(e: holdfast::SchemaError) -> Self {
        Error::from(holdfast::Error::from(e))
    }
}

/// Shorthand for the commands' results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests;
