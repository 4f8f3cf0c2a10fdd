//! Pushing through bad networks: offline first, a link cut during a long upload, a
//! flapping link that loses acknowledgements, large payloads, and live delivery.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use holdfast::{ConnectionState, Notification, Origin, SyncState};

use super::harness::{
    config, free_addr, open_store, sync_once, titles, write_notes, Proxy, Relay, TIMEOUT,
};
use crate::util::space;

/// Sizes grow with `RUN_SLOW_TESTS=1`.
fn slow() -> bool {
    std::env::var("RUN_SLOW_TESTS").is_ok_and(|v| v == "1")
}

#[test]
fn offline_writes_queue_then_sync_when_the_relay_comes_up() {
    let started = Instant::now();
    let addr = free_addr();
    let a = open_store();
    let ids = write_notes(&a, "team", "offline", 200, 1);
    let url = format!("ws://{addr}/");
    // The token is minted later by the relay; any string does while nothing listens.
    let handle = a.sync(config(&url, "not-yet", &["team"])).unwrap();
    let (status, offline) = handle.wait_for(TIMEOUT, |s| {
        matches!(&s.connection, ConnectionState::Offline { reason, .. } if reason == "No connection to the sync server")
    });
    assert!(offline, "{status:?}");
    assert_eq!(status.pending, 200);
    assert_eq!(
        status.last_error.as_deref(),
        Some("No connection to the sync server")
    );
    for id in &ids {
        assert_eq!(a.sync_state(*id).unwrap(), SyncState::Queued);
    }
    drop(handle);

    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start_in(dir, &["--listen", &addr.to_string()]);
    let token = relay.token(&["team:write"]);
    let handle = a.sync(config(&relay.url(), &token, &["team"])).unwrap();
    let (status, idle) = handle.wait_for(TIMEOUT, |s| s.is_idle() && s.pending == 0);
    assert!(idle, "{status:?}");
    assert_eq!(status.last_error, None);
    assert!(status.last_synced_ms.is_some());
    for id in &ids {
        assert_eq!(a.sync_state(*id).unwrap(), SyncState::Synced);
    }
    let metrics = handle.metrics().unwrap();
    assert_eq!(metrics.entries_stored, 200);
    assert_eq!(metrics.outbox_len, 0);
    assert_eq!(metrics.time_to_sync.count, 200);
    assert!(metrics.bytes_sent_wire > 0 && metrics.bytes_sent_plain > 0);
    handle.stop();

    let b = open_store();
    sync_once(&b, config(&relay.url(), &token, &["team"]));
    assert_eq!(titles(&b, "team"), titles(&a, "team"));
    assert_eq!(titles(&b, "team").len(), 200);
    assert_eq!(relay.push_entries("stored"), 200);
    eprintln!("offline first: {:?}", started.elapsed());
}

#[test]
fn a_link_cut_during_a_long_upload_stores_every_entry_exactly_once() {
    let started = Instant::now();
    let n = if slow() { 20_000 } else { 5_000 };
    let relay = Relay::start();
    let token = relay.token(&["team:write"]);
    let proxy = Proxy::new(relay.ws);
    let a = open_store();
    write_notes(&a, "team", "drain", n, 1_000);
    let mut cfg = config(&proxy.url(), &token, &["team"]);
    cfg.push_entries_max = 50; // many pushes, so the cuts land in the middle
    let handle = a.sync(cfg).unwrap();
    let mut cut_mid_drain = 0;
    for k in 1..=4u64 {
        let below = n as u64 - k * n as u64 / 5;
        let (status, reached) = handle.wait_for(TIMEOUT, |s| s.pending <= below);
        assert!(reached, "{status:?}");
        if status.pending > 0 {
            cut_mid_drain += 1;
        }
        proxy.cut();
    }
    let (status, idle) = handle.wait_for(TIMEOUT, |s| s.is_idle() && s.pending == 0);
    assert!(idle, "{status:?}");
    let metrics = handle.metrics().unwrap();
    handle.stop();
    eprintln!(
        "cuts {} ({cut_mid_drain} during the drain), reconnects {}, stored {}, duplicate {}",
        proxy.cuts.load(Ordering::Relaxed),
        metrics.reconnects,
        metrics.entries_stored,
        metrics.entries_duplicate
    );
    assert!(cut_mid_drain >= 2, "the drain finished before the cuts");
    assert!(metrics.reconnects >= 2, "{metrics:?}");
    assert_eq!(
        relay.push_entries("stored"),
        n as u64,
        "exactly once on the relay"
    );
    assert_eq!(relay.push_entries("rejected"), 0);
    assert_eq!(a.sync_summary().unwrap().pending, 0);

    let b = open_store();
    sync_once(&b, config(&relay.url(), &token, &["team"]));
    assert_eq!(titles(&b, "team").len(), n);
    eprintln!("airplane mode: {:?}", started.elapsed());
}

