//! Workloads on one device: durable local writes against raw redb and bare Automerge
//! (workload 4), and the cold open of a large store against a raw redb file of the same
//! size (workload 6, timed in a fresh child process: `compare child cold-open`).

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use holdfast::{Query, SpaceId, Store, StoreConfig};
use serde_json::json;

use super::device::holdfast::{schema, write_records, SPACE};
use super::process::own_rss_kib;
use crate::{create_note, open, small_edit, small_edit_change_bytes, timed_writers, BareAutomerge};

/// Notes the writes rotate over (as in the `writes` criterion bench).
const NOTES: usize = 100;

/// Workload 4's figures: mean time per write.
#[derive(Clone, Copy, Debug)]
pub struct Writes {
    /// Bytes a raw commit carries (a store write's change twice plus 300).
    pub payload: usize,
    /// Raw redb `Immediate` commit.
    pub raw: Duration,
    /// 4 KiB write + fdatasync.
    pub fsync: Duration,
    /// The same edit on in-memory Automerge documents.
    pub bare: Duration,
    /// Store, one writer.
    pub single: Duration,
    /// Store, eight writers (wall time over writes).
    pub eight: Duration,
}

/// Measures workload 4 with `count` writes of each kind in `dir`.
pub fn writes(dir: &Path, count: usize) -> anyhow::Result<Writes> {
    let change_bytes = small_edit_change_bytes(dir);
    let payload = (2 * change_bytes + 300) as usize;
    let raw = super::baseline::raw_redb_commit(dir, payload, count);
    let fsync = super::baseline::fsync(dir, count)?;

    let mut bare_docs = BareAutomerge::new(NOTES);
    let started = Instant::now();
    for n in 0..count as u64 {
        bare_docs.edit(n);
    }
    let bare = started.elapsed() / count as u32;

    let store = open(&dir.join("single.redb"));
    let ids: Vec<_> = (0..NOTES).map(|_| create_note(&store)).collect();
    let started = Instant::now();
    for n in 0..count {
        small_edit(&store, ids[n % NOTES], n as u64);
    }
    let single = started.elapsed() / count as u32;

    let writers = 8;
    let store = open(&dir.join("multi.redb"));
    let ids: Vec<_> = (0..NOTES).map(|_| create_note(&store)).collect();
    let per_writer = count.div_ceil(writers);
    let eight =
        timed_writers(&store, &ids, writers, per_writer as u64) / (per_writer * writers) as u32;
    Ok(Writes {
        payload,
        raw,
        fsync,
        bare,
        single,
        eight,
    })
}

/// Writes a store of `n` comparison records at `path` (1,000 per durable write).
pub fn build_store(path: &Path, n: usize) -> anyhow::Result<()> {
    let store = Store::open(path, StoreConfig::new(schema()))?;
    write_records(&store, &SpaceId::new(SPACE)?, 0..n, 1000)?;
    Ok(())
}

const RAW: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("raw");

/// Writes a raw redb file of `n` rows of `value_bytes` each (10,000 per commit).
pub fn build_raw(path: &Path, n: usize, value_bytes: usize) -> anyhow::Result<()> {
    let db = redb::Database::create(path)?;
    let value = vec![7u8; value_bytes];
    for start in (0..n).step_by(10_000) {
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(RAW)?;
            for key in start..(start + 10_000).min(n) {
                table.insert(key as u64, value.as_slice())?;
            }
        }
        txn.commit()?;
    }
    Ok(())
}

/// Drops a file's pages from the page cache, so the next open reads the disk.
pub fn evict(path: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::open(path)?;
    file.sync_all()?;
    // SAFETY: a valid open descriptor; advice has no memory-safety preconditions.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    anyhow::ensure!(rc == 0, "posix_fadvise failed: {rc}");
    Ok(())
}

/// The `cold-open` child: opens the store (or raw file) at `db`, reads one record (one
/// row), prints the time to that first read and the process's peak RSS.
pub fn cold_open(db: &Path, raw: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let first = if raw {
        use redb::{ReadableDatabase, ReadableTable};
        let db = redb::Database::open(db)?;
        let txn = db.begin_read()?;
        let table = txn.open_table(RAW)?;
        let (_, value) = table
            .first()?
            .ok_or_else(|| anyhow::anyhow!("empty table"))?;
        value.value().len()
    } else {
        let store = Store::open(db, StoreConfig::new(schema()))?;
        let page = store.query(&Query::Collection("note"), 1, None)?;
        let id = *page
            .ids
            .first()
            .ok_or_else(|| anyhow::anyhow!("no records"))?;
        store.get(id)?.text("body")?.len()
    };
    let secs = started.elapsed().as_secs_f64();
    let (rss, peak) = own_rss_kib();
    println!(
        "{}",
        json!({ "secs": secs, "rss_kib": rss, "peak_rss_kib": peak, "read_bytes": first })
    );
    Ok(())
}
