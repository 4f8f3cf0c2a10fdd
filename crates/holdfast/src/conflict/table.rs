//! The table of open conflicts and the store's conflict counters, as a commit updates them,
//! and what each write did to a conflict ([`Note`]), which the commit logs and keeps.

use redb::{ReadableTable, WriteTransaction};

use super::history::{self, Event};
use super::{detect, settle, Author, Candidate, ConflictCounts, SettledConflict, Settlement};
use crate::doc::{Doc, FieldValue, View, STATE_FIELD};
use crate::error::Result;
use crate::schema::Schema;
use crate::subscribe::Origin;
use crate::tables;
use crate::{DeviceId, RecordId};

const META_DETECTED: &str = "conflicts_detected";
const META_RESOLVED: &str = "conflicts_resolved";

/// The counters, read from the meta table.
pub(crate) fn counts(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<ConflictCounts> {
    let read = |key| -> Result<u64> {
        Ok(meta
            .get(key)?
            .and_then(|v| v.value().try_into().ok())
            .map_or(0, u64::from_le_bytes))
    };
    Ok(ConflictCounts {
        detected: read(META_DETECTED)?,
        resolved: read(META_RESOLVED)?,
    })
}

/// What a write did to one field's conflict, as its document tells: detected it (with the
/// candidates' authors), or settled it (with the authors it had, and how).
pub(crate) struct Note {
    field: String,
    authors: Vec<Author>,
    settled: Option<Settlement>,
}

/// The notes of a write to a record of `collection` that left `flags`, starting from the
/// open conflicts `before` (`resolved`: the fields a resolver settled meanwhile).
#[allow(clippy::too_many_arguments)]
pub(crate) fn notes<D: Doc>(
    schema: &Schema,
    me: DeviceId,
    before: &[(String, Vec<Candidate>)],
    resolved: &[String],
    flags: &[(String, bool)],
    view: &View<'_, D>,
    collection: &str,
    origin: Origin,
) -> Vec<Note> {
    let authors = |c: &[Candidate]| c.iter().map(Author::from).collect();
    let mut out = Vec::new();
    for (field, conflicted) in flags {
        let was = before.iter().find(|(f, _)| f == field).map(|(_, c)| c);
        let def = if field == STATE_FIELD {
            None
        } else {
            schema.field(collection, field).ok()
        };
        match (was, conflicted) {
            (None, true) => {
                let now = match def {
                    None => detect::state_candidates(view, me),
                    Some(def) => match detect::versioned(view, field, def, me) {
                        FieldValue::Conflict(c) => c,
                        _ => Vec::new(),
                    },
                };
                out.push(Note {
                    field: field.clone(),
                    authors: authors(&now),
                    settled: None,
                });
            }
            (Some(was), false) => out.push(Note {
                field: field.clone(),
                authors: authors(was),
                settled: Some(settle::how(
                    origin,
                    was,
                    resolved.contains(field),
                    view,
                    field,
                    def,
                )),
            }),
            _ => {}
        }
    }
    out
}

/// The conflicts table within a commit's transaction: flags set per record, counted, and
/// the counters and the history added to when the commit is done with it
/// ([`Flags::finish`]).
pub(crate) struct Flags<'t> {
    table: redb::Table<'t, (u128, &'static str), i64>,
    detected: u64,
    resolved: u64,
    events: Vec<Event>,
    now_ms: i64,
}

impl<'t> Flags<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Flags<'t>> {
        Ok(Flags {
            table: txn.open_table(tables::CONFLICTS)?,
            detected: 0,
            resolved: 0,
            events: Vec::new(),
            now_ms: i64::MIN,
        })
    }

    /// Records which fields of `id` are in conflict after a write made at `now_ms`; `notes`
    /// say who wrote the candidates, and how those settled were settled.
    pub(crate) fn set(
        &mut self,
        id: RecordId,
        flags: &[(String, bool)],
        notes: &[Note],
        now_ms: i64,
    ) -> Result<()> {
        let key = tables::rid(id);
        self.now_ms = self.now_ms.max(now_ms);
        for (field, conflicted) in flags {
            // Read first: the table is only written when a flag changes.
            let k = (key, field.as_str());
            let present = self.table.get(k)?.is_some();
            let note = notes.iter().find(|n| &n.field == field);
            let authors = note.map(|n| n.authors.clone()).unwrap_or_default();
            if *conflicted && !present {
                self.table.insert(k, now_ms)?;
                self.detected += 1;
                self.events.push(Event::Detected {
                    record: id,
                    field: field.clone(),
                    authors,
                });
            } else if !*conflicted && !present && note.is_some_and(|n| n.settled.is_some()) {
                // Settled by a resolver as the changes arrived: never open on this device,
                // but a conflict all the same (the counts say how often the app's
                // strategy had to choose), detected and settled in this one write.
                self.detected += 1;
                self.resolved += 1;
                self.events.push(Event::Settled(SettledConflict {
                    record: id,
                    field: field.clone(),
                    authors,
                    how: note.and_then(|n| n.settled).unwrap_or(Settlement::Resolver),
                    detected_ms: None,
                    settled_ms: now_ms,
                }));
            } else if !*conflicted && present {
                let detected_ms = self.table.remove(k)?.map(|v| v.value());
                self.resolved += 1;
                self.events.push(Event::Settled(SettledConflict {
                    record: id,
                    field: field.clone(),
                    authors,
                    // A flag the document did not show open when the write began.
                    how: note
                        .and_then(|n| n.settled)
                        .unwrap_or(Settlement::Elsewhere),
                    detected_ms,
                    settled_ms: now_ms,
                }));
            }
        }
        Ok(())
    }

    /// Adds what this commit detected and settled to the persisted counters and the
    /// history; returns the events to log once the commit is durable.
    pub(crate) fn finish(self, txn: &WriteTransaction) -> Result<Vec<Event>> {
        drop(self.table);
        let settled: Vec<&SettledConflict> = self
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Settled(s) => Some(s),
                Event::Detected { .. } => None,
            })
            .collect();
        if !settled.is_empty() {
            history::record(txn, &settled, self.now_ms)?;
        }
        if self.detected + self.resolved == 0 {
            return Ok(self.events);
        }
        let mut meta = txn.open_table(tables::META)?;
        for (key, add) in [
            (META_DETECTED, self.detected),
            (META_RESOLVED, self.resolved),
        ] {
            let old = meta
                .get(key)?
                .and_then(|v| v.value().try_into().ok())
                .map_or(0, u64::from_le_bytes);
            meta.insert(key, (old + add).to_le_bytes().as_slice())?;
        }
        Ok(self.events)
    }
}
