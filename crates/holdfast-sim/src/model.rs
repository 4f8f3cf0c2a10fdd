//! What the run promised: every record created and every outbox entry written by a local
//! write that returned `Ok` (or by a resolver while applying), with its change hashes,
//! and for an independent check of values, the sum of every acknowledged increment and
//! every scalar value written. The final checks hold the stores and the relay to it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use holdfast::{EventId, OutboxEntry, RecordId, SpaceId, Value};

/// A record some device created, in creation order (the simulation picks records by their
/// place here, never by id, so its choices do not depend on random ids).
#[derive(Clone, Debug)]
pub struct SimRecord {
    /// Its id.
    pub id: RecordId,
    /// Its space.
    pub space: SpaceId,
    /// Its collection.
    pub collection: &'static str,
}

/// One outbox entry a device wrote: it must reach the relay exactly once.
#[derive(Clone, Debug)]
pub struct Promise {
    /// The device.
    pub device: usize,
    /// The entry's outbox seq on that device.
    pub seq: u64,
    /// Its event id.
    pub event_id: EventId,
    /// The record.
    pub record: RecordId,
    /// The record's space.
    pub space: SpaceId,
    /// The Automerge changes it carries.
    pub hashes: Vec<[u8; 32]>,
}

/// Everything promised so far.
#[derive(Debug, Default)]
pub struct Model {
    /// Records created, in creation order.
    pub records: Vec<SimRecord>,
    /// Every outbox entry seen, in the order seen.
    pub promises: Vec<Promise>,
    seen: BTreeSet<EventId>,
    /// Sum of acknowledged increments per (record, counter field).
    pub counters: HashMap<(RecordId, &'static str), i64>,
    /// Every scalar value acknowledged per (record, field).
    pub values: BTreeMap<(RecordId, &'static str), Vec<Value>>,
}

impl Model {
    /// Records the entries of `device`'s outbox not seen before.
    pub fn saw(&mut self, device: usize, entries: Vec<OutboxEntry>) -> usize {
        let mut new = 0;
        for entry in entries {
            if self.seen.insert(entry.event_id) {
                new += 1;
                self.promises.push(Promise {
                    device,
                    seq: entry.seq,
                    event_id: entry.event_id,
                    record: entry.record,
                    space: entry.space,
                    hashes: entry.change_hashes,
                });
            }
        }
        new
    }

    /// The place of `id` in creation order.
    pub fn place(&self, id: RecordId) -> Option<usize> {
        self.records.iter().position(|r| r.id == id)
    }

    /// The record with this id.
    pub fn record(&self, id: RecordId) -> Option<&SimRecord> {
        self.records.iter().find(|r| r.id == id)
    }
}
