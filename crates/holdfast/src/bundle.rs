//! Change bundles: a self-describing, versioned, compressed file of changes that moves work
//! between devices without a network (a USB stick in the field) and merges stores in tests.
//!
//! Layout: the 8 magic bytes `HOLDFAST`, a format byte (1), a flags byte (bit 0: zstd), then
//! the body: bincode 2 of [`BundleBody`], zstd-compressed with a content checksum.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::error::{BundleError, Result};
use crate::limits::BUNDLE_BYTES_MAX;
use crate::store::load_entry;
use crate::tables::{self, JournalRow};
use crate::{DeviceId, RecordId, SpaceId, Store};

mod import;
mod progress;

pub use import::{ImportRefused, ImportSummary};

const MAGIC: &[u8; 8] = b"HOLDFAST";
/// The bundle format this code writes and reads.
pub const BUNDLE_FORMAT: u8 = 1;
const FLAG_ZSTD: u8 = 1;
const HEADER_BYTES: usize = MAGIC.len() + 2;

/// A position in this store's change log: pass it to [`Store::export_changes`] to export
/// only what the store recorded after it.
///
/// Every change a store records (its own writes, imported bundles, changes pulled by sync)
/// takes the next number of one sequence the store keeps in its file, starting at 1. A mark
/// `n` means "every change numbered up to `n`": the mark an export returns is the last
/// number recorded when it was made, and [`Store::export_mark`] reads the same number
/// without exporting. `ExportMark(0)` is the mark of a store that has recorded nothing
/// yet, so exporting since it exports every change the store has recorded.
///
/// Marks survive closing and reopening the store, and only ever grow. They belong to the
/// store that handed them out: another store's numbers count other changes, so a mark is
/// meaningless there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExportMark(pub u64);

/// An exported bundle.
#[derive(Clone, Debug)]
pub struct Export {
    /// The bundle file's bytes.
    pub bytes: Vec<u8>,
    /// Where this export ended.
    pub mark: ExportMark,
    /// How many records it carries.
    pub records: usize,
    /// How many changes it carries.
    pub changes: usize,
}

#[derive(Serialize, Deserialize)]
struct BundleBody {
    source: DeviceId,
    created_ms: i64,
    mark: u64,
    records: Vec<BundleRecord>,
}

#[derive(Serialize, Deserialize)]
struct BundleRecord {
    id: RecordId,
    space: SpaceId,
    changes: Vec<Vec<u8>>,
}

impl Store {
    /// Exports the changes made or received since `since` (everything when `None`),
    /// optionally only those of one space. Reads a consistent durable snapshot.
    pub fn export_changes(
        &self,
        since: Option<ExportMark>,
        space: Option<&SpaceId>,
    ) -> Result<Export> {
        self.inner.reading(|txn| {
            let log = txn.open_table(tables::LOG)?;
            let mark = last_recorded(&log)?;
            // Record → the heads it had before the first change after `since`. Changes still in
            // the outbox and changes already journaled share one sequence: merge both.
            let mut wanted: BTreeMap<RecordId, (u64, Vec<automerge::ChangeHash>)> = BTreeMap::new();
            let mut want = |seq: u64, record: RecordId, heads: &[[u8; 32]]| {
                let e = wanted.entry(record).or_insert((u64::MAX, Vec::new()));
                if seq < e.0 {
                    *e = (seq, tables::heads_from_bytes(heads));
                }
            };
            match since {
                Some(ExportMark(from)) => {
                    let from = from.saturating_add(1);
                    for item in log.range(tables::log_from(tables::LOG_JOURNAL, from))? {
                        let (k, v) = item?;
                        let row: JournalRow =
                            tables::decode_row(tables::JOURNAL_ROW_V1, v.value(), "journal")?;
                        want(k.value().1, row.record, &row.heads_before);
                    }
                    for item in log.range(tables::log_from(tables::LOG_OUTBOX, from))? {
                        let (k, v) = item?;
                        let (row, _) = tables::decode_outbox(v.value())?;
                        want(k.value().1, row.record, &row.heads_before);
                    }
                }
                None => {
                    for id in crate::store::record_ids(&txn.open_table(tables::RECORDS)?)? {
                        want(0, id, &[]);
                    }
                }
            }
            let mut body = BundleBody {
                source: self.inner.device,
                created_ms: self.inner.now(),
                mark,
                records: Vec::new(),
            };
            let mut changes = 0;
            for (id, (_, heads)) in wanted {
                let Some(entry) = load_entry(txn, id, &self.inner.actor)? else {
                    continue;
                };
                if space.is_some_and(|s| *s != entry.meta.space) {
                    continue;
                }
                let raw: Vec<Vec<u8>> = entry
                    .doc
                    .get_changes(&heads)
                    .iter()
                    .map(|c| c.raw_bytes().to_vec())
                    .collect();
                changes += raw.len();
                body.records.push(BundleRecord {
                    id,
                    space: entry.meta.space,
                    changes: raw,
                });
            }
            let records = body.records.len();
            Ok(Export {
                bytes: encode(&body),
                mark: ExportMark(mark),
                records,
                changes,
            })
        })
    }

