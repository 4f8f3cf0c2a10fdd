//! The index against a plain model: a list of (seq, record, state) in outbox order.

use super::{Item, OutboxIndex};
use crate::tables::RowState;
use crate::RecordId;

fn item(record: RecordId, state: RowState) -> Item {
    Item {
        record,
        state,
        created_ms: 0,
        bytes: 1,
    }
}

fn failed() -> RowState {
    RowState::Failed {
        reason: "no".into(),
        permanent: true,
    }
}

/// The index answers every query as the model does.
fn check(index: &OutboxIndex, model: &[(u64, RecordId, RowState)]) {
    let mut records: Vec<RecordId> = model.iter().map(|(_, r, _)| *r).collect();
    records.sort();
    records.dedup();
    records.push(RecordId::new_v7());
    for record in records {
        let seqs: Vec<u64> = model
            .iter()
            .filter(|(_, r, _)| *r == record)
            .map(|(s, _, _)| *s)
            .collect();
        assert_eq!(index.record_seqs(record), seqs, "{record}");
        let states: Vec<&RowState> = model
            .iter()
            .filter(|(_, r, _)| *r == record)
            .map(|(_, _, s)| s)
            .collect();
        assert_eq!(index.record_states(record).collect::<Vec<_>>(), states);
    }
    let all: Vec<&RowState> = model.iter().map(|(_, _, s)| s).collect();
    assert_eq!(index.all().map(|l| l.state).collect::<Vec<_>>(), all);
    // Blocked: an earlier entry of the record failed for good.
    let blocked = |seq: u64, record: RecordId| {
        model
            .iter()
            .any(|(s, r, st)| *s < seq && *r == record && *st == failed())
    };
    let listed: Vec<bool> = index.all().map(|l| l.blocked).collect();
    let expected: Vec<bool> = model.iter().map(|(s, r, _)| blocked(*s, *r)).collect();
    assert_eq!(listed, expected);
    for (seq, record, _) in model {
        let blocker = index.blocker(*seq).map(|(s, _)| s);
        let first = model
            .iter()
            .find(|(s, r, st)| s < seq && r == record && *st == failed())
            .map(|(s, _, _)| *s);
        assert_eq!(blocker, first, "{seq}");
    }
    let due: Vec<u64> = model
        .iter()
        .filter(|(seq, r, s)| super::is_due(s) && !blocked(*seq, *r))
        .map(|(s, _, _)| *s)
        .collect();
    assert_eq!(index.due(usize::MAX, u64::MAX), due);
}

#[test]
fn records_with_one_and_many_entries() {
    let (a, b, c) = (RecordId::new_v7(), RecordId::new_v7(), RecordId::new_v7());
    let mut model = vec![
        (1, a, RowState::Queued),
        (2, b, RowState::Sending),
        (4, a, failed()),
        (7, c, RowState::Queued),
        (9, a, RowState::Queued),
    ];
    let entries = model
        .iter()
        .map(|(seq, r, s)| (*seq, item(*r, s.clone())))
        .collect();
    let mut index = OutboxIndex::from_ordered(entries);
    check(&index, &model);

    // A record's second entry, then its first one leaving: back to one entry.
    let row = |record| crate::tables::OutboxRow {
        event_id: crate::EventId::new_v7(),
        record,
        space: crate::SpaceId::new("s").unwrap(),
        change_hashes: Vec::new(),
        heads_before: Vec::new(),
        bytes: 1,
        created_ms: 0,
        attempts: 0,
        state: RowState::Queued,
    };
    index.insert(10, &row(b));
    model.push((10, b, RowState::Queued));
    check(&index, &model);
    index.remove(2);
    model.retain(|(s, _, _)| *s != 2);
    check(&index, &model);
    index.insert(11, &row(b));
    model.push((11, b, RowState::Queued));
    check(&index, &model);

    // Every entry of a record leaving forgets the record; removing twice changes nothing.
    for seq in [1, 4, 9, 9] {
        index.remove(seq);
        model.retain(|(s, _, _)| *s != seq);
        check(&index, &model);
    }
    index.set_state(7, RowState::Sending);
    model.iter_mut().find(|(s, _, _)| *s == 7).unwrap().2 = RowState::Sending;
    check(&index, &model);
    for seq in [7, 10, 11] {
        index.remove(seq);
    }
    check(&index, &[]);
    assert!(index.by_record.is_empty());
}
