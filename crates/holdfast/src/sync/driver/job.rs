//! Store work a [`Driver`](super::Driver) asks for, and its results.

use super::received::Received;
use crate::outbox::PendingPush;
use crate::{ApplySummary, RecordId, SpaceId, Store, SyncSummary};
use automerge::sync;

/// A piece of store work (redb, Automerge) a [`Driver`](super::Driver) handed out. Run
/// jobs one at a time in the order they came, off any async reactor (they block on
/// fsync), and hand each [`Done`] back to the driver in that order. After the connection
/// ends, run the jobs still waiting (their results may be dropped), then
/// [`Job::requeue`].
pub struct Job(pub(super) Work);

/// The result of a [`Job`].
pub struct Done(pub(super) Result);

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match &self.0 {
            Work::Take { .. } => "Take",
            Work::Mark { .. } => "Mark",
            Work::Apply(_) => "Apply",
            Work::List { .. } => "List",
            Work::Message { .. } => "Message",
            Work::Receive { .. } => "Receive",
            Work::Forget { .. } => "Forget",
            Work::Requeue => "Requeue",
        };
        write!(f, "Job::{name}")
    }
}

pub(super) enum Work {
    Take {
        entries_max: usize,
        bytes_max: u64,
    },
    /// Marks what the relay answered for entries.
    Mark(Marks),
    Apply(Apply),
    List {
        space: SpaceId,
    },
    Message {
        space: SpaceId,
        record: RecordId,
    },
    Receive {
        space: SpaceId,
        record: RecordId,
        state: Box<sync::State>,
        message: Vec<u8>,
    },
    Forget {
        space: SpaceId,
    },
    Requeue,
}

/// The relay's answers for pushed entries, by what becomes of them.
#[derive(Default)]
pub(super) struct Marks {
    /// Stored: (outbox seq, relay seq).
    pub acked: Vec<(u64, u64)>,
    /// Refused: (seq, reason, permanent).
    pub failed: Vec<(u64, String, bool)>,
    /// Refused for lacking changes the relay does not hold: (seq, reason, permanent).
    /// Blocked if an earlier entry of the record failed for good, else failed.
    pub dependency: Vec<(u64, String, bool)>,
    /// Held back by the rate limit until then (ms since the epoch, device clock).
    pub held: Option<(Vec<u64>, i64)>,
}

impl Marks {
    fn run(self, store: &Store) -> crate::Result<SyncSummary> {
        let outbox = store.outbox();
        if !self.acked.is_empty() {
            outbox.mark_acked(&self.acked)?;
        }
        for (seq, reason, permanent) in &self.failed {
            outbox.mark_failed(*seq, reason, *permanent)?;
        }
        for (seq, reason, permanent) in &self.dependency {
            if outbox.mark_dependency_refused(*seq, reason, *permanent)? {
                tracing::info!(
                    outbox_seq = seq,
                    "an entry waits behind an earlier change the sync server refused"
                );
            }
        }
        if let Some((seqs, retry_at_ms)) = &self.held {
            outbox.hold(seqs, *retry_at_ms)?;
        }
        store.sync_summary()
    }
}

/// Received changes or a snapshot page to apply, with what to count.
pub(super) struct Apply {
    pub work: Received,
    pub applied: Applied,
}

/// What an [`Apply`] carried out, for the session and the counters.
pub(super) struct Applied {
    pub space: SpaceId,
    /// The session's `Apply` effects it carries out.
    pub applies: usize,
    pub entries: u64,
    pub records: u64,
}

impl Apply {
    pub(super) fn new(work: Received, applies: usize) -> Self {
        let (space, entries, records) = match &work {
            Received::Changes { space, entries, .. } => (space.clone(), entries.len() as u64, 0),
            Received::Snapshot { space, records, .. } => (space.clone(), 0, records.len() as u64),
        };
        let applied = Applied {
            space,
            applies,
            entries,
            records,
        };
        Apply { work, applied }
    }
}

