//! Importing a large bundle in durable steps, reporting progress between them, so a tool
//! can show a progress bar and an interrupted import keeps what it applied.

use super::import::{outcome, ImportSummary, Merged};
use crate::apply::ApplySummary;
use crate::error::Result;
use crate::limits::IMPORT_STEP_RECORDS;
use crate::subscribe::Origin;
use crate::Store;

impl Store {
    /// [`Store::import_changes`] for large bundles: the records are applied in steps of a
    /// few hundred, each durable on its own, and `progress(done, total)` (in records) is
    /// called before the first step and after each one.
    ///
    /// A damaged bundle is still refused whole, before anything is applied, and an import
    /// that refused records and applied none is an error, as with `import_changes`. If the
    /// import stops midway, the records applied so far stay, and importing the bundle again
    /// applies the rest: importing twice changes nothing.
    pub fn import_changes_with_progress(
        &self,
        bytes: &[u8],
        mut progress: impl FnMut(usize, usize),
    ) -> Result<ImportSummary> {
        let mut merged = Merged::default();
        merged.add(super::decode(bytes)?)?;
        let incoming = merged.finish();
        let total = incoming.len();
        let mut summary = ApplySummary::default();
        let mut done = 0;
        progress(done, total);
        let mut rest = incoming.into_iter().peekable();
        while rest.peek().is_some() {
            let step: Vec<_> = rest.by_ref().take(IMPORT_STEP_RECORDS).collect();
            done += step.len();
            let applied = self.inner.apply_incoming(step, Origin::Import, None)?;
            summary.records_changed += applied.records_changed;
            summary.changes_applied += applied.changes_applied;
            summary.auto_resolved += applied.auto_resolved;
            summary.rejected.extend(applied.rejected);
            progress(done, total);
        }
        outcome(summary, total)
    }
}

#[cfg(test)]
mod tests;
