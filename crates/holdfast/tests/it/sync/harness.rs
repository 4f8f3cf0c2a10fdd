//! The real relay (a process, through `holdfast-relay-harness`), a TCP proxy to it whose
//! connections the test can cut, and sync helpers. Every wait has a timeout, so a hang
//! fails the test instead of blocking it.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use holdfast::{RecordId, SpaceId, Store, SyncConfig, SyncReport};

use crate::util::{self, space};

pub use holdfast_relay_harness::{Relay, TIMEOUT};

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
    /// Milliseconds each read from the relay waits before it is forwarded to the device.
    delay_to_device_ms: Arc<AtomicU64>,
    /// Bytes from the device a connection forwards before it stops reading.
    hold_after_bytes: Arc<AtomicUsize>,
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
            delay_to_device_ms: Arc::default(),
            hold_after_bytes: Arc::new(AtomicUsize::new(usize::MAX)),
        };
        let (live, limit, cuts, stop, delay, hold) = (
            proxy.live.clone(),
            proxy.cut_after_bytes.clone(),
            proxy.cuts.clone(),
            proxy.stop.clone(),
            proxy.delay_to_device_ms.clone(),
            proxy.hold_after_bytes.clone(),
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
                let (limit, cuts, delay) = (limit.clone(), cuts.clone(), delay.clone());
                let hold = hold.clone();
                // Set before the bytes that cross the cut limit reach the relay, so its
                // answer to them (an ack) never reaches the device, however the threads
                // are scheduled.
                let cutting = Arc::new(AtomicBool::new(false));
                let cut = Some((limit, cuts, cutting.clone()));
                std::thread::spawn(move || pipe(device, relay, cut, None, Some(hold), None));
                std::thread::spawn(move || pipe(r2, d2, None, Some(delay), None, Some(cutting)));
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

    /// From now on, what the relay sends reaches the device `delay` late (a slow link or a
    /// busy relay).
    pub fn delay_to_device(&self, delay: Duration) {
        self.delay_to_device_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// From now on, a connection stops reading from the device once it forwarded `bytes`
    /// from it, as a relay that stopped reading: the device's sends stall once the
    /// sockets' buffers are full. [`release`](Self::release) reads again.
    pub fn hold_after(&self, bytes: usize) {
        self.hold_after_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Connections held by [`hold_after`](Self::hold_after) read again.
    pub fn release(&self) {
        self.hold_after(usize::MAX);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.release();
        let _ = TcpStream::connect(self.addr);
        self.cut();
    }
}

fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    cut: Option<(Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<AtomicBool>)>,
    delay_ms: Option<Arc<AtomicU64>>,
    hold: Option<Arc<AtomicUsize>>,
    cutting: Option<Arc<AtomicBool>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut carried = 0usize;
    loop {
        let len = buf.len().min(room(hold.as_deref(), carried));
        let n = match from.read(&mut buf[..len]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(delay_ms) = &delay_ms {
            std::thread::sleep(Duration::from_millis(delay_ms.load(Ordering::Relaxed)));
        }
        if cutting.as_ref().is_some_and(|c| c.load(Ordering::SeqCst)) {
            break;
        }
        let crosses = cut
            .as_ref()
            .filter(|(limit, ..)| carried + n > limit.load(Ordering::Relaxed));
        if let Some((_, _, cutting)) = crosses {
            cutting.store(true, Ordering::SeqCst);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        carried += n;
        if let Some((_, cuts, _)) = crosses {
            cuts.fetch_add(1, Ordering::Relaxed);
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Waits until `hold` lets more than `carried` bytes through; returns how many more.
fn room(hold: Option<&AtomicUsize>, carried: usize) -> usize {
    let Some(hold) = hold else {
        return usize::MAX;
    };
    loop {
        let room = hold.load(Ordering::Relaxed).saturating_sub(carried);
        if room > 0 {
            return room;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
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
