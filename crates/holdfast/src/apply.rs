//! Applying changes made elsewhere (an imported bundle now, the relay later) to local
//! records: batched per document, staged and committed like a local write.

use automerge::{Change, ReadDoc};
use serde::{Deserialize, Serialize};

use crate::cache::Entry;
use crate::commit::{Before, Changed, Staged};
use crate::doc::{View, COLLECTION_KEY, SPACE_KEY};
use crate::error::Result;
use crate::store::{Inner, State};
use crate::subscribe::Origin;
use crate::tables::RecordMeta;
use crate::{RecordId, SpaceId};

/// Changes for one record, parsed and checked.
pub(crate) struct Incoming {
    pub record: RecordId,
    pub changes: Vec<Change>,
}

/// What an import or a pull changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplySummary {
    /// Records that changed.
    pub records_changed: usize,
    /// Changes that were new to this device.
    pub changes_applied: usize,
    /// Conflicts settled by a resolver while applying.
    pub auto_resolved: usize,
    /// Records whose changes could not be applied, with why. Nothing local of them was
    /// touched; every other record was applied.
    pub rejected: Vec<Refusal>,
}

/// A record whose changes an import (or a pull) could not apply, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("record {record}: {reason}")]
#[non_exhaustive]
pub struct Refusal {
    /// The record, left as it was.
    pub record: RecordId,
    /// Why, for code.
    pub kind: RefusalKind,
    /// Why, in words for people: most often that it needs earlier changes this store does
    /// not have (import the earlier bundle, then this one again).
    pub reason: String,
}

/// Why a record's changes were refused: [`Refusal::kind`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RefusalKind {
    /// They build on changes this store does not have: bring those (import the earlier
    /// bundle, or sync), then apply these again.
    MissingDependencies,
    /// Automerge refused them as they are (inconsistent changes, such as two different
    /// changes of one author with the same sequence number).
    InvalidChanges,
    /// They apply, but the record's creation is not among them: the changes of something
    /// other than a Holdfast record.
    NotCreated,
    /// The record's creation names a space whose name is not valid.
    InvalidSpace {
        /// The name it gives.
        space: String,
    },
    /// The record belongs to a collection this app version's schema does not declare
    /// (most often a newer app version made it).
    UnknownCollection {
        /// The collection it names.
        collection: String,
    },
}

impl RefusalKind {
    /// The kind in words, as [`Refusal::reason`] gives it.
    fn reason(&self) -> String {
        match self {
            RefusalKind::MissingDependencies => "it needs earlier changes this device does not \
                 have yet (import the earlier bundle first)"
                .into(),
            RefusalKind::InvalidChanges => "its changes could not be applied".into(),
            RefusalKind::NotCreated => "the record's creation is missing".into(),
            RefusalKind::InvalidSpace { space } => format!("invalid space name {space:?}"),
            RefusalKind::UnknownCollection { collection } => {
                format!("this app version does not know the collection {collection:?}")
            }
        }
    }
}

impl Refusal {
    fn new(record: RecordId, kind: RefusalKind) -> Refusal {
        Refusal {
            record,
            reason: kind.reason(),
            kind,
        }
    }
}

impl Inner {
    /// Applies `incoming` in one durable write, with `cursor` (a space and its cursor row,
    /// or none to forget it) in the same transaction. Returns once it is on disk.
    pub(crate) fn apply_incoming(
        &self,
        incoming: Vec<Incoming>,
        origin: Origin,
        cursor: Option<(&SpaceId, Option<Vec<u8>>)>,
    ) -> Result<ApplySummary> {
        self.writable()?;
        self.check_reentrant()?;
        let now = self.now();
        let mut summary = ApplySummary::default();
        let pending = {
            // Held until the write is queued, not while it waits for its fsync.
            let _exclusive = self.staging.write().unwrap_or_else(|e| e.into_inner());
            let mut st = self.lock_state()?;
            let mut staged = Staged::default();
            for inc in incoming {
                match self.apply_one(&mut st, inc, now, &mut summary)? {
                    Ok(changed) => self.stage_record(&mut st, &mut staged, changed, origin, now),
                    Err(refused) => summary.rejected.push(refused),
                }
            }
            if let Some((space, row)) = cursor {
                staged.set_cursor(space.as_str(), row);
            }
            if staged.is_empty() {
                return Ok(summary);
            }
            self.enqueue(&mut st, staged)
        };
        self.wait_durable(pending)?;
        Ok(summary)
    }

