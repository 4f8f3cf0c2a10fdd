//! One device of one system in a child process (`compare child device ...`), driven by the
//! parent over stdin: each line is a command, each answer one JSON line with its timing
//! (`secs`, and `start_ns` / `end_ns` on `CLOCK_MONOTONIC`) and the process's memory
//! (`rss_kib` now, `peak_rss_kib` during the command: the peak is reset when a command
//! starts). The node peer (`benches/compare/node/client.mjs`) speaks the same protocol.
//!
//! Commands: `create N` (N records written locally, offline; their ids go to the ids
//! file), `upload` (connect and send them; done when the server has them), `download`
//! (a fresh device fetches every id in the ids file), `disconnect`, `change K` (the title
//! of the first K records, offline), `reconnect K` (the uploader: until the server has
//! everything again; the downloader: until the K changes are here and every document is in
//! sync), `trace_create` / `trace_follow` (one note, created and uploaded / found, then
//! kept in live sync), `trace_replay PATH EDITS` (replay a trace into it, a commit every
//! 100 edits), `trace_wait PATH EDITS` (until the note's text is the trace's end),
//! `quit`.

pub mod holdfast;
mod samod;

use std::io::BufRead;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::process::{monotonic_ns, own_rss_kib, reset_peak};
use super::trace::Trace;

/// A record of workloads 1 and 2: a title, a short text, three scalar fields.
pub mod record {
    /// The title of record `i`.
    pub fn title(i: usize) -> String {
        format!("Note {i}")
    }
    /// Every record's text.
    pub const BODY: &str = "A short note body, typed on a phone.";
    /// Every record's status.
    pub const STATUS: &str = "draft";
    /// The priority of record `i`.
    pub fn priority(i: usize) -> i64 {
        (i % 5) as i64
    }
    /// The title a `change` gives.
    pub const CHANGED: &str = "changed";
}

/// The space of Holdfast's records.
pub fn holdfast_space() -> &'static str {
    holdfast::SPACE
}

/// What a device child is told on its command line.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceArgs {
    /// `holdfast` or `samod`.
    #[arg(long)]
    pub system: String,
    /// The server, through the byte-counting proxy (`ws://127.0.0.1:PORT/`).
    #[arg(long)]
    pub url: String,
    /// The relay token (Holdfast).
    #[arg(long, default_value = "")]
    pub token: String,
    /// The device's own data directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// The file of record ids the uploader writes and the downloader reads.
    #[arg(long)]
    pub ids: PathBuf,
}

/// The operations every system's device provides.
pub trait Device {
    /// `create N`.
    fn create(&mut self, n: usize) -> anyhow::Result<()>;
    /// `upload`.
    fn upload(&mut self) -> anyhow::Result<()>;
    /// `download`; returns the records received.
    fn download(&mut self) -> anyhow::Result<usize>;
    /// `disconnect`.
    fn disconnect(&mut self) -> anyhow::Result<()>;
    /// `change K`.
    fn change(&mut self, k: usize) -> anyhow::Result<()>;
    /// `reconnect K`.
    fn reconnect(&mut self, k: usize) -> anyhow::Result<()>;
    /// `trace_create`.
    fn trace_create(&mut self) -> anyhow::Result<()>;
    /// `trace_follow`.
    fn trace_follow(&mut self) -> anyhow::Result<()>;
    /// `trace_replay`.
    fn trace_replay(&mut self, trace: &Trace) -> anyhow::Result<()>;
    /// `trace_wait`.
    fn trace_wait(&mut self, trace: &Trace) -> anyhow::Result<()>;
}

/// Runs a device child until `quit` or the end of stdin.
pub fn run(args: DeviceArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)?;
    let mut device: Box<dyn Device> = match args.system.as_str() {
        "holdfast" => Box::new(holdfast::HoldfastDevice::new(args)?),
        "samod" => Box::new(samod::SamodDevice::new(args)?),
        other => anyhow::bail!("no device for system {other}"),
    };
    let mut trace: Option<(String, Trace)> = None;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(&command) = words.first() else {
            continue;
        };
        if command == "quit" {
            break;
        }
        let n = |i: usize| -> anyhow::Result<usize> {
            Ok(words
                .get(i)
                .ok_or_else(|| anyhow::anyhow!("{command}: missing argument"))?
                .parse()?)
        };
        // Loading a trace is not part of any measurement.
        if command.starts_with("trace_") && words.len() == 3 {
            let key = format!("{} {}", words[1], words[2]);
            if trace.as_ref().map(|(k, _)| k) != Some(&key) {
                let loaded = super::trace::load(words[1].as_ref())?.truncated(n(2)?);
                trace = Some((key, loaded));
            }
        }
        let pid = std::process::id();
        reset_peak(pid);
        let start_ns = monotonic_ns();
        let mut extra = json!({});
        let result = match command {
            "create" => device.create(n(1)?),
            "upload" => device.upload(),
            "download" => device
                .download()
                .map(|got| extra = json!({ "records": got })),
            "disconnect" => device.disconnect(),
            "change" => device.change(n(1)?),
            "reconnect" => device.reconnect(n(1)?),
            "trace_create" => device.trace_create(),
            "trace_follow" => device.trace_follow(),
            "trace_replay" | "trace_wait" => {
                let (_, loaded) = trace
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("{command} needs PATH EDITS"))?;
                if command == "trace_replay" {
                    device.trace_replay(loaded)
                } else {
                    device.trace_wait(loaded)
                }
            }
            other => Err(anyhow::anyhow!("unknown command {other}")),
        };
        let end_ns = monotonic_ns();
        let (rss, peak) = own_rss_kib();
        let mut answer = match result {
            Ok(()) => json!({
                "secs": (end_ns - start_ns) as f64 / 1e9,
                "start_ns": start_ns,
                "end_ns": end_ns,
                "rss_kib": rss,
                "peak_rss_kib": peak,
            }),
            Err(e) => json!({ "error": format!("{command}: {e:#}") }),
        };
        if let (Value::Object(answer), Value::Object(extra)) = (&mut answer, extra) {
            answer.extend(extra);
        }
        println!("{answer}");
    }
    Ok(())
}

/// Writes the ids file.
pub fn write_ids(path: &std::path::Path, ids: &[String]) -> anyhow::Result<()> {
    std::fs::write(path, ids.join("\n"))?;
    Ok(())
}

/// Reads the ids file.
pub fn read_ids(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}
