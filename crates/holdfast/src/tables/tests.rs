//! Row encodings.

use super::*;

fn outbox_row(state: RowState) -> OutboxRow {
    OutboxRow {
        event_id: EventId::new_v7(),
        record: RecordId::new_v7(),
        space: SpaceId::new("team.a").unwrap(),
        change_hashes: vec![[7; 32], [9; 32]],
        heads_before: vec![[1; 32]],
        bytes: 321,
        created_ms: -5,
        attempts: 3,
        state,
    }
}

/// The index's reading of an outbox row agrees with the full one, field by field.
#[test]
fn an_outbox_row_reads_the_same_for_the_index() {
    let states = [
        RowState::Queued,
        RowState::Sending,
        RowState::Failed {
            reason: "the relay refused it".into(),
            permanent: true,
        },
    ];
    for state in states {
        let row = outbox_row(state);
        let bytes = encode_outbox(&row, &encode_row(CHANGES_ROW_V1, &vec![vec![1u8, 2]]));
        let indexed = decode_outbox_indexed(&bytes).unwrap();
        assert_eq!(decode_outbox(&bytes).unwrap().0, row);
        assert_eq!(
            (
                indexed.record,
                indexed.bytes,
                indexed.created_ms,
                &indexed.state
            ),
            (row.record, row.bytes, row.created_ms, &row.state)
        );
    }
}

/// Damage the full reading refuses, the index's reading refuses too.
#[test]
fn a_damaged_outbox_row_fails_both_readings() {
    let row = outbox_row(RowState::Queued);
    let bytes = encode_outbox(&row, &encode_row(CHANGES_ROW_V1, &vec![vec![1u8, 2]]));
    let header_len = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    let mut damaged = Vec::new();
    // Truncated anywhere in the header.
    for len in 0..4 + header_len {
        damaged.push(bytes[..len].to_vec());
    }
    // A space name that is not one.
    let mut bad_space = bytes.clone();
    let at = bad_space.windows(6).position(|w| w == b"team.a").unwrap();
    bad_space[at] = b'/';
    damaged.push(bad_space);
    // An unknown state.
    let mut bad_state = bytes.clone();
    bad_state[4 + header_len - 1] = 9;
    damaged.push(bad_state);
    for bytes in damaged {
        assert!(decode_outbox(&bytes).is_err(), "{bytes:?}");
        assert!(decode_outbox_indexed(&bytes).is_err(), "{bytes:?}");
    }
}
