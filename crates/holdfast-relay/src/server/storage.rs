//! The blocking work a session's `Store`, `Pull`, `Bootstrap` and `Repair` effects ask for, run on tokio's
//! blocking pool so that no redb or Automerge work happens on a reactor thread.
//!
//! A store publishes its stored entries to the fan-out from inside the blocking closure,
//! right after the durable commit: if the connection that pushed them is gone by then,
//! the other subscribers still hear of them.

use std::sync::Arc;
use std::time::Instant;

use holdfast_protocol::session::{PullReply, RequestId};
use holdfast_protocol::{AckResult, BootstrapFrom, Cursor, Outcome, PushEntry, RecordId, SpaceId};
use tracing::Span;

use super::driver::Done;
use crate::fanout::{Author, Fanout, LiveBatch};
use crate::metrics::Metrics;
use crate::store::{stored_batches, LogStore, PullResult};

/// What storage work needs, shared by every connection.
#[derive(Clone)]
pub(crate) struct Storage {
    pub(crate) store: Arc<dyn LogStore>,
    pub(crate) fanout: Arc<dyn Fanout>,
    pub(crate) metrics: Arc<Metrics>,
}

/// The span of one pushed entry's store: its event id follows a change from the pushing
/// device's `push` span through the relay to the receiving device's `apply` span. Ids
/// only: never field values or change bytes.
fn entry_span(entry: &PushEntry) -> Span {
    tracing::info_span!(
        "store",
        event_id = %entry.event_id,
        space = %entry.space,
        record = %entry.record
    )
}

impl Storage {
    /// Stores `entries` pushed by the connection `author` durably, logs and counts each
    /// outcome, and publishes what was stored. Blocking.
    pub(crate) fn store(
        &self,
        span: &Span,
        request_id: RequestId,
        entries: Vec<PushEntry>,
        author: Author,
    ) -> Done {
        let _entered = span.enter();
        for entry in &entries {
            entry_span(entry).in_scope(|| tracing::debug!("storing"));
        }
        let pushed = entries.clone();
        let started = Instant::now();
        let result = self.store.store(entries);
        Metrics::observe(&self.metrics.commit_seconds, started.elapsed());
        match &result {
            Ok(results) => {
                self.record(&pushed, results);
                self.publish(pushed, results, &author);
            }
            Err(error) => {
                for entry in &pushed {
                    entry_span(entry).in_scope(|| tracing::warn!("not stored: {error}"));
                }
            }
        }
        Done::Stored { request_id, result }
    }

    /// Reads a space's log after `cursor`. Blocking.
    pub(crate) fn pull(
        &self,
        span: &Span,
        request_id: RequestId,
        space: &SpaceId,
        cursor: Cursor,
        max_bytes: u64,
    ) -> Done {
        let _entered = span.enter();
        let reply = match self.store.pull(space, Some(cursor), max_bytes) {
            Ok(result) => {
                if let PullResult::Repair { reason } = &result {
                    tracing::info!(%space, %cursor, ?reason, "pull needs a repair");
                }
                result.into()
            }
            Err(error) => {
                tracing::error!(%space, %cursor, "pull failed: {error}");
                PullReply::Failed
            }
        };
        Done::Pulled { request_id, reply }
    }

    /// One page of a space's current state. Blocking.
    pub(crate) fn bootstrap(
        &self,
        span: &Span,
        request_id: RequestId,
        space: &SpaceId,
        from: Option<BootstrapFrom>,
        max_bytes: u64,
    ) -> Done {
        let _entered = span.enter();
        let reply = match self.store.bootstrap(space, from, max_bytes) {
            Ok(page) => page.into(),
            Err(error) => {
                tracing::error!(%space, "bootstrap failed: {error}");
                PullReply::Failed
            }
        };
        Done::Pulled { request_id, reply }
    }

    /// Answers a device's sync message for one record (from the connection `author`),
    /// storing and publishing the changes it brings. Blocking.
    pub(crate) fn repair(
        &self,
        span: &Span,
        space: SpaceId,
        record: RecordId,
        message: &[u8],
        may_write: bool,
        author: Author,
    ) -> Done {
        let _entered = span.enter();
        let reply = match self.store.sync_record(&space, record, message, may_write) {
            Ok(sync) => {
                for entry in &sync.stored {
                    self.metrics.push_entry("stored");
                    let event_id = tracing::field::display(entry.event_id);
                    let span = tracing::info_span!("store", event_id, %space, %record);
                    span.in_scope(|| tracing::info!(seq = entry.seq, "stored by repair"));
                }
                if let Some(outcome) = &sync.rejected {
                    tracing::info!(%space, %record, ?outcome, "repair changes rejected");
                }
                if let Some(last) = sync.stored.last() {
                    let next_cursor = Cursor {
                        epoch: self.store.epoch(),
                        seq: last.seq,
                    };
                    let batch = LiveBatch::new(space.clone(), sync.stored, next_cursor).by(author);
                    self.fanout.publish(Arc::new(batch));
                }
                Ok(sync.reply)
            }
            Err(error) => Err(error),
        };
        Done::Repaired {
            space,
            record,
            reply,
        }
    }

    fn record(&self, pushed: &[PushEntry], results: &[AckResult]) {
        for (entry, result) in pushed.iter().zip(results) {
            let _entered = entry_span(entry).entered();
            match &result.outcome {
                Outcome::Stored { seq } => {
                    self.metrics.push_entry("stored");
                    tracing::info!(seq, "stored");
                }
                Outcome::Duplicate { seq } => {
                    self.metrics.push_entry("duplicate");
                    tracing::info!(seq, "duplicate");
                }
                Outcome::Rejected {
                    code,
                    reason,
                    permanent,
                } => {
                    self.metrics.push_entry("rejected");
                    tracing::info!(?code, permanent, reason, "rejected");
                }
            }
        }
    }

    /// Publishes the stored entries, one batch per space in push order.
    fn publish(&self, pushed: Vec<PushEntry>, results: &[AckResult], author: &Author) {
        let batches = stored_batches(pushed, results);
        let epoch = self.store.epoch();
        for (space, entries) in batches {
            let seq = entries.last().map_or(0, |entry| entry.seq);
            let batch = LiveBatch::new(space, entries, Cursor { epoch, seq }).by(author.clone());
            self.fanout.publish(Arc::new(batch));
        }
    }
}
