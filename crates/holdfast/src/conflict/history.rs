//! The settled conflicts kept for a while ([`SETTLED_CONFLICTS_MAX`], at most
//! [`SETTLED_CONFLICT_AGE_MS_MAX`] old), and the log line of every detected and settled
//! conflict. Neither holds a field's value: only who wrote the candidates, when, and how
//! the conflict was settled.

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{Author, SettledConflict, Settlement};
use crate::error::Result;
use crate::limits::{SETTLED_CONFLICTS_MAX, SETTLED_CONFLICT_AGE_MS_MAX};
use crate::tables::{self, CONFLICTS_SETTLED, SETTLED_ROW_V1};
use crate::RecordId;

/// A conflict a commit detected or settled, to log once the commit is durable.
#[derive(Clone, Debug)]
pub(crate) enum Event {
    Detected {
        record: RecordId,
        field: String,
        authors: Vec<Author>,
    },
    Settled(SettledConflict),
}

/// The stored row (its own type, so the public one can grow without changing the format).
#[derive(Serialize, Deserialize)]
struct Row {
    record: RecordId,
    field: String,
    authors: Vec<(Option<crate::DeviceId>, i64)>,
    how: Settlement,
    detected_ms: Option<i64>,
    settled_ms: i64,
}

/// Appends `settled` to the history in `txn`, then prunes it to its bounds as of `now_ms`.
pub(crate) fn record(
    txn: &WriteTransaction,
    settled: &[&SettledConflict],
    now_ms: i64,
) -> Result<()> {
    let mut table = txn.open_table(CONFLICTS_SETTLED)?;
    let first = table.last()?.map_or(0, |(k, _)| k.value() + 1);
    for (next, s) in (first..).zip(settled) {
        let row = Row {
            record: s.record,
            field: s.field.clone(),
            authors: s.authors.iter().map(|a| (a.device, a.at_ms)).collect(),
            how: s.how,
            detected_ms: s.detected_ms,
            settled_ms: s.settled_ms,
        };
        table.insert(next, tables::encode_row(SETTLED_ROW_V1, &row).as_slice())?;
    }
    let excess = (table.len()? as usize).saturating_sub(SETTLED_CONFLICTS_MAX);
    for _ in 0..excess {
        table.pop_first()?;
    }
    let oldest_kept_ms = now_ms.saturating_sub(SETTLED_CONFLICT_AGE_MS_MAX);
    loop {
        let settled_ms = match table.first()? {
            Some((_, row)) => {
                let row: Row = tables::decode_row(SETTLED_ROW_V1, row.value(), "settled conflict")?;
                row.settled_ms
            }
            None => break,
        };
        if settled_ms >= oldest_kept_ms {
            break;
        }
        table.pop_first()?;
    }
    Ok(())
}

/// The newest `limit` settled conflicts, newest first.
pub(crate) fn read(
    table: &impl ReadableTable<u64, &'static [u8]>,
    limit: usize,
) -> Result<Vec<SettledConflict>> {
    let mut out = Vec::new();
    for item in table.iter()?.rev().take(limit) {
        let (_, row) = item?;
        let row: Row = tables::decode_row(SETTLED_ROW_V1, row.value(), "settled conflict")?;
        out.push(SettledConflict {
            record: row.record,
            field: row.field,
            authors: row
                .authors
                .into_iter()
                .map(|(device, at_ms)| Author { device, at_ms })
                .collect(),
            how: row.how,
            detected_ms: row.detected_ms,
            settled_ms: row.settled_ms,
        });
    }
    Ok(out)
}

/// Logs each event as one structured line (target `holdfast::conflict`).
pub(crate) fn log(events: &[Event]) {
    for e in events {
        match e {
            Event::Detected {
                record,
                field,
                authors,
            } => tracing::info!(
                target: "holdfast::conflict",
                record = %record,
                field = field.as_str(),
                candidates = %Authors(authors),
                "conflict detected"
            ),
            Event::Settled(s) => tracing::info!(
                target: "holdfast::conflict",
                record = %s.record,
                field = s.field.as_str(),
                candidates = %Authors(&s.authors),
                how = s.how.as_str(),
                "conflict settled"
            ),
        }
    }
}

/// Candidates' authors as `device@ms` separated by commas (`unknown` for a writer outside
/// Holdfast).
struct Authors<'a>(&'a [Author]);

impl std::fmt::Display for Authors<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match a.device {
                Some(d) => write!(f, "{d}@{}", a.at_ms)?,
                None => write!(f, "unknown@{}", a.at_ms)?,
            }
        }
        Ok(())
    }
}
