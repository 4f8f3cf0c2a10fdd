//! What a connection received and has not applied yet. Consecutive `Changes` of one space
//! wait here while the store thread applies earlier ones, and are then applied together:
//! a device that falls behind a live stream (one small change a frame, as typing makes)
//! catches up in a few large applies instead of one per frame, each of which costs time
//! linear in the document's size in Automerge 0.12 (automerge#1042).

use std::collections::VecDeque;

use holdfast_protocol::{ChangeEntry, Cursor, RecordState};

use crate::limits::{APPLY_BYTES_MAX, APPLY_ENTRIES_MAX};
use crate::SpaceId;

#[cfg(test)]
mod tests;

/// One effect of the session to carry out on the store thread.
pub(crate) enum Received {
    Changes {
        space: SpaceId,
        entries: Vec<ChangeEntry>,
        next_cursor: Cursor,
    },
    Snapshot {
        space: SpaceId,
        records: Vec<RecordState>,
        cursor: Option<Cursor>,
    },
}

/// Received effects in the order the session handed them out, at most one applying.
#[derive(Default)]
pub(crate) struct ReceivedQueue {
    queue: VecDeque<Received>,
    busy: bool,
}

impl ReceivedQueue {
    pub(crate) fn push(&mut self, received: Received) {
        self.queue.push_back(received);
    }

    /// The next work, unless work is applying: a snapshot page alone, or the `Changes`
    /// of one space at the front, joined in order (the cursor is the last one's), with how
    /// many of the session's applies it carries.
    pub(crate) fn next(&mut self) -> Option<(Received, usize)> {
        if self.busy {
            return None;
        }
        let first = self.queue.pop_front()?;
        self.busy = true;
        let Received::Changes {
            space,
            mut entries,
            mut next_cursor,
        } = first
        else {
            return Some((first, 1));
        };
        let mut applies = 1;
        let mut bytes = change_bytes(&entries);
        while let Some(Received::Changes {
            space: next_space,
            entries: more,
            ..
        }) = self.queue.front()
        {
            let more_bytes = change_bytes(more);
            if *next_space != space
                || bytes + more_bytes > APPLY_BYTES_MAX
                || entries.len() + more.len() > APPLY_ENTRIES_MAX
            {
                break;
            }
            let Some(Received::Changes {
                entries: more,
                next_cursor: cursor,
                ..
            }) = self.queue.pop_front()
            else {
                unreachable!("the front was Changes");
            };
            entries.extend(more);
            next_cursor = cursor;
            bytes += more_bytes;
            applies += 1;
        }
        let joined = Received::Changes {
            space,
            entries,
            next_cursor,
        };
        Some((joined, applies))
    }

    /// The work handed out by [`next`](Self::next) is done.
    pub(crate) fn done(&mut self) {
        self.busy = false;
    }
}

fn change_bytes(entries: &[ChangeEntry]) -> usize {
    entries
        .iter()
        .map(|e| e.changes.iter().map(Vec::len).sum::<usize>())
        .sum()
}
