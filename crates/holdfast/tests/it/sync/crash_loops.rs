//! Crash loops with real processes: a device app `kill -9`ed while it writes and syncs, over
//! and over (`HOLDFAST_DEVICE_CRASH_CYCLES`, default 100), and the `holdfast-relay` process
//! `kill -9`ed while two devices push (`HOLDFAST_RELAY_CRASH_CYCLES`, default 50). Each
//! prints a `REPORT` line with the cycles, the acknowledged writes checked, how many were
//! lost or duplicated (both must be 0) and the time to converge after each heal; the
//! figures go into RELIABILITY.md.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use holdfast::{RecordId, Store, SyncState};
use holdfast_relay::{LogStore, PullResult, RedbLogStore};

use super::harness::{config, free_addr, sync_once, titles, Relay, TIMEOUT};
use crate::util::{reopen, space, Rng};

const CHILD_ENV: &str = "HOLDFAST_CRASH_LOOP_CHILD";
const SPACE: &str = "crash";

fn cycles(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// p50 and p99 of `samples`, in milliseconds.
fn percentiles(samples: &mut [Duration]) -> (u128, u128) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_millis();
    (at(0.50), at(0.99))
}

/// How often each of `expected` occurs in `found`: (lost, duplicated).
fn lost_and_duplicated(expected: &[String], found: &[String]) -> (usize, usize) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for t in found {
        *counts.entry(t.as_str()).or_default() += 1;
    }
    let lost = expected.iter().filter(|t| !counts.contains_key(t.as_str()));
    let duplicated = expected
        .iter()
        .filter(|t| counts.get(t.as_str()).is_some_and(|n| *n > 1));
    (lost.count(), duplicated.count())
}

/// The child: syncs in the background and writes notes titled `{prefix}-{i}`, printing
/// `ACK title` as each write returns, until killed.
fn child(spec: &str) -> ! {
    let mut parts = spec.lines();
    let (path, url, token, prefix) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let store = reopen(Path::new(path));
    let mut cfg = config(url, token, &[SPACE]);
    cfg.push_entries_max = 8;
    let _handle = store.sync(cfg).unwrap();
    let sp = space(SPACE);
    for i in 0.. {
        let title = format!("{prefix}-{i}");
        store
            .write(|tx| {
                let id = tx.create("note", &sp)?;
                tx.set(id, "title", title.as_str())
            })
            .unwrap();
        println!("ACK {title}");
        std::thread::sleep(Duration::from_millis(1 + i % 3));
    }
    unreachable!("the child writes until it is killed")
}

#[test]
fn device_killed_while_writing_and_syncing_loses_and_duplicates_nothing() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
    }
    let cycles = cycles("HOLDFAST_DEVICE_CRASH_CYCLES", 100);
    let mut rng = Rng::from_env("device_killed_while_writing_and_syncing");
    let relay = Relay::start();
    let token = relay.token(&[&format!("{SPACE}:write")]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.redb");
    drop(reopen(&path));
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<String> = Vec::new();
    let mut converge = Vec::new();
    for cycle in 0..cycles {
        let spec = format!("{}\n{}\n{token}\nc{cycle}", path.display(), relay.url());
        let mut child = Command::new(&exe)
            .args([
                "sync::crash_loops::device_killed_while_writing_and_syncing_loses_and_duplicates_nothing",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, spec)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(title) = line.strip_prefix("ACK ") {
                    let _ = tx.send(title.to_owned());
                }
            }
        });
        // Killed after a random number of acknowledged writes, at a random moment after.
        let wait_for = rng.below(30) as usize;
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = 0;
        while seen < wait_for {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(title) => {
                    acked.push(title);
                    seen += 1;
                }
                Err(_) => panic!("cycle {cycle}: the child stopped writing after {seen}"),
            }
        }
        std::thread::sleep(Duration::from_millis(rng.below(15)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        // Lines printed before the kill are acknowledgements too.
        acked.extend(rx.try_iter());

        // Restarted: every acknowledged write is there once; then healed by a sync.
        let store = reopen(&path);
        let (lost, duplicated) = lost_and_duplicated(&acked, &titles(&store, SPACE));
        assert_eq!(
            (lost, duplicated),
            (0, 0),
            "cycle {cycle}: lost or duplicated on the device"
        );
        let healed = Instant::now();
        sync_once(&store, config(&relay.url(), &token, &[SPACE]));
        converge.push(healed.elapsed());
        let summary = store.sync_summary().unwrap();
        assert_eq!(
            (summary.pending, summary.failed),
            (0, 0),
            "cycle {cycle}: outbox entries left after a complete sync"
        );
    }

    // A new device downloads everything: each acknowledged write exactly once.
    let fresh = crate::util::open();
    sync_once(&fresh.store, config(&relay.url(), &token, &[SPACE]));
    let (lost, duplicated) = lost_and_duplicated(&acked, &titles(&fresh.store, SPACE));
    let (p50, p99) = percentiles(&mut converge);
    println!(
        "REPORT device kill -9: cycles={cycles} acked_writes_checked={} lost={lost} \
         duplicated={duplicated} converge_after_restart_p50_ms={p50} p99_ms={p99}",
        acked.len()
    );
    assert_eq!(
        (lost, duplicated),
        (0, 0),
        "lost or duplicated on the relay"
    );
    assert!(
        acked.len() >= cycles,
        "too few writes acknowledged to mean anything"
    );
}

