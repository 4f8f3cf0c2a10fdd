//! Integration tests of the device store: real redb files in temporary directories, and
//! real child processes for the crash tests.

mod api;
mod bad_input;
mod bundle;
mod conflict_history;
mod crash;
mod damage;
mod disk_failure;
mod durability;
mod inbox;
mod merge;
mod outbox;
mod read;
#[cfg(feature = "sync")]
mod sync;
mod util;
