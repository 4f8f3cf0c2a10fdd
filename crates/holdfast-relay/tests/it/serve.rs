//! The server binary end to end: pushes, pulls, live fan-out, refusals and limits.

use holdfast_protocol::{ErrorCode, Frame, Outcome, RejectCode};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Incoming, Relay};
use crate::{entry, space, Doc};

fn ack(frame: &Frame) -> Vec<Outcome> {
    match frame {
        Frame::Ack { results } => results.iter().map(|r| r.outcome.clone()).collect(),
        other => panic!("expected an ack, got {other:?}"),
    }
}

fn is_ack(frame: &Frame) -> bool {
    matches!(frame, Frame::Ack { .. })
}

fn is_changes(frame: &Frame) -> bool {
    matches!(frame, Frame::Changes { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_acked_once_stored_and_pulled_back() {
    let relay = Relay::start(&[]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut device, epoch) = relay.device(&token, &[&team]).await;

    let mut doc = Doc::new();
    let pushed = entry(&team, doc.record, vec![doc.change()]);
    let push = Frame::Push {
        entries: vec![pushed.clone()],
    };
    device.send(&push).await;
    assert_eq!(
        ack(&device.frame_where(is_ack).await),
        [Outcome::Stored { seq: 1 }]
    );
    // The device hears its own entry live too (without its changes: it holds them).
    device.frame_where(is_changes).await;
    device.send(&push).await;
    assert_eq!(
        ack(&device.frame_where(is_ack).await),
        [Outcome::Duplicate { seq: 1 }]
    );

    let cursor = holdfast_protocol::Cursor::start(epoch);
    let pull = Frame::Pull {
        space: team.clone(),
        cursor,
        max_bytes: 1 << 20,
    };
    device.send(&pull).await;
    let answer = match device.frame().await {
        Frame::Changes {
            entries,
            next_cursor,
            more: false,
            ..
        } => (entries, next_cursor),
        other => panic!("expected the pulled changes, got {other:?}"),
    };
    let (entries, next_cursor) = answer;
    assert_eq!(entries[0].seq, 1);
    assert_eq!(entries[0].event_id, pushed.event_id);
    assert_eq!(entries[0].record, pushed.record);
    assert_eq!(entries[0].changes, pushed.changes);
    assert_eq!(next_cursor, holdfast_protocol::Cursor { epoch, seq: 1 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_entries_reach_every_subscriber_live() {
    let relay = Relay::start(&[]).await;
    let (team, other) = (space("team"), space("other"));
    let token = relay.token(&["team:write", "other:write"]).await;
    let (mut first, epoch) = relay.device(&token, &[&team]).await;
    let (mut second, _) = relay.device(&token, &[&team]).await;
    let (mut elsewhere, _) = relay.device(&token, &[&other]).await;
    let (mut pusher, _) = relay.device(&token, &[&team]).await;

    let mut doc = Doc::new();
    let pushed = entry(&team, doc.record, vec![doc.change()]);
    pusher
        .send(&Frame::Push {
            entries: vec![pushed.clone()],
        })
        .await;
    assert_eq!(
        ack(&pusher.frame_where(is_ack).await),
        [Outcome::Stored { seq: 1 }]
    );

    // The pusher holds the changes it pushed: it hears the entry without them, which
    // still moves its cursor.
    for (peer, changes) in [
        (&mut first, pushed.changes.clone()),
        (&mut second, pushed.changes.clone()),
        (&mut pusher, Vec::new()),
    ] {
        match peer.frame_where(is_changes).await {
            Frame::Changes {
                space,
                entries,
                next_cursor,
                more,
            } => {
                assert_eq!(space, team);
                assert_eq!(entries.len(), 1);
                assert_eq!(entries[0].seq, 1);
                assert_eq!(entries[0].event_id, pushed.event_id);
                assert_eq!(entries[0].record, pushed.record);
                assert_eq!(entries[0].changes, changes);
                assert_eq!(next_cursor, holdfast_protocol::Cursor { epoch, seq: 1 });
                assert!(!more);
            }
            _ => unreachable!(),
        }
    }
    // A connection subscribed to another space hears nothing: its next frame is the
    // answer to its own ping.
    elsewhere.answers_ping(9).await;
}

/// Two devices push in turn: each hears its own entries without their changes and the
/// other's whole, in log order with no gap, and the log keeps every change for pulls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_hears_its_own_entries_without_changes_and_the_others_whole() {
    let relay = Relay::start(&[]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut a, epoch) = relay.device(&token, &[&team]).await;
    let (mut b, _) = relay.device(&token, &[&team]).await;

    let (mut doc_a, mut doc_b) = (Doc::new(), Doc::new());
    let mut pushed = Vec::new();
    for turn in 0..6u64 {
        let (pusher, doc) = if turn % 2 == 0 {
            (&mut a, &mut doc_a)
        } else {
            (&mut b, &mut doc_b)
        };
        // Two entries per push, so a batch of several is covered.
        let entries = vec![
            entry(&team, doc.record, vec![doc.change()]),
            entry(&team, doc.record, vec![doc.change()]),
        ];
        pusher
            .send(&Frame::Push {
                entries: entries.clone(),
            })
            .await;
        let seq = 2 * turn;
        assert_eq!(
            ack(&pusher.frame_where(is_ack).await),
            [
                Outcome::Stored { seq: seq + 1 },
                Outcome::Stored { seq: seq + 2 }
            ]
        );
        pushed.push((turn % 2 == 0, entries));
    }

    for (device, is_a) in [(&mut a, true), (&mut b, false)] {
        let mut heard = Vec::new();
        while heard.len() < 12 {
            let Frame::Changes {
                entries,
                next_cursor,
                ..
            } = device.frame_where(is_changes).await
            else {
                unreachable!()
            };
            assert_eq!(next_cursor.seq, entries.last().unwrap().seq);
            heard.extend(entries);
        }
        let expected: Vec<_> = pushed
            .iter()
            .flat_map(|(by_a, entries)| entries.iter().map(move |e| (*by_a, e)))
            .collect();
        for (seq, (entry, (by_a, sent))) in (1..).zip(heard.iter().zip(&expected)) {
            assert_eq!(entry.seq, seq);
            assert_eq!(entry.event_id, sent.event_id);
            assert_eq!(entry.record, sent.record);
            let own = *by_a == is_a;
            let changes = if own {
                Vec::new()
            } else {
                sent.changes.clone()
            };
            assert_eq!(
                entry.changes,
                changes,
                "entry {seq} heard by {}",
                if is_a { "a" } else { "b" }
            );
        }
    }

    // A pull still answers with every change, the pusher's own included.
    let (mut reader, _) = relay.device(&token, &[]).await;
    let log = reader
        .pull_all(&team, holdfast_protocol::Cursor::start(epoch))
        .await;
    let all: Vec<_> = pushed.iter().flat_map(|(_, e)| e).collect();
    assert_eq!(log.len(), all.len());
    for (got, sent) in log.iter().zip(all) {
        assert_eq!((got.event_id, &got.changes), (sent.event_id, &sent.changes));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_refused_while_other_connections_keep_working() {
    let relay = Relay::start(&[]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut good, _) = relay.device(&token, &[&team]).await;

    let mut bad = relay.connect().await;
    match bad.hello("not-a-jwt", &[&team]).await {
        Frame::Error { code, .. } => assert_eq!(code, ErrorCode::Unauthorized),
        other => panic!("expected unauthorized, got {other:?}"),
    }
    assert_eq!(bad.recv().await, Incoming::Closed(Some(1008)));

    let mut doc = Doc::new();
    let pushed = entry(&team, doc.record, vec![doc.change()]);
    good.send(&Frame::Push {
        entries: vec![pushed],
    })
    .await;
    assert_eq!(
        ack(&good.frame_where(is_ack).await),
        [Outcome::Stored { seq: 1 }]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_without_the_write_role_is_rejected_for_good() {
    let relay = Relay::start(&[]).await;
    let team = space("team");
    let token = relay.token(&["team:read"]).await;
    let (mut reader, _) = relay.device(&token, &[&team]).await;
    let mut doc = Doc::new();
    reader
        .send(&Frame::Push {
            entries: vec![entry(&team, doc.record, vec![doc.change()])],
        })
        .await;
    match &ack(&reader.frame_where(is_ack).await)[..] {
        [Outcome::Rejected {
            code: RejectCode::Forbidden { space },
            permanent: true,
            ..
        }] => assert_eq!(space, &team),
        other => panic!("expected a permanent rejection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_connection_limit_a_device_is_told_to_retry() {
    let relay = Relay::start(&["--max-connections", "1"]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut admitted, _) = relay.device(&token, &[&team]).await;

    // Told after its token is checked, so a stranger learns nothing of the relay's load.
    let mut refused = relay.connect().await;
    let busy = ErrorCode::ServerBusy {
        retry_after_secs: holdfast_protocol::limits::BUSY_RETRY_AFTER_SECS_DEFAULT,
    };
    refused.send(&crate::harness::hello(&token, &[&team])).await;
    refused.expect_error(busy, 1013).await;

    admitted.answers_ping(1).await;
    assert_eq!(
        relay
            .metric("holdfast_relay_connections_refused_total{reason=\"busy\"}")
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_message_ends_the_connection_as_malformed() {
    let relay = Relay::start(&[]).await;
    let mut peer = relay.connect().await;
    peer.send_raw(Message::text("hello")).await;
    peer.expect_error(ErrorCode::Malformed, 1002).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_frame_limit_is_refused() {
    let relay = Relay::start(&["--max-frame-bytes", "4096"]).await;
    let mut peer = relay.connect().await;
    peer.send_raw(Message::binary(vec![1; 4097])).await;
    peer.expect_error(ErrorCode::FrameTooLarge { max: 4096 }, 1009)
        .await;

    // One byte less is read and decoded (and refused as a frame before the hello).
    let mut peer = relay.connect().await;
    peer.send_raw(Message::binary(vec![1; 4096])).await;
    match peer.frame().await {
        Frame::Error { code, .. } => assert_ne!(code, ErrorCode::FrameTooLarge { max: 4096 }),
        other => panic!("expected an error frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_does_not_read_is_dropped_alone() {
    let queue_bytes = 256 << 10;
    let relay = Relay::start(&["--send-queue-bytes", &queue_bytes.to_string()]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut stalled, _) = Relay::welcome(relay.connect_small().await, &token, &[&team]).await;
    let (mut reader, _) = relay.device(&token, &[&team]).await;
    let (mut pusher, _) = relay.device(&token, &[&team]).await;

    // Incompressible entries until the connection that reads nothing has filled its
    // socket buffers and its send queue; the others read and are unaffected.
    let mut rng = crate::Rng(crate::seed());
    let mut pushes = 0;
    while relay.metric("holdfast_relay_slow_consumers_total").await == 0.0 {
        pushes += 1;
        assert!(pushes <= 400, "the stalled connection was never dropped");
        let mut doc = Doc::new();
        let blob = rng.bytes(64 << 10);
        let change = doc.change_with_bytes(blob);
        pusher
            .send(&Frame::Push {
                entries: vec![entry(&team, doc.record, vec![change])],
            })
            .await;
        assert!(matches!(
            ack(&pusher.frame_where(is_ack).await)[..],
            [Outcome::Stored { .. }]
        ));
        for peer in [&mut reader, &mut pusher] {
            peer.frame_where(is_changes).await;
        }
    }
    assert!(
        pushes * (64 << 10) > queue_bytes,
        "dropped only once its queue was full"
    );
    // The stalled connection gets what was written before it was dropped, then the close.
    loop {
        match stalled.recv().await {
            Incoming::Frame(_) => continue,
            Incoming::Closed(code) => {
                assert!(matches!(code, Some(1013) | None), "{code:?}");
                break;
            }
        }
    }
    assert_eq!(
        relay.metric("holdfast_relay_slow_consumers_total").await,
        1.0
    );
    reader.answers_ping(3).await;
}
