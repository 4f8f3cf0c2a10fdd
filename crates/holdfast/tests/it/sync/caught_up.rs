//! "Caught up" per space: a device knows it holds everything the relay had in a space
//! as of a moment, which `is_idle` (nothing left to send) does not say.

use std::time::Duration;

use holdfast::SyncStatus;

use super::harness::{config, open_store, sync_once, titles, write_notes, Proxy, Relay, TIMEOUT};
use crate::util::space;

fn cursor_seq(status: &SyncStatus) -> Option<u64> {
    status.caught_up.get(&space("team")).map(|c| c.cursor.seq)
}

#[test]
fn a_fresh_device_caught_up_holds_everything_and_falls_behind_until_it_pulls() {
    let relay = Relay::start();
    let token = relay.token(&["team:write"]);
    let a = open_store();
    // 300 records, written 30 at a time: 300 entries of the space's log.
    write_notes(&a, "team", "first", 300, 30);
    sync_once(&a, config(&relay.url(), &token, &["team"]));

    // B's relay answers come through a proxy that can slow them down.
    let proxy = Proxy::new(relay.ws);
    let b = open_store();
    let handle = b.sync(config(&proxy.url(), &token, &["team"])).unwrap();
    assert!(!handle.status().is_caught_up(&space("team")));
    let (status, caught_up) = handle.wait_caught_up(&space("team"), TIMEOUT);
    assert!(caught_up, "{status:?}");
    // Caught up means held: no wait for the data after the signal.
    assert_eq!(titles(&b, "team").len(), 300);
    assert_eq!(cursor_seq(&status), Some(300));
    let first = status.caught_up[&space("team")];

    // New data on the relay: B's answers are slow, so it is not caught up to it yet, and
    // says so only as of before (the older cursor and moment).
    proxy.delay_to_device(Duration::from_millis(1_500));
    write_notes(&a, "team", "second", 50, 50);
    sync_once(&a, config(&relay.url(), &token, &["team"]));
    let status = handle.status();
    assert_eq!(
        status.caught_up.get(&space("team")),
        Some(&first),
        "{status:?}"
    );
    assert_eq!(titles(&b, "team").len(), 300);

    // Once pulled and applied, caught up again, later, with everything.
    let (status, moved) = handle.wait_for(TIMEOUT, |s| cursor_seq(s) == Some(350));
    assert!(moved, "{status:?}");
    let now = status.caught_up[&space("team")];
    assert!(now.as_of_ms >= first.as_of_ms);
    assert_eq!(titles(&b, "team").len(), 350);
    proxy.delay_to_device(Duration::ZERO);

    // Offline, no space is caught up.
    proxy.cut();
    handle.pause();
    let (status, offline) = handle.wait_for(TIMEOUT, |s| s.caught_up.is_empty());
    assert!(offline, "{status:?}");
    handle.stop();
}
