//! The relay refuses part of the work: a space the token may only read (those entries
//! fail for good with a plain reason, the rest syncs), and a token it does not accept.

use std::time::Instant;

use holdfast::{ConnectionState, SyncState};

use super::harness::{config, open_store, sync_once, titles, write_notes, Relay, TIMEOUT};

#[test]
fn entries_of_a_read_only_space_fail_in_plain_words_and_the_other_space_syncs() {
    let started = Instant::now();
    let relay = Relay::start();
    let token = relay.token(&["team-a:write", "team-b:read"]);
    let a = open_store();
    let writable = write_notes(&a, "team-a", "a", 5, 1);
    let read_only = write_notes(&a, "team-b", "b", 5, 1);
    let report = sync_once(&a, config(&relay.url(), &token, &["team-a", "team-b"]));
    assert_eq!(report.pushed, 5, "{report:?}");
    assert_eq!(report.rejected, 5);
    assert_eq!(report.failed, 5);
    let reason = "You no longer have write access to team-b";
    for id in &read_only {
        assert_eq!(
            a.sync_state(*id).unwrap(),
            SyncState::Failed {
                reason: reason.into(),
                permanent: true
            }
        );
    }
    for id in &writable {
        assert_eq!(a.sync_state(*id).unwrap(), SyncState::Synced);
    }
    let summary = a.sync_summary().unwrap();
    assert_eq!((summary.pending, summary.failed_permanent), (0, 5));
    assert_eq!(relay.push_entries("stored"), 5);

    // The worker says so too, and does not retry them by itself.
    let handle = a
        .sync(config(&relay.url(), &token, &["team-a", "team-b"]))
        .unwrap();
    let (status, idle) = handle.wait_for(TIMEOUT, |s| s.is_idle());
    assert!(idle, "{status:?}");
    assert_eq!(status.failed_permanent, 5);
    let metrics = handle.metrics().unwrap();
    assert_eq!(metrics.outbox_len, 5);
    handle.stop();

    let b = open_store();
    sync_once(&b, config(&relay.url(), &token, &["team-a", "team-b"]));
    assert_eq!(titles(&b, "team-a").len(), 5);
    assert!(titles(&b, "team-b").is_empty());
    eprintln!("partial rejection: {:?}", started.elapsed());
}

#[test]
fn a_token_the_relay_refuses_stops_retrying_and_says_why() {
    let relay = Relay::start();
    let a = open_store();
    write_notes(&a, "team", "n", 3, 3);
    let handle = a
        .sync(config(&relay.url(), "not-a-token", &["team"]))
        .unwrap();
    let (status, refused) = handle.wait_for(TIMEOUT, |s| {
        matches!(
            s.connection,
            ConnectionState::Offline {
                permanent: true,
                ..
            }
        )
    });
    assert!(refused, "{status:?}");
    let expected = "Your sign-in has expired or is not valid for this sync server";
    assert_eq!(
        status.connection,
        ConnectionState::Offline {
            reason: expected.into(),
            permanent: true
        }
    );
    assert_eq!(status.last_error.as_deref(), Some(expected));
    assert_eq!(status.pending, 3);
    let metrics = handle.metrics().unwrap();
    assert_eq!(metrics.connects, 1, "no retry after a permanent refusal");
    assert_eq!(metrics.failures.get("unauthorized"), Some(&1));
    handle.stop();

    let report = a
        .sync_once(
            config(&relay.url(), "not-a-token", &["team"]),
            Instant::now() + TIMEOUT,
        )
        .unwrap();
    assert!(!report.complete);
    assert_eq!(report.error.as_deref(), Some(expected));
}

#[test]
fn a_space_the_token_cannot_read_is_left_out_and_the_others_sync() {
    let relay = Relay::start();
    let token = relay.token(&["team-a:write"]);
    let a = open_store();
    write_notes(&a, "team-a", "a", 3, 1);
    let spaces = ["team-a", "team-b"];
    let handle = a.sync(config(&relay.url(), &token, &spaces)).unwrap();
    let (status, settled) = handle.wait_for(TIMEOUT, |s| {
        s.is_idle() && !s.no_access.is_empty() && s.pending == 0
    });
    assert!(settled, "{status:?}");
    assert_eq!(
        status.no_access,
        [holdfast::SpaceId::new("team-b").unwrap()]
    );
    assert_eq!(relay.push_entries("stored"), 3);
    handle.stop();

    // One round does the same: the readable space syncs, the other is named.
    let b = open_store();
    let report = sync_once(&b, config(&relay.url(), &token, &spaces));
    assert!(report.complete, "{report:?}");
    assert_eq!(titles(&b, "team-a").len(), 3);
}
