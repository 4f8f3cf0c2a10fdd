//! A real `holdfast-relay` process for benchmarks: started on loopback in a directory of
//! its own, with tokens minted by its `token` subcommand and counters read from `/metrics`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running relay; killed when dropped.
pub struct Relay {
    child: Child,
    bin: PathBuf,
    dir: PathBuf,
    /// Its WebSocket address.
    pub ws: String,
    /// Its HTTP ops address.
    pub http: String,
}

impl Relay {
    /// The relay binary next to the running benchmark (`cargo build --release -p
    /// holdfast-relay` puts it there).
    pub fn binary() -> Result<PathBuf, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let bin = exe.with_file_name("holdfast-relay");
        if bin.exists() {
            Ok(bin)
        } else {
            Err(format!(
                "{} not found: build it with `cargo build --release -p holdfast-relay`",
                bin.display()
            ))
        }
    }

    /// Starts `bin serve` in `dir` on free loopback ports, with `args` added.
    pub fn start(bin: &Path, dir: &Path, args: &[&str]) -> Result<Relay, String> {
        let mut child = Command::new(bin)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let line = loop {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("listening ") => break line,
                Some(_) => {}
                None => return Err("the relay exited before listening".into()),
            }
        };
        // Keep draining stdout so the relay never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(key))
                .map(str::to_owned)
                .ok_or_else(|| format!("no {key} in {line:?}"))
        };
        Ok(Relay {
            ws: field("ws=")?,
            http: field("http=")?,
            child,
            bin: bin.to_owned(),
            dir: dir.to_owned(),
        })
    }

    /// The relay's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A token granting `spaces` (each `NAME:read` or `NAME:write`) for an hour.
    pub fn token(&self, spaces: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("token")
            .args(["--ttl", "1h"])
            .current_dir(&self.dir);
        for space in spaces {
            cmd.args(["--space", space]);
        }
        let out = cmd.output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The sum of every sample of metric `name` in `/metrics` (labels ignored).
    pub fn metric(&self, name: &str) -> Result<f64, String> {
        let mut stream = TcpStream::connect(&self.http).map_err(|e| e.to_string())?;
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.http
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut text = String::new();
        stream
            .read_to_string(&mut text)
            .map_err(|e| e.to_string())?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                let metric = l.split(['{', ' ']).next().unwrap_or_default();
                metric == name
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// The relay's resident set, in KiB.
    pub fn rss_kib(&self) -> Result<u64, String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .map_err(|e| e.to_string())?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| "no VmRSS".to_owned())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
