//! A store's error becomes the message an operator acts on, also when a commit met it.

use std::io;
use std::sync::Arc;

use holdfast::CommitError;

use super::Error;

fn io_error(kind: io::ErrorKind) -> holdfast::Error {
    holdfast::Error::Storage(redb::Error::Io(io::Error::from(kind)))
}

/// `e` as the command's error, directly and behind each kind of failed commit: the
/// message `holdfast` prints for each.
fn messages(e: impl Fn() -> holdfast::Error) -> [String; 3] {
    let group = holdfast::Error::CommitFailed(CommitError::Group(Arc::new(e())));
    let earlier = holdfast::Error::CommitFailed(CommitError::Earlier(Arc::new(e())));
    [e(), group, earlier].map(|e| format!("{:#}", anyhow::Error::from(Error::from(e))))
}

#[test]
fn damage_met_by_a_commit_reads_as_damage() {
    for message in messages(|| holdfast::Error::Corrupt("a page's checksum".into())) {
        assert_eq!(
            message,
            "the file is damaged: a page's checksum; restore it from a backup, or let the \
             relay repair it"
        );
    }
}

#[test]
fn a_full_disk_reads_as_a_full_disk() {
    for kind in [io::ErrorKind::StorageFull, io::ErrorKind::QuotaExceeded] {
        for message in messages(|| io_error(kind)) {
            assert_eq!(message, "the disk is full: free space and try again");
        }
    }
    // Any other I/O failure keeps the store's own words.
    for message in messages(|| io_error(io::ErrorKind::PermissionDenied)) {
        assert!(message.contains("storage error"), "{message}");
    }
}
