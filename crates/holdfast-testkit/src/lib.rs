//! Holdfast's fuzz target bodies, the generators and models they check against, and a
//! memory-tracking allocator.
//!
//! Each target is a plain function of a byte slice, so the same body runs under libFuzzer
//! (the binaries in `fuzz/`, on a nightly toolchain) and on stable Rust in CI, where
//! `tests/it` replays the committed corpus and crash inputs of every target and then feeds
//! it seeded random inputs for a time budget. A target panics when a property fails; the
//! properties compare the code against something independent of it (a value built by a
//! generator, a rule of the protocol), never against its own output alone.

#![warn(missing_docs)]

pub mod alloc;
pub mod disk;
pub mod gen;
pub mod merge;
pub mod store_ops;
pub mod stored;
pub mod targets;

/// A fuzz target: checks its properties on one input, panicking when one fails.
pub type Target = fn(&[u8]);

/// Every target by the name of its `fuzz/` binary and corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("frame_decode", targets::frame_decode),
    ("relay_session", targets::relay_session),
    ("bundle_decode", targets::bundle_decode),
    ("stored_record_decode", stored::stored_record_decode),
    ("merge_convergence", merge::merge_convergence),
    ("store_ops", store_ops::store_ops),
    ("canary", targets::canary),
];
