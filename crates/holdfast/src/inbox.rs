//! Changes arriving from the relay: applied with the space's sync cursor in one durable
//! transaction, so a cursor never runs ahead of what the device holds.

use std::collections::{HashMap, HashSet};

use automerge::{Automerge, Change};
use holdfast_protocol::{ChangeEntry, Cursor, RecordState};

use crate::apply::{ApplySummary, Incoming};
use crate::error::{Error, Result};
use crate::subscribe::Origin;
use crate::tables;
use crate::{RecordId, SpaceId, Store};

/// The receiving side of sync: the cursor of each space and the application of what the
/// relay sends. The sync worker uses it; a test or a simulation driving a
/// [`ClientSession`](holdfast_protocol::ClientSession) by hand can too.
///
/// Changes received here never enter the outbox (the relay has them), except changes this
/// device makes while applying them (a resolver's outcome). They raise change
/// notifications with [`Origin::Remote`] and may raise conflicts, like any write.
pub struct Inbox<'a> {
    store: &'a Store,
}

impl Store {
    /// Applying what the relay sends, with each space's cursor.
    pub fn inbox(&self) -> Inbox<'_> {
        Inbox { store: self }
    }
}

impl Inbox<'_> {
    /// How far this device has applied the space's log; `None` if it never pulled it.
    pub fn cursor(&self, space: &SpaceId) -> Result<Option<Cursor>> {
        self.store.inner.reading(|txn| {
            let table = txn.open_table(tables::CURSORS)?;
            let row = table.get(space.as_str())?;
            row.map(|row| tables::decode_row(tables::CURSOR_ROW_V1, row.value(), "cursor"))
                .transpose()
        })
    }

    /// Applies `entries` of `space`'s log (a `Changes` frame) and stores `next_cursor`, in
    /// one durable transaction. Entries already held change nothing, and entries without
    /// changes are passed over without touching their record: the relay sends a device's
    /// own entries back that way, to move its cursor past them. When nothing is left to
    /// apply, the transaction stores only the cursor.
    ///
    /// A record whose changes cannot be applied is listed in the summary's `rejected` and
    /// left as it was; the cursor still moves past it (the relay only sends changes whose
    /// dependencies it holds, in order, so this means damaged data, which a repair of the
    /// space reconciles).
    #[cfg_attr(feature = "internals", visibility::make(pub))]
    pub(crate) fn apply_changes(
        &self,
        space: &SpaceId,
        entries: &[ChangeEntry],
        next_cursor: Cursor,
    ) -> Result<ApplySummary> {
        let mut incoming: Vec<Incoming> = Vec::new();
        for entry in entries.iter().filter(|e| !e.changes.is_empty()) {
            let changes = parse_changes(entry.record, &entry.changes)?;
            // One document is touched once per call, however many entries it has.
            match incoming.iter_mut().find(|i| i.record == entry.record) {
                Some(inc) => inc.changes.extend(changes),
                None => incoming.push(Incoming {
                    record: entry.record,
                    changes,
                }),
            }
        }
        self.apply(space, incoming, Some(next_cursor))
    }

    /// Applies one page of a bootstrap (a `Snapshot` frame): each record's saved document
    /// and later changes. The last page carries the `cursor` to store, in the same
    /// transaction.
    #[cfg_attr(feature = "internals", visibility::make(pub))]
    pub(crate) fn apply_snapshot(
        &self,
        space: &SpaceId,
        records: &[RecordState],
        cursor: Option<Cursor>,
    ) -> Result<ApplySummary> {
        let mut incoming = Vec::with_capacity(records.len());
        for state in records {
            let mut changes = Vec::new();
            if !state.doc.is_empty() {
                let doc = Automerge::load(&state.doc).map_err(|e| {
                    Error::Remote(format!(
                        "record {} has a damaged snapshot: {e}",
                        state.record
                    ))
                })?;
                changes.extend(doc.get_changes(&[]));
            }
            changes.extend(parse_changes(state.record, &state.changes)?);
            incoming.push(Incoming {
                record: state.record,
                changes,
            });
        }
        self.apply(space, incoming, cursor)
    }

    /// Whether this device holds changes of `space` that are not waiting in its outbox:
    /// changes the relay acknowledged, or sent. A device without a cursor for the space
    /// (a bootstrap that never finished: the first one, or the one after a repair) that
    /// holds such changes repairs the space before bootstrapping it
    /// (`ClientSession::repair_before_bootstrap`): the relay may have lost them since
    /// (restored from a backup), and neither a bootstrap nor the outbox would give them
    /// back. Records written on this device and never sent are not such changes, so a
    /// first sync of offline work repairs nothing.
    ///
    /// Reads each record's metadata row and, in one scan, the headers of the outbox's
    /// entries (no document; the outbox index keeps only some entries whole).
    #[cfg_attr(feature = "internals", visibility::make(pub))]
    pub(crate) fn holds_synced_changes(&self, space: &SpaceId) -> Result<bool> {
        self.store.inner.reading(|txn| {
            let records = txn.open_table(tables::RECORDS)?;
            let log = txn.open_table(tables::LOG)?;
            // The space's records: their heads, and the changes of their pending entries.
            type Hashes = HashSet<[u8; 32]>;
            let mut pending: HashMap<RecordId, (Vec<[u8; 32]>, Hashes)> = HashMap::new();
            for id in crate::store::record_ids(&records)? {
                let Some(row) = records.get((tables::rid(id), tables::SLOT_META))? else {
                    continue;
                };
                let meta: tables::RecordMeta =
                    tables::decode_row(tables::RECORD_ROW_V1, row.value(), "record")?;
                if &meta.space == space {
                    pending.insert(id, (meta.heads, HashSet::new()));
                }
            }
            // A record's history is all in the outbox when each pending entry builds only on
            // pending entries before it and the record's heads are among them.
            for row in log.range(tables::log_all(tables::LOG_OUTBOX))? {
                let (_, v) = row?;
                let (row, _) = tables::decode_outbox(v.value())?;
                let Some((_, changes)) = pending.get_mut(&row.record) else {
                    continue;
                };
                if row.heads_before.iter().any(|h| !changes.contains(h)) {
                    return Ok(true);
                }
                changes.extend(row.change_hashes);
            }
            Ok(pending
                .values()
                .any(|(heads, changes)| heads.iter().any(|h| !changes.contains(h))))
        })
    }

    /// Forgets the space's cursor, so the next connection bootstraps it again (after a
    /// repair: the relay could not vouch for it). Nothing else changes.
    #[cfg_attr(feature = "internals", visibility::make(pub))]
    pub(crate) fn forget_cursor(&self, space: &SpaceId) -> Result<()> {
        self.store
            .inner
            .apply_incoming(Vec::new(), Origin::Remote, Some((space, None)))
            .map(drop)
    }

    fn apply(
        &self,
        space: &SpaceId,
        incoming: Vec<Incoming>,
        cursor: Option<Cursor>,
    ) -> Result<ApplySummary> {
        let row = cursor.map(|c| tables::encode_row(tables::CURSOR_ROW_V1, &c));
        let cursor = row.map(|row| (space, Some(row)));
        self.store
            .inner
            .apply_incoming(incoming, Origin::Remote, cursor)
    }
}

fn parse_changes(record: RecordId, raw: &[Vec<u8>]) -> Result<Vec<Change>> {
    raw.iter()
        .map(|bytes| {
            Change::try_from(bytes.as_slice())
                .map_err(|e| Error::Remote(format!("record {record} has a damaged change: {e}")))
        })
        .collect()
}
