use holdfast_protocol::{EventId, Outcome, RecordId, RejectCode};

use super::*;

#[test]
fn log_row_round_trips() {
    let row = LogRow {
        record: RecordId::from_bytes([1; 16]),
        event_id: EventId::from_bytes([2; 16]),
        changes: vec![vec![0, 255, 3], vec![]],
    };
    let bytes = encode_row(LOG_ROW_V1, &row);
    assert_eq!(bytes[0], LOG_ROW_V1);
    assert_eq!(
        decode_row::<LogRow>(LOG_ROW_V1, &bytes, "log").unwrap(),
        row
    );
}

#[test]
fn event_row_round_trips() {
    let row = EventRow {
        outcome: Outcome::Rejected {
            code: RejectCode::Malformed,
            reason: "bad".into(),
            permanent: true,
        },
        stored_ms: 1_700_000_000_000,
    };
    let bytes = encode_row(EVENT_ROW_V1, &row);
    assert_eq!(
        decode_row::<EventRow>(EVENT_ROW_V1, &bytes, "event").unwrap(),
        row
    );
}

#[test]
fn damaged_rows_are_typed_errors() {
    let row = EventRow {
        outcome: Outcome::Stored { seq: 7 },
        stored_ms: 1,
    };
    let good = encode_row(EVENT_ROW_V1, &row);
    let check = |bytes: &[u8]| {
        let err = decode_row::<EventRow>(EVENT_ROW_V1, bytes, "event").unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    };
    check(&[]);
    check(&[9]);
    check(&good[..good.len() - 1]);
    check(&[good.as_slice(), &[0]].concat());
    // A length prefix claiming 2^40 bytes fails without allocating them.
    check(&[LOG_ROW_V1, 1, 253, 0, 0, 0, 0, 0, 1, 0, 0]);
}

#[test]
fn record_row_round_trips() {
    let row = RecordRow {
        snapshot_seq: 7,
        snapshot_bytes: 1 << 20,
        tail_entries: 3,
        tail_changes: 5,
        tail_bytes: 900,
    };
    let bytes = encode_row(RECORD_ROW_V1, &row);
    assert_eq!(
        decode_row::<RecordRow>(RECORD_ROW_V1, &bytes, "record").unwrap(),
        row
    );
    assert_eq!(row.size(), (1 << 20) + 900);
}

#[test]
fn snapshot_rows_carry_the_document_as_is() {
    let doc = [0x85, 0x6f, 0x4a, 0x83, 1, 2, 3];
    let row = snapshot_row(&doc);
    assert_eq!(row[0], SNAPSHOT_ROW_V1);
    assert_eq!(snapshot_doc(&row).unwrap(), doc);
    for bad in [&[][..], &[9, 1, 2]] {
        assert!(matches!(snapshot_doc(bad), Err(StoreError::Corrupt(_))));
    }
}

#[test]
fn record_keys_sort_like_record_ids() {
    let ids = [[0u8; 16], [1; 16], [0xff; 16]].map(RecordId::from_bytes);
    for pair in ids.windows(2) {
        assert!(rid(pair[0]) < rid(pair[1]));
        assert_eq!(record_id(rid(pair[0])), pair[0]);
    }
}
