//! What one space's answers reveal of another, through the server binary: nothing. Event
//! ids are remembered per space, so an id already used in a space a device cannot read is
//! a new event in its own.

use holdfast_protocol::{Cursor, Frame, Outcome, PushEntry};

use crate::harness::Relay;
use crate::{entry, space, Doc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_id_used_in_a_space_the_device_cannot_read_is_a_new_event() {
    let relay = Relay::start(&[]).await;
    let (a, b) = (space("alpha-private"), space("beta"));
    let one = relay.token(&["alpha-private:write"]).await;
    let two = relay.token(&["beta:write"]).await;
    let (mut user1, _) = relay.device(&one, &[&a]).await;
    let (mut user2, epoch) = relay.device(&two, &[&b]).await;

    let mut x = Doc::new();
    let first = entry(&a, x.record, vec![x.change()]);
    let e = entry(&a, x.record, vec![x.change()]);
    let (got, _) = user1.push(&[first.clone(), e.clone()]).await;
    assert_eq!(
        got,
        [Outcome::Stored { seq: 1 }, Outcome::Stored { seq: 2 }]
    );

    let mut y = Doc::new();
    let in_b = PushEntry {
        event_id: e.event_id,
        ..entry(&b, y.record, vec![y.change()])
    };
    let (got, ack) = user2.push(std::slice::from_ref(&in_b)).await;
    assert_eq!(got, [Outcome::Stored { seq: 1 }], "not A's seq 2");
    let (live, live_bytes) = user2
        .raw_where(|f| matches!(f, Frame::Changes { .. }))
        .await;
    let Frame::Changes { space, entries, .. } = live else {
        unreachable!()
    };
    assert_eq!((space, entries[0].seq), (b.clone(), 1));
    let (again, again_bytes) = user2.push(std::slice::from_ref(&in_b)).await;
    assert_eq!(again, [Outcome::Duplicate { seq: 1 }]);
    for bytes in [&ack, &live_bytes, &again_bytes] {
        assert!(!contains(bytes, a.as_str().as_bytes()), "names A");
        assert!(
            !contains(bytes, first.event_id.as_bytes()),
            "names A's entry"
        );
    }

    // B's log holds the entry; A's is as user 1 left it.
    let (mut reader, _) = relay.device(&two, &[]).await;
    let log = reader.pull_all(&b, Cursor::start(epoch)).await;
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].seq, log[0].event_id, &log[0].changes),
        (1, e.event_id, &in_b.changes)
    );
    let (again, _) = user1.push(std::slice::from_ref(&e)).await;
    assert_eq!(again, [Outcome::Duplicate { seq: 2 }]);
    let (mut reader, _) = relay.device(&one, &[]).await;
    let log = reader.pull_all(&a, Cursor::start(epoch)).await;
    let ids: Vec<_> = log.iter().map(|entry| entry.event_id).collect();
    assert_eq!(ids, [first.event_id, e.event_id]);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
