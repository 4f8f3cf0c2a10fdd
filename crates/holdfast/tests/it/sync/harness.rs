//! Runs the real relay binary in a temporary directory, mints tokens with its `token`
//! subcommand, reads its `/metrics`, and proxies TCP to it with connections the test can
//! cut. Every wait has a timeout, so a hang fails the test instead of blocking it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use holdfast::{RecordId, SpaceId, Store, SyncConfig, SyncReport};

use crate::util::{self, space};

/// How long any one wait may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The relay binary, next to this test executable's target directory; built once if
/// missing (`cargo test --workspace` builds it).
pub fn relay_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/it-HASH → target/debug/holdfast-relay
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join(format!("holdfast-relay{}", std::env::consts::EXE_SUFFIX));
    BUILD.call_once(|| {
        if !bin.exists() {
            eprintln!(
                "{} is missing: running `cargo build -p holdfast-relay` once",
                bin.display()
            );
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "holdfast-relay"])
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the relay failed");
        }
    });
    assert!(bin.exists(), "no relay binary at {}", bin.display());
    bin
}

/// A relay process serving from its own directory.
pub struct Relay {
    pub dir: tempfile::TempDir,
    child: Child,
    pub ws: SocketAddr,
    pub http: SocketAddr,
}

impl Relay {
    pub fn start() -> Relay {
        Relay::start_in(tempfile::tempdir().unwrap(), "127.0.0.1:0")
    }

