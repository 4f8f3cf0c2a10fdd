//! Load test of a real `holdfast-relay` process on loopback: memory per idle connection,
//! small changes stored per second with acks, live fan-out latency, and devices syncing
//! while hostile clients flood the relay.
//!
//! ```sh
//! cargo build --release -p holdfast-relay -p holdfast-benches
//! target/release/relay_load                   # starts target/release/holdfast-relay itself
//! target/release/relay_load --phases attack   # one phase alone
//! ```
//!
//! The relay runs in its own process on a temporary directory, so its RSS is its own. The
//! first three phases run one after another on the same relay:
//!
//! 1. **Idle connections**: `--idle` WebSocket connections each say `Hello` and get their
//!    `Welcome`, then stay open. Reported: the relay's RSS before and after, per connection.
//! 2. **Pushes**: `--pushers` connections push `--changes` small Automerge changes (one new
//!    record each) in batches of `--batch`, as many pushes in flight as the `Welcome`
//!    allows. Reported: changes stored and acked per second, ack latency per push.
//! 3. **Fan-out**: `--subscribers` connections subscribe to one space while one device
//!    pushes `--fanout-rate` changes per second in batches of 10. Reported: time from
//!    sending a push to each subscriber receiving its entries live, p50/p99.
//! 4. **Attack**: two runs, each on a fresh relay with its default limits. `--devices`
//!    devices spread over `--spaces` spaces each push one small change every
//!    `--push-period-ms` for `--attack-secs`, while a fresh device connects every 250 ms
//!    and `/metrics` is scraped every 2 s. The first run is quiet; in the second the
//!    `--floods` of `relay_attack` run at the same time, from loopback addresses other than
//!    the devices' 127.0.0.1. Reported for both: push-to-ack latency, pushes stored, the
//!    relay's peak RSS (sampled every 100 ms) and CPU time; for the attacked run, the
//!    relay's refusals by reason, its slow consumers and what each flood did.

use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use holdfast_benches::relay_attack::{self, Flood, Part, Tally, Target};
use holdfast_benches::relay_client::{
    fanout, open_idle, percentile, push_all, small_entries, space,
};
use holdfast_benches::relay_probe::{
    cores, cpu_time, listen_overflows, machine_cpu_time, scrape, threads_cpu_time, Metrics,
    RssSampler, RssSeen,
};
use holdfast_benches::relay_sync::{open_devices, probe_welcomes, sync_steadily, Steady};
use holdfast_protocol::SpaceId;
use holdfast_relay_harness::Relay;

#[derive(Parser, Debug)]
#[command(about = "Load test of a holdfast-relay process on loopback")]
struct Args {
    /// Phases to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "idle,pushes,fanout,attack"
    )]
    phases: Vec<Phase>,
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
    /// Devices syncing in each run of the attack phase.
    #[arg(long, default_value_t = 1_000)]
    devices: usize,
    /// Spaces the attack phase's devices are spread over.
    #[arg(long, default_value_t = 10)]
    spaces: usize,
    /// Milliseconds between two pushes of one device in the attack phase.
    #[arg(long, default_value_t = 2_000)]
    push_period_ms: u64,
    /// Length of each of the attack phase's two runs (quiet, attacked).
    #[arg(long, default_value_t = 20)]
    attack_secs: u64,
    /// Floods of the attacked run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ping,connect,slowloris,big-push,bad-hello"
    )]
    floods: Vec<Flood>,
}

/// A phase of the load test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Phase {
    Idle,
    Pushes,
    Fanout,
    Attack,
}

/// The attack phase's targets: the relay's peak RSS, and the attacked run's p99 push
/// latency as a multiple of the quiet run's.
const RSS_PEAK_MIB_TARGET: f64 = 400.0;
const P99_SLOWDOWN_TARGET: f64 = 3.0;

/// How often a fresh device connects during the attack phase's runs.
const WELCOME_PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// How often `/metrics` is scraped during the attack phase's runs.
const SCRAPE_INTERVAL: Duration = Duration::from_secs(2);

