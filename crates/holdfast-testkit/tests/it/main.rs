//! Every fuzz target on stable Rust: the committed corpus and crash inputs replayed, then
//! seeded random inputs for a time budget.
//!
//! `HOLDFAST_FUZZ_BUDGET_MS` (default 1,500) is the random-input budget per target;
//! `HOLDFAST_FUZZ_SEED` replays one seed; `HOLDFAST_FUZZ_TARGET` runs the random inputs of
//! one target only. Crash inputs live in `fuzz/artifacts/TARGET/`
//! and must pass once fixed; the canary's must keep failing.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use holdfast_testkit::alloc::{is_tracking, Tracking};
use holdfast_testkit::{Target, TARGETS};

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted.
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Runs `target` on `input`; the panic message if it failed.
fn run(target: Target, input: &[u8]) -> Option<String> {
    let result = catch_unwind(AssertUnwindSafe(|| target(input)));
    result.err().map(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    })
}

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Random bytes, sometimes starting from a corpus input with a few bytes changed.
    fn input(&mut self, corpus: &[(PathBuf, Vec<u8>)]) -> Vec<u8> {
        let mut bytes = match corpus.len() {
            n if n > 0 && self.next().is_multiple_of(2) => {
                corpus[(self.next() % n as u64) as usize].1.clone()
            }
            _ => {
                let len = (self.next() % 512) as usize;
                (0..len).map(|_| self.next() as u8).collect()
            }
        };
        for _ in 0..self.next() % 4 {
            if !bytes.is_empty() {
                let at = (self.next() % bytes.len() as u64) as usize;
                bytes[at] = self.next() as u8;
            }
        }
        bytes
    }
}

fn seed() -> u64 {
    std::env::var("HOLDFAST_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

fn budget() -> Duration {
    let ms = std::env::var("HOLDFAST_FUZZ_BUDGET_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_500);
    Duration::from_millis(ms)
}

#[test]
fn the_allocator_counts() {
    assert!(
        is_tracking(),
        "the memory bounds are only checked with Tracking installed"
    );
}

#[test]
fn committed_corpus_and_crash_inputs_pass() {
    for &(name, target) in TARGETS {
        let corpus = inputs("corpus", name);
        let crashes = inputs("artifacts", name);
        for (path, bytes) in corpus.iter().chain(&crashes) {
            let failure = run(target, bytes);
            if name == "canary" && path.starts_with(fuzz_dir().join("artifacts")) {
                assert!(
                    failure.is_some(),
                    "the canary must fail on {}",
                    path.display()
                );
            } else if let Some(message) = failure {
                panic!("{name} fails on {}: {message}", path.display());
            }
        }
        println!(
            "{name}: {} corpus and {} crash inputs replayed",
            corpus.len(),
            crashes.len()
        );
    }
}

#[test]
fn the_harness_reports_a_failing_target() {
    let crashes = inputs("artifacts", "canary");
    assert!(!crashes.is_empty(), "the canary's crash input is committed");
    let canary = TARGETS.iter().find(|(n, _)| *n == "canary").unwrap().1;
    assert!(run(canary, &crashes[0].1).is_some());
    assert!(run(canary, b"anything else").is_none());
}

#[test]
fn every_target_holds_on_seeded_random_inputs() {
    let seed = seed();
    println!("seed {seed} (replay: HOLDFAST_FUZZ_SEED={seed})");
    let only = std::env::var("HOLDFAST_FUZZ_TARGET").ok();
    let chosen = TARGETS
        .iter()
        .filter(|(n, _)| *n != "canary" && only.as_deref().is_none_or(|o| o == *n));
    for &(name, target) in chosen {
        let corpus = inputs("corpus", name);
        let mut rng = Rng(seed ^ name.len() as u64);
        let started = Instant::now();
        let mut runs = 0u64;
        while started.elapsed() < budget() {
            let input = rng.input(&corpus);
            if let Some(message) = run(target, &input) {
                panic!("{name} fails (seed {seed}, run {runs}) on {input:?}: {message}");
            }
            runs += 1;
        }
        println!("{name}: {runs} random inputs");
    }
}

#[test]
fn every_stored_format_reads_a_valid_value_back_as_written() {
    holdfast_testkit::stored::valid_values_read_back();
}

#[test]
fn the_stored_formats_seed_corpus_is_committed_and_current() {
    let corpus = inputs("corpus", "stored_record_decode");
    for (name, input) in holdfast_testkit::stored::seed_inputs() {
        let found = corpus.iter().find(|(p, _)| p.ends_with(&name));
        assert_eq!(
            found.map(|(_, b)| b),
            Some(&input),
            "fuzz/corpus/stored_record_decode/{name} is missing or stale: \
             run `cargo run -p holdfast-testkit --example seed_stored`"
        );
    }
}

/// Automerge 0.12 panics loading this damaged document (hexane 1.0.0-alpha.5, lib.rs:354;
/// report for upstream: `docs/upstream/automerge-load-panics.md`) and, before failing,
/// held 79 MB for its 146 bytes. Both sides now refuse it before Automerge parses it
/// (`holdfast_protocol::chunks`), in memory bounded by its length; the stable fuzz test
/// replays it from `artifacts/` with the target's memory bound.
#[test]
fn a_document_automerge_panics_on_is_reported_as_corrupt() {
    let input =
        std::fs::read(fuzz_dir().join("artifacts/stored_record_decode/automerge-load-panics"))
            .unwrap();
    let (relay, relay_peak) = holdfast_testkit::alloc::peak_during(|| {
        holdfast_relay::stored_rows::decode("snapshot", &input[1..])
    });
    assert!(
        matches!(relay, Err(holdfast_relay::StoreError::Corrupt(_))),
        "{relay:?}"
    );
    let mut device = (input.len() as u32 - 2).to_le_bytes().to_vec();
    device.extend_from_slice(&input[2..]);
    let (device, device_peak) =
        holdfast_testkit::alloc::peak_during(|| holdfast::stored_rows::decode("document", &device));
    assert!(
        matches!(device, Err(holdfast::Error::Corrupt(_))),
        "{device:?}"
    );
    if holdfast_testkit::alloc::is_tracking() {
        assert!(
            relay_peak.max(device_peak) < 64 << 10,
            "held {relay_peak} bytes (relay), {device_peak} (device)"
        );
    }
}