pub(super) enum Result {
    Taken(crate::Result<(Vec<PendingPush>, SyncSummary)>),
    Marked(crate::Result<SyncSummary>),
    Applied {
        applied: Applied,
        result: crate::Result<ApplySummary>,
    },
    Listed {
        space: SpaceId,
        result: crate::Result<Vec<RecordId>>,
    },
    Stepped {
        space: SpaceId,
        record: RecordId,
        state: Box<sync::State>,
        result: crate::Result<Option<Vec<u8>>>,
    },
    Forgot {
        space: SpaceId,
        result: crate::Result<()>,
    },
}

impl Job {
    /// Puts the entries a connection sent and the relay did not acknowledge back in the
    /// outbox queue: the last store work of every connection.
    pub fn requeue() -> Job {
        Job(Work::Requeue)
    }

    /// Does the work on `store`.
    pub fn run(self, store: &Store) -> Done {
        Done(match self.0 {
            Work::Take {
                entries_max,
                bytes_max,
            } => Result::Taken(
                store
                    .outbox()
                    .take_batch(entries_max, bytes_max)
                    .and_then(|batch| Ok((batch, store.sync_summary()?))),
            ),
            Work::Mark(marks) => Result::Marked(marks.run(store)),
            Work::Apply(Apply { work, applied }) => {
                let result = match work {
                    Received::Changes {
                        space,
                        entries,
                        next_cursor,
                    } => {
                        let result = store.inbox().apply_changes(&space, &entries, next_cursor);
                        if result.is_ok() {
                            trace_applied(&space, &entries);
                        }
                        result
                    }
                    Received::Snapshot {
                        space,
                        records,
                        cursor,
                    } => store.inbox().apply_snapshot(&space, &records, cursor),
                };
                Result::Applied { applied, result }
            }
            Work::List { space } => {
                let result = store.records_in_space(&space);
                Result::Listed { space, result }
            }
            Work::Message { space, record } => {
                let mut state = Box::new(sync::State::new());
                let result = store.inner.repair_message(record, &mut state);
                Result::Stepped {
                    space,
                    record,
                    state,
                    result,
                }
            }
            Work::Receive {
                space,
                record,
                mut state,
                message,
            } => {
                let result = store.inner.repair_receive(record, &mut state, &message);
                Result::Stepped {
                    space,
                    record,
                    state,
                    result,
                }
            }
            Work::Forget { space } => {
                let result = store.inbox().forget_cursor(&space);
                Result::Forgot { space, result }
            }
            Work::Requeue => Result::Marked(store.outbox().requeue_sending().and_then(|n| {
                if n > 0 {
                    tracing::debug!(entries = n, "unacknowledged entries requeued");
                }
                store.sync_summary()
            })),
        })
    }
}

/// Logs each entry applied (durably) in its `apply` span, whose `event_id` is the one the
/// pushing device's `push` span and the relay's `store` span carry. Ids only: never field
/// values or change bytes.
fn trace_applied(space: &SpaceId, entries: &[holdfast_protocol::ChangeEntry]) {
    for entry in entries {
        let span = tracing::debug_span!(
            "apply",
            event_id = %entry.event_id,
            %space,
            record = %entry.record,
            relay_seq = entry.seq,
        );
        // An entry without changes is this device's own, sent back to move the cursor.
        let own = entry.changes.is_empty();
        span.in_scope(|| tracing::debug!(own, "applied"));
    }
}

impl Done {
    /// What went wrong, if the work failed or a received change did not apply (never
    /// expected): for a caller that runs jobs after their connection ended, whose results
    /// no driver reads.
    pub fn problem(&self) -> Option<String> {
        let failed = |e: &crate::Error| Some(e.to_string());
        match &self.0 {
            Result::Taken(Err(e))
            | Result::Marked(Err(e))
            | Result::Listed { result: Err(e), .. } => failed(e),
            Result::Forgot { result: Err(e), .. } => failed(e),
            Result::Stepped { result: Err(e), .. } if !matches!(e, crate::Error::NotFound(_)) => {
                failed(e)
            }
            Result::Applied { result: Err(e), .. } => failed(e),
            Result::Applied {
                result: Ok(summary),
                ..
            } => summary.rejected.first().map(|r| {
                format!(
                    "a received change of {} was not applied: {}",
                    r.record, r.reason
                )
            }),
            _ => None,
        }
    }
}
