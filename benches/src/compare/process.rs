//! Child processes and their memory: every device and server of the comparison runs in a
//! process of its own, so its peak RSS (`VmHWM`) is its own. A child reads one command per
//! line on stdin and answers each with one JSON object on a line of stdout.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use serde_json::Value;

/// A server child's side of [`Peer::listening`]: prints `{"listening": "ADDR"}`, then exits
/// the process once its parent closes stdin (or dies).
pub fn announce_listening(addr: std::net::SocketAddr) {
    println!("{}", serde_json::json!({ "listening": addr.to_string() }));
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        std::process::exit(0);
    });
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB; `None` once it is gone.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets a process's peak RSS to its current RSS (Linux: `5` to `/proc/PID/clear_refs`),
/// so the next `VmHWM` is the peak of what follows. False where the kernel refuses.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// This process's `(VmRSS, VmHWM)` in KiB.
pub fn own_rss_kib() -> (u64, u64) {
    rss_kib(std::process::id()).unwrap_or((0, 0))
}

/// `CLOCK_MONOTONIC` in nanoseconds: comparable between processes on one machine.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A child process speaking the line protocol; killed when dropped.
pub struct Peer {
    /// What it is, for messages.
    pub name: String,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

/// Why a call did not give an answer.
#[derive(Debug)]
pub enum CallError {
    /// No answer within the time limit (the child was killed).
    TimedOut(Duration),
    /// The child failed or answered with an error.
    Failed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::TimedOut(limit) => write!(f, "did not finish in {} s", limit.as_secs()),
            CallError::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

impl std::error::Error for CallError {}

impl Peer {
    /// Spawns `command` with piped stdin and stdout (stderr passes through).
    pub fn spawn(name: impl Into<String>, mut command: Command) -> anyhow::Result<Peer> {
        let name = name.into();
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| anyhow::anyhow!("{name} does not start: {e}"))?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Peer {
            name,
            child,
            stdin,
            lines,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one command line without waiting.
    pub fn send(&mut self, command: &str) -> Result<(), CallError> {
        writeln!(self.stdin, "{command}")
            .and_then(|_| self.stdin.flush())
            .map_err(|e| CallError::Failed(format!("{}: {e}", self.name)))
    }

    /// Waits for a server child's first answer, `{"listening": "127.0.0.1:PORT"}` (see
    /// [`announce_listening`]), and returns the address.
    pub fn listening(&mut self) -> anyhow::Result<std::net::SocketAddr> {
        let answer = self.recv(Duration::from_secs(60))?;
        Ok(answer
            .get("listening")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow::anyhow!("{}: no listening address", self.name))?
            .parse()?)
    }

    /// Waits for the next JSON answer; kills the child after `limit`.
    pub fn recv(&mut self, limit: Duration) -> Result<Value, CallError> {
        loop {
            match self.lines.recv_timeout(limit) {
                Ok(line) => {
                    let Ok(value) = serde_json::from_str::<Value>(&line) else {
                        // Not an answer (a library printing to stdout): pass it on.
                        eprintln!("[{}] {line}", self.name);
                        continue;
                    };
                    if let Some(error) = value.get("error").and_then(Value::as_str) {
                        return Err(CallError::Failed(format!("{}: {error}", self.name)));
                    }
                    return Ok(value);
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    return Err(CallError::TimedOut(limit));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    return Err(CallError::Failed(format!(
                        "{} exited ({status:?})",
                        self.name
                    )));
                }
            }
        }
    }

    /// Sends a command and waits for its answer.
    pub fn call(&mut self, command: &str, limit: Duration) -> Result<Value, CallError> {
        self.send(command)?;
        self.recv(limit)
    }

    /// `(VmRSS, VmHWM)` in KiB while it runs.
    pub fn rss_kib(&self) -> Option<(u64, u64)> {
        rss_kib(self.pid())
    }

    /// Kills the process and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A number from an answer (0 when absent).
pub fn num(value: &Value, key: &str) -> f64 {
    value.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}