#[test]
fn a_batch_resent_by_a_flapping_link_is_stored_once() {
    let started = Instant::now();
    let relay = Relay::start();
    let token = relay.token(&["team:write"]);
    let proxy = Proxy::new(relay.ws);
    // Each connection is cut right after the push went through, before its ack returns.
    proxy.cut_after(8 * 1024);
    let a = open_store();
    write_notes(&a, "team", "storm", 300, 300);
    let handle = a.sync(config(&proxy.url(), &token, &["team"])).unwrap();
    let flaps = 5;
    let (status, flapped) =
        handle.wait_for(TIMEOUT, |_| proxy.cuts.load(Ordering::Relaxed) >= flaps);
    assert!(flapped, "{status:?}");
    proxy.cut_after(usize::MAX);
    let (status, idle) = handle.wait_for(TIMEOUT, |s| s.is_idle() && s.pending == 0);
    assert!(idle, "{status:?}");
    let metrics = handle.metrics().unwrap();
    handle.stop();
    eprintln!(
        "sent {} entries for 300; relay stored {}, duplicates {}",
        metrics.entries_sent,
        relay.push_entries("stored"),
        relay.push_entries("duplicate")
    );
    assert!(
        metrics.entries_sent > 300,
        "the batch was resent: {metrics:?}"
    );
    assert_eq!(relay.push_entries("stored"), 300);
    assert_eq!(relay.push_entries("rejected"), 0);

    let b = open_store();
    sync_once(&b, config(&relay.url(), &token, &["team"]));
    assert_eq!(titles(&b, "team"), titles(&a, "team"));
    eprintln!("retry storm: {:?}", started.elapsed());
}

#[test]
fn a_one_mib_note_and_ten_thousand_queued_changes_sync_within_frame_limits() {
    let started = Instant::now();
    let (notes, rounds) = if slow() { (500, 100) } else { (100, 100) };
    let n = notes * rounds;
    let relay = Relay::start();
    let token = relay.token(&["team:write"]);
    let a = open_store();
    // One change of 1 MiB: a scalar keeps the test fast in debug builds (a text of 1 MiB
    // is a million Automerge operations); the bytes on the wire are the same.
    let big_title: String = (0..1 << 20)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let big = a
        .write(|tx| {
            let id = tx.create("note", &space("team"))?;
            tx.set(id, "title", big_title.as_str())?;
            Ok(id)
        })
        .unwrap();
    // `notes` notes, then `rounds - 1` writes changing each of them: `n` small changes,
    // one outbox entry each.
    let ids = write_notes(&a, "team", "small", notes, notes);
    for _ in 1..rounds {
        a.write(|tx| ids.iter().try_for_each(|id| tx.increment(*id, "views", 1)))
            .unwrap();
    }
    assert_eq!(a.sync_summary().unwrap().pending, n as u64 + 1);
    eprintln!("written: {:?}", started.elapsed());
    let report = sync_once(&a, config(&relay.url(), &token, &["team"]));
    assert_eq!(report.pushed, n as u64 + 1, "{report:?}");
    assert_eq!(report.pending, 0);
    assert_eq!(relay.push_entries("stored"), n as u64 + 1);
    eprintln!("pushed: {:?} {report:?}", started.elapsed());

    let b = open_store();
    let report = sync_once(&b, config(&relay.url(), &token, &["team"]));
    let big_read = b.get(big).unwrap();
    assert_eq!(
        big_read.get("title").unwrap(),
        Some(&holdfast::Value::from(big_title.as_str()))
    );
    for id in &ids {
        assert_eq!(
            b.get(*id).unwrap().counter("views").unwrap(),
            rounds as i64 - 1
        );
    }
    eprintln!("large payloads: {:?} (b: {report:?})", started.elapsed());
}

#[test]
fn connected_devices_see_each_others_changes_live() {
    let relay = Relay::start();
    let token = relay.token(&["team:write"]);
    let (a, b) = (open_store(), open_store());
    let ha = a.sync(config(&relay.url(), &token, &["team"])).unwrap();
    let hb = b.sync(config(&relay.url(), &token, &["team"])).unwrap();
    for h in [&ha, &hb] {
        let (status, idle) = h.wait_for(TIMEOUT, |s| s.is_idle());
        assert!(idle, "{status:?}");
    }
    let notes = b.subscribe();
    let written = Instant::now();
    let id = write_notes(&a, "team", "live", 1, 1)[0];
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match notes.recv_timeout(left) {
            Some(Notification::Changed(events))
                if events
                    .iter()
                    .any(|e| e.record == id && e.origin == Origin::Remote) =>
            {
                break
            }
            Some(_) => {}
            None => panic!("b never heard of a's note"),
        }
    }
    let latency = written.elapsed();
    eprintln!("live change seen after {latency:?}");
    assert!(latency < Duration::from_secs(5), "{latency:?}");
    assert_eq!(titles(&b, "team"), vec!["live-0".to_owned()]);

    // Paused, a write waits; resumed, it goes out.
    ha.pause();
    let (status, paused) = ha.wait_for(TIMEOUT, |s| {
        s.paused && matches!(&s.connection, ConnectionState::Offline { reason, .. } if reason == "Sync is paused")
    });
    assert!(paused, "{status:?}");
    write_notes(&a, "team", "paused", 1, 1);
    let (status, counted) = ha.wait_for(TIMEOUT, |s| s.pending == 1);
    assert!(counted, "{status:?}");
    ha.resume();
    let (status, idle) = ha.wait_for(TIMEOUT, |s| s.is_idle() && s.pending == 0 && !s.paused);
    assert!(idle, "{status:?}");
    ha.retry_now();
    let (status, idle) = hb.wait_for(TIMEOUT, |_| titles(&b, "team").len() == 2);
    assert!(idle, "{status:?}");
    ha.stop();
    hb.stop();
}
