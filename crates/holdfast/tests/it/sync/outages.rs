//! The app killed (`kill -9`) in the middle of a sync, during a push and during a pull,
//! then started again: nothing lost, nothing stored twice, the cursor consistent. The
//! device runs in a child process (this test binary again, in child mode).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::{config, sync_once, titles, write_notes, Relay, TIMEOUT};
use crate::util::{reopen, Rng};

const CHILD_ENV: &str = "HOLDFAST_SYNC_CHILD";

/// Runs the device of `path` in a child process syncing with `url`, and kills it with
/// SIGKILL once it reports `progress` entries sent (`"acked"`) or received
/// (`"received"`) past `at`. Returns the last progress it reported.
fn kill_child_at(path: &Path, url: &str, token: &str, what: &str, at: u64) -> u64 {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "sync::outages::app_killed_mid_push_and_mid_pull_loses_and_duplicates_nothing",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}\n{url}\n{token}", path.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = 0;
    while seen <= at {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the child did not get past {at} {what} ({seen})"));
        let Some(rest) = line.strip_prefix("PROGRESS ") else {
            continue;
        };
        for field in rest.split_whitespace() {
            if let Some(n) = field.strip_prefix(&format!("{what}=")) {
                seen = n.parse().unwrap();
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    seen
}

/// The child: syncs the store in the background, printing its progress on each status
/// change, until killed.
fn child(spec: &str) -> ! {
    let mut parts = spec.lines();
    let (path, url, token) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let store = reopen(Path::new(path));
    let mut cfg = config(url, token, &["team"]);
    cfg.push_entries_max = 50;
    cfg.pull_bytes_max = 8 * 1024;
    let handle = store.sync(cfg).unwrap();
    let status = handle.watch();
    loop {
        let m = handle.metrics().unwrap();
        println!(
            "PROGRESS acked={} received={}",
            m.entries_stored + m.entries_duplicate,
            m.entries_received
        );
        let mut status = status.clone();
        // Wait for the next status change (the runtime is the worker's own).
        let changed = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_millis(200), status.changed()).await;
            });
        });
        changed.join().unwrap();
    }
}

#[test]
fn app_killed_mid_push_and_mid_pull_loses_and_duplicates_nothing() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
    }
    let started = Instant::now();
    let mut rng = Rng::from_env("app_killed_mid_push_and_mid_pull_loses_and_duplicates_nothing");
    let n = 3_000;
    let relay = Relay::start();
    let token = relay.token(&["team:write"]);

    // b syncs first, so it holds a cursor and pulls what a pushes below.
    let dir = tempfile::tempdir().unwrap();
    let b_path = dir.path().join("b.redb");
    let b = reopen(&b_path);
    sync_once(&b, config(&relay.url(), &token, &["team"]));
    drop(b);

    // Push: a is killed after part of its outbox was acknowledged.
    let a_path = dir.path().join("a.redb");
    let a = reopen(&a_path);
    write_notes(&a, "team", "k", n, 1_000);
    drop(a);
    let at = 200 + rng.below(1_500);
    let seen = kill_child_at(&a_path, &relay.url(), &token, "acked", at);
    eprintln!("a killed after {seen} acknowledged entries (aimed at {at})");
    let a = reopen(&a_path);
    let left = a.sync_summary().unwrap().pending;
    assert!(left > 0 && left < n as u64, "killed mid-push: {left} left");
    assert_eq!(titles(&a, "team").len(), n, "nothing lost locally");
    sync_once(&a, config(&relay.url(), &token, &["team"]));
    assert_eq!(a.sync_summary().unwrap().pending, 0);
    assert_eq!(
        relay.push_entries("stored"),
        n as u64,
        "no duplicate on the relay"
    );
    assert_eq!(relay.push_entries("rejected"), 0);

    // Pull: b is killed after part of the log was applied.
    let at = 200 + rng.below(1_500);
    let seen = kill_child_at(&b_path, &relay.url(), &token, "received", at);
    eprintln!("b killed after {seen} received entries (aimed at {at})");
    let b = reopen(&b_path);
    let cursor = b
        .inbox()
        .cursor(&crate::util::space("team"))
        .unwrap()
        .unwrap();
    assert!(cursor.seq < n as u64, "killed mid-pull: cursor {cursor}");
    assert_eq!(
        titles(&b, "team").len() as u64,
        cursor.seq,
        "the cursor is what b holds"
    );
    let report = sync_once(&b, config(&relay.url(), &token, &["team"]));
    assert_eq!(
        report.received,
        n as u64 - cursor.seq,
        "each entry pulled once: {report:?}"
    );
    assert_eq!(titles(&b, "team"), titles(&a, "team"));
    let cursor = b
        .inbox()
        .cursor(&crate::util::space("team"))
        .unwrap()
        .unwrap();
    assert_eq!(cursor.seq, n as u64);
    let again = sync_once(&b, config(&relay.url(), &token, &["team"]));
    assert_eq!(again.received, 0, "nothing pulled twice: {again:?}");
    assert_eq!(relay.push_entries("stored"), n as u64);
    eprintln!("kill -9: {:?}", started.elapsed());
}
