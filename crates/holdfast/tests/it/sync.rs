//! End-to-end sync: real `holdfast-relay` processes on 127.0.0.1, real stores on disk, the
//! sync worker in between (sometimes through a TCP proxy that cuts connections, sometimes
//! in a child process killed with SIGKILL).

mod blocked;
mod caught_up;
mod conflicts;
mod controls;
mod crash_loops;
mod harness;
mod outages;
mod partial;
mod rate_limit;
mod restore;
mod stalls;
mod trace;
mod upload;
