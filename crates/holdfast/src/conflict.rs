//! Conflicts, all of them: what is a conflict and its candidates (`detect`), the table of
//! open conflicts and the counters a commit keeps (`table`), and settling one: by the app
//! ([`Resolution`], through [`Tx::resolve`](crate::Tx::resolve) and [`Store::resolve`]) or
//! by a [`Resolver`] as changes arrive (`settle`); every detected and settled conflict is
//! logged, and the settled ones are kept for a while (`history`).

use std::sync::Arc;

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use crate::doc::{FieldValue, STATE_FIELD};
use crate::error::Result;
use crate::tables;
use crate::value::Value;
use crate::{DeviceId, RecordId, Store};

pub(crate) mod detect;
pub(crate) mod history;
pub(crate) mod settle;
pub(crate) mod table;

/// One of the concurrent values of a conflicted field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The value this device wrote.
    pub value: Value,
    /// The device that wrote it (`None` for a writer outside Holdfast).
    pub device: Option<DeviceId>,
    /// When, by that device's clock (ms since the epoch): shown to people, never used to
    /// pick a winner.
    pub at_ms: i64,
    /// Whether this device wrote it.
    pub mine: bool,
}

/// How to settle a conflicted field.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Resolution {
    /// Keep the value written on this device.
    KeepMine,
    /// Take the other device's value (the most recent by its author's clock if several).
    UseTheirs,
    /// Write a new value (for example a merge of the candidates).
    Value(Value),
}

/// Picks a value for a conflicted versioned field, or leaves the conflict to the user.
pub type Resolver = Arc<dyn Fn(&[Candidate]) -> Option<Value> + Send + Sync>;

/// A conflicted field, as listed from the conflicts table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// The record.
    pub record: RecordId,
    /// The field ([`STATE_FIELD`] for a delete/edit conflict).
    pub field: String,
    /// When this device detected it (ms since the epoch, this device's clock).
    pub detected_ms: i64,
}

/// A conflict that was settled, as [`Store::settled_conflicts`] lists it: who wrote the
/// candidates and when, how it was settled, never the values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SettledConflict {
    /// The record.
    pub record: RecordId,
    /// The field ([`STATE_FIELD`] for a delete/edit conflict).
    pub field: String,
    /// Who wrote each candidate, and when (by that device's clock).
    pub authors: Vec<Author>,
    /// How it was settled.
    pub how: Settlement,
    /// When this device detected it (its clock), if it did.
    pub detected_ms: Option<i64>,
    /// When it was settled on this device (its clock).
    pub settled_ms: i64,
}

/// Who wrote one candidate of a conflict, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    /// The device (`None` for a writer outside Holdfast).
    pub device: Option<DeviceId>,
    /// When, by that device's clock (ms since the epoch).
    pub at_ms: i64,
}

/// How a conflict was settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Settlement {
    /// This device kept its own version.
    KeptMine,
    /// This device took another device's version.
    UsedTheirs,
    /// This device wrote a value none of the candidates held.
    NewValue,
    /// A [`Resolver`] of this app picked the value as the changes arrived.
    Resolver,
    /// A change from another device settled it (its user or its resolver).
    Elsewhere,
    /// The candidates became equal (another device wrote the same value), so nothing was
    /// left to choose.
    Converged,
}

impl Settlement {
    /// The name logged for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Settlement::KeptMine => "kept_mine",
            Settlement::UsedTheirs => "used_theirs",
            Settlement::NewValue => "new_value",
            Settlement::Resolver => "resolver",
            Settlement::Elsewhere => "elsewhere",
            Settlement::Converged => "converged",
        }
    }
}

impl From<&Candidate> for Author {
    fn from(c: &Candidate) -> Author {
        Author {
            device: c.device,
            at_ms: c.at_ms,
        }
    }
}

/// How many conflicts this store has seen since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictCounts {
    /// Conflicts detected.
    pub detected: u64,
    /// Conflicts settled (by the user, a resolver, or a later write).
    pub resolved: u64,
}

impl Store {
    /// Every open conflict, in record order. Read from a table, not by scanning documents.
    pub fn conflicts(&self) -> Result<Vec<Conflict>> {
        self.inner.reading(|txn| {
            let table = txn.open_table(tables::CONFLICTS)?;
            let mut out = Vec::new();
            for item in table.iter()? {
                let (k, v) = item?;
                let (record, field) = k.value();
                out.push(Conflict {
                    record: RecordId::from_bytes(record.to_be_bytes()),
                    field: field.to_owned(),
                    detected_ms: v.value(),
                });
            }
            Ok(out)
        })
    }

    /// The candidates of a conflicted field (empty when it is not in conflict).
    pub fn candidates(&self, id: RecordId, field: &str) -> Result<Vec<Candidate>> {
        let me = self.inner.device;
        self.inner.read(id, |view, meta| {
            if field == STATE_FIELD {
                return Ok(detect::state_candidates(&view, me));
            }
            let def = self.inner.schema.field(&meta.collection, field)?;
            Ok(match view.field(field, def, me) {
                FieldValue::Conflict(c) => c,
                _ => Vec::new(),
            })
        })
    }

    /// Settles a conflict durably (see [`Tx::resolve`](crate::Tx::resolve)).
    pub fn resolve(&self, id: RecordId, field: &str, resolution: Resolution) -> Result<()> {
        self.write(|tx| tx.resolve(id, field, resolution))
    }

    /// The newest `limit` settled conflicts, newest first: at most
    /// [`SETTLED_CONFLICTS_MAX`](crate::SETTLED_CONFLICTS_MAX), none older than
    /// [`SETTLED_CONFLICT_AGE_MS_MAX`](crate::SETTLED_CONFLICT_AGE_MS_MAX) when the last
    /// one was settled. To learn how often a strategy is wrong; every detected and settled
    /// conflict is also logged (`tracing`, target `holdfast::conflict`).
    pub fn settled_conflicts(&self, limit: usize) -> Result<Vec<SettledConflict>> {
        self.inner
            .reading(|txn| history::read(&txn.open_table(tables::CONFLICTS_SETTLED)?, limit))
    }

    /// Conflicts detected and resolved since the store was created.
    pub fn conflict_counts(&self) -> Result<ConflictCounts> {
        self.inner
            .reading(|txn| table::counts(&txn.open_table(tables::META)?))
    }
}
