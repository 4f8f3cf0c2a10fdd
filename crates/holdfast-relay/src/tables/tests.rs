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
