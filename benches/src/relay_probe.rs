//! What `relay_load` reads of a relay process from outside it: its resident set over time,
//! its CPU time, and its `/metrics` by label.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How often [`RssSampler`] reads the relay's resident set.
pub const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// How long one `/metrics` request may take.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads a process's resident set every [`RSS_SAMPLE_INTERVAL`] on a thread of its own
/// until [`finish`](Self::finish).
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<u64>>,
}

/// What an [`RssSampler`] saw, in KiB.
#[derive(Clone, Copy, Debug)]
pub struct RssSeen {
    /// The first sample.
    pub first_kib: u64,
    /// The largest sample.
    pub peak_kib: u64,
    /// The last sample.
    pub last_kib: u64,
    /// Samples taken.
    pub samples: usize,
}

impl RssSampler {
    /// Starts sampling process `pid`.
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid) {
                    samples.push(kib);
                }
                std::thread::sleep(RSS_SAMPLE_INTERVAL);
            }
            samples
        });
        RssSampler { stop, thread }
    }

    /// Stops sampling; `None` if no sample could be read (the process is gone).
    pub fn finish(self) -> Option<RssSeen> {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.thread.join().expect("the sampler thread panicked");
        Some(RssSeen {
            first_kib: *samples.first()?,
            peak_kib: *samples.iter().max()?,
            last_kib: *samples.last()?,
            samples: samples.len(),
        })
    }
}

/// The resident set of process `pid` in KiB, or `None` if it cannot be read.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// CPU time (user and system) process `pid` has used so far, or `None` if it cannot be
/// read; `pid` 0 means this process.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    match pid {
        0 => stat_cpu_time("/proc/self/stat"),
        pid => stat_cpu_time(&format!("/proc/{pid}/stat")),
    }
}

/// CPU time used so far by the threads of this process whose name starts with `prefix`
/// (a thread that has ended no longer counts).
pub fn threads_cpu_time(prefix: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.starts_with(prefix))
        })
        .filter_map(|task| stat_cpu_time(&task.path().join("stat").to_string_lossy()))
        .sum()
}

/// CPU time every process of the machine has used so far, all cores together (the busy
/// fields of `/proc/stat`).
pub fn machine_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum();
    Some(from_ticks(busy))
}

/// Connections the kernel dropped so far because a listener's accept queue was full
/// (`ListenOverflows` of `/proc/net/netstat`, machine-wide).
pub fn listen_overflows() -> Option<u64> {
    let netstat = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut tcp_ext = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (tcp_ext.next()?, tcp_ext.next()?);
    let at = names
        .split_whitespace()
        .position(|n| n == "ListenOverflows")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// The number of cores this machine has.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The utime and stime of a `stat` file of `/proc`.
fn stat_cpu_time(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' do not.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(from_ticks(ticks))
}

fn from_ticks(ticks: u64) -> Duration {
    // SAFETY: sysconf has no memory-safety preconditions.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Duration::from_secs_f64(ticks as f64 / per_sec as f64)
}

/// The relay's `/metrics` text, or an error if it did not answer within
/// [`SCRAPE_TIMEOUT`] (the operations port turns connections away past its cap).
pub async fn scrape(http: SocketAddr) -> Result<Metrics, anyhow::Error> {
    let get = async {
        let mut tcp = TcpStream::connect(http).await?;
        let request = format!("GET /metrics HTTP/1.0\r\nHost: {http}\r\n\r\n");
        tcp.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        tcp.read_to_string(&mut response).await?;
        Ok::<_, anyhow::Error>(response)
    };
    let response = tokio::time::timeout(SCRAPE_TIMEOUT, get).await??;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP response from /metrics"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        let status = head.lines().next().unwrap_or_default();
        return Err(anyhow::anyhow!("/metrics answered {status}"));
    }
    Ok(Metrics::parse(body))
}

/// Samples of a `/metrics` text: name with labels (as written) to value.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    samples: BTreeMap<String, f64>,
}

impl Metrics {
    /// Parses the text format, skipping comments.
    pub fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (key, value) = l.rsplit_once(' ')?;
                Some((key.to_owned(), value.parse().ok()?))
            })
            .collect();
        Metrics { samples }
    }

    /// The sum of the samples of `name`, any labels.
    pub fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(key, _)| key.split('{').next() == Some(name))
            .map(|(_, value)| value)
            .sum()
    }

    /// The sample written as `key` (name and labels), 0 if there is none.
    pub fn get(&self, key: &str) -> f64 {
        self.samples.get(key).copied().unwrap_or(0.0)
    }

    /// The samples of `name` by the value of its one `label`, in label order.
    pub fn by_label(&self, name: &str, label: &str) -> Vec<(String, f64)> {
        let prefix = format!("{name}{{{label}=\"");
        self.samples
            .iter()
            .filter_map(|(key, value)| {
                let rest = key.strip_prefix(&prefix)?;
                Some((rest.split('"').next()?.to_owned(), *value))
            })
            .collect()
    }
}
