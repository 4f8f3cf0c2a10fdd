//! Every format the store persists, decoded from untrusted bytes by the same code the store
//! reads its file with. For the `stored_record_decode` fuzz target in `holdfast-testkit`;
//! not part of the API.

use crate::error::{Error, Result};
use crate::schema::Schema;
use crate::tables::{self, JournalRow, RecordMeta};
use crate::{Cursor, RecordId};

/// The kinds of stored bytes [`decode`] reads.
pub const KINDS: &[&str] = &[
    "record", "outbox", "journal", "cursor", "schema", "document",
];

/// Decodes `bytes` as a stored value of `kind` (one of [`KINDS`]) the way the store reads
/// it, and returns the bytes the store would write for the decoded value.
///
/// A `document` is a record's stored chunks, given here as a 4-byte little-endian snapshot
/// length, the snapshot, then the incremental chunks; it is written back as a snapshot of
/// the loaded document with no chunks after it.
pub fn decode(kind: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    Ok(match kind {
        "record" => {
            let row: RecordMeta = tables::decode_row(tables::RECORD_ROW_V1, bytes, "record")?;
            tables::encode_row(tables::RECORD_ROW_V1, &row)
        }
        "outbox" => {
            let (row, part) = tables::decode_outbox(bytes)?;
            let changes = tables::decode_changes(part)?;
            let part = tables::encode_row(tables::CHANGES_ROW_V1, &changes);
            tables::encode_outbox(&row, &part)
        }
        "journal" => {
            let row: JournalRow = tables::decode_row(tables::JOURNAL_ROW_V1, bytes, "journal")?;
            tables::encode_row(tables::JOURNAL_ROW_V1, &row)
        }
        "cursor" => {
            let row: Cursor = tables::decode_row(tables::CURSOR_ROW_V1, bytes, "cursor")?;
            tables::encode_row(tables::CURSOR_ROW_V1, &row)
        }
        "schema" => {
            let row: Schema = tables::decode_row(1, bytes, "schema")?;
            tables::encode_row(1, &row)
        }
        "document" => {
            let corrupt = || Error::Corrupt("document: truncated".into());
            let len = bytes.get(..4).ok_or_else(corrupt)?;
            let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
            let snapshot = bytes.get(4..4 + len).ok_or_else(corrupt)?;
            let tail = &bytes[4 + len..];
            let doc = crate::store::document(RecordId::from_bytes([0; 16]), snapshot, tail)?;
            let saved = doc.save();
            let mut out = (saved.len() as u32).to_le_bytes().to_vec();
            out.extend_from_slice(&saved);
            out
        }
        other => panic!("no stored kind {other}"),
    })
}

/// One valid stored value of each kind, as the store would write it, for seeding the
/// fuzzer and for checking that valid values read back as themselves.
pub fn samples() -> Vec<(&'static str, Vec<u8>)> {
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ObjType, ReadDoc, ROOT};

    use crate::schema::Field;
    use crate::tables::{OutboxRow, RowState};
    use crate::{EventId, ScalarType, SpaceId};

    let space = SpaceId::new("samples").expect("a valid space");
    let record = RecordId::from_bytes([7; 16]);
    let meta = RecordMeta {
        collection: "note".into(),
        space: space.clone(),
        heads: vec![[1; 32], [2; 32]],
        chunks: 3,
        snapshot_bytes: 1200,
        tail_bytes: 340,
        created_ms: 1_700_000_000_000,
        updated_ms: 1_700_000_050_000,
    };
    let outbox = OutboxRow {
        event_id: EventId::from_bytes([9; 16]),
        record,
        space: space.clone(),
        change_hashes: vec![[3; 32]],
        heads_before: vec![[1; 32]],
        bytes: 11,
        created_ms: 1_700_000_060_000,
        attempts: 2,
        state: RowState::Failed {
            reason: "The server refused this change".into(),
            permanent: false,
        },
    };
    let changes = tables::encode_row(
        tables::CHANGES_ROW_V1,
        &vec![vec![0x85u8, 0x6f, 0x4a, 0x83]],
    );
    let journal = JournalRow {
        record,
        heads_before: vec![[4; 32]],
    };
    let schema = Schema::new(2).collection(
        "note",
        [
            ("title", Field::lww(ScalarType::String)),
            ("body", Field::text()),
            ("tags", Field::list(ScalarType::String)),
            ("likes", Field::counter()),
            ("status", Field::versioned(ScalarType::String).indexed()),
        ],
    );
    // A fixed actor and time, so the samples are the same bytes on every run.
    let mut doc = Automerge::new();
    doc.set_actor(automerge::ActorId::from([1u8; 16]));
    let mut tx = doc.transaction();
    tx.put(ROOT, "title", "Groceries").expect("put");
    let body = tx.put_object(ROOT, "body", ObjType::Text).expect("text");
    tx.splice_text(&body, 0, 0, "milk, eggs").expect("splice");
    tx.commit_with(automerge::transaction::CommitOptions::default().with_time(1_700_000_000));
    let snapshot = doc.save();
    let heads = doc.get_heads();
    let mut tx = doc.transaction();
    let body = tx.get(ROOT, "body").expect("get").expect("body").1;
    tx.splice_text(&body, 4, 0, " and bread").expect("splice");
    tx.commit_with(automerge::transaction::CommitOptions::default().with_time(1_700_000_000));
    let tail = doc.save_after(&heads);
    let mut document = (snapshot.len() as u32).to_le_bytes().to_vec();
    document.extend_from_slice(&snapshot);
    document.extend_from_slice(&tail);
    vec![
        ("record", tables::encode_row(tables::RECORD_ROW_V1, &meta)),
        ("outbox", tables::encode_outbox(&outbox, &changes)),
        (
            "journal",
            tables::encode_row(tables::JOURNAL_ROW_V1, &journal),
        ),
        (
            "cursor",
            tables::encode_row(tables::CURSOR_ROW_V1, &Cursor { epoch: 3, seq: 42 }),
        ),
        ("schema", tables::encode_row(1, &schema)),
        ("document", document),
    ]
}
