//! The run: each selected workload for each selected system and its baselines, reported
//! as tables, targets and JSON.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::process::{num, Peer};
use super::proxy::Proxy;
use super::report::{bytes, mib, ratio, secs, thousands, Report};
use super::sync::{self, RecordsRun, TypingRun};
use super::systems::System;
use super::{local, trace, Options, Plan};

/// Runs what `options` select and prints the report.
pub fn run(options: Options) -> anyhow::Result<()> {
    let plan = options.plan();
    let mut report = Report::default();
    let systems = options.systems(&mut report);
    let work = match &options.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            tempfile::tempdir_in(dir)?
        }
        None => tempfile::tempdir()?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let load_before = load_average();
    let started = Instant::now();
    let machine = machine(work.path());
    println!("machine: {machine}");
    let want = |w: u8| options.workloads.contains(&w);

    if want(1) || want(2) {
        records(
            &plan,
            &systems,
            want(1),
            want(2),
            rt.handle(),
            work.path(),
            &mut report,
        )?;
    }
    if want(3) {
        typing(
            &plan,
            &options,
            &systems,
            rt.handle(),
            work.path(),
            &mut report,
        )?;
    }
    if want(4) {
        writes(&plan, work.path(), &mut report)?;
    }
    if want(5) && systems.contains(&System::Holdfast) {
        fanout(&plan, rt.handle(), &mut report)?;
    }
    if want(6) && systems.contains(&System::Holdfast) {
        cold_open(&plan, &options.against, work.path(), &mut report)?;
    }

    let load_after = load_average();
    report.note(format!(
        "load average (1 min) {load_before} at the start, {load_after} at the end; run took {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    println!("{}", report.targets_markdown());
    if let Some(out) = &options.out {
        let command: Vec<String> = std::env::args().collect();
        let mut machine = machine;
        machine["load_average_start"] = json!(load_before);
        machine["load_average_end"] = json!(load_after);
        std::fs::write(
            out,
            serde_json::to_string_pretty(&report.json(machine, command))?,
        )?;
        println!("JSON written to {}", out.display());
    }
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

/// CPU, cores, memory, kernel, the work directory's file system, node's version.
fn machine(work: &Path) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let fs = file_system(work);
    let node = Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "memory_gib": (mem_kib / 1024.0 / 1024.0).round(),
        "kernel": kernel.trim(),
        "work_dir_fs": fs,
        "node": node,
    })
}

/// The mount (device and type) holding `path`: the longest mount point that prefixes it.
fn file_system(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && path.starts_with(f[1]))
                .then(|| (f[1].len(), format!("{} {}", f[2], f[0])))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, fs)| fs)
        .unwrap_or_default()
}

fn per_s(n: usize, s: f64) -> f64 {
    n as f64 / s
}

/// Workloads 1 and 2.
fn records(
    plan: &Plan,
    systems: &[System],
    w1: bool,
    w2: bool,
    rt: &tokio::runtime::Handle,
    work: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut ns: Vec<usize> = if w1 { plan.ns.clone() } else { Vec::new() };
    if w2 && !ns.contains(&plan.reconnect_n) {
        ns.push(plan.reconnect_n);
    }
    ns.sort_unstable();
    let mut runs: Vec<RecordsRun> = Vec::new();
    for &n in &ns {
        for &system in systems {
            let changed = (w2 && n == plan.reconnect_n).then_some(plan.changed);
            runs.push(sync::records(system, n, changed, plan.limit, rt, work)?);
        }
    }
    report.raw.insert(
        "records".into(),
        Value::Array(runs.iter().map(RecordsRun::json).collect()),
    );

    // The wire's capacity with nothing behind it, through the same proxy.
    let mut server = ws_server()?;
    let addr = server.listening()?;
    let proxy = Proxy::start(rt, addr)?;
    let url = proxy.addr.to_string();
    let big = rt.block_on(super::baseline::ws_throughput(&url, 64 * 1024, 256 << 20))?;
    let small = rt.block_on(super::baseline::ws_throughput(&url, 1024, 64 << 20))?;
    drop(server);
    report.raw.insert(
        "loopback_ws_bytes_per_s".into(),
        json!({ "64KiB": big, "1KiB": small }),
    );

    if w1 {
        records_tables(plan, &runs, big, report);
    }
    if w2 {
        reconnect_table(plan, &runs, report);
    }
    Ok(())
}

