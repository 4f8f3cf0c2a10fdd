//! Device to relay to device on loopback: device A uploads N small records through a real
//! `holdfast-relay` process, a fresh device B downloads them, then a reconnect after 10
//! records changed. Reports records/s and bytes on the wire (the relay's own counters).
//!
//! ```sh
//! cargo build --release -p holdfast-relay -p holdfast-benches
//! target/release/sync_bench               # N = 1,000 and 10,000
//! target/release/sync_bench --n 50000     # other sizes
//! ```
//!
//! Each N gets a fresh relay and fresh stores. Writing the records on A is set-up and is
//! not timed; each direction is one `Store::sync_once` (connect, push or bootstrap and
//! pull, apply durably), timed from the call to its return.

use std::time::{Duration, Instant};

use clap::Parser;
use holdfast::{SpaceId, Store, SyncConfig, SyncReport};
use holdfast_benches::count_notes;
use holdfast_relay_harness::Relay;

#[derive(Parser, Debug)]
#[command(about = "Sync N records device → relay → device on loopback")]
struct Args {
    /// Record counts to run, each on a fresh relay.
    #[arg(long, num_args = 1.., default_values_t = [1_000usize, 10_000])]
    n: Vec<usize>,
    /// Records changed before the reconnect.
    #[arg(long, default_value_t = 10)]
    changed: usize,
}

const SPACE: &str = "bench";
const DEADLINE: Duration = Duration::from_secs(600);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "| N | upload | records/s | bytes/record (wire / plain) | download | records/s | bytes/record (wire / plain) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut per_record = Vec::new();
    for &n in &args.n {
        let run = run(n, args.changed)?;
        println!(
            "| {n} | {:.2} s | {:.0} | {:.0} / {:.0} | {:.2} s | {:.0} | {:.0} / {:.0} |",
            run.up.as_secs_f64(),
            n as f64 / run.up.as_secs_f64(),
            run.up_bytes / n as f64,
            run.up_plain / n as f64,
            run.down.as_secs_f64(),
            n as f64 / run.down.as_secs_f64(),
            run.down_bytes / n as f64,
            run.down_plain / n as f64,
        );
        per_record.push((
            n,
            run.up.as_secs_f64() / n as f64,
            run.down.as_secs_f64() / n as f64,
        ));
        println!(
            "  reconnect after {} of {n} changed: upload {:.3} s, {:.0} wire bytes; download {:.3} s, {:.0} wire bytes",
            args.changed,
            run.re_up.as_secs_f64(),
            run.re_up_bytes,
            run.re_down.as_secs_f64(),
            run.re_down_bytes,
        );
    }
    if let (Some(first), Some(last)) = (per_record.first(), per_record.last()) {
        if last.0 != first.0 {
            println!(
                "cost per record at N = {} vs N = {}: upload {:.2}×, download {:.2}×",
                last.0,
                first.0,
                last.1 / first.1,
                last.2 / first.2
            );
        }
    }
    Ok(())
}

struct Run {
    up: Duration,
    up_bytes: f64,
    up_plain: f64,
    down: Duration,
    down_bytes: f64,
    down_plain: f64,
    re_up: Duration,
    re_up_bytes: f64,
    re_down: Duration,
    re_down_bytes: f64,
}

fn run(n: usize, changed: usize) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let relay = Relay::start_in(tempfile::tempdir()?, &["--push-rate", "0"]);
    let token = relay.token(&[&format!("{SPACE}:write")]);
    let space = SpaceId::new(SPACE)?;
    let config = || {
        SyncConfig::new(
            format!("ws://{}", relay.ws),
            token.clone(),
            vec![space.clone()],
        )
    };
    let received = || relay.metric("holdfast_relay_wire_bytes_received_total");
    let sent = || relay.metric("holdfast_relay_wire_bytes_sent_total");
    let received_plain = || relay.metric("holdfast_relay_plain_bytes_received_total");
    let sent_plain = || relay.metric("holdfast_relay_plain_bytes_sent_total");

    let a = holdfast_benches::open(&dir.path().join("a.redb"));
    let ids = write_records(&a, &space, n)?;

    let before = received();
    let before_plain = received_plain();
    let (up, report) = timed(|| a.sync_once(config(), Instant::now() + DEADLINE))?;
    check(&report, "upload")?;
    anyhow::ensure!(
        report.pushed as usize == n,
        "pushed {} of {n}",
        report.pushed
    );
    let up_bytes = received() - before;
    let up_plain = received_plain() - before_plain;

    let b = holdfast_benches::open(&dir.path().join("b.redb"));
    let before = sent();
    let before_plain = sent_plain();
    let (down, report) = timed(|| b.sync_once(config(), Instant::now() + DEADLINE))?;
    check(&report, "download")?;
    let down_bytes = sent() - before;
    let down_plain = sent_plain() - before_plain;
    let held = count_notes(&b)?;
    anyhow::ensure!(held == n, "B holds {held} of {n} records");

    for id in ids.iter().take(changed) {
        a.update(*id, |tx| tx.set(*id, "title", "changed"))?;
    }
    let before = received();
    let (re_up, report) = timed(|| a.sync_once(config(), Instant::now() + DEADLINE))?;
    check(&report, "reconnect upload")?;
    let re_up_bytes = received() - before;
    let before = sent();
    let (re_down, report) = timed(|| b.sync_once(config(), Instant::now() + DEADLINE))?;
    check(&report, "reconnect download")?;
    let re_down_bytes = sent() - before;
    for id in ids.iter().take(changed) {
        let title = b.get(*id)?.get("title")?.map(ToString::to_string);
        anyhow::ensure!(
            title.as_deref() == Some("changed"),
            "B missed a change: {title:?}"
        );
    }
    Ok(Run {
        up,
        up_bytes,
        up_plain,
        down,
        down_bytes,
        down_plain,
        re_up,
        re_up_bytes,
        re_down,
        re_down_bytes,
    })
}

/// `n` notes of a title, a short text and two scalars, 100 per durable write.
fn write_records(
    store: &Store,
    space: &SpaceId,
    n: usize,
) -> anyhow::Result<Vec<holdfast::RecordId>> {
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let made = store.write(|tx| {
            let mut made = Vec::new();
            for &i in chunk {
                let id = tx.create("note", space)?;
                tx.set(id, "title", format!("Note {i}"))?;
                tx.splice_text(id, "body", 0, 0, "A short note body, typed on a phone.")?;
                tx.set(id, "status", "draft")?;
                tx.increment(id, "count", i as i64)?;
                made.push(id);
            }
            Ok(made)
        })?;
        ids.extend(made);
    }
    Ok(ids)
}

fn timed<T, E: Into<anyhow::Error>>(
    f: impl FnOnce() -> Result<T, E>,
) -> anyhow::Result<(Duration, T)> {
    let started = Instant::now();
    let out = f().map_err(Into::into)?;
    Ok((started.elapsed(), out))
}

fn check(report: &SyncReport, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(report.complete, "{what} incomplete: {report:?}");
    Ok(())
}
