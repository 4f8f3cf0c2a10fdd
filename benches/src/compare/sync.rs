//! Workloads 1 to 3, run the same way for every system: upload N records from device A and
//! download them to a fresh device B, reconnect after K changed, and live typing from A to
//! B. Each run gets a fresh server and fresh devices in a directory of its own.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::process::{num, CallError, Peer};
use super::proxy::Bytes;
use super::systems::{Server, System};

/// Time after a phase for bytes still in flight (closing handshakes) to be counted.
const SETTLE: Duration = Duration::from_millis(300);

/// One timed phase.
#[derive(Clone, Copy, Debug)]
pub struct Phase {
    /// The device's own time for it.
    pub secs: f64,
    /// Through the proxy during it.
    pub bytes: Bytes,
    /// The device process's peak RSS during it, KiB.
    pub device_peak_kib: f64,
    /// The server process's peak RSS during it, KiB.
    pub server_peak_kib: f64,
}

impl Phase {
    fn json(&self) -> Value {
        json!({
            "secs": self.secs,
            "bytes_up": self.bytes.up,
            "bytes_down": self.bytes.down,
            "device_peak_rss_kib": self.device_peak_kib,
            "server_peak_rss_kib": self.server_peak_kib,
        })
    }
}

/// Workloads 1 and 2 for one system and one N.
pub struct RecordsRun {
    /// Which system.
    pub system: System,
    /// Records.
    pub n: usize,
    /// Upload from A.
    pub up: Option<Phase>,
    /// Download to B.
    pub down: Option<Phase>,
    /// A's reconnect after K changes.
    pub re_up: Option<Phase>,
    /// B's reconnect.
    pub re_down: Option<Phase>,
    /// Why a phase is missing.
    pub failure: Option<String>,
}

impl RecordsRun {
    /// The raw figures.
    pub fn json(&self) -> Value {
        json!({
            "system": self.system.name(),
            "n": self.n,
            "upload": self.up.map(|p| p.json()),
            "download": self.down.map(|p| p.json()),
            "reconnect_upload": self.re_up.map(|p| p.json()),
            "reconnect_download": self.re_down.map(|p| p.json()),
            "failure": self.failure,
        })
    }
}

fn phase(
    server: &Server,
    peer: &mut Peer,
    command: &str,
    limit: Duration,
) -> Result<Phase, String> {
    server.reset_peak();
    let before = server.proxy.bytes();
    let answer = peer.call(command, limit).map_err(|e| {
        // One line: a node stack trace would break the table.
        let why = e.to_string();
        let first = why.lines().next().unwrap_or_default().to_owned();
        format!("{}: {first}", command.split(' ').next().unwrap_or(command))
    })?;
    std::thread::sleep(SETTLE);
    Ok(Phase {
        secs: num(&answer, "secs"),
        bytes: server.proxy.bytes().since(before),
        device_peak_kib: num(&answer, "peak_rss_kib"),
        server_peak_kib: server.peak_kib() as f64,
    })
}

/// Upload and download `n` records; then, if `changed` is given, the reconnects after
/// that many records changed on A. `limit` bounds each phase.
pub fn records(
    system: System,
    n: usize,
    changed: Option<usize>,
    limit: Duration,
    rt: &tokio::runtime::Handle,
    work: &Path,
) -> anyhow::Result<RecordsRun> {
    let dir = tempfile::tempdir_in(work)?;
    let server = Server::start(system, &dir.path().join("server"), rt)?;
    let ids = dir.path().join("ids.txt");
    let mut run = RecordsRun {
        system,
        n,
        up: None,
        down: None,
        re_up: None,
        re_down: None,
        failure: None,
    };
    eprintln!("[{} N={n}] creating records on A", system.name());
    let mut a = server.device("A", &dir.path().join("a"), &ids)?;
    let result = (|| -> Result<(), String> {
        a.call(&format!("create {n}"), limit)
            .map_err(|e| format!("create: {e}"))?;
        eprintln!("[{} N={n}] upload", system.name());
        run.up = Some(phase(&server, &mut a, "upload", limit)?);
        eprintln!("[{} N={n}] download", system.name());
        let mut b = server
            .device("B", &dir.path().join("b"), &ids)
            .map_err(|e| e.to_string())?;
        run.down = Some(phase(&server, &mut b, "download", limit)?);
        if let Some(k) = changed {
            eprintln!("[{} N={n}] reconnect after {k} changed", system.name());
            a.call("disconnect", limit).map_err(|e| e.to_string())?;
            b.call("disconnect", limit).map_err(|e| e.to_string())?;
            a.call(&format!("change {k}"), limit)
                .map_err(|e| e.to_string())?;
            run.re_up = Some(phase(&server, &mut a, &format!("reconnect {k}"), limit)?);
            run.re_down = Some(phase(&server, &mut b, &format!("reconnect {k}"), limit)?);
        }
        Ok(())
    })();
    if let Err(why) = result {
        eprintln!("[{} N={n}] {why}", system.name());
        run.failure = Some(why);
    }
    Ok(run)
}