fn find(runs: &[RecordsRun], system: System, n: usize) -> Option<&RecordsRun> {
    runs.iter().find(|r| r.system == system && r.n == n)
}

fn records_tables(plan: &Plan, runs: &[RecordsRun], wire_capacity: f64, report: &mut Report) {
    let mut rows = Vec::new();
    for run in runs.iter().filter(|r| plan.ns.contains(&r.n)) {
        let n = run.n;
        let cell = |p: Option<sync::Phase>| match p {
            Some(p) => [
                secs(p.secs),
                thousands(per_s(n, p.secs)),
                format!(
                    "{} ({:.0} B/rec)",
                    bytes(p.bytes.total() as f64),
                    p.bytes.total() as f64 / n as f64
                ),
                mib(p.device_peak_kib),
                mib(p.server_peak_kib),
            ],
            None => std::array::from_fn(|_| "—".to_owned()),
        };
        let mut row = vec![thousands(n as f64), run.system.name().to_owned()];
        row.extend(cell(run.up));
        row.extend(cell(run.down));
        if let Some(why) = &run.failure {
            row.push(why.clone());
        } else {
            row.push(String::new());
        }
        rows.push(row);
    }
    report.table(
        "Workload 1: upload N records from device A, download them to a fresh device B",
        &[
            "N",
            "system",
            "upload",
            "records/s",
            "wire bytes",
            "device peak RSS",
            "server peak RSS",
            "download",
            "records/s",
            "wire bytes",
            "device peak RSS",
            "server peak RSS",
            "",
        ],
        rows,
    );

    // Ratios to each peer, same N, same run.
    let mut rows = Vec::new();
    for &n in &plan.ns {
        let Some(h) = find(runs, System::Holdfast, n) else {
            continue;
        };
        for peer in [System::Samod, System::Node] {
            let Some(p) = find(runs, peer, n) else {
                continue;
            };
            let speed = |hp: Option<sync::Phase>, pp: Option<sync::Phase>| match (hp, pp) {
                (Some(h), Some(p)) => ratio(p.secs / h.secs),
                (Some(_), None) => "peer did not finish".into(),
                _ => "—".into(),
            };
            let wire = match (h.up, h.down, p.up, p.down) {
                (Some(hu), Some(hd), Some(pu), Some(pd)) => ratio(
                    (hu.bytes.total() + hd.bytes.total()) as f64
                        / (pu.bytes.total() + pd.bytes.total()) as f64,
                ),
                _ => "—".into(),
            };
            rows.push(vec![
                thousands(n as f64),
                peer.name().to_owned(),
                speed(h.up, p.up),
                speed(h.down, p.down),
                wire,
            ]);
        }
    }
    report.table(
        "Workload 1: Holdfast against each peer (same run)",
        &[
            "N",
            "peer",
            "Holdfast upload records/s ÷ peer's",
            "download records/s ÷ peer's",
            "Holdfast wire bytes ÷ peer's",
        ],
        rows,
    );

    // Scaling: cost per record at each N against the smallest.
    let mut rows = Vec::new();
    let smallest = plan.ns.iter().copied().min().unwrap_or(0);
    for system in [System::Holdfast, System::Samod, System::Node] {
        let Some(base) = find(runs, system, smallest) else {
            continue;
        };
        for &n in plan.ns.iter().filter(|&&n| n != smallest) {
            let Some(run) = find(runs, system, n) else {
                continue;
            };
            let scale = |b: Option<sync::Phase>, r: Option<sync::Phase>| match (b, r) {
                (Some(b), Some(r)) => ratio((r.secs / n as f64) / (b.secs / smallest as f64)),
                _ => run.failure.clone().unwrap_or_else(|| "—".into()),
            };
            rows.push(vec![
                system.name().to_owned(),
                format!("{} vs {}", thousands(n as f64), thousands(smallest as f64)),
                scale(base.up, run.up),
                scale(base.down, run.down),
            ]);
        }
    }
    report.table(
        "Workload 1: time per record against the smallest N (1.00× is linear)",
        &["system", "N", "upload", "download"],
        rows,
    );

    // Targets at N = 10,000 (or the largest N both finished).
    let target_n = if plan.ns.contains(&10_000) {
        10_000
    } else {
        plan.ns.iter().copied().max().unwrap_or(0)
    };
    match (
        find(runs, System::Holdfast, target_n),
        find(runs, System::Samod, target_n),
    ) {
        (Some(h), Some(s)) => {
            let (speed, met) = match (h.up, h.down, s.up, s.down) {
                (Some(hu), Some(hd), Some(su), Some(sd)) => {
                    let (u, d) = (su.secs / hu.secs, sd.secs / hd.secs);
                    (
                        format!(
                            "upload {}, download {} samod's records/s",
                            ratio(u),
                            ratio(d)
                        ),
                        Some(u >= 20.0 && d >= 20.0),
                    )
                }
                (Some(_), Some(_), _, _) => (
                    format!("samod: {}", s.failure.clone().unwrap_or_default()),
                    Some(true),
                ),
                _ => ("Holdfast did not finish".into(), Some(false)),
            };
            report.target(
                &format!("1: records/s at N = {}", thousands(target_n as f64)),
                speed,
                "≥ 20× samod",
                met,
            );
            let total = |r: &RecordsRun| Some(r.up?.bytes.total() + r.down?.bytes.total());
            let (measured, met) = match (total(h), total(s)) {
                (Some(hb), Some(sb)) => (
                    format!(
                        "{} against {} ({})",
                        bytes(hb as f64),
                        bytes(sb as f64),
                        ratio(hb as f64 / sb as f64)
                    ),
                    Some(hb as f64 <= 0.5 * sb as f64),
                ),
                _ => ("—".into(), None),
            };
            report.target(
                &format!("1: wire bytes at N = {}", thousands(target_n as f64)),
                measured,
                "≤ ½ samod's",
                met,
            );
        }
        _ => report.target(
            "1: against samod",
            "samod not run".into(),
            "≥ 20× records/s, ≤ ½ bytes",
            None,
        ),
    }
    if let (Some(base), Some(top)) = (
        find(runs, System::Holdfast, smallest),
        plan.ns
            .iter()
            .copied()
            .max()
            .and_then(|n| find(runs, System::Holdfast, n)),
    ) {
        if let (Some(bu), Some(bd), Some(tu), Some(td)) = (base.up, base.down, top.up, top.down) {
            let per = |t: f64, n: usize| t / n as f64;
            let (u, d) = (
                per(tu.secs, top.n) / per(bu.secs, base.n),
                per(td.secs, top.n) / per(bd.secs, base.n),
            );
            report.target(
                "1: scaling in N",
                format!(
                    "time per record at N = {} vs {}: upload {}, download {}",
                    thousands(top.n as f64),
                    thousands(base.n as f64),
                    ratio(u),
                    ratio(d)
                ),
                "close to linear (≤ 1.5×)",
                Some(u <= 1.5 && d <= 1.5),
            );
            let busiest = tu.bytes.total() as f64 / tu.secs;
            report.note(format!(
                "loopback WebSocket with no work behind it carries {}/s in 64 KiB messages and {}/s in 1 KiB messages (through the same proxy); Holdfast's upload at N = {} moved {}/s, {:.2}% of that",
                bytes(wire_capacity),
                bytes(report.raw["loopback_ws_bytes_per_s"]["1KiB"].as_f64().unwrap_or(0.0)),
                thousands(top.n as f64),
                bytes(busiest),
                100.0 * busiest / wire_capacity
            ));
        }
    }
}

