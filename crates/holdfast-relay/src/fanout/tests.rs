//! The in-process fan-out: delivery per space, unsubscription, slow consumers.

use holdfast_protocol::{ChangeEntry, EventId, RecordId};

use super::*;

fn space(name: &str) -> SpaceId {
    SpaceId::new(name).unwrap()
}

fn batch(space: &SpaceId, seq: u64) -> Arc<LiveBatch> {
    let entry = ChangeEntry {
        seq,
        record: RecordId::new_v7(),
        event_id: EventId::new_v7(),
        changes: vec![vec![1, 2, 3]],
    };
    let cursor = Cursor { epoch: 1, seq };
    Arc::new(LiveBatch::new(space.clone(), vec![entry], cursor))
}

fn received(inbox: &mut LiveInbox) -> Vec<u64> {
    let mut seqs = Vec::new();
    while let Ok(batch) = inbox.rx.try_recv() {
        seqs.push(batch.next_cursor.seq);
    }
    seqs
}

#[test]
fn batches_reach_the_subscribers_of_their_space_only() {
    let fanout = LocalFanout::new();
    let (team, other) = (space("team"), space("other"));
    let (sink_a, mut inbox_a) = live_inbox(8);
    let (sink_b, mut inbox_b) = live_inbox(8);
    let _a = fanout.subscribe(&[team.clone(), other.clone()], sink_a);
    let _b = fanout.subscribe(std::slice::from_ref(&team), sink_b);

    fanout.publish(batch(&team, 1));
    fanout.publish(batch(&other, 7));
    assert_eq!(received(&mut inbox_a), [1, 7]);
    assert_eq!(received(&mut inbox_b), [1]);
}

#[test]
fn dropping_the_subscription_unsubscribes() {
    let fanout = LocalFanout::new();
    let team = space("team");
    let (sink, mut inbox) = live_inbox(8);
    let subscription = fanout.subscribe(std::slice::from_ref(&team), sink);
    assert_eq!(fanout.subscribers(&team), 1);
    drop(subscription);
    assert_eq!(fanout.subscribers(&team), 0);
    fanout.publish(batch(&team, 1));
    assert_eq!(received(&mut inbox), Vec::<u64>::new());
}

#[test]
fn a_full_inbox_marks_only_its_consumer_as_slow() {
    let fanout = LocalFanout::new();
    let team = space("team");
    let (slow, mut slow_inbox) = live_inbox(2);
    let (quick, mut quick_inbox) = live_inbox(2);
    let _slow = fanout.subscribe(std::slice::from_ref(&team), slow);
    let _quick = fanout.subscribe(std::slice::from_ref(&team), quick);
    for seq in 1..=3 {
        fanout.publish(batch(&team, seq));
        assert_eq!(received(&mut quick_inbox), [seq]);
    }
    assert!(slow_inbox.overflowed());
    assert!(!quick_inbox.overflowed());
    assert_eq!(received(&mut slow_inbox), [1, 2]);
}

#[test]
fn a_consumer_that_is_gone_is_forgotten() {
    let fanout = LocalFanout::new();
    let team = space("team");
    let (sink, inbox) = live_inbox(2);
    let subscription = fanout.subscribe(std::slice::from_ref(&team), sink);
    drop(inbox);
    fanout.publish(batch(&team, 1));
    assert_eq!(fanout.subscribers(&team), 0);
    drop(subscription);
}
