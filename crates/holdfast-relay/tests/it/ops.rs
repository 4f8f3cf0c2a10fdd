//! Operating the server binary: health and metrics endpoints, graceful shutdown.

use std::time::Duration;

use holdfast_protocol::limits::BUSY_RETRY_AFTER_SECS_DEFAULT;
use holdfast_protocol::{Cursor, ErrorCode, EventId, Frame, Outcome, RejectCode};

use crate::harness::{Incoming, Relay};
use crate::{entry, space, Doc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_metrics_answer_with_the_counts() {
    let relay = Relay::start(&[]).await;
    assert_eq!(relay.get("/healthz").await, (200, "ok\n".to_owned()));

    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut device, _) = relay.device(&token, &[&team]).await;
    let mut doc = Doc::new();
    let first = entry(&team, doc.record, vec![doc.change()]);
    let push = Frame::Push {
        entries: vec![first.clone(), first],
    };
    device.send(&push).await;
    let ack = device
        .frame_where(|frame| matches!(frame, Frame::Ack { .. }))
        .await;
    let Frame::Ack { results } = ack else {
        unreachable!()
    };
    let outcomes: Vec<_> = results.into_iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Stored { seq: 1 }, Outcome::Duplicate { seq: 1 }]
    );
    // Its own entry comes back live: the fan-out latency is observed once it is queued.
    device
        .frame_where(|frame| matches!(frame, Frame::Changes { .. }))
        .await;

    // A frame is counted once its write completed, which may be after the device read it:
    // each count is given a moment to reach its value (a count past it still fails).
    let check = |name: &'static str, expected: f64| metric_reaches(&relay, name, expected);
    check("holdfast_relay_connections_open", 1.0).await;
    check("holdfast_relay_connections_accepted_total", 1.0).await;
    check(
        "holdfast_relay_connections_refused_total{reason=\"busy\"}",
        0.0,
    )
    .await;
    check("holdfast_relay_push_entries_total{outcome=\"stored\"}", 1.0).await;
    check(
        "holdfast_relay_push_entries_total{outcome=\"duplicate\"}",
        1.0,
    )
    .await;
    check("holdfast_relay_commit_seconds_count", 1.0).await;
    check("holdfast_relay_fanout_seconds_count", 1.0).await;
    check("holdfast_relay_frames_received_total", 2.0).await;
    // Welcome, ack, changes.
    check("holdfast_relay_frames_sent_total", 3.0).await;
    check("holdfast_relay_slow_consumers_total", 0.0).await;
    let wire = relay
        .metric("holdfast_relay_wire_bytes_received_total")
        .await;
    let plain = relay
        .metric("holdfast_relay_plain_bytes_received_total")
        .await;
    assert!(wire > 0.0 && plain >= wire, "{wire} {plain}");
}