fn reconnect_table(plan: &Plan, runs: &[RecordsRun], report: &mut Report) {
    let n = plan.reconnect_n;
    let mut rows = Vec::new();
    let total = |r: &RecordsRun| Some(r.re_up?.bytes.total() + r.re_down?.bytes.total());
    for run in runs.iter().filter(|r| r.n == n) {
        let cell = |p: Option<sync::Phase>| match p {
            Some(p) => [secs(p.secs), bytes(p.bytes.total() as f64)],
            None => ["—".into(), "—".into()],
        };
        let mut row = vec![run.system.name().to_owned()];
        row.extend(cell(run.re_up));
        row.extend(cell(run.re_down));
        row.push(run.failure.clone().unwrap_or_default());
        rows.push(row);
    }
    report.table(
        &format!(
            "Workload 2: reconnect after {} of {} records changed (A sends, then B receives)",
            plan.changed,
            thousands(n as f64)
        ),
        &[
            "system",
            "A: time",
            "A: wire bytes",
            "B: time",
            "B: wire bytes",
            "",
        ],
        rows,
    );
    let h = find(runs, System::Holdfast, n).and_then(total);
    for peer in [System::Samod, System::Node] {
        let p = find(runs, peer, n).and_then(total);
        let (measured, met) = match (h, p) {
            (Some(h), Some(p)) => (
                format!(
                    "Holdfast {} against {}'s {}: {} fewer",
                    bytes(h as f64),
                    peer.name(),
                    bytes(p as f64),
                    ratio(p as f64 / h as f64)
                ),
                Some(p as f64 >= 100.0 * h as f64),
            ),
            _ => (format!("{} not measured", peer.name()), None),
        };
        if peer == System::Samod || p.is_some() {
            report.target(
                &format!(
                    "2: reconnect bytes vs {}'s full handshake of all N documents",
                    peer.name()
                ),
                measured,
                "≥ 100× fewer",
                met,
            );
        }
    }
}

