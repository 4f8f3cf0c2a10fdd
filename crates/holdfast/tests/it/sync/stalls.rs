//! A send the network does not drain: the relay stops reading (SIGSTOP once it accepted
//! the connection, or a proxy that stops forwarding) while the device pushes more than the
//! sockets buffer. `stop`, dropping the handle and `pause` interrupt the send at once and
//! lose nothing; `sync_once` returns by its deadline.

use std::time::{Duration, Instant};

use holdfast::sync::{ConnectionState, SyncHandle, STOP_WAIT_MAX};
use holdfast::Store;

use holdfast_relay_harness::{incompressible, Frozen};

use super::harness::{config, open_store, write_notes, Proxy, Relay, TIMEOUT};
use crate::util::{space, TestStore};

/// Records written while the relay does not read: far more than the sockets buffer.
const STALLED_RECORDS: u64 = 16;
/// Each record's title, in bytes (a push carries about one).
const TITLE_BYTES: usize = 900_000;
/// How long ending a stalled worker may take (far below `STOP_WAIT_MAX`).
const PROMPT: Duration = Duration::from_secs(2);

/// Bytes the proxy lets through before it holds: the handshake and the hello, not a push.
const HANDSHAKE_BYTES_MAX: usize = 16 * 1024;

const _: () = assert!(PROMPT.as_secs() * 4 < STOP_WAIT_MAX.as_secs());

/// Writes [`STALLED_RECORDS`] notes too large for the sockets to hold all at once.
fn write_large_notes(store: &Store) {
    for i in 0..STALLED_RECORDS {
        let title = incompressible(i + 1, TITLE_BYTES);
        store
            .write(|tx| {
                let id = tx.create("note", &space("team"))?;
                tx.set(id, "title", title.as_str())
            })
            .unwrap();
    }
}

/// A device whose worker is stuck in a send, and the frozen relay.
struct Stalled {
    /// First, so the relay is thawed before it is stopped.
    frozen: Frozen,
    relay: Relay,
    token: String,
    store: TestStore,
}

/// Connected and idle with one note synced, then the relay frozen and large notes
/// written, until entries are in flight and the sockets full.
fn stall() -> (Stalled, SyncHandle) {
    let relay = Relay::start();
    let token = relay.token(&["team:write"]);
    let store = open_store();
    write_notes(&store, "team", "first", 1, 1);
    let handle = store.sync(config(&relay.url(), &token, &["team"])).unwrap();
    let (status, idle) = handle.wait_for(TIMEOUT, |s| s.pending == 0 && s.is_idle());
    assert!(idle, "{status:?}");

    let frozen = relay.freeze();
    write_large_notes(&store);
    let (status, sending) = handle.wait_for(TIMEOUT, |s| {
        s.connection == ConnectionState::Syncing && store.sync_summary().unwrap().sending > 0
    });
    assert!(sending, "{status:?}");
    // Time for the sockets to fill: the worker then waits inside a send.
    std::thread::sleep(Duration::from_secs(1));
    let stalled = Stalled {
        frozen,
        relay,
        token,
        store,
    };
    (stalled, handle)
}

impl Stalled {
    /// Nothing is left in flight: every stalled entry is back in the queue.
    fn assert_requeued(&self) {
        let summary = self.store.sync_summary().unwrap();
        assert_eq!(summary.sending, 0, "{summary:?}");
        assert_eq!(summary.pending, STALLED_RECORDS, "{summary:?}");
    }

    /// The relay reads again and a worker (`handle`, or a new one) sends everything:
    /// nothing was lost.
    fn assert_all_reach_the_relay(self, handle: Option<SyncHandle>) {
        drop(self.frozen);
        let handle = handle.unwrap_or_else(|| {
            let config = config(&self.relay.url(), &self.token, &["team"]);
            self.store.sync(config).unwrap()
        });
        handle.resume();
        let (status, synced) = handle.wait_for(TIMEOUT * 2, |s| s.pending == 0 && s.is_idle());
        assert!(synced, "{status:?}");
        assert_eq!(self.relay.push_entries("stored"), STALLED_RECORDS + 1);
        handle.stop();
    }
}

/// Ends a stalled worker with `end`, which must return within [`PROMPT`], having put
/// every stalled entry back in the queue; a new worker then sends them all.
fn check_ended(what: &str, end: impl FnOnce(SyncHandle)) {
    let (stalled, handle) = stall();
    let started = Instant::now();
    end(handle);
    let took = started.elapsed();
    eprintln!("{what} with a stalled send took {took:?}");
    assert!(took < PROMPT, "{what} took {took:?}");
    stalled.assert_requeued();
    stalled.assert_all_reach_the_relay(None);
}

#[test]
fn stop_interrupts_a_stalled_send_and_loses_nothing() {
    check_ended("stop", SyncHandle::stop);
}

#[test]
fn dropping_the_handle_interrupts_a_stalled_send_and_loses_nothing() {
    check_ended("dropping the handle", drop);
}

#[test]
fn pause_interrupts_a_stalled_send_and_loses_nothing() {
    let (stalled, handle) = stall();
    let started = Instant::now();
    handle.pause();
    let (status, paused) = handle.wait_for(TIMEOUT, |s| {
        s.paused && matches!(s.connection, ConnectionState::Offline { .. })
    });
    let took = started.elapsed();
    eprintln!("pause with a stalled send took {took:?}");
    assert!(paused, "{status:?}");
    assert!(took < PROMPT, "pause took {took:?}");
    stalled.assert_requeued();
    stalled.assert_all_reach_the_relay(Some(handle));
}

#[test]
fn sync_once_returns_by_its_deadline_while_a_send_is_stalled() {
    let relay = Relay::start();
    let token = relay.token(&["team:write"]);
    let proxy = Proxy::new(relay.ws);
    // The handshake and the hello pass, the first push does not.
    proxy.hold_after(HANDSHAKE_BYTES_MAX);
    let store = open_store();
    write_large_notes(&store);
    let budget = Duration::from_secs(3);
    let config = config(&proxy.url(), &token, &["team"]);
    let (tx, rx) = std::sync::mpsc::channel();
    let device = store.store.clone();
    let started = Instant::now();
    let once = std::thread::spawn(move || {
        let report = device.sync_once(config, started + budget).unwrap();
        let _ = tx.send(started.elapsed());
        report
    });
    let took = rx.recv_timeout(budget + PROMPT);
    proxy.release();
    let report = once.join().unwrap();
    let took =
        took.unwrap_or_else(|_| panic!("sync_once took longer than {budget:?} + {PROMPT:?}"));
    eprintln!("sync_once with {budget:?} and a stalled send: returned after {took:?}: {report:?}");
    assert!(!report.complete, "{report:?}");
    assert!(took <= budget + Duration::from_millis(750), "{took:?}");
    let summary = store.sync_summary().unwrap();
    assert_eq!(summary.sending, 0, "{summary:?}");
    assert_eq!(summary.pending, STALLED_RECORDS, "{summary:?}");
}
