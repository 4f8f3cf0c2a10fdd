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
    /// Marks acknowledged entries (outbox seq, relay seq) and failed ones (seq, reason,
    /// permanent).
    Mark {
        acked: Vec<(u64, u64)>,
        failed: Vec<(u64, String, bool)>,
    },
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
    pub fn new(work: Received, applies: usize) -> Self {
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
            Work::Mark { acked, failed } => Result::Marked((|| {
                let outbox = store.outbox();
                if !acked.is_empty() {
                    outbox.mark_acked(&acked)?;
                }
                for (seq, reason, permanent) in &failed {
                    outbox.mark_failed(*seq, reason, *permanent)?;
                }
                store.sync_summary()
            })()),
            Work::Apply(Apply { work, applied }) => {
                let result = match work {
                    Received::Changes {
                        space,
                        entries,
                        next_cursor,
                    } => store.inbox().apply_changes(&space, &entries, next_cursor),
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
            } => summary.rejected.first().map(|(record, why)| {
                format!("a received change of {record} was not applied: {why}")
            }),
            _ => None,
        }
    }
}
