//! Repair: the relay's side of the Automerge sync protocol for one record, one message at
//! a time (docs/relay-storage.md, "Repair").
//!
//! The relay keeps no sync state between messages: each message is received on a fresh
//! `sync::State`, and the reply is generated from it. This converges because the device
//! drives the conversation in lock step (one message, then the relay's reply) and every
//! device message is self-contained: it carries the device's heads, the changes it
//! needs, and a Bloom filter of the changes it holds since the last heads both sides
//! shared (kept in the *device's* state). From those alone, the relay's fresh state sends
//! every change the filter does not cover (and those the device named), and asks for the
//! device's heads it lacks. What a persistent relay state would add (hashes already sent,
//! in-flight flags) only saves bandwidth when a peer sends several messages without
//! waiting for replies, which the device does not. Each round either moves changes or
//! leaves both sides with the same heads, and then the device's `generate_sync_message`
//! returns `None` and the conversation ends. If the device's shared heads name changes
//! the relay does not hold (it lost them), the relay's reply is Automerge's reset
//! message, and the device then sends everything it has.
//!
//! One thing a fresh state cannot do is keep a change whose parent has not arrived: the
//! relay's Bloom filter can wrongly claim a change (a false positive, about 1%), the
//! device then sends only its child, which the relay's throwaway document holds back and
//! drops, while the device records the child as sent and would never send it again. So
//! every reply carries Automerge's `SYNC_RESET` flag: the relay remembers nothing, and the
//! device must not assume it remembers what it was sent. The device then resends whatever
//! the relay's next filter and `need` do not cover, and the conversation still ends when
//! both sides hold the same heads (a reset only clears the device's sent hashes).

use std::panic::AssertUnwindSafe;

use automerge::sync::{self, SyncDoc};
use automerge::Automerge;
use holdfast_protocol::limits::CHANGES_PER_ENTRY_MAX;
use holdfast_protocol::{ChangeEntry, EventId, Outcome, PushEntry, RecordId, SpaceId};
use redb::ReadableDatabase;

use super::record::{self, Reader};
use super::{now_ms, RedbLogStore};
use crate::error::StoreError;
use crate::store::RecordSync;
use crate::tables::{self, LogRow};

impl RedbLogStore {
    pub(super) fn sync_message(
        &self,
        space: &SpaceId,
        record: RecordId,
        message: &[u8],
        may_write: bool,
    ) -> Result<RecordSync, StoreError> {
        let message = decode(message)?;
        let mut doc = self.record_doc(space, record)?;
        let mut rejected = None;
        let mut stored = Vec::new();
        if may_write {
            let before = doc.get_heads();
            let mut state = sync::State::new();
            receive(&mut doc, &mut state, message.clone())?;
            let new: Vec<Vec<u8>> = doc
                .get_changes(&before)
                .into_iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect();
            let all_stored = new.is_empty() || {
                let (entries, refused, complete) = self.store_changes(space, record, new)?;
                stored = entries;
                rejected = refused;
                complete
            };
            if all_stored {
                let reply = doc.generate_sync_message(&mut state);
                return Ok(RecordSync {
                    reply: reply.map(stateless),
                    stored,
                    rejected,
                });
            }
            if let Some(refused) = &rejected {
                tracing::warn!(%space, %record, ?refused, "changes of a repair refused");
            }
            // Some changes were not stored here: answer from what is stored, as if read
            // only, so the reply does not claim them.
            doc = self.record_doc(space, record)?;
        }
        // Not taking the message's changes: the reply (flagged read-only, which stops the
        // device from sending its changes) carries the changes the device lacks, and there
        // is none when it lacks none. The device's state then waits for a reply that does
        // not come, so its `generate_sync_message` returns `None`: without that, a device
        // whose heads the relay will never hold would ask again forever.
        let mut state = sync::State::new_read_only();
        receive(&mut doc, &mut state, message)?;
        let reply = doc
            .generate_sync_message(&mut state)
            .filter(|m| !m.changes.is_empty())
            .map(stateless);
        Ok(RecordSync {
            reply,
            stored,
            rejected,
        })
    }

