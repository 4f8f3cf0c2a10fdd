//! The bounded cache of loaded documents. Entries with staged, not yet durable, writes are
//! pinned: evicting one would reload a document that lacks them.

use automerge::{Automerge, ChangeHash};
use lru::LruCache;

use crate::tables::RecordMeta;
use crate::RecordId;

/// A loaded record.
pub(crate) struct Entry {
    /// The document including every staged write.
    pub doc: Automerge,
    /// Metadata including every staged write.
    pub meta: RecordMeta,
    /// The heads that are durable; readers see the document as of these.
    pub committed_heads: Vec<ChangeHash>,
    /// Staged writes of this record not yet durable.
    pub dirty: u32,
}

impl Entry {
    fn weight(&self) -> usize {
        (self.meta.snapshot_bytes + self.meta.tail_bytes) as usize + 512
    }
}

pub(crate) struct DocCache {
    map: LruCache<RecordId, Entry>,
    bytes: usize,
    budget: usize,
}

impl DocCache {
    pub(crate) fn new(budget: usize) -> Self {
        DocCache {
            map: LruCache::unbounded(),
            bytes: 0,
            budget,
        }
    }

    /// The entry, marked as recently used. Modify an entry only through
    /// [`DocCache::take`] and [`DocCache::insert`], which keep the byte count right.
    pub(crate) fn get(&mut self, id: &RecordId) -> Option<&Entry> {
        self.map.get(id)
    }

    /// Removes and returns an entry (to be put back with [`DocCache::insert`]).
    pub(crate) fn take(&mut self, id: &RecordId) -> Option<Entry> {
        let e = self.map.pop(id)?;
        self.bytes -= e.weight();
        Some(e)
    }

    pub(crate) fn insert(&mut self, id: RecordId, entry: Entry) {
        self.bytes += entry.weight();
        if let Some(old) = self.map.put(id, entry) {
            self.bytes -= old.weight();
        }
        self.shrink();
    }

    /// Drops an entry whatever its state (after a failed commit).
    pub(crate) fn forget(&mut self, id: &RecordId) {
        self.take(id);
    }

    /// Records that staged writes up to `heads` are durable.
    /// Returns false when the record is not in the cache (checked out, or failed).
    pub(crate) fn committed(&mut self, id: &RecordId, heads: Vec<ChangeHash>) -> bool {
        let found = match self.map.peek_mut(id) {
            Some(e) => {
                e.committed_heads = heads;
                e.dirty -= 1;
                true
            }
            None => false,
        };
        self.shrink();
        found
    }

    /// Loaded documents and their weight in bytes.
    pub(crate) fn usage(&self) -> (usize, usize) {
        (self.map.len(), self.bytes)
    }

    fn shrink(&mut self) {
        // The most recently used entry stays: the caller is about to read it.
        while self.bytes > self.budget && self.map.len() > 1 {
            let candidates = self.map.len() - 1;
            let victim = self
                .map
                .iter()
                .rev()
                .take(candidates)
                .find(|(_, e)| e.dirty == 0)
                .map(|(id, _)| *id);
            match victim {
                Some(id) => {
                    self.take(&id);
                }
                None => break,
            }
        }
    }
}
