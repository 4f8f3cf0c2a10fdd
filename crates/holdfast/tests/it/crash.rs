//! Crash test with real processes: a child writes and prints each acknowledgement, the
//! parent `kill -9`s it at random moments, reopens the file and checks that every
//! acknowledged write and its outbox entry are there and the file passes the integrity
//! check. Cycles: `HOLDFAST_CRASH_CYCLES` (default 50).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use holdfast::{Store, SyncState, Value};

use crate::util::{reopen, space, Rng};

const CHILD_ENV: &str = "HOLDFAST_CRASH_CHILD";

/// The parent: runs the cycles. Started again with `CHILD_ENV` set, the same test is the
/// child writer instead (see [`child`]).
#[test]
fn kill_9_during_writes_loses_no_acknowledged_write() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(std::path::Path::new(&path));
    }
    let cycles: usize = std::env::var("HOLDFAST_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let mut rng = Rng::from_env("kill_9_during_writes_loses_no_acknowledged_write");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    drop(reopen(&path));
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<(holdfast::RecordId, String)> = Vec::new();
    for cycle in 0..cycles {
        let wait_for = rng.below(40) as usize;
        let mut child = Command::new(&exe)
            .args([
                "crash::kill_9_during_writes_loses_no_acknowledged_write",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let started = Instant::now();
        let mut seen = 0;
        while seen < wait_for && started.elapsed() < Duration::from_secs(20) {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("ACK ") => {
                    acked.push(parse(&line));
                    seen += 1;
                }
                Some(_) => {}
                None => break,
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Lines printed before the kill are acknowledgements too.
        for line in lines.map_while(Result::ok) {
            if line.starts_with("ACK ") {
                acked.push(parse(&line));
            }
        }
        if cycle % 10 == 9 || cycle + 1 == cycles {
            verify(&path, &acked, cycle);
        }
    }
    assert!(
        acked.len() >= cycles / 2,
        "the child acknowledged too few writes: {}",
        acked.len()
    );
    eprintln!(
        "crash cycles: {cycles}, acknowledged writes checked: {}",
        acked.len()
    );
}

fn parse(line: &str) -> (holdfast::RecordId, String) {
    let mut parts = line.split_whitespace().skip(1);
    let id = parts.next().unwrap().parse().unwrap();
    (id, parts.next().unwrap().to_owned())
}

fn verify(path: &std::path::Path, acked: &[(holdfast::RecordId, String)], cycle: usize) {
    let report = Store::check(path).unwrap();
    assert!(report.is_ok(), "cycle {cycle}: {report:?}");
    let store = reopen(path);
    for (id, title) in acked {
        let record = store
            .get(*id)
            .unwrap_or_else(|e| panic!("cycle {cycle}: acknowledged {id} lost: {e}"));
        assert_eq!(
            record.get("title").unwrap(),
            Some(&Value::from(title.as_str()))
        );
        assert_eq!(
            store.sync_state(*id).unwrap(),
            SyncState::Queued,
            "cycle {cycle}: outbox entry of {id}"
        );
    }
    let all = store.all("note").unwrap();
    let entries = store.outbox().list(None, usize::MAX).unwrap();
    assert_eq!(
        entries.len(),
        all.len(),
        "one outbox entry per record, no more, no less"
    );
}

/// Writes from two threads until killed, printing each acknowledgement.
fn child(path: &std::path::Path) -> ! {
    let store = reopen(path);
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                for n in 0u64.. {
                    let title = format!("w{w}-{n}-{}", std::process::id());
                    let id = store
                        .write(|tx| {
                            let id = tx.create("note", &space("crash"))?;
                            tx.set(id, "title", title.as_str())?;
                            tx.splice_text(
                                id,
                                "body",
                                0,
                                0,
                                &"body ".repeat(1 + (n % 50) as usize),
                            )?;
                            Ok(id)
                        })
                        .expect("write");
                    println!("ACK {id} {title}");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    unreachable!("the writers run until the process is killed")
}