    /// The record's document as stored now: its snapshot and tail; empty if the space has
    /// no entry of it.
    fn record_doc(&self, space: &SpaceId, record: RecordId) -> Result<Automerge, StoreError> {
        let stored = {
            let txn = self.db.begin_read()?;
            let reader = Reader::open(&txn)?;
            let rid = tables::rid(record);
            match reader.row(space.as_str(), rid)? {
                Some(row) => reader.stored(space.as_str(), rid, &row)?,
                None => return Ok(Automerge::new()),
            }
        };
        record::build(&stored.doc, &stored.changes)
    }

    /// Stores a repair's new changes (in causal order) as entries of at most
    /// `CHANGES_PER_ENTRY_MAX` changes, in one batch: each entry's dependencies are held or
    /// in an earlier entry, and one group commit makes them durable. Returns the entries
    /// stored, the first rejection, and whether every entry was stored.
    fn store_changes(
        &self,
        space: &SpaceId,
        record: RecordId,
        changes: Vec<Vec<u8>>,
    ) -> Result<(Vec<ChangeEntry>, Option<Outcome>, bool), StoreError> {
        let entries: Vec<PushEntry> = changes
            .chunks(CHANGES_PER_ENTRY_MAX)
            .map(|changes| PushEntry {
                event_id: EventId::new_v7(),
                space: space.clone(),
                record,
                changes: changes.to_vec(),
            })
            .collect();
        let mut seqs = Vec::new();
        let mut rejected = None;
        let mut complete = true;
        for result in self.store_at(entries, now_ms())? {
            match result.outcome {
                Outcome::Stored { seq } => seqs.push(seq),
                // Held already (another device pushed them meanwhile, or they are held
                // for another record): not stored by this repair.
                Outcome::Duplicate { .. } => complete = false,
                refused @ Outcome::Rejected { .. } => {
                    complete = false;
                    rejected.get_or_insert(refused);
                }
            }
        }
        let stored = self.entries_at(space, &seqs)?;
        Ok((stored, rejected, complete))
    }

    /// The log entries of `space` at `seqs`.
    fn entries_at(&self, space: &SpaceId, seqs: &[u64]) -> Result<Vec<ChangeEntry>, StoreError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_read()?;
        let log = txn.open_table(tables::LOG)?;
        seqs.iter()
            .map(|&seq| {
                let value = log.get((space.as_str(), seq))?.ok_or_else(|| {
                    StoreError::Corrupt(format!("log of {space}: stored entry {seq} missing"))
                })?;
                let row: LogRow = tables::decode_row(tables::LOG_ROW_V1, value.value(), "log")?;
                Ok(ChangeEntry {
                    seq,
                    record: row.record,
                    event_id: row.event_id,
                    changes: row.changes,
                })
            })
            .collect()
    }
}

/// Decodes a device's sync message; bad bytes (or a parser bug) are `BadSyncMessage`.
fn decode(bytes: &[u8]) -> Result<sync::Message, StoreError> {
    std::panic::catch_unwind(|| sync::Message::decode(bytes))
        .map_err(|_| StoreError::BadSyncMessage("the parser failed on it".into()))?
        .map_err(|e| StoreError::BadSyncMessage(e.to_string()))
}

/// Receives a message into the relay's copy of a record; a message whose changes do not
/// load is `BadSyncMessage`.
fn receive(
    doc: &mut Automerge,
    state: &mut sync::State,
    message: sync::Message,
) -> Result<(), StoreError> {
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        doc.receive_sync_message(state, message)
    }))
    .map_err(|_| StoreError::BadSyncMessage("applying it failed".into()))?
    .map_err(|e| StoreError::BadSyncMessage(e.to_string()))
}

/// Encodes a reply of the stateless relay: flagged `SYNC_RESET`, so the device forgets
/// which changes it sent (see the module docs).
fn stateless(mut message: sync::Message) -> Vec<u8> {
    message
        .flags
        .get_or_insert_with(sync::MessageFlags::new)
        .set(sync::MessageFlags::SYNC_RESET);
    message.encode()
}
