//! The `notes` binary from the outside: its command line, and two real apps in
//! pseudo-terminals syncing through a real relay process.

mod cli;
mod pty;
mod two_devices;
