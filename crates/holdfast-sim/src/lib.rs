//! A deterministic simulation of Holdfast: several device stores and a relay, all real
//! code (`holdfast::Store` on redb files, `RedbLogStore`, the protocol's sessions), in one
//! thread, driven from one seed over simulated links that delay, kill, drop, duplicate
//! and reorder frames, with device and relay crashes, a relay restored from an old copy
//! of its file, and device clocks days apart.
//!
//! One run ([`run`]) draws its shape from the seed ([`params`]), storms, heals and
//! settles ([`sim`]), then checks the invariants ([`check`]): every device holds the
//! same records, field by field, conflicts included; every change a local write promised
//! is in the relay's log exactly once and on every device; no outbox entry is left. A
//! failing run names its seed; `HOLDFAST_SIM_SEED=<seed>` replays it (see the README).

pub mod check;
pub mod device;
pub mod model;
pub mod net;
pub mod ops;
pub mod params;
pub mod relay;
pub mod rng;
pub mod sim;
pub mod worker;

pub use sim::{Sabotage, Sim, Stats};

/// How a run failed: what broke, with the end of its trace.
#[derive(Debug)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// What broke.
    pub reason: String,
    /// The last lines of the trace.
    pub trace: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "seed {} failed: {}", self.seed, self.reason)?;
        writeln!(f, "replay: {}", replay_command(self.seed))?;
        writeln!(f, "last {} lines of the trace:", self.trace.len())?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// The one-line command that replays `seed` with its full trace.
pub fn replay_command(seed: u64) -> String {
    format!("HOLDFAST_SIM_SEED={seed} HOLDFAST_SIM_TRACE=1 cargo test -p holdfast-sim --test it -- --nocapture seeds")
}

/// Runs the simulation of `seed`.
pub fn run(seed: u64) -> Result<Stats, Failure> {
    run_with(seed, None)
}

/// Runs the simulation of `seed` with a planted bug, if any.
pub fn run_with(seed: u64, sabotage: Option<Sabotage>) -> Result<Stats, Failure> {
    let mut sim = Sim::new(seed).map_err(|reason| Failure {
        seed,
        reason,
        trace: Vec::new(),
    })?;
    if let Some(sabotage) = sabotage {
        sim.sabotage(sabotage);
    }
    // A panic in library code is a failure of this seed, reported with its trace.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run()));
    let reason = match result {
        Ok(Ok(stats)) => return Ok(stats),
        Ok(Err(reason)) => reason,
        Err(panic) => format!("panicked: {}", panic_message(&panic)),
    };
    Err(Failure {
        seed,
        reason,
        trace: sim.trace_tail(),
    })
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}
