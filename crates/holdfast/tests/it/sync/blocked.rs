//! A change behind one the relay refused for good: it is never sent (the relay could not
//! store it without its parent), it shows as failed, blocked behind the parent, in plain
//! words, and retrying or discarding either acts on both.

use std::time::Duration;

use holdfast::{RecordId, Store, SyncState};

use super::harness::{config, open_store, sync_once, titles, Relay, TIMEOUT};
use crate::util::space;

const REFUSED: &str = "You no longer have write access to team";
const BLOCKED: &str = "Waiting on an earlier change of this record that the sync server refused: \
                       You no longer have write access to team";

/// A note written while the token only lets this device read `team` (refused for good),
/// then edited: the outbox seqs of the refused entry and of the edit behind it.
fn refused_then_edited(store: &Store, relay: &Relay, title: &str) -> (RecordId, u64, u64) {
    let sp = space("team");
    let id = store
        .write(|tx| {
            let id = tx.create("note", &sp)?;
            tx.set(id, "title", title)?;
            Ok(id)
        })
        .unwrap();
    let read_only = relay.token(&["team:read"]);
    let report = sync_once(store, config(&relay.url(), &read_only, &["team"]));
    assert_eq!(report.rejected, 1, "{report:?}");
    store
        .update(id, |tx| {
            tx.set(id, "title", format!("{title}, edited").as_str())
        })
        .unwrap();
    let seqs: Vec<u64> = store
        .outbox()
        .list(None, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.record == id)
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs.len(), 2, "the refused entry and the edit");
    (id, seqs[0], seqs[1])
}

/// The edit is failed, blocked behind the refused entry, in the listing, the record's
/// state and the summary.
fn check_blocked(store: &Store, id: RecordId, parent: u64, child: u64) {
    let entries = store.outbox().list(None, 100).unwrap();
    let parent_entry = entries.iter().find(|e| e.seq == parent).unwrap();
    let child_entry = entries.iter().find(|e| e.seq == child).unwrap();
    let refused = SyncState::Failed {
        reason: REFUSED.into(),
        permanent: true,
    };
    let blocked = SyncState::Failed {
        reason: BLOCKED.into(),
        permanent: true,
    };
    assert_eq!(parent_entry.state, refused);
    assert_eq!(parent_entry.blocked_by, None);
    assert_eq!(child_entry.state, blocked);
    assert_eq!(child_entry.blocked_by, Some(parent));
    // The record itself says what the user must act on: the refusal, not the wait.
    assert_eq!(store.sync_state(id).unwrap(), refused);
    let summary = store.sync_summary().unwrap();
    assert_eq!(summary.pending, 0, "{summary:?}");
    assert_eq!(summary.blocked, 1, "{summary:?}");
    assert_eq!(summary.failed_permanent, 2, "{summary:?}");
}

#[test]
fn a_change_behind_a_refused_one_waits_failed_and_retrying_either_sends_both() {
    let relay = Relay::start();
    let a = open_store();
    let (id, parent, child) = refused_then_edited(&a, &relay, "draft");
    check_blocked(&a, id, parent, child);

    // The grant comes back. The worker sends neither by itself: the edit is not sent
    // to be refused as missing its parent, again and again, while the app says syncing.
    let token = relay.token(&["team:write"]);
    let handle = a.sync(config(&relay.url(), &token, &["team"])).unwrap();
    let (status, idle) = handle.wait_for(TIMEOUT, |s| s.is_idle());
    assert!(idle, "{status:?}");
    assert_eq!((status.pending, status.failed_permanent), (0, 2));
    std::thread::sleep(Duration::from_millis(500));
    let metrics = handle.metrics().unwrap();
    assert_eq!(metrics.entries_sent, 0, "{metrics:?}");
    assert_eq!(metrics.failures.get("missing_dependencies"), None);
    check_blocked(&a, id, parent, child);
    assert_eq!(relay.push_entries("stored"), 0);

    // Retrying the blocked edit retries the refused entry it waits behind (the one
    // failed row), and with it the edit: both go out.
    assert_eq!(a.outbox().retry(child).unwrap(), 1);
    let summary = a.sync_summary().unwrap();
    assert_eq!((summary.blocked, summary.failed), (0, 0), "{summary:?}");
    let retried = std::time::Instant::now();
    let (status, synced) =
        handle.wait_for(TIMEOUT, |s| s.is_idle() && s.pending == 0 && s.failed == 0);
    assert!(synced, "{status:?}");
    eprintln!("synced {:?} after the retry", retried.elapsed());
    assert_eq!(a.sync_state(id).unwrap(), SyncState::Synced);
    assert_eq!(relay.push_entries("stored"), 2);
    handle.stop();

    let b = open_store();
    sync_once(&b, config(&relay.url(), &token, &["team"]));
    assert_eq!(titles(&b, "team"), ["draft, edited"]);
}

#[test]
fn retrying_the_refused_change_sends_the_one_behind_it_too() {
    let relay = Relay::start();
    let a = open_store();
    let (id, parent, child) = refused_then_edited(&a, &relay, "plan");
    assert_eq!(
        a.outbox().retry(parent).unwrap(),
        1,
        "only the parent is failed"
    );
    let summary = a.sync_summary().unwrap();
    assert_eq!((summary.pending, summary.blocked), (2, 0), "{summary:?}");
    let token = relay.token(&["team:write"]);
    let report = sync_once(&a, config(&relay.url(), &token, &["team"]));
    assert_eq!((report.pushed, report.pending, report.failed), (2, 0, 0));
    assert_eq!(a.sync_state(id).unwrap(), SyncState::Synced);
    let _ = child;
}

#[test]
fn discarding_the_refused_change_discards_the_ones_behind_it_and_keeps_the_data() {
    let relay = Relay::start();
    let a = open_store();
    let (id, parent, child) = refused_then_edited(&a, &relay, "secret");
    let other = super::harness::write_notes(&a, "team", "other", 1, 1)[0];

    // Both are given up, said so in the answer; the other record's entry stays.
    assert_eq!(a.outbox().discard(parent).unwrap(), [parent, child]);
    assert_eq!(a.sync_state(id).unwrap(), SyncState::Synced);
    let summary = a.sync_summary().unwrap();
    assert_eq!((summary.pending, summary.failed), (1, 0), "{summary:?}");
    // Nothing written is removed from the device.
    let record = a.get(id).unwrap();
    assert_eq!(
        record.get("title").unwrap(),
        Some(&holdfast::Value::String("secret, edited".into()))
    );
    let token = relay.token(&["team:write"]);
    let report = sync_once(&a, config(&relay.url(), &token, &["team"]));
    assert_eq!((report.pushed, report.failed), (1, 0));
    assert_eq!(a.sync_state(other).unwrap(), SyncState::Synced);
}