/// Waits up to 5 s for metric `name` to read `expected` (counters move once a frame's
/// write completes), then asserts it does.
async fn metric_reaches(relay: &Relay, name: &str, expected: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut value = relay.metric(name).await;
    while value != expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        value = relay.metric(name).await;
    }
    assert_eq!(value, expected, "{name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_refused_before_storage_are_counted_by_why() {
    let relay = Relay::start(&["--push-rate", "1", "--push-burst", "1"]).await;
    let (team, handbook) = (space("team"), space("handbook"));
    let token = relay.token(&["team:write", "handbook:read"]).await;
    let (mut device, _) = relay.device(&token, &[&team, &handbook]).await;

    // One push: an entry the grant lets through and one it does not.
    let (mut doc, mut other) = (Doc::new(), Doc::new());
    let allowed = entry(&team, doc.record, vec![doc.change()]);
    let forbidden = entry(&handbook, other.record, vec![other.change()]);
    let (outcomes, _) = device.push(&[allowed, forbidden]).await;
    assert!(matches!(outcomes[0], Outcome::Stored { .. }));
    assert!(matches!(
        outcomes[1],
        Outcome::Rejected {
            code: RejectCode::Forbidden { .. },
            ..
        }
    ));

    // Past the push rate (1 a second, burst 1), a push is refused whole.
    let mut limited = 0;
    for _ in 0..3 {
        let next = entry(&team, doc.record, vec![doc.change()]);
        let (outcomes, _) = device.push(&[next]).await;
        limited += outcomes
            .iter()
            .filter(|outcome| {
                matches!(
                    outcome,
                    Outcome::Rejected {
                        code: RejectCode::RateLimited { .. },
                        ..
                    }
                )
            })
            .count();
    }
    assert!(limited > 0, "the push rate was never met");

    let count =
        |outcome: &str| format!("holdfast_relay_push_entries_total{{outcome=\"{outcome}\"}}");
    metric_reaches(&relay, &count("forbidden"), 1.0).await;
    metric_reaches(&relay, &count("rate_limited"), limited as f64).await;
    // The log store's own count is not charged with what never reached it.
    let (_, metrics) = relay.get("/metrics").await;
    assert!(!metrics.contains(&count("rejected")), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_stores_in_flight_then_exits_0() {
    let mut relay = Relay::start(&[]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut device, epoch) = relay.device(&token, &[&team]).await;

    // Pushes in flight when the signal arrives are stored and acked, or not read at all;
    // either way the last frame is the busy error and nothing is acked but not stored.
    let mut pushed = Vec::new();
    for _ in 0..8 {
        let mut doc = Doc::new();
        let e = entry(&team, doc.record, vec![doc.change()]);
        pushed.push(e.event_id);
        device.send(&Frame::Push { entries: vec![e] }).await;
    }
    relay.terminate();
    let mut acked: Vec<EventId> = Vec::new();
    let mut busy = false;
    loop {
        match device.recv().await {
            Incoming::Frame(Frame::Ack { results }) => {
                assert!(!busy, "an ack after the busy error");
                for result in results {
                    assert!(matches!(result.outcome, Outcome::Stored { .. }));
                    acked.push(result.event_id);
                }
            }
            Incoming::Frame(Frame::Changes { .. }) => {}
            Incoming::Frame(Frame::Error { code, .. }) => {
                let retry_after_secs = BUSY_RETRY_AFTER_SECS_DEFAULT;
                assert_eq!(code, ErrorCode::ServerBusy { retry_after_secs });
                busy = true;
            }
            Incoming::Frame(other) => panic!("unexpected {other:?}"),
            Incoming::Closed(code) => {
                assert_eq!(code, Some(1013));
                break;
            }
        }
    }
    assert!(busy);
    let status = relay.exit().await;
    assert_eq!(status.code(), Some(0), "{}", relay.log());

    // Every acked entry is in the log after a restart, and nothing else.
    let dir = std::mem::replace(&mut relay.dir, tempfile::tempdir().unwrap());
    let relay = Relay::start_in(dir, &[]).await;
    let (mut device, _) = relay.device(&token, &[&team]).await;
    device
        .send(&Frame::Pull {
            space: team.clone(),
            cursor: Cursor::start(epoch),
            max_bytes: 1 << 20,
        })
        .await;
    let Frame::Changes { entries, .. } = device.frame().await else {
        panic!("expected changes")
    };
    // Acks come in commit order, which concurrent pushes need not keep.
    let mut stored: Vec<EventId> = entries.iter().map(|e| e.event_id).collect();
    stored.sort();
    acked.sort();
    assert_eq!(stored, acked);
    assert!(stored.iter().all(|id| pushed.contains(id)));
}

/// Idle connections the memory test opens; `HOLDFAST_RELAY_IDLE_CONNECTIONS` raises it
/// (10000 is the design point: under 300 MiB of resident memory).
const IDLE_CONNECTIONS_DEFAULT: usize = 200;

/// Resident memory an idle, authenticated, subscribed connection may cost the relay.
const IDLE_CONNECTION_BYTES_MAX: u64 = 16 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cost_little_memory() {
    let count = std::env::var("HOLDFAST_RELAY_IDLE_CONNECTIONS")
        .map_or(IDLE_CONNECTIONS_DEFAULT, |n| n.parse().expect("a number"));
    let max = (count + 10).to_string();
    let relay = Relay::start(&["--max-connections", &max]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut first, _) = relay.device(&token, &[&team]).await;
    let before = relay.rss_bytes();

    let mut peers = Vec::with_capacity(count);
    for _ in 0..count {
        peers.push(relay.device(&token, &[&team]).await.0);
    }
    // Every connection is registered once the last one answers.
    first.answers_ping(0).await;
    let after = relay.rss_bytes();
    let per_connection = after.saturating_sub(before) / count as u64;
    eprintln!(
        "{count} idle connections: relay RSS {} KiB -> {} KiB, {} bytes each",
        before >> 10,
        after >> 10,
        per_connection
    );
    // Allocator arenas make a small count noisy: allow a fixed 16 MiB on top.
    let allowed = IDLE_CONNECTION_BYTES_MAX * count as u64 + (16 << 20);
    assert!(
        after.saturating_sub(before) <= allowed,
        "{per_connection} bytes each"
    );
    assert_eq!(
        relay.metric("holdfast_relay_connections_open").await,
        (count + 1) as f64
    );
}
