//! A simulated disk for redb: an in-memory [`StorageBackend`] that keeps apart what was
//! written and what was made durable, fails on purpose after a number of operations, and
//! loses power.
//!
//! Reads see every write, as an operating system's page cache does. `sync_data` makes the
//! writes so far durable. A **power loss** keeps the durable image plus any subset of the
//! writes made since the last sync, each kept or lost independently, since a kernel may
//! write dirty pages back in any order before it dies; a **process crash** keeps every
//! write. A **failure** makes the chosen operation return an error without doing anything,
//! and every later one too, until the disk is replaced by a crash or a power loss (the
//! store must be reopened).

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use redb::StorageBackend;

/// The disk: clone it to keep a handle while redb owns the backend.
#[derive(Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// What reads see.
    live: Vec<u8>,
    /// What survives a power loss for certain.
    durable: Vec<u8>,
    /// Writes and resizes since the last sync, in order.
    unsynced: Vec<Pending>,
    /// Operations left before the disk fails (`None`: it does not).
    ops_left: Option<u64>,
    /// The disk has failed: every write, resize and sync errs.
    failed: bool,
    /// Operations that failed.
    failures: u64,
}

enum Pending {
    Write { offset: u64, data: Vec<u8> },
    Len(u64),
}

/// Statistics for a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Bytes in the image reads see.
    pub len: u64,
    /// Writes and resizes not yet synced.
    pub unsynced: usize,
    /// Whether the disk is failing now.
    pub failed: bool,
    /// Operations that returned an injected error so far.
    pub failures: u64,
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere (a failing property) must not hide the disk from the report.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A backend over this disk for `Database::builder().create_with_backend`.
    pub fn backend(&self) -> SimBackend {
        SimBackend { disk: self.clone() }
    }

    /// The next `ops` writes, resizes and syncs succeed; the one after fails, and so does
    /// everything after it until [`SimDisk::crash`] or [`SimDisk::power_loss`].
    pub fn fail_after(&self, ops: u64) {
        self.state().ops_left = Some(ops);
    }

    /// Fails now: every later write, resize and sync errs. Used to stop a dropped database
    /// from writing its clean-shutdown header, which a killed process never gets to do.
    pub fn fail_now(&self) {
        self.state().failed = true;
    }

    /// The process died: every write reached the kernel and survives. The disk works again.
    pub fn crash(&self) {
        let mut s = self.state();
        s.durable = s.live.clone();
        s.unsynced.clear();
        s.ops_left = None;
        s.failed = false;
    }

    /// The machine lost power: the durable image survives, plus each unsynced write or
    /// resize for which `keep` says so (asked in order). The disk works again.
    pub fn power_loss(&self, mut keep: impl FnMut() -> bool) {
        let mut s = self.state();
        let mut image = std::mem::take(&mut s.durable);
        for op in std::mem::take(&mut s.unsynced) {
            if keep() {
                apply(&mut image, &op);
            }
        }
        s.live = image.clone();
        s.durable = image;
        s.ops_left = None;
        s.failed = false;
    }

    /// The disk's statistics now.
    pub fn stats(&self) -> DiskStats {
        let s = self.state();
        DiskStats {
            len: s.live.len() as u64,
            unsynced: s.unsynced.len(),
            failed: s.failed,
            failures: s.failures,
        }
    }
}

fn apply(image: &mut Vec<u8>, op: &Pending) {
    match op {
        Pending::Write { offset, data } => {
            let start = *offset as usize;
            let end = start + data.len();
            if image.len() < end {
                image.resize(end, 0);
            }
            image[start..end].copy_from_slice(data);
        }
        Pending::Len(len) => image.resize(*len as usize, 0),
    }
}

impl State {
    /// Counts an operation that changes the disk; errs when the disk fails or has failed.
    fn spend(&mut self) -> io::Result<()> {
        if !self.failed {
            match &mut self.ops_left {
                Some(0) => self.failed = true,
                Some(n) => *n -= 1,
                None => {}
            }
        }
        if self.failed {
            self.failures += 1;
            return Err(io::Error::other("injected disk failure"));
        }
        Ok(())
    }
}

/// The redb backend of a [`SimDisk`].
pub struct SimBackend {
    disk: SimDisk,
}

impl fmt::Debug for SimBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimBackend")
            .field("stats", &self.disk.stats())
            .finish()
    }
}

impl StorageBackend for SimBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(self.disk.state().live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let s = self.disk.state();
        let start = offset as usize;
        let bytes = s
            .live
            .get(start..start + out.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.disk.state();
        s.spend()?;
        let op = Pending::Len(len);
        apply(&mut s.live, &op);
        s.unsynced.push(op);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.disk.state();
        s.spend()?;
        s.durable = s.live.clone();
        s.unsynced.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut s = self.disk.state();
        s.spend()?;
        let op = Pending::Write {
            offset,
            data: data.to_vec(),
        };
        apply(&mut s.live, &op);
        s.unsynced.push(op);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_power_loss_keeps_synced_writes_and_a_chosen_subset_of_the_rest() {
        let disk = SimDisk::new();
        let b = disk.backend();
        b.write(0, b"durable").unwrap();
        b.sync_data().unwrap();
        b.write(0, b"D").unwrap();
        b.write(7, b"!!").unwrap();
        let mut keep = [false, true].into_iter();
        disk.power_loss(|| keep.next().unwrap());
        let mut out = [0u8; 9];
        b.read(0, &mut out).unwrap();
        assert_eq!(&out, b"durable!!");
    }

    #[test]
    fn a_failure_does_nothing_and_lasts_until_the_crash() {
        let disk = SimDisk::new();
        let b = disk.backend();
        disk.fail_after(1);
        b.write(0, b"ok").unwrap();
        assert!(b.write(0, b"no").is_err());
        assert!(b.sync_data().is_err());
        let mut out = [0u8; 2];
        b.read(0, &mut out).unwrap();
        assert_eq!(&out, b"ok");
        disk.crash();
        b.write(0, b"up").unwrap();
        assert_eq!(disk.stats().failures, 2);
    }
}
