//! Seeded mutation of valid frames: whatever the bytes, `decode` returns, and never panics.

use std::panic;

use super::*;

#[test]
fn mutated_frames_never_panic() {
    let seed = seed();
    let iterations = env_usize("HOLDFAST_MUTATIONS").unwrap_or(4000);
    let mut rng = Rng::new(seed);
    let corpus = corpus();

    for iteration in 0..iterations {
        let bytes = mutant(&mut rng, &corpus);
        let outcome = panic::catch_unwind(|| check(&bytes));
        if outcome.is_err() {
            panic!(
                "HOLDFAST_SEED={seed}: iteration {iteration} panicked on {} bytes: {}",
                bytes.len(),
                hex(&bytes)
            );
        }
    }
}

/// Whatever decodes is a frame this crate can send again as it is.
fn check(bytes: &[u8]) {
    if let Ok(frame) = decode(bytes) {
        let again = encode(&frame).expect("a decoded frame encodes");
        assert_eq!(decode(&again).expect("a re-encoded frame decodes"), frame);
    }
}

/// Every sample frame, plain and compressed.
fn corpus() -> Vec<Vec<u8>> {
    let frames = sample_frames();
    let compressed = frames.iter().map(|frame| padded(frame.clone(), 2048));
    frames
        .iter()
        .cloned()
        .chain(compressed)
        .map(|frame| encode(&frame).unwrap())
        .collect()
}

fn mutant(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = corpus[rng.below(corpus.len())].clone();
    // Mutating a compressed body mostly tests zstd; often mutate what it inflates to instead.
    let inflated = bytes[1] == FLAG_COMPRESSED && rng.below(2) == 0;
    if inflated {
        bytes = [
            &bytes[..HEADER_BYTES],
            &decompress(&bytes[HEADER_BYTES..]).unwrap(),
        ]
        .concat();
    }
    for _ in 0..=rng.below(3) {
        mutate(rng, &mut bytes, corpus);
    }
    if inflated && bytes.len() > HEADER_BYTES {
        let packed = zstd::bulk::compress(&bytes[HEADER_BYTES..], 1).unwrap();
        bytes.truncate(HEADER_BYTES);
        bytes.extend_from_slice(&packed);
    }
    bytes
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    if bytes.is_empty() {
        let len = 1 + rng.below(8);
        bytes.extend(rng.bytes(len));
        return;
    }
    let at = rng.below(bytes.len());
    match rng.below(7) {
        0 => bytes[at] ^= 1 << rng.below(8),
        1 => bytes[at] = [0, 1, 0x7f, 0x80, 0xfb, 0xfc, 0xfd, 0xff][rng.below(8)],
        2 => bytes.truncate(at),
        3 => {
            let end = (at + 1 + rng.below(16)).min(bytes.len());
            bytes.drain(at..end);
        }
        4 => {
            let len = 1 + rng.below(16);
            let insert = rng.bytes(len);
            bytes.splice(at..at, insert);
        }
        5 => {
            // Splice in the tail of another frame, which is valid bytes in the wrong place.
            let other = &corpus[rng.below(corpus.len())];
            let from = rng.below(other.len());
            bytes.truncate(at);
            bytes.extend_from_slice(&other[from..]);
        }
        _ => {
            let end = (at + 1 + rng.below(16)).min(bytes.len());
            let copy = bytes[at..end].to_vec();
            bytes.splice(at..at, copy);
        }
    }
}

/// The seed from `HOLDFAST_SEED`, or one from the clock; printed so a failure can be replayed.
fn seed() -> u64 {
    let seed = env_usize("HOLDFAST_SEED")
        .map(|seed| seed as u64)
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map_or(0, |now| now.as_nanos() as u64)
        });
    eprintln!("HOLDFAST_SEED={seed}");
    seed
}

fn env_usize(name: &str) -> Option<usize> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