    /// The mark an export made now would return, without exporting: the last change this
    /// store has durably recorded (see [`ExportMark`]). Keep it after an import to export
    /// later only what came after.
    pub fn export_mark(&self) -> Result<ExportMark> {
        self.inner
            .reading(|txn| Ok(ExportMark(last_recorded(&txn.open_table(tables::LOG)?)?)))
    }
}

/// The last sequence of the log (0 when empty): outbox entries and journal rows share it.
fn last_recorded(log: &impl redb::ReadableTable<(u8, u64), &'static [u8]>) -> Result<u64> {
    Ok(tables::log_last(log, tables::LOG_JOURNAL)?.max(tables::log_last(log, tables::LOG_OUTBOX)?))
}

fn encode(body: &BundleBody) -> Vec<u8> {
    let plain =
        bincode::serde::encode_to_vec(body, bincode::config::standard()).expect("bundle encodes");
    let mut out = MAGIC.to_vec();
    out.push(BUNDLE_FORMAT);
    out.push(FLAG_ZSTD);
    let mut encoder = zstd::stream::Encoder::new(&mut out, 3).expect("zstd encoder");
    encoder.include_checksum(true).expect("zstd option");
    std::io::Write::write_all(&mut encoder, &plain).expect("write to memory");
    encoder.finish().expect("zstd finish");
    out
}

fn decode(bytes: &[u8]) -> Result<BundleBody, BundleError> {
    if bytes.len() < HEADER_BYTES || &bytes[..MAGIC.len()] != MAGIC {
        return Err(BundleError::NotABundle);
    }
    let format = bytes[MAGIC.len()];
    if format != BUNDLE_FORMAT {
        return Err(BundleError::UnsupportedVersion(format));
    }
    let flags = bytes[MAGIC.len() + 1];
    let payload = &bytes[HEADER_BYTES..];
    let plain = match flags {
        0 => payload.to_vec(),
        FLAG_ZSTD => {
            let decoder = zstd::stream::Decoder::new(payload)
                .map_err(|e| BundleError::Corrupt(e.to_string()))?;
            let mut plain = Vec::new();
            decoder
                .take(BUNDLE_BYTES_MAX as u64 + 1)
                .read_to_end(&mut plain)
                .map_err(|e| BundleError::Corrupt(e.to_string()))?;
            if plain.len() > BUNDLE_BYTES_MAX {
                return Err(BundleError::TooLarge {
                    limit: BUNDLE_BYTES_MAX as u64,
                });
            }
            plain
        }
        other => return Err(BundleError::Corrupt(format!("unknown flags {other:#x}"))),
    };
    let config = bincode::config::standard().with_limit::<BUNDLE_BYTES_MAX>();
    let (body, used): (BundleBody, usize) = bincode::serde::decode_from_slice(&plain, config)
        .map_err(|e| BundleError::Corrupt(e.to_string()))?;
    if used != plain.len() {
        return Err(BundleError::Corrupt("trailing bytes".into()));
    }
    Ok(body)
}
