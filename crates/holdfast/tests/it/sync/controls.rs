//! The worker's controls against a real relay: `retry_now` reconnects at once instead of
//! waiting out the backoff, and `sync_once` returns within its deadline when the relay
//! never answers.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use holdfast::sync::{ConnectionState, SyncConfig};
use holdfast_relay_harness::Relay;

use super::harness::{free_addr, open_store, titles, write_notes, TIMEOUT};

/// How far ahead the worker's next attempt must be for `retry_now` to be told apart from it.
const RETRY_FAR_AHEAD: Duration = Duration::from_secs(20);

/// Reconnect delays far longer than any wait of the test.
fn slow_backoff(url: &str, token: &str) -> SyncConfig {
    let space = holdfast::SpaceId::new("team").unwrap();
    let mut config = SyncConfig::new(url, token, vec![space])
        .reconnect_delays(Duration::from_secs(60), Duration::from_secs(120));
    config.connect_timeout = Duration::from_secs(2);
    config
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn retry_now_connects_at_once_instead_of_waiting_out_the_backoff() {
    let addr = free_addr();
    let listen = addr.to_string();
    // A relay once, for its secret and a token; then nothing listens on its address.
    let relay = Relay::start_in(tempfile::tempdir().unwrap(), &["--listen", &listen]);
    let token = relay.token(&["team:write"]);
    let dir = relay.stop();

    let a = open_store();
    write_notes(&a, "team", "retried", 1, 1);
    let handle = a
        .sync(slow_backoff(&format!("ws://{addr}"), &token))
        .unwrap();
    // Failed attempts until one schedules the next far ahead (the jitter may draw short
    // delays first).
    let (status, far) = handle.wait_for(TIMEOUT * 4, |s| {
        matches!(s.connection, ConnectionState::Offline { .. })
            && s.next_retry_ms
                .is_some_and(|at| at - now_ms() > RETRY_FAR_AHEAD.as_millis() as i64)
    });
    assert!(far, "{status:?}");
    let next_retry_ms = status.next_retry_ms.unwrap();

    let relay = Relay::start_in(dir, &["--listen", &listen]);
    let asked = Instant::now();
    handle.retry_now();
    let (status, synced) = handle.wait_for(TIMEOUT, |s| s.pending == 0 && s.is_idle());
    assert!(synced, "{status:?}");
    let took = asked.elapsed();
    eprintln!(
        "synced {took:?} after retry_now; the backoff would have waited until {next_retry_ms}"
    );
    assert!(
        now_ms() < next_retry_ms - 5_000,
        "synced only near the scheduled retry"
    );
    assert_eq!(relay.push_entries("stored"), 1);
    handle.stop();
}

#[test]
fn sync_once_returns_within_its_deadline_when_the_relay_never_answers() {
    // A listener that accepts connections and never says a word: the WebSocket
    // handshake never completes.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let accepted = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().take(64) {
            match stream {
                Ok(stream) => held.push(stream),
                Err(_) => break,
            }
            if held.len() > 1 {
                break;
            }
        }
        std::thread::sleep(Duration::from_secs(15));
        drop(held);
    });
    let a = open_store();
    write_notes(&a, "team", "stuck", 1, 1);
    let mut config = slow_backoff(&format!("ws://{addr}"), "any token");
    config.connect_timeout = Duration::from_secs(60);
    for budget in [Duration::from_millis(1_500), Duration::from_secs(4)] {
        let started = Instant::now();
        let report = a.sync_once(config.clone(), started + budget).unwrap();
        let took = started.elapsed();
        eprintln!("sync_once with {budget:?}: returned after {took:?}: {report:?}");
        assert!(!report.complete);
        assert!(report.error.is_some(), "{report:?}");
        assert_eq!(report.pending, 1);
        // Its deadline, plus a small bound for closing the connection.
        assert!(took <= budget + Duration::from_millis(750), "{took:?}");
    }
    assert_eq!(titles(&a, "team"), ["stuck-0"]);
    drop(accepted);
}