/// Workload 3.
fn typing(
    plan: &Plan,
    options: &Options,
    systems: &[System],
    rt: &tokio::runtime::Handle,
    work: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let path = options.trace.clone().unwrap_or_else(trace::default_path);
    let loaded = trace::load(&path)?.truncated(plan.edits);
    let edits = loaded.edits.len();
    let (bare, change_bytes) = trace::bare_automerge(&loaded)?;
    let two = trace::bare_automerge_two_docs(&loaded)?;
    drop(loaded);
    let mut runs: Vec<TypingRun> = Vec::new();
    for &system in systems {
        runs.push(sync::typing(system, &path, edits, plan.limit, rt, work)?);
    }
    let bare_s = bare.as_secs_f64();
    let mut rows = vec![
        vec![
            "bare Automerge, one document".into(),
            secs(bare_s),
            "—".into(),
            format!("{} of changes", bytes(change_bytes as f64)),
            "1.00×".into(),
            String::new(),
        ],
        vec![
            "bare Automerge, each change applied to a second document".into(),
            secs(two.as_secs_f64()),
            "—".into(),
            "—".into(),
            ratio(two.as_secs_f64() / bare_s),
            String::new(),
        ],
    ];
    for run in &runs {
        rows.push(vec![
            run.system.name().to_owned(),
            run.end_to_end_secs.map_or("—".into(), secs),
            run.replay_secs.map_or("—".into(), secs),
            run.bytes.map_or("—".into(), |b| bytes(b.total() as f64)),
            run.end_to_end_secs
                .map_or("—".into(), |s| ratio(s / bare_s)),
            run.failure
                .clone()
                .unwrap_or_else(|| "B's text equals endContent".into()),
        ]);
    }
    report.table(
        &format!(
            "Workload 3: the automerge-paper trace ({} edits, a commit every {}) typed on A, live on B",
            thousands(edits as f64),
            trace::EDITS_PER_COMMIT
        ),
        &["", "end to end (A's first edit to B equal)", "A's replay", "wire bytes", "÷ bare Automerge", ""],
        rows,
    );
    report.raw.insert(
        "typing".into(),
        json!({
            "edits": edits,
            "bare_automerge_secs": bare_s,
            "bare_automerge_change_bytes": change_bytes,
            "bare_automerge_two_docs_secs": two.as_secs_f64(),
            "runs": runs.iter().map(TypingRun::json).collect::<Vec<_>>(),
        }),
    );
    if let Some(h) = runs.iter().find(|r| r.system == System::Holdfast) {
        let (measured, met) = match h.end_to_end_secs {
            Some(s) => (
                format!(
                    "{} end to end against {} bare: {}",
                    secs(s),
                    secs(bare_s),
                    ratio(s / bare_s)
                ),
                Some(s <= 1.5 * bare_s),
            ),
            None => (h.failure.clone().unwrap_or_default(), Some(false)),
        };
        report.target("3: live typing", measured, "≤ 1.5× bare Automerge", met);
    }
    Ok(())
}

