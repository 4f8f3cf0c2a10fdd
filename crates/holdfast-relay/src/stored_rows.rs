//! Every format the relay persists, decoded from untrusted bytes by the same code the relay
//! reads its file with. For the `stored_record_decode` fuzz target in `holdfast-testkit`;
//! not part of the API.

use crate::error::StoreError;
use crate::tables::{self, EventRow, LogRow, RecordRow};

/// The kinds of stored bytes [`decode`] reads.
pub const KINDS: &[&str] = &["log", "event", "record", "snapshot"];

/// Decodes `bytes` as a stored value of `kind` (one of [`KINDS`]) the way the relay reads
/// it, and returns the bytes the relay would write for the decoded value.
///
/// A `snapshot` row is loaded into a document (with the relay's record builder) and
/// written back as a snapshot row of that document.
pub fn decode(kind: &str, bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    Ok(match kind {
        "log" => {
            let row: LogRow = tables::decode_row(tables::LOG_ROW_V1, bytes, "log")?;
            tables::encode_row(tables::LOG_ROW_V1, &row)
        }
        "event" => {
            let row: EventRow = tables::decode_row(tables::EVENT_ROW_V1, bytes, "event")?;
            tables::encode_row(tables::EVENT_ROW_V1, &row)
        }
        "record" => {
            let row: RecordRow = tables::decode_row(tables::RECORD_ROW_V1, bytes, "record")?;
            tables::encode_row(tables::RECORD_ROW_V1, &row)
        }
        "snapshot" => {
            let doc = tables::snapshot_doc(bytes)?;
            let built = crate::redb_store::build_record(doc, &[])?;
            tables::snapshot_row(&built.save())
        }
        other => panic!("no stored kind {other}"),
    })
}

/// One valid stored value of each kind, as the relay would write it, for seeding the
/// fuzzer and for checking that valid values read back as themselves.
pub fn samples() -> Vec<(&'static str, Vec<u8>)> {
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ObjType, ROOT};
    use holdfast_protocol::{EventId, Outcome, RecordId, RejectCode};

    // A fixed actor and time, so the samples are the same bytes on every run.
    let mut doc = Automerge::new();
    doc.set_actor(automerge::ActorId::from([1u8; 16]));
    let mut tx = doc.transaction();
    tx.put(ROOT, "title", "Site visit").expect("put");
    let tags = tx.put_object(ROOT, "tags", ObjType::List).expect("list");
    tx.insert(&tags, 0, "north").expect("insert");
    tx.commit_with(automerge::transaction::CommitOptions::default().with_time(1_700_000_000));
    let change = doc
        .get_last_local_change()
        .expect("a change")
        .raw_bytes()
        .to_vec();
    let log = LogRow {
        record: RecordId::from_bytes([5; 16]),
        event_id: EventId::from_bytes([6; 16]),
        changes: vec![change],
    };
    let stored = EventRow {
        outcome: Outcome::Stored { seq: 17 },
        stored_ms: 1_700_000_000_000,
    };
    let rejected = EventRow {
        outcome: Outcome::Rejected {
            code: RejectCode::MissingDependencies,
            reason: "depends on changes the relay does not hold".into(),
            permanent: false,
        },
        stored_ms: 1_700_000_000_500,
    };
    let record = RecordRow {
        snapshot_seq: 12,
        snapshot_bytes: 900,
        tail_entries: 3,
        tail_changes: 4,
        tail_bytes: 512,
    };
    vec![
        ("log", tables::encode_row(tables::LOG_ROW_V1, &log)),
        ("event", tables::encode_row(tables::EVENT_ROW_V1, &stored)),
        ("event", tables::encode_row(tables::EVENT_ROW_V1, &rejected)),
        ("record", tables::encode_row(tables::RECORD_ROW_V1, &record)),
        ("snapshot", tables::snapshot_row(&doc.save())),
    ]
}
