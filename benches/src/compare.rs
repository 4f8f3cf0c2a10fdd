//! Side by side (issue 6): Holdfast against samod 0.16 and automerge-repo 2.x (node), and
//! against the machine's own limits, every figure a ratio measured in the same run. The
//! `compare` binary is [`main`]; every device and server runs in a process of its own,
//! reached through a byte-counting proxy ([`proxy`]), so each one's bytes and peak RSS
//! are its own.
//!
//! - **Wire bytes**: what the proxy carries each way during a phase (WebSocket frames with
//!   their headers, TLS-free, TCP/IP headers not counted), read 300 ms after the phase so
//!   closing messages are in; the same proxy for every system.
//! - **Time**: each device child times its own command (`CLOCK_MONOTONIC`); live typing
//!   runs from A's first edit to B holding the trace's final text, on one clock.
//! - **Peak RSS**: `VmHWM` of each child and server process, reset (Linux `clear_refs`)
//!   when a phase starts, so it is that phase's peak; the cold open's is the whole
//!   child's.

pub mod baseline;
pub mod device;
pub mod local;
pub mod process;
pub mod proxy;
pub mod report;
pub mod samod_net;
pub mod sync;
pub mod systems;
pub mod trace;
mod workloads;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use report::Report;
use systems::System;

/// The `compare` command line.
#[derive(Parser, Debug)]
#[command(
    name = "compare",
    about = "Holdfast side by side with samod and automerge-repo, and the machine's limits",
    after_help = "The node peer needs `bash benches/compare/setup.sh` once; without it, it is skipped."
)]
pub struct Cli {
    #[command(subcommand)]
    child: Option<Child>,
    #[command(flatten)]
    options: Options,
}

#[derive(Subcommand, Debug)]
enum Child {
    /// The processes the comparison starts (not for people).
    #[command(hide = true)]
    Child {
        #[command(subcommand)]
        role: Role,
    },
}

#[derive(Subcommand, Debug)]
enum Role {
    /// A device of one system, driven over stdin.
    Device(device::DeviceArgs),
    /// The samod sync server.
    SamodServer {
        #[arg(long)]
        dir: PathBuf,
    },
    /// The bare WebSocket server of the baselines.
    WsServer,
    /// Open a store (or raw redb file) and read one record.
    ColdOpen {
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        raw: bool,
    },
}

/// What to run.
#[derive(Args, Debug, Clone)]
pub struct Options {
    /// A smoke run: small N, 20,000 trace edits, short fan-out, a 5,000-record cold open.
    #[arg(long)]
    pub quick: bool,
    /// Systems to run, comma-separated: holdfast, samod, node. Baselines always run.
    #[arg(long, value_delimiter = ',', default_values = ["holdfast", "samod", "node"])]
    pub only: Vec<String>,
    /// Workloads to run, comma-separated, 1 to 6.
    #[arg(long, value_delimiter = ',', default_values_t = [1u8, 2, 3, 4, 5, 6])]
    pub workloads: Vec<u8>,
    /// Record counts of workload 1 (default 1,000, 10,000, 50,000; quick: 200, 1,000).
    #[arg(long, value_delimiter = ',')]
    pub n: Option<Vec<usize>>,
    /// Longest any one phase may take, in seconds, before it is reported as not finished.
    #[arg(long)]
    pub time_limit: Option<u64>,
    /// Trace edits to replay in workload 3 (default all; quick: 20,000).
    #[arg(long)]
    pub edits: Option<usize>,
    /// The editing trace (default `../shared/data/editing-traces/automerge-paper.json.gz`).
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Records in the store of workload 6 (default 100,000; quick: 5,000).
    #[arg(long)]
    pub cold_records: Option<usize>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where the stores and servers keep their data (default: a temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Other builds of `compare` (built before a change, say; repeatable): workload 6 times
    /// their cold opens of the same file too, interleaved with this build's, for a
    /// before/after measured side by side.
    #[arg(long)]
    pub against: Vec<PathBuf>,
}

/// The sizes a run uses.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Workload 1's record counts.
    pub ns: Vec<usize>,
    /// Workload 2's N.
    pub reconnect_n: usize,
    /// Workload 2's changed records.
    pub changed: usize,
    /// Workload 3's edits.
    pub edits: usize,
    /// Workload 4's writes per kind.
    pub writes: usize,
    /// Workload 5's seconds.
    pub fanout_secs: u64,
    /// Workload 6's records.
    pub cold_records: usize,
    /// Per phase.
    pub limit: Duration,
}

impl Options {
    fn plan(&self) -> Plan {
        let quick = self.quick;
        Plan {
            ns: self.n.clone().unwrap_or_else(|| {
                if quick {
                    vec![200, 1_000]
                } else {
                    vec![1_000, 10_000, 50_000]
                }
            }),
            // Workload 2 at N = 10,000 (quick: 1,000, or the largest N given if smaller).
            reconnect_n: if quick {
                self.n
                    .as_ref()
                    .and_then(|ns| ns.iter().copied().max())
                    .map_or(1_000, |n| n.min(1_000))
            } else {
                10_000
            },
            changed: 10,
            edits: self
                .edits
                .unwrap_or(if quick { 20_000 } else { usize::MAX }),
            writes: if quick { 200 } else { 2_000 },
            fanout_secs: if quick { 2 } else { 10 },
            cold_records: self
                .cold_records
                .unwrap_or(if quick { 5_000 } else { 100_000 }),
            limit: Duration::from_secs(self.time_limit.unwrap_or(if quick { 60 } else { 300 })),
        }
    }

    fn systems(&self, report: &mut Report) -> Vec<System> {
        let mut systems = Vec::new();
        for name in &self.only {
            match name.as_str() {
                "holdfast" => systems.push(System::Holdfast),
                "samod" => systems.push(System::Samod),
                "node" | "automerge-repo" => match systems::node_missing() {
                    None => systems.push(System::Node),
                    Some(why) => report.note(format!("automerge-repo (node) skipped: {why}")),
                },
                other => report.note(format!("unknown system {other} ignored")),
            }
        }
        systems
    }
}

/// The `compare` binary.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.child {
        Some(Child::Child { role }) => match role {
            Role::Device(args) => device::run(args),
            Role::SamodServer { dir } => samod_net::serve(&dir),
            Role::WsServer => baseline::serve_ws(),
            Role::ColdOpen { db, raw } => local::cold_open(&db, raw),
        },
        None => workloads::run(cli.options),
    }
}