/// Time after a run for the relay to close what the floods left, before its RSS and
/// metrics are read.
const SETTLE_TIME: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> Result<(), anyhow::Error> {
    let args = Args::parse();
    let shared = [Phase::Idle, Phase::Pushes, Phase::Fanout];
    if shared.iter().any(|phase| args.phases.contains(phase)) {
        let connections = (args.idle + 1_000).to_string();
        let relay = Relay::start_in(
            tempfile::tempdir()?,
            &["--max-connections", &connections, "--push-rate", "0"],
        );
        let ws = relay.ws.to_string();
        println!("relay pid {} at ws://{}", relay.pid(), relay.ws);
        let token = relay.token(&["load:write", "fanout:write", "idle:read"]);
        if args.phases.contains(&Phase::Idle) {
            idle_phase(&args, &relay, &ws, &token).await?;
        }
        if args.phases.contains(&Phase::Pushes) {
            pushes_phase(&args, &ws, &token).await?;
        }
        if args.phases.contains(&Phase::Fanout) {
            fanout_phase(&args, &ws, &token).await?;
        }
    }
    if args.phases.contains(&Phase::Attack) {
        attack_phase(&args).await?;
    }
    Ok(())
}

async fn idle_phase(args: &Args, relay: &Relay, ws: &str, token: &str) -> anyhow::Result<()> {
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
    Ok(())
}

async fn pushes_phase(args: &Args, ws: &str, token: &str) -> anyhow::Result<()> {
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
    Ok(())
}

