//! Importing bundles, one or several in one durable step, and what an import did: an
//! [`ImportSummary`] the caller must look at, or [`ImportRefused`] when nothing of it could
//! be applied, so that code using `?` never mistakes a refused bundle for an applied one.

use std::collections::{BTreeMap, HashMap, HashSet};

use automerge::{Change, ChangeHash};
use serde::{Deserialize, Serialize};

use super::{decode, BundleBody};
use crate::apply::{ApplySummary, Incoming, Refusal};
use crate::error::{BundleError, Error, Result};
use crate::subscribe::Origin;
use crate::{RecordId, Store};

/// What an import applied, and the records it refused. An `Ok` import brought at least one
/// record of its bundles here (or found it here already); when it also refused records, it
/// is partial: check [`ImportSummary::is_complete`], or turn a partial import into an error
/// with [`ImportSummary::complete`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[must_use = "an import may be partial: check `refused`, or call `complete()`"]
#[non_exhaustive]
pub struct ImportSummary {
    /// Records of the bundles that were not refused: applied, or here already.
    pub records_accepted: usize,
    /// Records that changed.
    pub records_changed: usize,
    /// Changes that were new to this store (0 when every change was already here).
    pub changes_applied: usize,
    /// Conflicts settled by a resolver while applying.
    pub auto_resolved: usize,
    /// Records whose changes could not be applied, with why ([`Refusal::kind`] for code,
    /// [`Refusal::reason`] for people); nothing local of them was touched. Every other
    /// record was applied.
    pub refused: Vec<Refusal>,
}

/// An import that refused records: from the import itself when it refused every record of
/// its bundles (as [`BundleError::Refused`]), or from [`ImportSummary::complete`] when it
/// refused only some. Importing the same bundles again once the changes they need are here
/// applies them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(self))]
#[non_exhaustive]
pub struct ImportRefused {
    /// The records refused, with why.
    pub refused: Vec<Refusal>,
    /// Records of the bundles that were not refused (applied, or here already): 0 when
    /// nothing could be applied.
    pub records_accepted: usize,
}

impl ImportSummary {
    /// Whether every record's changes were applied.
    pub fn is_complete(&self) -> bool {
        self.refused.is_empty()
    }

    /// `Ok` for a complete import, the refusals as an error otherwise, for callers that
    /// treat a partial import as a failure: `store.import_changes(&bytes)?.complete()?`.
    /// The records that were applied stay applied either way.
    pub fn complete(&self) -> Result<(), ImportRefused> {
        if self.is_complete() {
            return Ok(());
        }
        Err(ImportRefused {
            refused: self.refused.clone(),
            records_accepted: self.records_accepted,
        })
    }
}

impl From<ImportRefused> for Error {
    fn from(e: ImportRefused) -> Self {
        Error::Bundle(BundleError::Refused(e))
    }
}

impl Store {
    /// Imports a bundle; the same as [`Store::import_many`] with one bundle.
    pub fn import_changes(&self, bytes: &[u8]) -> Result<ImportSummary> {
        self.import_many([bytes])
    }

    /// Imports several bundles in one durable write (one fsync, however many bundles).
    /// A change that depends on a change in another of the bundles applies whatever their
    /// order. Importing bundles a second time changes nothing.
    ///
    /// - A damaged bundle refuses the whole call before anything is applied, with the first
    ///   damaged bundle's [`BundleError`].
    /// - When every record of the bundles is refused (most often because it needs changes
    ///   that none of the bundles brings and this store does not have), the import is an
    ///   error, [`BundleError::Refused`], listing why: nothing was applied.
    /// - Otherwise the summary lists the refused records, if any; every other record was
    ///   applied. Importing the same bundles again gives the same verdict.
    pub fn import_many<B: AsRef<[u8]>>(
        &self,
        bundles: impl IntoIterator<Item = B>,
    ) -> Result<ImportSummary> {
        let mut merged = Merged::default();
        for bytes in bundles {
            merged.add(decode(bytes.as_ref())?)?;
        }
        let incoming = merged.finish();
        let records = incoming.len();
        let applied = self.inner.apply_incoming(incoming, Origin::Import, None)?;
        outcome(applied, records)
    }
}

/// An import's summary, or [`ImportRefused`] when it refused each of its `records`.
pub(super) fn outcome(applied: ApplySummary, records: usize) -> Result<ImportSummary> {
    let refused = applied.rejected.len();
    let summary = ImportSummary {
        records_accepted: records.saturating_sub(refused),
        records_changed: applied.records_changed,
        changes_applied: applied.changes_applied,
        auto_resolved: applied.auto_resolved,
        refused: applied.rejected,
    };
    if refused > 0 && summary.records_accepted == 0 {
        return Err(ImportRefused {
            refused: summary.refused,
            records_accepted: 0,
        }
        .into());
    }
    Ok(summary)
}

/// The records of one or more bundles with their changes parsed, each change once.
#[derive(Default)]
pub(super) struct Merged {
    records: BTreeMap<RecordId, (Vec<Change>, HashSet<ChangeHash>)>,
}

impl Merged {
    /// Adds a bundle's records; one damaged change refuses the bundle.
    pub(super) fn add(&mut self, body: BundleBody) -> Result<(), BundleError> {
        for r in body.records {
            let (changes, seen) = self.records.entry(r.id).or_default();
            for raw in r.changes {
                let change = Change::try_from(raw.as_slice())
                    .map_err(|e| BundleError::Corrupt(format!("record {}: {e}", r.id)))?;
                if seen.insert(change.hash()) {
                    changes.push(change);
                }
            }
        }
        Ok(())
    }

    /// The records in id order, each one's changes in causal order.
    pub(super) fn finish(self) -> Vec<Incoming> {
        self.records
            .into_iter()
            .map(|(record, (changes, _))| Incoming {
                record,
                changes: causal_order(changes),
            })
            .collect()
    }
}

/// `changes` reordered so that each comes after those of its dependencies that are among
/// them; otherwise in the order given. One bundle is causal already; several given out of
/// order are not, and the store appends a record's new changes in the order applied.
fn causal_order(changes: Vec<Change>) -> Vec<Change> {
    let at: HashMap<ChangeHash, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.hash(), i))
        .collect();
    let mut placed = vec![false; changes.len()];
    let mut order = Vec::with_capacity(changes.len());
    // Depth first from each change in turn, a change placed after its dependencies; a stack
    // rather than recursion, since a record's history can be a chain of thousands.
    for start in 0..changes.len() {
        let mut stack = vec![(start, false)];
        while let Some((i, deps_placed)) = stack.pop() {
            if placed[i] {
                continue;
            }
            if deps_placed {
                placed[i] = true;
                order.push(i);
                continue;
            }
            stack.push((i, true));
            for dep in changes[i].deps() {
                if let Some(&j) = at.get(dep) {
                    if !placed[j] {
                        stack.push((j, false));
                    }
                }
            }
        }
    }
    let mut slots: Vec<Option<Change>> = changes.into_iter().map(Some).collect();
    order
        .into_iter()
        .map(|i| slots[i].take().expect("each change placed once"))
        .collect()
}

fn describe(e: &ImportRefused) -> String {
    let first = e
        .refused
        .first()
        .map_or_else(String::new, Refusal::to_string);
    let more = match e.refused.len() {
        0 | 1 => String::new(),
        n => format!(" (and {} more refused)", n - 1),
    };
    match e.records_accepted {
        0 => format!("nothing was imported: {first}{more}"),
        1 => format!("1 record imported, but refused {first}{more}"),
        n => format!("{n} records imported, but refused {first}{more}"),
    }
}

#[cfg(test)]
mod tests;