/// Workload 4.
fn writes(plan: &Plan, work: &Path, report: &mut Report) -> anyhow::Result<()> {
    let dir = tempfile::tempdir_in(work)?;
    let w = local::writes(dir.path(), plan.writes)?;
    let us = |d: Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6);
    let raw = w.raw.as_secs_f64();
    let rows = vec![
        vec![
            format!(
                "raw redb commit, `Durability::Immediate` ({} bytes)",
                w.payload
            ),
            us(w.raw),
            "1.00×".into(),
        ],
        vec![
            "4 KiB write + fdatasync".into(),
            us(w.fsync),
            ratio(w.fsync.as_secs_f64() / raw),
        ],
        vec![
            "bare Automerge edit (no I/O)".into(),
            us(w.bare),
            ratio(w.bare.as_secs_f64() / raw),
        ],
        vec![
            "store, one writer".into(),
            us(w.single),
            ratio(w.single.as_secs_f64() / raw),
        ],
        vec![
            "store, 8 writers (per write)".into(),
            us(w.eight),
            format!(
                "{} ({} the one-writer rate)",
                ratio(w.eight.as_secs_f64() / raw),
                ratio(w.single.as_secs_f64() / w.eight.as_secs_f64())
            ),
        ],
    ];
    report.table(
        &format!("Workload 4: durable local writes, {} of each (a title change and ten typed characters)", thousands(plan.writes as f64)),
        &["", "time per write", "÷ raw redb commit"],
        rows,
    );
    report.raw.insert(
        "writes".into(),
        json!({
            "count": plan.writes,
            "payload_bytes": w.payload,
            "raw_redb_commit_us": raw * 1e6,
            "fsync_us": w.fsync.as_secs_f64() * 1e6,
            "bare_automerge_us": w.bare.as_secs_f64() * 1e6,
            "store_single_us": w.single.as_secs_f64() * 1e6,
            "store_8_writers_us": w.eight.as_secs_f64() * 1e6,
        }),
    );
    let r = w.single.as_secs_f64() / raw;
    report.target(
        "4: one writer",
        format!(
            "{} raw redb (raw redb + bare Automerge alone: {}; see \"Durable local writes\")",
            ratio(r),
            ratio((raw + w.bare.as_secs_f64()) / raw)
        ),
        "≤ 1.25× raw redb",
        Some(r <= 1.25),
    );
    Ok(())
}

fn ws_server() -> anyhow::Result<Peer> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["child", "ws-server"]);
    Peer::spawn("bare WebSocket server", command)
}

/// Workload 5.
fn fanout(plan: &Plan, rt: &tokio::runtime::Handle, report: &mut Report) -> anyhow::Result<()> {
    use holdfast_relay_harness::Relay;
    let (subscribers, rate) = (100, 1_000);
    let relay = Relay::start_in(tempfile::tempdir()?, &["--push-rate", "0"]);
    let token = relay.token(&["fanout:write"]);
    let fan = rt.block_on(crate::relay_client::fanout(
        &relay.ws.to_string(),
        &token,
        subscribers,
        rate,
        plan.fanout_secs,
    ))?;
    drop(relay);
    let frame = holdfast_protocol::Frame::Push {
        entries: crate::relay_client::small_entries(&crate::relay_client::space("fanout"), 10, 0),
    };
    let message_bytes = holdfast_protocol::encode(&frame)?.len();
    let mut server = ws_server()?;
    let addr = server.listening()?;
    let (p50, p99) = rt.block_on(super::baseline::ws_fanout(
        &addr.to_string(),
        subscribers,
        rate,
        plan.fanout_secs,
        message_bytes,
    ))?;
    drop(server);
    let ms = |v: f64| format!("{v:.1} ms");
    report.table(
        &format!(
            "Workload 5: fan-out, {subscribers} subscribers to one space, {} changes/s for {} s",
            thousands(rate as f64),
            plan.fanout_secs
        ),
        &["", "p50", "p99", "p50 ÷ bare", "p99 ÷ bare"],
        vec![
            vec![
                format!("bare WebSocket fan-out, no work ({message_bytes}-byte messages, 100/s)"),
                ms(p50),
                ms(p99),
                "1.00×".into(),
                "1.00×".into(),
            ],
            vec![
                format!(
                    "holdfast-relay: push → durable commit → live delivery ({} deliveries)",
                    thousands(fan.deliveries as f64)
                ),
                ms(fan.p50_ms),
                ms(fan.p99_ms),
                ratio(fan.p50_ms / p50),
                ratio(fan.p99_ms / p99),
            ],
        ],
    );
    report.raw.insert(
        "fanout".into(),
        json!({
            "subscribers": subscribers, "rate": rate, "secs": plan.fanout_secs,
            "relay": { "p50_ms": fan.p50_ms, "p99_ms": fan.p99_ms, "deliveries": fan.deliveries, "acked": fan.acked },
            "bare_ws": { "p50_ms": p50, "p99_ms": p99, "message_bytes": message_bytes },
        }),
    );
    Ok(())
}

/// Cold opens each build makes of each file, interleaved; the median is reported.
const COLD_OPENS: usize = 5;