async fn fanout_phase(args: &Args, ws: &str, token: &str) -> anyhow::Result<()> {
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

/// One run of the attack phase, on a relay of its own.
struct SyncRun {
    steady: Steady,
    welcome_ms: Vec<f64>,
    welcomes_failed: usize,
    scrapes_answered: usize,
    scrapes_tried: usize,
    rss: RssSeen,
    /// CPU time while the devices synced (and the floods ran).
    cpu: CpuSpent,
    /// The machine's load average over the minute before the run.
    load_before: String,
    /// Connections the kernel dropped from full accept queues during the run.
    listen_overflows: u64,
    /// `/metrics` after the run.
    metrics: Metrics,
    parts: Vec<Part>,
}

async fn attack_phase(args: &Args) -> anyhow::Result<()> {
    println!(
        "attack: {} devices over {} spaces, one push of one change every {} ms each, {} s \
         per run; floods: {:?}",
        args.devices, args.spaces, args.push_period_ms, args.attack_secs, args.floods
    );
    let mut quiet = sync_run(args, &[]).await?;
    let mut attacked = sync_run(args, &args.floods).await?;
    report(args, &mut quiet, &mut attacked);
    Ok(())
}

/// CPU time spent during a run, by whom.
#[derive(Clone, Copy, Debug, Default)]
struct CpuSpent {
    wall: Duration,
    relay: Duration,
    devices: Duration,
    attackers: Duration,
    /// Every other process of the machine.
    others: Duration,
}

/// CPU times so far: the relay, this process, its attacker threads, the machine.
struct CpuClock([Duration; 4], Instant);

impl CpuClock {
    fn now(relay_pid: u32) -> CpuClock {
        let zero = Duration::ZERO;
        CpuClock(
            [
                cpu_time(relay_pid).unwrap_or(zero),
                cpu_time(0).unwrap_or(zero),
                threads_cpu_time(ATTACKER_THREAD),
                machine_cpu_time().unwrap_or(zero),
            ],
            Instant::now(),
        )
    }

    fn since(&self, before: &CpuClock) -> CpuSpent {
        let d = |i: usize| self.0[i].saturating_sub(before.0[i]);
        let (relay, this, attackers, machine) = (d(0), d(1), d(2), d(3));
        CpuSpent {
            wall: self.1 - before.1,
            relay,
            devices: this.saturating_sub(attackers),
            attackers,
            others: machine.saturating_sub(relay + this),
        }
    }
}

/// Name of the threads of the runtime the floods run on.
const ATTACKER_THREAD: &str = "attacker";

/// Starts a relay with its default limits, opens the devices, and lets them sync for
/// `--attack-secs` while `floods` run.
async fn sync_run(args: &Args, floods: &[Flood]) -> anyhow::Result<SyncRun> {
    let relay = Relay::start_in(tempfile::tempdir()?, &[]);
    let (spaces, token, target) = credentials(&relay, args.spaces);
    let url = relay.ws.to_string();
    let sampler = RssSampler::start(relay.pid());
    let devices = open_devices(&url, &token, &spaces, args.devices).await?;
    // The floods get threads of their own, so that the devices' tasks never queue behind
    // an attacker's in one scheduler; the cores are still shared, as the relay's are.
    let attack_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores())
        .thread_name(ATTACKER_THREAD)
        .enable_all()
        .build()?;
    let load_before = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| Some(l.split_whitespace().next()?.to_owned()))
        .unwrap_or_default();

    let cpu_before = CpuClock::now(relay.pid());
    let overflows_before = listen_overflows();
    let start = tokio::time::Instant::now();
    let end = start + Duration::from_secs(args.attack_secs);
    let flooding: Vec<_> = floods
        .iter()
        .map(|&flood| attack_runtime.spawn(relay_attack::run(flood, target.clone(), end)))
        .collect();
    let every = WELCOME_PROBE_INTERVAL;
    let probes = tokio::spawn(probe_welcomes(url, token, spaces[0].clone(), every, end));
    let scrapes = tokio::spawn(scrape_until(relay.http, end));
    let period = Duration::from_millis(args.push_period_ms);
    let steady = sync_steadily(devices, period, start, end).await;
    let mut parts = Vec::new();
    for flood in flooding {
        parts.extend(flood.await?);
    }
    let (welcome_ms, welcomes_failed) = probes.await?;
    let (scrapes_answered, scrapes_tried) = scrapes.await?;
    let cpu = CpuClock::now(relay.pid()).since(&cpu_before);
    let overflows = match (overflows_before, listen_overflows()) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => 0,
    };
    attack_runtime.shutdown_background();

    tokio::time::sleep(SETTLE_TIME).await;
    let rss = sampler
        .finish()
        .ok_or_else(|| anyhow::anyhow!("the relay's RSS could not be read"))?;
    let metrics = scrape_patiently(relay.http).await?;
    Ok(SyncRun {
        steady,
        welcome_ms,
        welcomes_failed,
        scrapes_answered,
        scrapes_tried,
        rss,
        cpu,
        load_before,
        listen_overflows: overflows,
        metrics,
        parts,
    })
}

/// The devices' spaces (`sync-N`) and their token granting all of them; the floods'
/// target with a token that may only read `attack`.
fn credentials(relay: &Relay, spaces: usize) -> (Vec<SpaceId>, String, Target) {
    let spaces: Vec<SpaceId> = (0..spaces.max(1))
        .map(|i| space(&format!("sync-{i}")))
        .collect();
    let grants: Vec<String> = spaces.iter().map(|s| format!("{s}:write")).collect();
    let grants: Vec<&str> = grants.iter().map(String::as_str).collect();
    let token = relay.token(&grants);
    let target = Target {
        ws: relay.ws,
        http: relay.http,
        read_token: relay.token(&["attack:read"]),
        read_space: space("attack"),
    };
    (spaces, token, target)
}

/// Scrapes `/metrics` every [`SCRAPE_INTERVAL`] until `end`: (answered, tried).
async fn scrape_until(http: std::net::SocketAddr, end: tokio::time::Instant) -> (usize, usize) {
    let (mut answered, mut tried) = (0, 0);
    let mut tick = tokio::time::interval(SCRAPE_INTERVAL);
    while tokio::time::timeout_at(end, tick.tick()).await.is_ok() {
        tried += 1;
        answered += usize::from(scrape(http).await.is_ok());
    }
    (answered, tried)
}

