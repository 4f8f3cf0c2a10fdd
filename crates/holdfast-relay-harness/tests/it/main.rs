//! The relay binary as the harness runs it: its readiness line, read from a real process.

mod listening;
