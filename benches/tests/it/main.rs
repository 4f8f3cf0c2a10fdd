//! The benches crate's integration tests: the `compare` binary's smoke run.

mod compare;
