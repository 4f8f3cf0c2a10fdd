//! Bookkeeping of the repairs under way on one connection: per space, the records still
//! to reconcile and each running conversation's Automerge sync state.
//!
//! A conversation is in lock step: the device sends one message and waits for the relay's
//! answer, which goes through the store's durable apply path before the next message is
//! generated. It ends when the device has nothing more to say (`generate_sync_message`
//! returns `None`), when the relay answers with an empty message (it has nothing more to
//! say, for instance about a record whose changes it cannot take). A relay silent for the
//! reply timeout ends the connection: the space's repair starts again on the next one.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use automerge::sync;

use crate::limits::REPAIR_RECORDS_IN_FLIGHT;
use crate::{RecordId, SpaceId};

/// Every repair of a connection.
pub(crate) struct Repairs {
    spaces: BTreeMap<SpaceId, SpaceRepair>,
    reply_timeout: Duration,
}

#[derive(Default)]
struct SpaceRepair {
    /// The records are listed (the list is read on the blocking thread first).
    listed: bool,
    todo: VecDeque<RecordId>,
    active: HashMap<RecordId, Conversation>,
    /// Every record is done; the space's cursor is being forgotten.
    forgetting: bool,
}

enum Conversation {
    /// A message is being received or generated on the blocking thread.
    Working,
    /// A message was sent; the relay's answer is awaited.
    Waiting {
        state: Box<sync::State>,
        /// When the message went out (monotonic ms).
        since: u64,
    },
}

impl Repairs {
    pub(super) fn new(reply_timeout: Duration) -> Self {
        Self {
            spaces: BTreeMap::new(),
            reply_timeout,
        }
    }

    /// Starts repairing `space`; false if it is under repair already.
    pub(super) fn start(&mut self, space: &SpaceId) -> bool {
        if self.spaces.contains_key(space) {
            return false;
        }
        self.spaces.insert(space.clone(), SpaceRepair::default());
        true
    }

    /// The records of `space` on this device, to reconcile one by one.
    pub(super) fn listed(&mut self, space: &SpaceId, records: Vec<RecordId>) {
        if let Some(s) = self.spaces.get_mut(space) {
            s.listed = true;
            s.todo = records.into();
        }
    }

    /// Records whose conversation starts now (marked working), within the in-flight limit.
    pub(super) fn next_records(&mut self, space: &SpaceId) -> Vec<RecordId> {
        let Some(s) = self.spaces.get_mut(space) else {
            return Vec::new();
        };
        let mut started = Vec::new();
        while s.active.len() < REPAIR_RECORDS_IN_FLIGHT {
            let Some(record) = s.todo.pop_front() else {
                break;
            };
            s.active.insert(record, Conversation::Working);
            started.push(record);
        }
        started
    }

    /// The device's message for `record` went out; its answer is awaited.
    pub(super) fn waiting(
        &mut self,
        space: &SpaceId,
        record: RecordId,
        state: Box<sync::State>,
        since: u64,
    ) {
        if let Some(s) = self.spaces.get_mut(space) {
            s.active
                .insert(record, Conversation::Waiting { state, since });
        }
    }

    /// The relay answered for `record`: its sync state, if an answer was awaited (the
    /// conversation is marked working again).
    pub(super) fn answered(
        &mut self,
        space: &SpaceId,
        record: RecordId,
    ) -> Option<Box<sync::State>> {
        let s = self.spaces.get_mut(space)?;
        match s.active.remove(&record)? {
            Conversation::Waiting { state, .. } => {
                s.active.insert(record, Conversation::Working);
                Some(state)
            }
            working => {
                s.active.insert(record, working);
                None
            }
        }
    }

    /// `record`'s conversation is over.
    pub(super) fn done(&mut self, space: &SpaceId, record: RecordId) {
        if let Some(s) = self.spaces.get_mut(space) {
            s.active.remove(&record);
        }
    }

    /// Conversations whose answer did not come within the reply timeout.
    pub(super) fn expired(&mut self, now: u64) -> Vec<(SpaceId, RecordId)> {
        let timeout = self.reply_timeout.as_millis() as u64;
        let mut over = Vec::new();
        for (space, s) in &mut self.spaces {
            s.active.retain(|record, c| match c {
                Conversation::Waiting { since, .. } if now >= *since + timeout => {
                    over.push((space.clone(), *record));
                    false
                }
                _ => true,
            });
        }
        over
    }

    /// When the next awaited answer times out (monotonic ms).
    pub(super) fn next_timeout(&self) -> Option<u64> {
        let timeout = self.reply_timeout.as_millis() as u64;
        self.spaces
            .values()
            .flat_map(|s| s.active.values())
            .filter_map(|c| match c {
                Conversation::Waiting { since, .. } => Some(*since + timeout),
                Conversation::Working => None,
            })
            .min()
    }

    /// Whether every record of `space` is done; if so the space moves on to forgetting
    /// its cursor (true once).
    pub(super) fn finished(&mut self, space: &SpaceId) -> bool {
        match self.spaces.get_mut(space) {
            Some(s) if s.listed && s.todo.is_empty() && s.active.is_empty() && !s.forgetting => {
                s.forgetting = true;
                true
            }
            _ => false,
        }
    }

    /// The space's cursor is forgotten: its repair is over.
    pub(super) fn forgot(&mut self, space: &SpaceId) {
        self.spaces.remove(space);
    }

    /// No repair under way.
    pub(super) fn is_idle(&self) -> bool {
        self.spaces.is_empty()
    }
}
