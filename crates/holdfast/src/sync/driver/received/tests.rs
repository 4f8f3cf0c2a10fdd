use holdfast_protocol::{ChangeEntry, Cursor, EventId, RecordId};

use super::{Received, ReceivedQueue};
use crate::limits::APPLY_ENTRIES_MAX;
use crate::SpaceId;

fn changes(space: &str, seq: u64, n: usize) -> Received {
    Received::Changes {
        space: SpaceId::new(space).unwrap(),
        entries: (0..n as u64)
            .map(|i| ChangeEntry {
                seq: seq + i,
                record: RecordId::new_v7(),
                event_id: EventId::new_v7(),
                changes: vec![vec![0; 10]],
            })
            .collect(),
        next_cursor: Cursor {
            epoch: 1,
            seq: seq + n as u64 - 1,
        },
    }
}

/// (space, entries, last cursor seq, applies) of the next work, or `None`.
fn next(queue: &mut ReceivedQueue) -> Option<(String, usize, Option<u64>, usize)> {
    let (work, applies) = queue.next()?;
    Some(match work {
        Received::Changes {
            space,
            entries,
            next_cursor,
        } => (
            space.as_str().into(),
            entries.len(),
            Some(next_cursor.seq),
            applies,
        ),
        Received::Snapshot { space, records, .. } => {
            (space.as_str().into(), records.len(), None, applies)
        }
    })
}

#[test]
fn consecutive_changes_of_a_space_join_in_order_one_work_at_a_time() {
    let mut queue = ReceivedQueue::default();
    queue.push(changes("a", 1, 1));
    queue.push(changes("a", 2, 2));
    queue.push(changes("a", 4, 1));
    queue.push(changes("b", 1, 1));
    queue.push(Received::Snapshot {
        space: SpaceId::new("b").unwrap(),
        records: Vec::new(),
        cursor: None,
    });
    queue.push(changes("b", 2, 1));
    assert_eq!(next(&mut queue), Some(("a".into(), 4, Some(4), 3)));
    assert_eq!(next(&mut queue), None, "one work at a time");
    queue.done();
    assert_eq!(next(&mut queue), Some(("b".into(), 1, Some(1), 1)));
    queue.done();
    assert_eq!(next(&mut queue), Some(("b".into(), 0, None, 1)));
    queue.done();
    assert_eq!(next(&mut queue), Some(("b".into(), 1, Some(2), 1)));
    queue.done();
    assert_eq!(next(&mut queue), None);
}

#[test]
fn joining_stops_at_the_entry_limit_but_takes_a_first_batch_whole() {
    let mut queue = ReceivedQueue::default();
    queue.push(changes("a", 1, APPLY_ENTRIES_MAX + 1));
    queue.push(changes("a", APPLY_ENTRIES_MAX as u64 + 2, 1));
    let first = next(&mut queue).unwrap();
    assert_eq!((first.1, first.3), (APPLY_ENTRIES_MAX + 1, 1));
    queue.done();
    queue.push(changes("a", 1, APPLY_ENTRIES_MAX - 1));
    let second = next(&mut queue).unwrap();
    assert_eq!(
        (second.1, second.3),
        (APPLY_ENTRIES_MAX, 2),
        "exactly at the limit joins"
    );
}