/// Workload 6, with `against` (other builds of `compare`) timed on the same file too.
fn cold_open(
    plan: &Plan,
    against: &[PathBuf],
    work: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    let n = plan.cold_records;
    let dir = tempfile::tempdir_in(work)?;
    let store = dir.path().join("cold.redb");
    let started = Instant::now();
    local::build_store(&store, n)?;
    let built = started.elapsed();
    let file_bytes = std::fs::metadata(&store)?.len();
    let raw = dir.path().join("raw.redb");
    // A raw file of about the store's size: one try, then the row size scaled to fit.
    let mut row = (file_bytes / n as u64).max(1) as usize;
    local::build_raw(&raw, n, row)?;
    let mut raw_bytes = std::fs::metadata(&raw)?.len();
    if raw_bytes.abs_diff(file_bytes) > file_bytes / 5 {
        row = ((row as f64 * file_bytes as f64 / raw_bytes as f64) as usize).max(1);
        std::fs::remove_file(&raw)?;
        local::build_raw(&raw, n, row)?;
        raw_bytes = std::fs::metadata(&raw)?.len();
    }
    let this = std::env::current_exe()?;
    // Median time and peak RSS of each build's cold opens of `db`, taken in turns.
    let open = |db: &Path, raw: bool, builds: &[&Path]| -> anyhow::Result<Vec<(f64, f64)>> {
        let mut times = vec![Vec::new(); builds.len()];
        let mut peaks = vec![Vec::new(); builds.len()];
        for _ in 0..COLD_OPENS {
            for (b, exe) in builds.iter().enumerate() {
                local::evict(db)?;
                let mut command = Command::new(exe);
                command.args(["child", "cold-open", "--db"]).arg(db);
                if raw {
                    command.arg("--raw");
                }
                let mut child = Peer::spawn("cold open", command)?;
                let answer = child.recv(plan.limit)?;
                times[b].push(num(&answer, "secs"));
                peaks[b].push(num(&answer, "peak_rss_kib"));
            }
        }
        Ok(times
            .iter_mut()
            .zip(&mut peaks)
            .map(|(t, p)| {
                (
                    crate::relay_client::percentile(t, 0.5),
                    crate::relay_client::percentile(p, 0.5),
                )
            })
            .collect())
    };
    let mut builds = vec![this.as_path()];
    builds.extend(against.iter().map(PathBuf::as_path));
    let stores = open(&store, false, &builds)?;
    let (store_s, store_kib) = stores[0];
    let (raw_s, raw_kib) = open(&raw, true, &[this.as_path()])?[0];
    let ms = |s: f64| format!("{:.1} ms", s * 1e3);
    let mut rows = vec![
        vec![
            "raw redb: open, read the first row".into(),
            bytes(raw_bytes as f64),
            ms(raw_s),
            "1.00×".into(),
            mib(raw_kib),
        ],
        vec![
            "Holdfast: `Store::open`, query one note, read its text".into(),
            bytes(file_bytes as f64),
            ms(store_s),
            ratio(store_s / raw_s),
            mib(store_kib),
        ],
    ];
    let mut others = Vec::new();
    for (other, &(other_s, other_kib)) in against.iter().zip(&stores[1..]) {
        rows.push(vec![
            format!("the same, `--against {}`", other.display()),
            bytes(file_bytes as f64),
            ms(other_s),
            ratio(other_s / raw_s),
            mib(other_kib),
        ]);
        others
            .push(json!({ "exe": other, "store_secs": other_s, "store_peak_rss_kib": other_kib }));
    }
    if !others.is_empty() {
        report.raw.insert("cold_open_against".into(), json!(others));
    }
    report.table(
        &format!("Workload 6: cold open of a store of {} records (fresh process, file evicted from the page cache; median of {COLD_OPENS})", thousands(n as f64)),
        &["", "file", "open to first read", "÷ raw redb", "process peak RSS"],
        rows,
    );
    report.raw.insert(
        "cold_open".into(),
        json!({
            "records": n, "build_secs": built.as_secs_f64(), "store_file_bytes": file_bytes,
            "raw_file_bytes": raw_bytes, "store_secs": store_s, "store_peak_rss_kib": store_kib,
            "raw_secs": raw_s, "raw_peak_rss_kib": raw_kib,
        }),
    );
    report.target(
        &format!("6: cold open, {} records", thousands(n as f64)),
        format!(
            "{} to first read ({} raw redb), peak RSS {}",
            ms(store_s),
            ratio(store_s / raw_s),
            mib(store_kib)
        ),
        "< 200 ms to first read",
        Some(store_s < 0.2),
    );
    Ok(())
}
