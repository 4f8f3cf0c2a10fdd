//! Load test of a real `holdfast-relay` process on loopback: memory per idle connection,
//! small changes stored per second with acks, and live fan-out latency.
//!
//! ```sh
//! cargo build --release -p holdfast-relay -p holdfast-benches
//! target/release/relay_load            # starts target/release/holdfast-relay itself
//! ```
//!
//! The relay runs in its own process on a temporary directory, so its RSS is its own. The
//! phases run one after another on the same relay:
//!
//! 1. **Idle connections**: `--idle` WebSocket connections each say `Hello` and get their
//!    `Welcome`, then stay open. Reported: the relay's RSS before and after, per connection.
//! 2. **Pushes**: `--pushers` connections push `--changes` small Automerge changes (one new
//!    record each) in batches of `--batch`, as many pushes in flight as the `Welcome`
//!    allows. Reported: changes stored and acked per second, ack latency per push.
//! 3. **Fan-out**: `--subscribers` connections subscribe to one space while one device
//!    pushes `--fanout-rate` changes per second in batches of 10. Reported: time from
//!    sending a push to each subscriber receiving its entries live, p50/p99.

use std::time::{Duration, Instant};

use clap::Parser;
use holdfast_benches::relay_client::{
    fanout, open_idle, percentile, push_all, small_entries, space,
};
use holdfast_relay_harness::Relay;

#[derive(Parser, Debug)]
#[command(about = "Load test of a holdfast-relay process on loopback")]
struct Args {
    /// Idle connections to open in phase 1.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Connections pushing in phase 2.
    #[arg(long, default_value_t = 8)]
    pushers: usize,
    /// Changes pushed in phase 2, in all.
    #[arg(long, default_value_t = 200_000)]
    changes: usize,
    /// Entries (one change each) per push in phase 2.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Subscribers in phase 3.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Changes per second pushed in phase 3.
    #[arg(long, default_value_t = 1_000)]
    fanout_rate: u64,
    /// Length of phase 3.
    #[arg(long, default_value_t = 10)]
    fanout_secs: u64,
}

#[tokio::main]
async fn main() -> Result<(), anyhow::Error> {
    let args = Args::parse();
    let connections = (args.idle + 1_000).to_string();
    let relay = Relay::start_in(
        tempfile::tempdir()?,
        &["--max-connections", &connections, "--push-rate", "0"],
    );
    let ws = relay.ws.to_string();
    println!("relay pid {} at ws://{}", relay.pid(), relay.ws);
    let token = relay.token(&["load:write", "fanout:write", "idle:read"]);
    run(&args, &relay, &ws, &token).await
}

async fn run(args: &Args, relay: &Relay, ws: &str, token: &str) -> Result<(), anyhow::Error> {
    // --- Phase 1: idle connections -------------------------------------------------------
    let rss_before = relay.rss_kib();
    let started = Instant::now();
    let idle = open_idle(ws, token, args.idle).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = relay.rss_kib();
    let per_connection = (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / args.idle as f64;
    println!(
        "idle: {} connections welcomed in {:.1} s; relay RSS {:.1} MiB before, {:.1} MiB after: \
         {:.1} KiB per idle connection",
        args.idle,
        started.elapsed().as_secs_f64(),
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        per_connection / 1024.0,
    );
    drop(idle);

    // --- Phase 2: pushes stored with acks ---------------------------------------------------
    let per_pusher = args.changes / args.pushers.max(1);
    let mut batches = Vec::new();
    for p in 0..args.pushers {
        batches.push(small_entries(&space("load"), per_pusher, p as u64));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for entries in batches {
        let (url, token, batch) = (ws.to_owned(), token.to_owned(), args.batch);
        tasks.push(tokio::spawn(async move {
            push_all(&url, &token, entries, batch).await
        }));
    }
    let mut latencies = Vec::new();
    let mut stored = 0usize;
    for task in tasks {
        let (n, mut lat) = task.await??;
        stored += n;
        latencies.append(&mut lat);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "pushes: {stored} changes stored and acked in {elapsed:.2} s = {:.0} changes/s \
         ({} connections, {} per push); ack latency per push p50 {:.1} ms, p99 {:.1} ms",
        stored as f64 / elapsed,
        args.pushers,
        args.batch,
        percentile(&mut latencies, 0.50),
        percentile(&mut latencies, 0.99),
    );

    // --- Phase 3: fan-out latency ------------------------------------------------------------
    let fan = fanout(
        ws,
        token,
        args.subscribers,
        args.fanout_rate,
        args.fanout_secs,
    )
    .await?;
    println!(
        "fan-out: {} changes at {}/s to {} subscribers, {} deliveries; push to live \
         delivery p50 {:.1} ms, p99 {:.1} ms",
        fan.acked, args.fanout_rate, args.subscribers, fan.deliveries, fan.p50_ms, fan.p99_ms,
    );
    Ok(())
}