    /// Applies one record's changes in memory. The inner `Err` is why they were refused;
    /// the record is then left as it was.
    fn apply_one(
        &self,
        st: &mut State,
        inc: Incoming,
        now: i64,
        summary: &mut ApplySummary,
    ) -> Result<Result<Changed, Refusal>> {
        let id = inc.record;
        let mut entry = match self.take(st, id)? {
            Some(e) => e,
            None => self.unknown_record(now),
        };
        let before = Before::of(self, id, &entry.doc, &entry.meta);
        // The changes new to the document, each once, in the order received (causal: the
        // relay's log and bundles keep each record's changes in causal order).
        let mut seen = std::collections::HashSet::new();
        let fresh: Vec<Change> = inc
            .changes
            .iter()
            .filter(|c| entry.doc.get_change_by_hash(&c.hash()).is_none() && seen.insert(c.hash()))
            .cloned()
            .collect();
        let refused = match entry.doc.apply_changes(inc.changes) {
            Err(e) => {
                // Automerge's own words say which change and why.
                let mut refusal = Refusal::new(id, RefusalKind::InvalidChanges);
                refusal.reason = format!("{}: {e}", refusal.reason);
                Some(refusal)
            }
            Ok(()) if !entry.doc.get_missing_deps(&[]).is_empty() => {
                Some(Refusal::new(id, RefusalKind::MissingDependencies))
            }
            Ok(()) => self
                .adopt(&mut entry)
                .err()
                .map(|kind| Refusal::new(id, kind)),
        };
        if let Some(refusal) = refused {
            self.put_back_unchanged(st, id, entry, &before.heads)?;
            return Ok(Err(refusal));
        }
        let mut before = before;
        let resolved =
            self.resolve_noting(&mut entry, now, &mut before.conflicts, &mut before.resolved);
        summary.auto_resolved += resolved;
        if entry.doc.get_heads() != before.heads {
            summary.records_changed += 1;
            summary.changes_applied += fresh.len();
        }
        // A resolver's own change is not among them: then collect from the document.
        let new_changes = (resolved == 0).then_some(fresh);
        Ok(Ok(Changed {
            id,
            entry,
            before,
            new_changes,
        }))
    }

    /// A record this device has never seen; its collection and space come from its changes.
    fn unknown_record(&self, now: i64) -> Entry {
        Entry {
            doc: self.new_doc(),
            meta: RecordMeta {
                collection: String::new(),
                space: SpaceId::new("pending").expect("valid"),
                heads: Vec::new(),
                chunks: 0,
                snapshot_bytes: 0,
                tail_bytes: 0,
                created_ms: now,
                updated_ms: now,
            },
            committed_heads: Vec::new(),
            dirty: 0,
        }
    }

    /// Checks the record's creation arrived and, for a record new to this device, takes its
    /// collection and space from the document.
    fn adopt(&self, entry: &mut Entry) -> std::result::Result<(), RefusalKind> {
        let view = View::latest(&entry.doc);
        let (Some(collection), Some(space)) =
            (view.root_str(COLLECTION_KEY), view.root_str(SPACE_KEY))
        else {
            return Err(RefusalKind::NotCreated);
        };
        if !entry.meta.heads.is_empty() {
            return Ok(());
        }
        let space = SpaceId::new(&space).map_err(|_| RefusalKind::InvalidSpace { space })?;
        if self.schema.get(&collection).is_err() {
            return Err(RefusalKind::UnknownCollection { collection });
        }
        entry.meta.collection = collection;
        entry.meta.space = space;
        Ok(())
    }

    /// Puts an entry back as it was before a refused apply. The refused changes are in its
    /// document (applied, or queued for missing dependencies) and must not stay in memory:
    /// a queued change would make every later apply of the record look incomplete, and an
    /// applied one would be read and built on without being on disk (found by the
    /// `merge_convergence` fuzz target).
    fn put_back_unchanged(
        &self,
        st: &mut State,
        id: RecordId,
        mut entry: Entry,
        heads_before: &[automerge::ChangeHash],
    ) -> Result<()> {
        if entry.dirty == 0 {
            // Nothing staged: the next access loads the record from disk, as it was (a
            // record that was never on disk is simply gone).
            return Ok(());
        }
        // Writes staged but not yet durable pin the entry: rebuild it at its old heads.
        let mut doc = entry.doc.fork_at(heads_before)?;
        doc.set_actor(self.actor.clone());
        entry.doc = doc;
        st.cache.insert(id, entry);
        Ok(())
    }

    /// Runs the configured resolvers on conflicted fields (see `conflict::settle`), adding
    /// the conflicts they settle to `open` and `resolved` (a write's [`Before::conflicts`]
    /// and [`Before::resolved`]) so that the commit logs and keeps them; returns how many
    /// they settled. Every apply of changes from elsewhere (a pull, an import, a repair)
    /// settles through here.
    pub(crate) fn resolve_noting(
        &self,
        entry: &mut Entry,
        now: i64,
        open: &mut Vec<(String, Vec<crate::Candidate>)>,
        resolved: &mut Vec<String>,
    ) -> usize {
        let settled = crate::conflict::settle::run_resolvers(
            &self.schema,
            &self.config.resolvers,
            self.device,
            &entry.meta.collection,
            &mut entry.doc,
            now,
        );
        let count = settled.len();
        for (field, candidates) in settled {
            open.retain(|(f, _)| *f != field);
            resolved.push(field.clone());
            open.push((field, candidates));
        }
        count
    }
}
