//! The simulation's seeds: 500 by default, 10,000 with `RUN_SLOW_TESTS=1`, one with
//! `HOLDFAST_SIM_SEED=<seed>`. Seeds run on every core; each failure prints its seed and
//! the command that replays it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use holdfast_sim::{replay_command, run, run_with, Sabotage};

/// Seeds run by default.
const SEEDS: u64 = 500;
/// Seeds run with `RUN_SLOW_TESTS=1`.
const SEEDS_SLOW: u64 = 10_000;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

#[test]
fn seeds() {
    if let Some(seed) = env_u64("HOLDFAST_SIM_SEED") {
        eprintln!("replaying seed {seed}");
        match run(seed) {
            Ok(stats) => eprintln!("seed {seed} passed: {stats:?}"),
            Err(failure) => panic!("{failure}"),
        }
        return;
    }
    let slow = std::env::var("RUN_SLOW_TESTS").is_ok_and(|v| v == "1");
    let count = env_u64("HOLDFAST_SIM_SEEDS").unwrap_or(if slow { SEEDS_SLOW } else { SEEDS });
    let first = env_u64("HOLDFAST_SIM_SEED_FIRST").unwrap_or(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "simulating seeds {first}..{} on {threads} threads",
        first + count
    );
    let started = Instant::now();
    let next = AtomicU64::new(first);
    let failures = Mutex::new(Vec::new());
    let steps = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= first + count {
                    return;
                }
                match run(seed) {
                    Ok(stats) => {
                        steps.fetch_add(stats.steps, Ordering::Relaxed);
                    }
                    Err(failure) => {
                        eprintln!("{failure}");
                        failures.lock().unwrap().push(seed);
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    eprintln!(
        "{count} seeds in {:.1} s, {} steps, {} failed",
        started.elapsed().as_secs_f64(),
        steps.into_inner(),
        failures.len()
    );
    if !failures.is_empty() {
        let commands: Vec<String> = failures.iter().map(|s| replay_command(*s)).collect();
        panic!(
            "{} seeds failed: {failures:?}\nreplay each with:\n{}",
            failures.len(),
            commands.join("\n")
        );
    }
}

/// `HOLDFAST_SIM_COVERAGE=<n>`: runs seeds 0..n one by one and prints how often each
/// notable thing happened over all of them (a look at what the seeds reach).
#[test]
fn coverage() {
    let Some(n) = env_u64("HOLDFAST_SIM_COVERAGE") else {
        return;
    };
    let mut total: std::collections::BTreeMap<&str, u64> = Default::default();
    let mut seeds_with: std::collections::BTreeMap<&str, u64> = Default::default();
    for seed in 0..n {
        let stats = run(seed).unwrap_or_else(|f| panic!("{f}"));
        for (name, count) in &stats.coverage {
            *total.entry(name).or_default() += u64::from(*count);
            *seeds_with.entry(name).or_default() += 1;
        }
        for (name, count) in [
            ("kills", stats.kills),
            ("raw faults", stats.raw_faults),
            ("device crashes", stats.device_crashes),
            ("relay crashes", stats.relay_crashes),
            ("relay restores", stats.relay_restores),
            ("permanent stops", stats.permanent_stops),
            ("prunes", stats.prunes),
        ] {
            *total.entry(name).or_default() += u64::from(count);
            *seeds_with.entry(name).or_default() += u64::from(count > 0);
        }
    }
    for (name, count) in total {
        eprintln!("{name:>28}: {count:>6} in {:>4} seeds", seeds_with[name]);
    }
}

/// The checks catch a planted bug: a write that never reaches the relay, and a device
/// whose cursor moves past changes it did not apply. A repair (the relay restored from a
/// copy) legitimately gives the relay a discarded write's changes back, so a seed whose
/// run repaired may pass, and so may one where the sabotage never fired (device 0 got
/// every change of others in bootstrap pages, none live); six other seeds must fail.
#[test]
fn planted_bugs_are_caught() {
    for sabotage in [Sabotage::DiscardWrite, Sabotage::SkipApply] {
        let mut caught = 0;
        for seed in 0..40 {
            match run_with(seed, Some(sabotage)) {
                Ok(stats) if stats.coverage.contains_key("repair started") => {
                    eprintln!("{sabotage:?}, seed {seed}: passed after a repair");
                }
                Ok(stats) if !stats.coverage.contains_key("sabotaged") => {
                    eprintln!("{sabotage:?}, seed {seed}: passed, the sabotage never fired");
                }
                Ok(stats) => panic!("seed {seed} with {sabotage:?} passed: {stats:?}"),
                Err(failure) => {
                    eprintln!("{sabotage:?}, seed {seed}: {}", failure.reason);
                    caught += 1;
                    if caught == 6 {
                        break;
                    }
                }
            }
        }
        assert_eq!(caught, 6, "{sabotage:?} was caught on too few seeds");
    }
}

/// A seed replays the same schedule: the same choices at the same simulated times.
#[test]
fn a_seed_replays_its_schedule() {
    for seed in [3, 10] {
        let a = run(seed).expect("the seed passes");
        let b = run(seed).expect("the seed passes");
        assert_eq!(a.fingerprint, b.fingerprint, "seed {seed}: {a:?} vs {b:?}");
    }
}
