//! The device's side of a repair: one record's Automerge sync conversation with the relay,
//! each received message applied through the durable write path like a pulled change.

use automerge::sync::{self, SyncDoc};

use crate::commit::{Before, Changed, Staged};
use crate::error::{Error, Result};
use crate::store::Inner;
use crate::subscribe::Origin;
use crate::RecordId;

impl Inner {
    /// The next sync message of record `id` for the relay, from the repair's `state`;
    /// `None` once both sides hold the same changes (or a reply is awaited).
    pub(crate) fn repair_message(
        &self,
        id: RecordId,
        state: &mut sync::State,
    ) -> Result<Option<Vec<u8>>> {
        let st = self.lock_state()?;
        let mut st = self.wait_returned(st, id);
        let entry = self.cached(&mut st, id)?;
        Ok(entry
            .doc
            .generate_sync_message(state)
            .map(sync::Message::encode))
    }

    /// Receives the relay's sync message for record `id` into its document, makes what it
    /// brought durable (as remote changes: they raise notifications and may raise
    /// conflicts, and do not enter the outbox), and returns the device's next message, or
    /// `None` when the record is in sync.
    pub(crate) fn repair_receive(
        &self,
        id: RecordId,
        state: &mut sync::State,
        message: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let message = sync::Message::decode(message)
            .map_err(|e| Error::Remote(format!("record {id} has a damaged repair message: {e}")))?;
        self.writable()?;
        self.check_reentrant()?;
        let now = self.now();
        let (reply, pending) = {
            // Held until the write is queued, not while it waits for its fsync.
            let _exclusive = self.staging.write().unwrap_or_else(|e| e.into_inner());
            let mut st = self.lock_state()?;
            let mut entry = self.take(&mut st, id)?.ok_or(Error::NotFound(id))?;
            let mut before = Before::of(self, id, &entry.doc, &entry.meta);
            if let Err(e) = entry.doc.receive_sync_message(state, message) {
                // The document may hold part of the message: reload it from disk, unless
                // staged writes pin it (they hold it in memory until durable).
                if entry.dirty > 0 {
                    st.cache.insert(id, entry);
                }
                return Err(Error::Remote(format!(
                    "record {id}: the sync server's repair message could not be applied: {e}"
                )));
            }
            // Settled like a pull's: logged and kept once durable.
            self.resolve_noting(&mut entry, now, &mut before.conflicts, &mut before.resolved);
            let reply = entry
                .doc
                .generate_sync_message(state)
                .map(sync::Message::encode);
            let mut staged = Staged::default();
            let changed = Changed {
                id,
                entry,
                before,
                new_changes: None,
            };
            self.stage_record(&mut st, &mut staged, changed, Origin::Remote, now);
            if staged.is_empty() {
                return Ok(reply);
            }
            (reply, self.enqueue(&mut st, staged))
        };
        // The reply names heads that include what was received: only once it is durable.
        self.wait_durable(pending)?;
        Ok(reply)
    }
}