    /// Starts `holdfast-relay serve` in `dir` (its data and secret stay there), listening
    /// for devices on `listen`, and waits for its readiness line.
    pub fn start_in(dir: tempfile::TempDir, listen: &str) -> Relay {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("relay.log"))
            .unwrap();
        let mut child = Command::new(relay_bin())
            .args(["serve", "--listen", listen, "--http", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env("RUST_LOG", "holdfast_relay=info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the relay starts");
        let stdout = child.stdout.take().unwrap();
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
                let log = std::fs::read_to_string(dir.path().join("relay.log")).unwrap();
                panic!("the relay did not start ({other:?}):\n{log}");
            }
        };
        let addr = |key: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
                .parse()
                .unwrap()
        };
        Relay {
            ws: addr("ws="),
            http: addr("http="),
            dir,
            child,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.ws)
    }

    /// A token from the `token` subcommand, for grants like `team:write`.
    pub fn token(&self, grants: &[&str]) -> String {
        let mut args = vec!["token", "--ttl", "1h", "--subject", "test"];
        for grant in grants {
            args.extend(["--space", grant]);
        }
        let out = Command::new(relay_bin())
            .args(&args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// `holdfast_relay_push_entries_total{outcome=...}` from `/metrics`.
    pub fn push_entries(&self, outcome: &str) -> u64 {
        let metrics = http_get(self.http, "/metrics");
        let key = format!("holdfast_relay_push_entries_total{{outcome=\"{outcome}\"}}");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
    }

    /// SIGTERM, then waits for the exit; returns the directory for a restart.
    pub fn stop(mut self) -> tempfile::TempDir {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let started = Instant::now();
        loop {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(started.elapsed() < TIMEOUT, "the relay did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// `holdfast-relay rotate-epoch --data FILE` (the relay must be stopped).
    pub fn rotate_epoch(dir: &Path) {
        let out = Command::new(relay_bin())
            .args(["rotate-epoch", "--data", "holdfast-relay.redb"])
            .current_dir(dir)
            .output()
            .unwrap();
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
    let mut tcp = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(tcp, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut body = String::new();
    tcp.read_to_string(&mut body).unwrap();
    body
}

/// A free loopback port (bound, then released).
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A TCP proxy to the relay whose connections the test cuts, by hand or after a
/// connection has carried `cut_after_bytes` from the device.
pub struct Proxy {
    pub addr: SocketAddr,
    live: Arc<Mutex<Vec<TcpStream>>>,
    cut_after_bytes: Arc<AtomicUsize>,
    pub cuts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn new(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = Proxy {
            addr,
            live: Arc::default(),
            cut_after_bytes: Arc::new(AtomicUsize::new(usize::MAX)),
            cuts: Arc::default(),
            stop: Arc::default(),
        };
        let (live, limit, cuts, stop) = (
            proxy.live.clone(),
            proxy.cut_after_bytes.clone(),
            proxy.cuts.clone(),
            proxy.stop.clone(),
        );
        std::thread::spawn(move || {
            for device in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(device) = device else { continue };
                let Ok(relay) = TcpStream::connect(target) else {
                    continue;
                };
                device.set_nodelay(true).ok();
                relay.set_nodelay(true).ok();
                {
                    let mut live = live.lock().unwrap();
                    live.push(device.try_clone().unwrap());
                    live.push(relay.try_clone().unwrap());
                }
                let (d2, r2) = (device.try_clone().unwrap(), relay.try_clone().unwrap());
                let (limit, cuts) = (limit.clone(), cuts.clone());
                std::thread::spawn(move || pipe(device, relay, Some((limit, cuts))));
                std::thread::spawn(move || pipe(r2, d2, None));
            }
        });
        proxy
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Cuts every open connection, as a network that drops.
    pub fn cut(&self) {
        let live = std::mem::take(&mut *self.live.lock().unwrap());
        for s in live {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.cuts.fetch_add(1, Ordering::Relaxed);
    }

    /// From now on, a connection is cut once the device sent more than `bytes` on it
    /// (after forwarding them: the relay gets them, its answer is lost).
    pub fn cut_after(&self, bytes: usize) {
        self.cut_after_bytes.store(bytes, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
        self.cut();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, cut: Option<(Arc<AtomicUsize>, Arc<AtomicUsize>)>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut carried = 0usize;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        carried += n;
        if let Some((limit, cuts)) = &cut {
            if carried > limit.load(Ordering::Relaxed) {
                cuts.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Fast reconnects for tests.
pub fn config(url: &str, token: &str, spaces: &[&str]) -> SyncConfig {
    let mut config = SyncConfig::new(url, token, spaces.iter().map(|s| space(s)).collect())
        .reconnect_delays(Duration::from_millis(20), Duration::from_millis(300));
    config.connect_timeout = Duration::from_secs(5);
    config
}

/// `sync_once` that must complete.
pub fn sync_once(store: &Store, config: SyncConfig) -> SyncReport {
    let report = store
        .sync_once(config, Instant::now() + TIMEOUT)
        .expect("sync_once starts");
    assert!(report.complete, "sync_once did not complete: {report:?}");
    report
}

/// Creates `n` notes in `space_name` titled `{prefix}-{i}`, `per_write` per write.
pub fn write_notes(
    store: &Store,
    space_name: &str,
    prefix: &str,
    n: usize,
    per_write: usize,
) -> Vec<RecordId> {
    let sp = space(space_name);
    let mut ids = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let end = (i + per_write).min(n);
        let batch = store
            .write(|tx| {
                (i..end)
                    .map(|k| {
                        let id = tx.create("note", &sp)?;
                        tx.set(id, "title", format!("{prefix}-{k}").as_str())?;
                        Ok(id)
                    })
                    .collect::<holdfast::Result<Vec<_>>>()
            })
            .unwrap();
        ids.extend(batch);
        i = end;
    }
    ids
}

/// The titles of every live note of `space_name`, sorted.
pub fn titles(store: &Store, space_name: &str) -> Vec<String> {
    let sp: SpaceId = space(space_name);
    let mut out: Vec<String> = store
        .all("note")
        .unwrap()
        .into_iter()
        .filter_map(|id| {
            let record = store.get(id).ok()?;
            if record.space != sp {
                return None;
            }
            match record.get("title").ok()? {
                Some(holdfast::Value::String(s)) => Some(s.clone()),
                _ => None,
            }
        })
        .collect();
    out.sort();
    out
}

pub fn open_store() -> util::TestStore {
    util::open()
}
