//! A real `holdfast-relay` process for tests and benchmarks, driven through its command
//! line: started on free loopback ports in a directory of its own, waited for through its
//! readiness line, given tokens by its `token` subcommand, read through `/metrics`,
//! stopped with SIGTERM, and restored with `rotate-epoch`. Every wait has a timeout, so a
//! hang fails instead of blocking; failures panic, as test helpers do.

#![warn(missing_docs)]

#[cfg(test)]
mod tests;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// How long any one wait may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The relay binary in the target directory of the running executable (a test in
/// `target/PROFILE/deps/`, or a binary in `target/PROFILE/`), built by cargo first when it
/// is missing or stale: older than a source file its dep-info (`holdfast-relay.d`, which
/// cargo writes beside it) lists, or built from a file since removed. `cargo test -p X`
/// and `cargo bench` do not build other crates' binaries, so without this a test would
/// run a relay built before the latest edit. Panics, naming the newer file, if the binary
/// is still stale after the build.
pub fn relay_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    let exe = std::env::current_exe().expect("the running executable");
    let mut dir = exe.parent().expect("a directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(format!("holdfast-relay{}", std::env::consts::EXE_SUFFIX));
    BUILD.call_once(|| {
        let Some(why) = staleness(&bin) else {
            return;
        };
        let release = dir.ends_with("release");
        eprintln!(
            "{why}: running `cargo build{} -p holdfast-relay`",
            if release { " --release" } else { "" }
        );
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "holdfast-relay"]);
        if release {
            build.arg("--release");
        }
        assert!(
            build.status().expect("cargo runs").success(),
            "building the relay failed"
        );
        match staleness(&bin) {
            None | Some(Staleness::NoDepInfo(_)) => {}
            Some(why) => panic!("{why}, even after `cargo build`: refusing to test stale code"),
        }
    });
    assert!(bin.exists(), "no relay binary at {}", bin.display());
    bin
}

/// Why a built relay binary cannot be trusted to match its sources.
#[derive(Debug, PartialEq)]
enum Staleness {
    /// There is no binary.
    Missing(PathBuf),
    /// There is no dep-info beside it, so its sources are unknown.
    NoDepInfo(PathBuf),
    /// A source file changed after the binary was built.
    Newer { bin: PathBuf, source: PathBuf },
    /// A source file the binary was built from is gone.
    Gone { bin: PathBuf, source: PathBuf },
}

impl std::fmt::Display for Staleness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Staleness::Missing(bin) => write!(f, "{} is missing", bin.display()),
            Staleness::NoDepInfo(d) => write!(f, "{} is missing", d.display()),
            Staleness::Newer { bin, source } => write!(
                f,
                "{} is stale: {} changed after it was built",
                bin.display(),
                source.display()
            ),
            Staleness::Gone { bin, source } => write!(
                f,
                "{} is stale: it was built from {}, which is gone",
                bin.display(),
                source.display()
            ),
        }
    }
}

/// `None` when `bin` is at least as new as every source its dep-info names.
fn staleness(bin: &Path) -> Option<Staleness> {
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else {
        return Some(Staleness::Missing(bin.to_path_buf()));
    };
    let dep_info = bin.with_file_name("holdfast-relay.d");
    let Ok(text) = std::fs::read_to_string(&dep_info) else {
        return Some(Staleness::NoDepInfo(dep_info));
    };
    for source in dep_info_sources(&text) {
        let Ok(modified) = std::fs::metadata(&source).and_then(|m| m.modified()) else {
            return Some(Staleness::Gone {
                bin: bin.to_path_buf(),
                source,
            });
        };
        if modified > built {
            return Some(Staleness::Newer {
                bin: bin.to_path_buf(),
                source,
            });
        }
    }
    None
}

/// The prerequisites of a Makefile-style dep-info file (`target: a.rs b\ c.rs`), whose
/// paths escape spaces with a backslash.
fn dep_info_sources(text: &str) -> Vec<PathBuf> {
    let mut sources = Vec::new();
    for line in text.lines() {
        // The target ends at the first ": " (a Windows path has a colon of its own).
        let Some((_, deps)) = line.split_once(": ") else {
            continue;
        };
        let mut path = String::new();
        let mut chars = deps.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => path.extend(chars.next()),
                ' ' if !path.is_empty() => sources.push(PathBuf::from(std::mem::take(&mut path))),
                ' ' => {}
                c => path.push(c),
            }
        }
        if !path.is_empty() {
            sources.push(PathBuf::from(path));
        }
    }
    sources
}

/// The sync and operations addresses of the relay's readiness line, "listening on
/// ws://ADDR/ (sync) and http://ADDR/ (health, metrics)" (`wss://` with TLS).
pub fn listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.strip_prefix("listening on ")?;
    let url = |word: &str, schemes: &[&str]| -> Option<SocketAddr> {
        let (scheme, addr) = word.split_once("://")?;
        schemes.contains(&scheme).then_some(())?;
        addr.strip_suffix('/')?.parse().ok()
    };
    let mut words = rest.split_whitespace();
    let ws = url(words.next()?, &["ws", "wss"])?;
    let http = words.find_map(|w| url(w, &["http"]))?;
    Some((ws, http))
}

