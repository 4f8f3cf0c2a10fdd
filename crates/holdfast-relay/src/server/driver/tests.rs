//! The driver's rules: stores one at a time in push order, reading bounded by the work
//! in storage, storage failures and a shutdown's drain.

use holdfast_protocol::limits::PROTOCOL_VERSION;
use holdfast_protocol::session::{AuthError, Grants, Role};
use holdfast_protocol::{encode, DeviceId, EventId, Outcome, SpaceCursor, Token};
use uuid::Uuid;

use super::*;

/// Stores of one connection waiting for storage at once (the session's limit).
const PUSHES_IN_FLIGHT_MAX: u32 = 3;

/// Lets every token write the space `team`.
struct Writer;

impl Authenticator for Writer {
    fn authenticate(&self, _token: &Token, _now_ms: u64) -> Result<Grants, AuthError> {
        Ok(Grants {
            subject: "writer".into(),
            spaces: [(team(), Role::Write)].into(),
            expires_at_ms: None,
        })
    }
}

fn team() -> SpaceId {
    SpaceId::new("team").unwrap()
}

/// A driver past its `Welcome`, subscribed to `team`.
fn welcomed() -> RelayDriver {
    let mut config = RelayConfig::new(Uuid::from_bytes([7; 16]), 1);
    config.limits.pushes_in_flight_max = PUSHES_IN_FLIGHT_MAX;
    config.push_rate_per_sec = 0;
    let mut driver = RelayDriver::new(config, Arc::new(Writer), 0);
    let hello = Frame::Hello {
        protocol: PROTOCOL_VERSION,
        device: DeviceId::from_bytes([1; 16]),
        token: Token::new("token"),
        spaces: vec![SpaceCursor {
            space: team(),
            cursor: None,
        }],
    };
    let out = feed(&mut driver, &hello);
    assert!(matches!(out.frames[..], [Frame::Welcome { .. }]), "{out:?}");
    assert_eq!(out.subscribe, Some(vec![team()]));
    driver
}

fn feed(driver: &mut RelayDriver, frame: &Frame) -> Out {
    let mut out = Out::default();
    driver.received(&encode(frame).unwrap(), 0, &mut out);
    out
}

fn push(n: u8) -> Frame {
    Frame::Push {
        entries: vec![PushEntry {
            event_id: EventId::from_bytes([n; 16]),
            space: team(),
            record: RecordId::from_bytes([n; 16]),
            changes: vec![vec![n; 4]],
        }],
    }
}

fn repair(n: u8) -> Frame {
    Frame::Repair {
        space: team(),
        record: RecordId::from_bytes([n; 16]),
        message: vec![n; 4],
    }
}

fn done(driver: &mut RelayDriver, done: Done) -> Out {
    let mut out = Out::default();
    driver.done(done, &mut out);
    out
}

/// The one piece of work in `out`, if it is a store: its request and first event id.
fn store_of(out: &Out) -> Option<(RequestId, EventId)> {
    match &out.work[..] {
        [Work::Store {
            request_id,
            entries,
        }] => Some((*request_id, entries[0].event_id)),
        _ => None,
    }
}

/// Storage's answer to a store of `event_id`: stored at `seq`.
fn stored(request_id: RequestId, event_id: EventId, seq: u64) -> Done {
    Done::Stored {
        request_id,
        result: Ok(vec![AckResult {
            event_id,
            outcome: Outcome::Stored { seq },
        }]),
    }
}