/// `/metrics`, tried a few times a second apart.
async fn scrape_patiently(http: std::net::SocketAddr) -> anyhow::Result<Metrics> {
    let mut last = None;
    for _ in 0..5 {
        match scrape(http).await {
            Ok(metrics) => return Ok(metrics),
            Err(error) => last = Some(error),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(last
        .expect("tried")
        .context("the relay's /metrics did not answer"))
}

/// Prints the two runs side by side, as Markdown tables, then the targets.
fn report(args: &Args, quiet: &mut SyncRun, attacked: &mut SyncRun) {
    let secs = args.attack_secs as f64;
    let row = |measure: &str, quiet: String, attacked: String| {
        println!("| {measure} | {quiet} | {attacked} |");
    };
    let p = |values: &mut Vec<f64>, q: f64| percentile(values, q);
    println!();
    println!("| measure | quiet | attacked |");
    println!("|---|---|---|");
    let stored = |run: &SyncRun| {
        let s = &run.steady;
        format!(
            "{} of {} sent ({:.0}/s)",
            s.pushes_stored,
            s.pushes_sent,
            s.pushes_stored as f64 / secs
        )
    };
    row("pushes stored", stored(quiet), stored(attacked));
    let latency = |run: &mut SyncRun| {
        let ms = &mut run.steady.ack_ms;
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            p(ms, 0.50),
            p(ms, 0.99),
            p(ms, 1.0)
        )
    };
    row("push → ack", latency(quiet), latency(attacked));
    let commit = |run: &SyncRun| {
        let m = &run.metrics;
        let count = m.sum("holdfast_relay_commit_seconds_count");
        let mean_ms = m.sum("holdfast_relay_commit_seconds_sum") / count * 1e3;
        format!("{mean_ms:.1} ms over {count} stores")
    };
    row(
        "relay's own store time, mean",
        commit(quiet),
        commit(attacked),
    );
    let troubles = |run: &SyncRun| {
        let s = &run.steady;
        format!(
            "{} / {} / {} / {}",
            s.pushes_rejected, s.pushes_unanswered, s.ticks_skipped, s.disconnects
        )
    };
    row(
        "rejected / unanswered / skipped / devices dropped",
        troubles(quiet),
        troubles(attacked),
    );
    let live = |run: &SyncRun| format!("{}", run.steady.live_entries);
    row("live entries received", live(quiet), live(attacked));
    let welcomes = |run: &mut SyncRun| {
        let n = run.welcome_ms.len();
        format!(
            "{n} welcomed, p50 {:.1} ms, p99 {:.1} ms; {} failed",
            p(&mut run.welcome_ms, 0.50),
            p(&mut run.welcome_ms, 0.99),
            run.welcomes_failed
        )
    };
    row(
        "fresh device connect → welcome",
        welcomes(quiet),
        welcomes(attacked),
    );
    if let Some(reason) = &attacked.steady.first_disconnect {
        println!("\nfirst device dropped under attack: {reason}");
    }
    report_relay(quiet, attacked);
    report_refusals(quiet, attacked);
    report_floods(attacked);
    report_targets(quiet, attacked);
}

/// What the relay process and the machine went through in the two runs.
fn report_relay(quiet: &SyncRun, attacked: &SyncRun) {
    let row = |measure: &str, quiet: String, attacked: String| {
        println!("| {measure} | {quiet} | {attacked} |");
    };
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let rss = |run: &SyncRun| {
        format!(
            "peak {} (start {}, after {})",
            mib(run.rss.peak_kib),
            mib(run.rss.first_kib),
            mib(run.rss.last_kib)
        )
    };
    row("relay RSS", rss(quiet), rss(attacked));
    let cpu = |run: &SyncRun| {
        let c = run.cpu;
        format!(
            "relay {:.1} s, devices {:.1} s, attackers {:.1} s, other processes {:.1} s \
             (of {:.1} s on {} cores)",
            c.relay.as_secs_f64(),
            c.devices.as_secs_f64(),
            c.attackers.as_secs_f64(),
            c.others.as_secs_f64(),
            c.wall.as_secs_f64() * cores() as f64,
            cores(),
        )
    };
    row("CPU time during the run", cpu(quiet), cpu(attacked));
    let load = |run: &SyncRun| run.load_before.clone();
    row("machine load average before", load(quiet), load(attacked));
    let overflows = |run: &SyncRun| run.listen_overflows.to_string();
    row(
        "kernel accept-queue overflows (machine-wide)",
        overflows(quiet),
        overflows(attacked),
    );
    let scrapes = |run: &SyncRun| format!("{} of {}", run.scrapes_answered, run.scrapes_tried);
    row(
        "/metrics scrapes answered",
        scrapes(quiet),
        scrapes(attacked),
    );
    let slow = |run: &SyncRun| {
        let n = run.metrics.sum("holdfast_relay_slow_consumers_total");
        format!("{n}")
    };
    row("slow consumers dropped", slow(quiet), slow(attacked));
    let rejected = |run: &SyncRun| {
        let key = "holdfast_relay_push_entries_total{outcome=\"rejected\"}";
        format!("{}", run.metrics.get(key))
    };
    row(
        "pushed entries rejected",
        rejected(quiet),
        rejected(attacked),
    );
    let received = |run: &SyncRun| {
        let bytes = run.metrics.sum("holdfast_relay_wire_bytes_received_total");
        format!("{:.1} MiB", bytes / f64::from(1 << 20))
    };
    row("bytes received", received(quiet), received(attacked));
}

fn report_refusals(quiet: &SyncRun, attacked: &SyncRun) {
    println!("\nrefusals (holdfast_relay_connections_refused_total) by reason:");
    println!("| reason | quiet | attacked |");
    println!("|---|---|---|");
    let name = "holdfast_relay_connections_refused_total";
    let quiet_refused = quiet.metrics.by_label(name, "reason");
    for (reason, n) in attacked.metrics.by_label(name, "reason") {
        let before = quiet_refused
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0.0, |(_, n)| *n);
        println!("| {reason} | {before} | {n} |");
    }
}