/// A relay process serving from its own directory; killed when dropped.
pub struct Relay {
    /// Its directory: database, secret file and `relay.log`.
    pub dir: tempfile::TempDir,
    child: Child,
    /// Where devices connect.
    pub ws: SocketAddr,
    /// Where `/healthz` and `/metrics` are served.
    pub http: SocketAddr,
}

impl Relay {
    /// Starts a relay in a new directory, on free ports.
    pub fn start() -> Relay {
        Relay::start_in(tempfile::tempdir().expect("a temporary directory"), &[])
    }

    /// Starts `holdfast-relay serve` in `dir` (its data and secret stay there) on free
    /// loopback ports (unless `args` name `--listen` or `--http`), with `args` added, and
    /// waits for its readiness line.
    pub fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Relay {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("relay.log"))
            .expect("the relay's log file");
        let mut command = Command::new(relay_bin());
        command.arg("serve");
        for (flag, default) in [("--listen", "127.0.0.1:0"), ("--http", "127.0.0.1:0")] {
            if !args.contains(&flag) {
                command.args([flag, default]);
            }
        }
        let mut child = command
            .args(args)
            .current_dir(dir.path())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "holdfast_relay=info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the relay starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep reading so the relay never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            other => {
                let log = std::fs::read_to_string(dir.path().join("relay.log")).unwrap_or_default();
                panic!("the relay did not start ({other:?}):\n{log}");
            }
        };
        let Some((ws, http)) = listening(&line) else {
            panic!("not a readiness line: {line:?}");
        };
        Relay {
            ws,
            http,
            dir,
            child,
        }
    }

    /// The URL devices sync with.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.ws)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A token from the `token` subcommand, for grants like `team:write`, valid an hour.
    pub fn token(&self, grants: &[&str]) -> String {
        let mut args = vec!["token", "--ttl", "1h", "--subject", "test"];
        for grant in grants {
            args.extend(["--space", grant]);
        }
        let out = Command::new(relay_bin())
            .args(&args)
            .current_dir(self.dir.path())
            .output()
            .expect("the token subcommand runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("a token is text")
            .trim()
            .to_owned()
    }

    /// The sum of the samples of `name` in `/metrics` (any labels), e.g.
    /// `holdfast_relay_wire_bytes_sent_total`.
    pub fn metric(&self, name: &str) -> f64 {
        http_get(self.http, "/metrics")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// `holdfast_relay_push_entries_total{outcome=...}` from `/metrics`.
    pub fn push_entries(&self, outcome: &str) -> u64 {
        let key = format!("holdfast_relay_push_entries_total{{outcome=\"{outcome}\"}}");
        http_get(self.http, "/metrics")
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .map_or(0, |v| v.trim().parse::<f64>().expect("a number") as u64)
    }

    /// The relay's resident set, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the relay's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS")
    }

    /// Stops the relay with SIGSTOP, as a relay that hangs: it neither reads nor answers,
    /// and the sockets to it fill. Thawed (SIGCONT) when the guard is dropped, so a failing
    /// test leaves no frozen process behind.
    pub fn freeze(&self) -> Frozen {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(
            unsafe { libc::kill(pid, libc::SIGSTOP) },
            0,
            "SIGSTOP {pid}"
        );
        Frozen(pid)
    }

    /// SIGTERM, then waits for the exit; returns the directory for a restart.
    pub fn stop(mut self) -> tempfile::TempDir {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let started = Instant::now();
        while self.child.try_wait().expect("the relay's status").is_none() {
            assert!(started.elapsed() < TIMEOUT, "the relay did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::mem::replace(
            &mut self.dir,
            tempfile::tempdir().expect("a temporary directory"),
        )
    }

    /// SIGKILL, as a crash: no draining, no clean close. Returns the directory for a restart.
    pub fn kill(mut self) -> tempfile::TempDir {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the relay's status");
        std::mem::replace(
            &mut self.dir,
            tempfile::tempdir().expect("a temporary directory"),
        )
    }

    /// `holdfast-relay rotate-epoch` on the database in `dir` (the relay must be stopped).
    pub fn rotate_epoch(dir: &Path) {
        let out = Command::new(relay_bin())
            .args(["rotate-epoch", "--data", "holdfast-relay.redb"])
            .current_dir(dir)
            .output()
            .expect("rotate-epoch runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut tcp = TcpStream::connect_timeout(&addr, TIMEOUT).expect("the relay's HTTP port");
    tcp.set_read_timeout(Some(TIMEOUT)).expect("a timeout");
    write!(tcp, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("a request");
    let mut body = String::new();
    tcp.read_to_string(&mut body).expect("a response");
    body
}

/// A relay stopped by [`Relay::freeze`]; dropping it lets the relay run again.
#[must_use = "the relay runs again as soon as this is dropped"]
pub struct Frozen(libc::pid_t);

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions. It fails only if the relay is
        // gone already (a failing test may have ended it), which leaves nothing to thaw.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// `len` characters no compressor shrinks much (seeded, so every run is the same): data
/// that fills socket buffers as its size says, compressed or not.
pub fn incompressible(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % 64) as usize] as char
        })
        .collect()
}