/// Every record the relay's file logs for the space, with how many entries each has.
fn relay_log(dir: &Path) -> BTreeMap<RecordId, usize> {
    let store = RedbLogStore::open(dir.join("holdfast-relay.redb"), Default::default())
        .expect("the killed relay's file opens");
    let mut out = BTreeMap::new();
    let mut cursor = None;
    loop {
        match store.pull(&space(SPACE), cursor, 1 << 20).unwrap() {
            PullResult::Changes {
                entries,
                next_cursor,
                more,
            } => {
                for e in entries {
                    *out.entry(e.record).or_default() += 1;
                }
                cursor = Some(next_cursor);
                if !more {
                    return out;
                }
            }
            other => panic!("pulling the relay's own log from the start: {other:?}"),
        }
    }
}

/// A device writing notes `{prefix}-{i}` (one record and one change each) as fast as it
/// can while its sync worker runs; `written` lists them.
struct Writer {
    written: Arc<Mutex<Vec<(RecordId, String)>>>,
    thread: std::thread::JoinHandle<()>,
}

fn writer(store: Store, prefix: &'static str, stop: Arc<AtomicBool>) -> Writer {
    let written = Arc::new(Mutex::new(Vec::new()));
    let list = written.clone();
    let thread = std::thread::spawn(move || {
        let sp = space(SPACE);
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let title = format!("{prefix}-{i}");
            let id = store
                .write(|tx| {
                    let id = tx.create("note", &sp)?;
                    tx.set(id, "title", title.as_str())?;
                    Ok(id)
                })
                .unwrap();
            list.lock().unwrap().push((id, title));
            i += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    Writer { written, thread }
}

/// The records of `written` this device holds as acknowledged by the relay.
fn relay_acked(store: &Store, written: &Mutex<Vec<(RecordId, String)>>) -> Vec<RecordId> {
    let written = written.lock().unwrap().clone();
    written
        .into_iter()
        .filter(|(id, _)| store.sync_state(*id).unwrap() == SyncState::Synced)
        .map(|(id, _)| id)
        .collect()
}

#[test]
fn relay_killed_while_devices_push_keeps_every_acknowledged_change() {
    let cycles = cycles("HOLDFAST_RELAY_CRASH_CYCLES", 50);
    let mut rng = Rng::from_env("relay_killed_while_devices_push");
    let addr = free_addr().to_string();
    let args = ["--listen", addr.as_str()];
    let mut relay = Relay::start_in(tempfile::tempdir().unwrap(), &args);
    let token = relay.token(&[&format!("{SPACE}:write")]);
    let url = relay.url();
    let devices = [crate::util::open(), crate::util::open()];
    let handles: Vec<_> = devices
        .iter()
        .map(|d| d.store.sync(config(&url, &token, &[SPACE])).unwrap())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = [
        writer(devices[0].store.clone(), "a", stop.clone()),
        writer(devices[1].store.clone(), "b", stop.clone()),
    ];

    let mut checked = 0usize;
    let (mut lost, mut duplicated) = (0usize, 0usize);
    let mut converge = Vec::new();
    for cycle in 0..cycles {
        std::thread::sleep(Duration::from_millis(50 + rng.below(250)));
        let dir = relay.kill(); // SIGKILL while both devices push
                                // What the devices hold as acknowledged is in the dead relay's file, once.
        let written_before: Vec<Vec<RecordId>> = writers
            .iter()
            .map(|w| {
                w.written
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|(id, _)| *id)
                    .collect()
            })
            .collect();
        let acked: Vec<RecordId> = devices
            .iter()
            .zip(&writers)
            .flat_map(|(d, w)| relay_acked(&d.store, &w.written))
            .collect();
        let log = relay_log(dir.path());
        checked += acked.len();
        lost += acked.iter().filter(|id| !log.contains_key(id)).count();
        duplicated += log.values().filter(|n| **n > 1).count();
        assert_eq!(
            (lost, duplicated),
            (0, 0),
            "cycle {cycle}: acknowledged changes lost or logged twice by the relay"
        );

        // Restarted on the same file and port: the devices reconnect by themselves, and
        // everything written before the kill is acknowledged.
        relay = Relay::start_in(dir, &args);
        let restarted = Instant::now();
        for (d, before) in devices.iter().zip(&written_before) {
            while !before
                .iter()
                .all(|id| d.store.sync_state(*id).unwrap() == SyncState::Synced)
            {
                assert!(
                    restarted.elapsed() < TIMEOUT,
                    "cycle {cycle}: writes made before the kill were not acknowledged after the restart"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        converge.push(restarted.elapsed());
    }

    // Healed for good: writers stop, both devices converge on every write.
    stop.store(true, Ordering::SeqCst);
    let mut all = Vec::new();
    for w in writers {
        w.thread.join().unwrap();
        all.extend(w.written.lock().unwrap().iter().map(|(_, t)| t.clone()));
    }
    let healed = Instant::now();
    for d in &devices {
        loop {
            let (l, dup) = lost_and_duplicated(&all, &titles(&d.store, SPACE));
            if l == 0 && dup == 0 && d.store.sync_summary().unwrap().pending == 0 {
                break;
            }
            assert!(dup == 0, "a write arrived twice");
            assert!(healed.elapsed() < TIMEOUT, "the devices did not converge");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let converged = healed.elapsed();
    drop(handles);
    let log = relay_log(relay.kill().path());
    let logged_twice = log.values().filter(|n| **n > 1).count();
    let (p50, p99) = percentiles(&mut converge);
    println!(
        "REPORT relay kill -9: cycles={cycles} acked_change_checks={checked} lost={lost} \
         duplicated={duplicated} writes={} logged_twice={logged_twice} \
         acked_after_restart_p50_ms={p50} p99_ms={p99} final_converge_ms={}",
        all.len(),
        converged.as_millis()
    );
    assert_eq!(log.len(), all.len(), "the relay logs every write once");
    assert_eq!(logged_twice, 0);
    assert!(checked > 0, "no acknowledged change was ever checked");
}
