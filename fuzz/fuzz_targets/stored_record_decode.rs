//! `holdfast_testkit::stored::stored_record_decode` under libFuzzer; the body and its properties
//! are documented there, and `cargo test -p holdfast-testkit` runs it on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: holdfast_testkit::alloc::Tracking = holdfast_testkit::alloc::Tracking;

fuzz_target!(|data: &[u8]| holdfast_testkit::stored::stored_record_decode(data));
