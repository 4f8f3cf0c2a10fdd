//! The relay's push rate limit is flow control: entries it holds back show as syncing,
//! with when they go out again, never as failed; and a device catching up never meets
//! the relay's default limit.

use std::time::{Duration, Instant};

use holdfast::SyncState;

use super::harness::{config, open_store, write_notes, Relay, TIMEOUT};

#[test]
fn a_device_catching_up_under_a_low_push_rate_never_shows_a_failure() {
    // Two pushes a second, one at once: a device with 100 entries pushed 10 at a time
    // is held back most of the way.
    let relay = Relay::start_in(
        tempfile::tempdir().unwrap(),
        &["--push-rate", "2", "--push-burst", "1"],
    );
    let token = relay.token(&["team:write"]);
    let a = open_store();
    let ids = write_notes(&a, "team", "n", 100, 1);
    let mut config = config(&relay.url(), &token, &["team"]);
    config.push_entries_max = 10;
    let handle = a.sync(config).unwrap();

    let started = Instant::now();
    let (mut polls, mut held_seen, mut listed_held) = (0u64, 0u64, 0u64);
    loop {
        assert!(started.elapsed() < TIMEOUT, "did not finish syncing");
        let summary = a.sync_summary().unwrap();
        polls += 1;
        assert_eq!(
            summary.failed, 0,
            "a held entry shown as failed: {summary:?}"
        );
        if summary.held > 0 {
            held_seen += 1;
            assert!(summary.retry_at_ms.is_some(), "{summary:?}");
            assert!(summary.pending >= summary.held, "{summary:?}");
            for entry in a.outbox().list(None, 200).unwrap() {
                assert!(
                    !matches!(entry.state, SyncState::Failed { .. }),
                    "{entry:?}"
                );
                if let Some(at) = entry.retry_at_ms {
                    listed_held += 1;
                    assert_eq!(entry.state, SyncState::Syncing, "{entry:?}");
                    assert!(at > 0);
                    assert_eq!(a.sync_state(entry.record).unwrap(), SyncState::Syncing);
                }
            }
        }
        let status = handle.status();
        assert_eq!(status.failed, 0, "{status:?}");
        assert_eq!(
            status.last_error, None,
            "flow control is no error: {status:?}"
        );
        if summary.pending == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let metrics = handle.metrics().unwrap();
    eprintln!(
        "rate limited catch-up: {:?}, {polls} polls, {held_seen} with held entries, \
         {} pushes, failures {:?}",
        started.elapsed(),
        metrics.pushes_sent,
        metrics.failures
    );
    assert!(
        metrics.failures.get("rate_limited").copied().unwrap_or(0) > 0,
        "the relay never rate limited: the test checked nothing"
    );
    assert!(held_seen > 0 && listed_held > 0, "no held entry was seen");
    assert_eq!(metrics.entries_rejected, 0, "{metrics:?}");
    for id in &ids {
        assert_eq!(a.sync_state(*id).unwrap(), SyncState::Synced);
    }
    assert_eq!(relay.push_entries("stored"), 100);
    handle.stop();
}

/// Pushes per second a device issues, sampled every 50 ms: the most in any one-second
/// window, and the average.
struct PushRate {
    peak_per_sec: u64,
    average_per_sec: f64,
    pushes: u64,
    elapsed: Duration,
}

/// Samples `handle`'s pushes until `done` holds, then reports the rate.
fn measure(handle: &holdfast::SyncHandle, mut done: impl FnMut() -> bool) -> PushRate {
    let started = Instant::now();
    let mut samples: Vec<(Instant, u64)> = Vec::new();
    loop {
        assert!(started.elapsed() < TIMEOUT * 4, "did not finish syncing");
        let pushes = handle.metrics().unwrap().pushes_sent;
        let now = Instant::now();
        samples.push((now, pushes));
        if done() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut peak = 0;
    for (i, (at, pushes)) in samples.iter().enumerate() {
        let before = samples[..i]
            .iter()
            .rev()
            .find(|(t, _)| at.duration_since(*t) >= Duration::from_secs(1))
            .or(samples.first())
            .map_or(0, |(_, p)| *p);
        peak = peak.max(pushes - before);
    }
    let (pushes, elapsed) = (samples.last().unwrap().1, started.elapsed());
    PushRate {
        peak_per_sec: peak,
        average_per_sec: pushes as f64 / elapsed.as_secs_f64(),
        pushes,
        elapsed,
    }
}

/// The relay's default push rate against an honest device catching up, two ways: 5,000
/// records written offline then synced, and 5,000 written one by one while the worker
/// runs (each write wakes the worker). Neither may be rate limited. Records from
/// `HOLDFAST_CATCH_UP_RECORDS` (default 1,000); BENCHMARKS.md has the 5,000-record run.
#[test]
fn an_honest_device_catching_up_never_meets_the_default_push_rate() {
    let records: usize = std::env::var("HOLDFAST_CATCH_UP_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let relay = Relay::start();
    let token = relay.token(&["team:write"]);

    let offline = open_store();
    write_notes(&offline, "team", "offline", records, 1);
    let handle = offline
        .sync(config(&relay.url(), &token, &["team"]))
        .unwrap();
    let rate = measure(&handle, || offline.sync_summary().unwrap().pending == 0);
    let failures = handle.metrics().unwrap().failures;
    handle.stop();
    eprintln!(
        "catch-up of {records} pending records: {} pushes in {:?}, peak {}/s, average {:.1}/s",
        rate.pushes, rate.elapsed, rate.peak_per_sec, rate.average_per_sec
    );
    assert_eq!(failures.get("rate_limited"), None, "{failures:?}");

    let live = open_store();
    let handle = live.sync(config(&relay.url(), &token, &["team"])).unwrap();
    let (status, idle) = handle.wait_for(TIMEOUT, |s| s.is_idle());
    assert!(idle, "{status:?}");
    let writer = {
        let live = live.store.clone();
        std::thread::spawn(move || write_notes(&live, "team", "live", records, 1))
    };
    let rate = measure(&handle, || {
        writer.is_finished() && live.sync_summary().unwrap().pending == 0
    });
    writer.join().unwrap();
    let failures = handle.metrics().unwrap().failures;
    handle.stop();
    eprintln!(
        "{records} records written one by one while syncing: {} pushes in {:?}, peak {}/s, \
         average {:.1}/s",
        rate.pushes, rate.elapsed, rate.peak_per_sec, rate.average_per_sec
    );
    assert_eq!(failures.get("rate_limited"), None, "{failures:?}");
    assert_eq!(relay.push_entries("stored"), 2 * records as u64);
}