/// Workload 3 for one system.
pub struct TypingRun {
    /// Which system.
    pub system: System,
    /// From A starting the replay to B holding the trace's end text.
    pub end_to_end_secs: Option<f64>,
    /// A's own replay, committing every 100 edits.
    pub replay_secs: Option<f64>,
    /// Both devices' bytes through the proxy during the replay.
    pub bytes: Option<Bytes>,
    /// Peak RSS of A, B and the server during the replay, KiB.
    pub peaks_kib: Option<(f64, f64, f64)>,
    /// Why it did not finish.
    pub failure: Option<String>,
}

impl TypingRun {
    /// The raw figures.
    pub fn json(&self) -> Value {
        json!({
            "system": self.system.name(),
            "end_to_end_secs": self.end_to_end_secs,
            "replay_secs": self.replay_secs,
            "bytes_up": self.bytes.map(|b| b.up),
            "bytes_down": self.bytes.map(|b| b.down),
            "peak_rss_kib": self.peaks_kib.map(|(a, b, s)| json!({"a": a, "b": b, "server": s})),
            "failure": self.failure,
        })
    }
}

/// Replays the first `edits` edits of the trace at `trace` into one note on A, synced live
/// to B.
pub fn typing(
    system: System,
    trace: &Path,
    edits: usize,
    limit: Duration,
    rt: &tokio::runtime::Handle,
    work: &Path,
) -> anyhow::Result<TypingRun> {
    let dir = tempfile::tempdir_in(work)?;
    let server = Server::start(system, &dir.path().join("server"), rt)?;
    let ids = dir.path().join("ids.txt");
    let mut run = TypingRun {
        system,
        end_to_end_secs: None,
        replay_secs: None,
        bytes: None,
        peaks_kib: None,
        failure: None,
    };
    let args = format!("{} {edits}", trace.display());
    let mut a = server.device("A", &dir.path().join("a"), &ids)?;
    let mut b = server.device("B", &dir.path().join("b"), &ids)?;
    eprintln!("[{}] typing: {edits} edits", system.name());
    let result = (|| -> Result<(), CallError> {
        a.call(&format!("trace_create {args}"), limit)?;
        b.call(&format!("trace_follow {args}"), limit)?;
        server.reset_peak();
        let before = server.proxy.bytes();
        b.send(&format!("trace_wait {args}"))?;
        a.send(&format!("trace_replay {args}"))?;
        let replayed = a.recv(limit)?;
        let arrived = b.recv(limit)?;
        std::thread::sleep(SETTLE);
        run.bytes = Some(server.proxy.bytes().since(before));
        run.replay_secs = Some(num(&replayed, "secs"));
        run.end_to_end_secs = Some((num(&arrived, "end_ns") - num(&replayed, "start_ns")) / 1e9);
        run.peaks_kib = Some((
            num(&replayed, "peak_rss_kib"),
            num(&arrived, "peak_rss_kib"),
            server.peak_kib() as f64,
        ));
        Ok(())
    })();
    if let Err(why) = result {
        eprintln!("[{}] typing: {why}", system.name());
        run.failure = Some(
            why.to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    Ok(run)
}
