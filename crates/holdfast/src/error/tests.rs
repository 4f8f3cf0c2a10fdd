use std::io;
use std::sync::Arc;

use super::{CommitError, Error};

fn io_error(e: io::Error) -> Error {
    Error::from(redb::StorageError::Io(e))
}

#[test]
fn a_full_disk_is_told_apart_from_damage_and_bugs_through_a_commit() {
    let full = Arc::new(io_error(io::Error::from(io::ErrorKind::StorageFull)));
    for e in [
        Error::CommitFailed(CommitError::Group(full.clone())),
        Error::CommitFailed(CommitError::Earlier(full)),
    ] {
        assert!(e.is_disk_full(), "{e}");
        assert!(!e.is_damaged() && !e.is_bug(), "{e}");
        assert_eq!(e.io_kind(), Some(io::ErrorKind::StorageFull));
    }
    let other = io_error(io::Error::other("cable pulled"));
    assert!(!other.is_disk_full());
    assert_eq!(other.io_kind(), Some(io::ErrorKind::Other));

    let damaged = Error::CommitFailed(CommitError::Group(Arc::new(Error::from(
        redb::StorageError::Corrupted("page".into()),
    ))));
    assert!(damaged.is_damaged() && !damaged.is_disk_full() && !damaged.is_bug());
}

#[test]
fn an_automerge_error_on_a_document_in_memory_is_a_bug_not_damage() {
    let e = Error::from(automerge::AutomergeError::InvalidObjId("1@ab".into()));
    assert!(matches!(e, Error::Internal(_)), "{e}");
    assert!(e.is_bug() && !e.is_damaged());
}
