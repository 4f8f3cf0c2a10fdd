//! A damaged store file: `status`, `records` and `check` say so in the same plain words and
//! exit 1, never with a panic's text, whatever bytes are damaged.

use std::path::Path;
use std::time::{Duration, Instant};

use holdfast::{SpaceId, Store};

use crate::util::Device;

/// Damaged copies the binary is run on, at most.
const MUTATIONS_MAX: usize = 200;
/// Seconds the loop may take.
const RUN_SECS: u64 = 5;

#[test]
fn status_and_records_of_a_damaged_store_answer_like_check() {
    let device = Device::new();
    fill(&device.db, 300);
    // The byte after the last table name, "records", is the first table definition's type
    // byte: redb 4.5 stops on it with `unreachable!()` (cberner/redb#1334), which these
    // commands printed as "internal error: entered unreachable code".
    let mut bytes = std::fs::read(&device.db).unwrap();
    let at: Vec<usize> = bytes
        .windows(8)
        .enumerate()
        .filter(|(_, w)| w.starts_with(b"records") && w[7] == 3)
        .map(|(i, _)| i + 7)
        .collect();
    assert!(!at.is_empty(), "the table tree names the records table");
    for i in at {
        bytes[i] = 0x77;
    }
    std::fs::write(&device.db, bytes).unwrap();

    for command in ["status", "records", "check"] {
        let message = device.run(&[command]).fails();
        assert!(
            message.starts_with("the file is damaged: ")
                && message.ends_with("; restore it from a backup, or let the relay repair it"),
            "{command}: {message}"
        );
        plain(command, &message);
    }
}

#[test]
fn damage_anywhere_is_reported_in_plain_words() {
    let mut rng = Rng::from_env("damage_anywhere_is_reported_in_plain_words");
    let device = Device::new();
    fill(&device.db, 40);
    let pristine = std::fs::read(&device.db).unwrap();
    let started = Instant::now();
    let (mut tried, mut failed) = (0, 0);
    while tried < MUTATIONS_MAX && started.elapsed() < Duration::from_secs(RUN_SECS) {
        tried += 1;
        let mut bytes = pristine.clone();
        let len = bytes.len() as u64;
        let at = rng.below(len) as usize;
        let end = (at + 1 + rng.below(256) as usize).min(bytes.len());
        let with = 1 + rng.below(255) as u8;
        bytes[at..end].iter_mut().for_each(|b| *b ^= with);
        std::fs::write(&device.db, &bytes).unwrap();
        for command in ["status", "records"] {
            let run = device.run(&[command]);
            if run.succeeded() {
                continue;
            }
            failed += 1;
            let what = format!("copy {tried}, bytes {at}..{end} xor {with:#04x}, {command}");
            plain(&what, &run.fails());
        }
    }
    eprintln!("{tried} damaged copies: {failed} refusals");
}

/// Writes `n` notes in space "team" into the store at `path`, through the library.
fn fill(path: &Path, n: usize) {
    let store = Store::open_existing(path).unwrap();
    let team = SpaceId::new("team").unwrap();
    for batch in 0..n / 10 {
        store
            .write(|tx| {
                for i in 0..10 {
                    let id = tx.create("note", &team)?;
                    let n = batch * 10 + i;
                    tx.set(id, "title", format!("note {n} ").repeat(1 + n % 40))?;
                    tx.set(id, "count", n as i64)?;
                }
                Ok(())
            })
            .unwrap();
    }
}

/// Asserts `message` carries no panic's words, nor the catch-all for one.
#[track_caller]
fn plain(what: &str, message: &str) {
    for bad in [
        "internal error",
        "unreachable",
        "panicked",
        "stopped unexpectedly",
    ] {
        assert!(!message.contains(bad), "{what}: {message}");
    }
}

/// splitmix64, seeded from `HOLDFAST_SEED` or the clock; the seed is printed.
struct Rng(u64);

impl Rng {
    fn from_env(test: &str) -> Rng {
        let seed = std::env::var("HOLDFAST_SEED")
            .map(|s| s.parse().expect("HOLDFAST_SEED is a u64"))
            .unwrap_or_else(|_| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: seed {seed} (replay with HOLDFAST_SEED={seed})");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}