fn report_floods(attacked: &SyncRun) {
    println!("\nfloods of the attacked run:");
    println!(
        "| flood | sockets | longest open | closed by the relay | connect errors | sent | \
         answered | MiB written |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for part in &attacked.parts {
        let t: &Tally = &part.tally;
        println!(
            "| {} | {} | {:.1} s | {} | {} | {} {} | {} {} | {:.1} |",
            part.name,
            Tally::get(&t.sockets),
            Tally::get(&t.longest_ms) as f64 / 1e3,
            Tally::get(&t.closed),
            Tally::get(&t.connect_errors),
            Tally::get(&t.sent),
            part.sent_unit,
            Tally::get(&t.answered),
            part.answered_unit,
            Tally::get(&t.bytes) as f64 / (1 << 20) as f64,
        );
    }
}

fn report_targets(quiet: &mut SyncRun, attacked: &mut SyncRun) {
    let p = |values: &mut Vec<f64>, q: f64| percentile(values, q);
    let peak_mib = attacked.rss.peak_kib.max(quiet.rss.peak_kib) as f64 / 1024.0;
    let slowdown = p(&mut attacked.steady.ack_ms, 0.99) / p(&mut quiet.steady.ack_ms, 0.99);
    println!(
        "\ntargets: relay peak RSS {peak_mib:.1} MiB (under {RSS_PEAK_MIB_TARGET} MiB: {}); \
         p99 attacked / quiet {slowdown:.2}x (within {P99_SLOWDOWN_TARGET}x: {})",
        if peak_mib < RSS_PEAK_MIB_TARGET {
            "met"
        } else {
            "MISSED"
        },
        if slowdown <= P99_SLOWDOWN_TARGET {
            "met"
        } else {
            "MISSED"
        },
    );
}