fn acked(out: &Out) -> Vec<EventId> {
    out.frames
        .iter()
        .flat_map(|frame| match frame {
            Frame::Ack { results } => results.iter().map(|r| r.event_id).collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// Asserts that `out` ends the connection with `Error { code }` and its close.
fn check_fails(driver: &RelayDriver, out: &Out, code: ErrorCode) {
    match &out.frames[..] {
        [Frame::Error { code: sent, .. }] if *sent == code => {}
        other => panic!("expected Error({code:?}), got {other:?}"),
    }
    assert_eq!(out.close, Some(CloseReason::Sent(code)));
    assert!(driver.is_ended() && !driver.wants_read());
}

#[test]
fn stores_run_one_at_a_time_in_push_order() {
    let mut driver = welcomed();
    let first = feed(&mut driver, &push(1));
    let (request, event_id) = store_of(&first).expect("the first push is stored at once");
    assert_eq!(event_id, EventId::from_bytes([1; 16]));
    for n in 2..=PUSHES_IN_FLIGHT_MAX as u8 {
        assert!(driver.wants_read());
        let out = feed(&mut driver, &push(n));
        assert!(
            out.work.is_empty(),
            "push {n} waits for the store before it"
        );
    }
    assert!(
        !driver.wants_read(),
        "as many pushes wait as the session allows"
    );

    let mut next = (request, event_id);
    for n in 1..=PUSHES_IN_FLIGHT_MAX as u8 {
        let (request, event_id) = next;
        assert_eq!(event_id, EventId::from_bytes([n; 16]), "push order");
        let out = done(&mut driver, stored(request, event_id, n.into()));
        assert_eq!(acked(&out), [event_id]);
        assert!(driver.wants_read());
        match store_of(&out) {
            Some(store) => next = store,
            None => assert!(out.work.is_empty() && n == PUSHES_IN_FLIGHT_MAX as u8),
        }
    }
    assert_eq!(driver.work_out(), 0);
}

#[test]
fn reading_stops_at_the_repair_limit() {
    let mut driver = welcomed();
    for n in 0..REPAIRS_IN_FLIGHT_MAX as u8 {
        assert!(driver.wants_read(), "{n} repairs in storage");
        let out = feed(&mut driver, &repair(n));
        assert!(matches!(out.work[..], [Work::Repair { .. }]), "{out:?}");
    }
    assert!(!driver.wants_read());

    // Storage has nothing to say: an empty message ends the device's conversation.
    let record = RecordId::from_bytes([0; 16]);
    let out = done(
        &mut driver,
        Done::Repaired {
            space: team(),
            record,
            reply: Ok(None),
        },
    );
    let answer = Frame::Repair {
        space: team(),
        record,
        message: Vec::new(),
    };
    assert_eq!(out.frames, [answer]);
    assert!(driver.wants_read());
}

#[test]
fn a_shutdown_turns_the_device_away_once_its_stores_are_acked() {
    let mut driver = welcomed();
    let (request, event_id) = store_of(&feed(&mut driver, &push(1))).unwrap();
    let mut out = Out::default();
    driver.shut_down(&mut out);
    assert!(out.is_empty() && !driver.wants_read(), "{out:?}");

    let out = done(&mut driver, stored(request, event_id, 1));
    assert_eq!(acked(&out), [event_id]);
    let busy = matches!(
        out.frames[1],
        Frame::Error {
            code: ErrorCode::ServerBusy { .. },
            ..
        }
    );
    assert!(busy, "{out:?}");
    assert!(matches!(
        out.close,
        Some(CloseReason::Sent(ErrorCode::ServerBusy { .. }))
    ));
}

/// Runs `event` on a driver with a store and a repair in storage; it must end the
/// connection with `Error { code }`, and report a problem if `problem`.
fn check_ends(
    event: impl Fn(&mut RelayDriver, RequestId, &mut Out),
    code: ErrorCode,
    problem: bool,
) {
    let mut driver = welcomed();
    let (request, event_id) = store_of(&feed(&mut driver, &push(1))).unwrap();
    feed(&mut driver, &repair(1));
    let mut out = Out::default();
    event(&mut driver, request, &mut out);
    check_fails(&driver, &out, code.clone());
    assert_eq!(out.problems.is_empty(), !problem, "{code:?}: {out:?}");
    let out = done(&mut driver, stored(request, event_id, 1));
    assert!(out.is_empty(), "nothing follows the close: {out:?}");
}

fn repaired(reply: Result<Option<Vec<u8>>, StoreError>) -> Done {
    let (space, record) = (team(), RecordId::from_bytes([1; 16]));
    Done::Repaired {
        space,
        record,
        reply,
    }
}

#[test]
fn what_the_session_cannot_see_ends_the_connection() {
    let failed = || StoreError::CommitFailed("disk full".into());
    let max = holdfast_protocol::limits::FRAME_BYTES_MAX as u32;
    check_ends(
        |driver, request_id, out| {
            let result = Err(failed());
            driver.done(Done::Stored { request_id, result }, out);
        },
        ErrorCode::Internal,
        true,
    );
    check_ends(
        |driver, _, out| driver.done(repaired(Err(failed())), out),
        ErrorCode::Internal,
        true,
    );
    check_ends(
        |driver, _, out| {
            let bad = StoreError::BadSyncMessage("not a sync message".into());
            driver.done(repaired(Err(bad)), out);
        },
        ErrorCode::Malformed,
        false,
    );
    check_ends(|d, _, out| d.work_failed(out), ErrorCode::Internal, false);
    check_ends(
        |d, _, out| d.received_text(out),
        ErrorCode::Malformed,
        false,
    );
    check_ends(
        |d, _, out| d.too_large("a frame of 9 MiB", out),
        ErrorCode::FrameTooLarge { max },
        false,
    );
    check_ends(
        |d, _, out| d.unsendable(&push(2), out),
        ErrorCode::Internal,
        false,
    );
}

#[test]
fn a_connection_hears_what_it_stored_without_the_changes() {
    let mut driver = welcomed();
    let entry = ChangeEntry {
        seq: 7,
        record: RecordId::from_bytes([1; 16]),
        event_id: EventId::from_bytes([1; 16]),
        changes: vec![vec![1; 4]],
    };
    let cursor = Cursor { epoch: 1, seq: 7 };
    let heard = |driver: &mut RelayDriver, own: bool| {
        let mut out = Out::default();
        driver.live(&team(), std::slice::from_ref(&entry), cursor, own, &mut out);
        match &out.frames[..] {
            [Frame::Changes {
                entries,
                next_cursor,
                ..
            }] if *next_cursor == cursor => entries.clone(),
            other => panic!("expected one Changes, got {other:?}"),
        }
    };
    assert_eq!(heard(&mut driver, false), std::slice::from_ref(&entry));
    let own = ChangeEntry {
        changes: Vec::new(),
        ..entry.clone()
    };
    assert_eq!(heard(&mut driver, true), [own]);
}
