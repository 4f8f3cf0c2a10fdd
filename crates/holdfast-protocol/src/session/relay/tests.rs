use std::io::Write;

use super::*;
use crate::codec::encode;
use crate::frame::SpaceCursor;
use crate::limits::{BODY_BYTES_MAX, FRAME_BYTES_MAX, SPACES_PER_HELLO_MAX};
use crate::session::tests::{
    carries_documents, entry, relay_config, relay_session, seed, space, Rng,
};

mod random;

fn hello(protocol: u16, token: &str, spaces: &[&str]) -> Frame {
    Frame::Hello {
        protocol,
        device: DeviceId::from_bytes([1; 16]),
        token: Token::new(token),
        spaces: spaces
            .iter()
            .map(|name| SpaceCursor {
                space: space(name),
                cursor: None,
            })
            .collect(),
    }
}

/// Sends `frame` through `encode`, as a driver would.
fn feed(session: &mut RelaySession, frame: &Frame, now_ms: u64) -> Vec<RelayEffect> {
    session.handle_bytes(&encode(frame).unwrap(), now_ms)
}

/// A session of the `writer` token on `team` and `news`, past its `Welcome`.
fn authenticated(config: RelayConfig) -> RelaySession {
    let mut session = relay_session(config);
    let effects = feed(
        &mut session,
        &hello(PROTOCOL_VERSION, "writer", &["team"]),
        0,
    );
    assert!(matches!(
        effects[0],
        RelayEffect::Send(Frame::Welcome { .. })
    ));
    session
}

/// Asserts that `effects` are an `Error` with `code`, then a close, and the session is over.
fn check_fails(session: &RelaySession, effects: &[RelayEffect], code: ErrorCode) {
    use RelayEffect::{Close, Send};
    match effects {
        [Send(Frame::Error { code: sent, .. }), Close(CloseReason::Sent(closed))]
            if *sent == code && *closed == code => {}
        other => panic!("expected Error({code:?}) and Close, got {other:?}"),
    }
    assert!(session.is_closed());
    assert!(!session.wants_read());
}

fn sent(effects: &[RelayEffect]) -> Vec<&Frame> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            RelayEffect::Send(frame) => Some(frame),
            _ => None,
        })
        .collect()
}

// --- Handshake ----------------------------------------------------------------------------

#[test]
fn hello_is_welcomed_and_subscribes_its_spaces() {
    let mut session = relay_session(relay_config());
    let effects = feed(
        &mut session,
        &hello(PROTOCOL_VERSION, "writer", &["team", "news"]),
        0,
    );
    assert_eq!(
        effects,
        [
            RelayEffect::Send(Frame::Welcome {
                relay_id: Uuid::from_bytes([7; 16]),
                epoch: 1,
                limits: Limits::PROTOCOL,
            }),
            RelayEffect::Subscribe {
                spaces: vec![space("news"), space("team")],
            },
        ]
    );
    assert_eq!(session.device(), Some(DeviceId::from_bytes([1; 16])));
    assert_eq!(session.protocol(), Some(PROTOCOL_VERSION));
    assert_eq!(session.grants().unwrap().subject, "writer");
}

#[test]
fn versions_from_the_previous_to_the_current_are_accepted() {
    let check = |protocol: u16| {
        let mut session = relay_session(relay_config());
        let effects = feed(&mut session, &hello(protocol, "writer", &[]), 0);
        if session.is_closed() {
            let code = ErrorCode::UnsupportedVersion {
                min: PROTOCOL_VERSION_MIN_SUPPORTED,
                max: PROTOCOL_VERSION,
            };
            check_fails(&session, &effects, code);
            false
        } else {
            true
        }
    };
    // The policy: the current version and the one before it (there is none before 1).
    assert_eq!(
        PROTOCOL_VERSION_MIN_SUPPORTED,
        PROTOCOL_VERSION.saturating_sub(1).max(1)
    );
    for protocol in PROTOCOL_VERSION_MIN_SUPPORTED..=PROTOCOL_VERSION {
        assert!(check(protocol), "protocol {protocol}");
    }
    assert!(!check(PROTOCOL_VERSION_MIN_SUPPORTED - 1));
    assert!(!check(PROTOCOL_VERSION + 1));
    assert!(!check(u16::MAX));
}

#[test]
fn a_frame_of_an_unknown_version_is_refused() {
    let mut bytes = encode(&hello(PROTOCOL_VERSION, "writer", &[])).unwrap();
    bytes[0] = PROTOCOL_VERSION as u8 + 1;
    let mut session = relay_session(relay_config());
    let effects = session.handle_bytes(&bytes, 0);
    let code = ErrorCode::UnsupportedVersion {
        min: PROTOCOL_VERSION_MIN_SUPPORTED,
        max: PROTOCOL_VERSION,
    };
    check_fails(&session, &effects, code);
}

#[test]
fn bad_tokens_are_unauthorized() {
    let check = |token: &str, now_ms: u64| {
        let mut session = relay_session(relay_config());
        let effects = feed(&mut session, &hello(PROTOCOL_VERSION, token, &[]), now_ms);
        check_fails(&session, &effects, ErrorCode::Unauthorized);
    };
    check("forged", 0);
    check("", 0);
    check("expiring", 5_000);
    check("expiring", u64::MAX);
}

#[test]
fn hello_naming_an_unreadable_space_is_forbidden() {
    let mut session = relay_session(relay_config());
    let effects = feed(
        &mut session,
        &hello(PROTOCOL_VERSION, "reader", &["team", "news"]),
        0,
    );
    check_fails(
        &session,
        &effects,
        ErrorCode::Forbidden {
            space: space("news"),
        },
    );
}

#[test]
fn frames_before_hello_are_unauthorized() {
    let check = |frame: Frame| {
        let mut session = relay_session(relay_config());
        let effects = feed(&mut session, &frame, 0);
        check_fails(&session, &effects, ErrorCode::Unauthorized);
    };
    check(Frame::Push {
        entries: vec![entry("team", 1)],
    });
    check(pull("team", 0));
    check(Frame::Repair {
        space: space("team"),
        record: RecordId::from_bytes([1; 16]),
        message: vec![1],
    });
    check(Frame::Ack { results: vec![] });
    check(Frame::Changes {
        space: space("team"),
        entries: vec![],
        next_cursor: Cursor::start(1),
        more: false,
    });
    check(Frame::Welcome {
        relay_id: Uuid::nil(),
        epoch: 1,
        limits: Limits::PROTOCOL,
    });
}

#[test]
fn no_document_bytes_leave_before_authentication() {
    let record = RecordId::from_bytes([1; 16]);
    let next_cursor = Cursor { epoch: 1, seq: 1 };
    let check = |session: &mut RelaySession| {
        assert!(session
            .handle_live(&space("team"), &[change(1)], next_cursor)
            .is_empty());
        assert!(session
            .send_repair(space("team"), record, vec![1])
            .is_empty());
        let reply = PullReply::Changes {
            entries: vec![change(1)],
            next_cursor,
            more: false,
        };
        assert_eq!(
            session.handle_pulled(RequestId(0), reply),
            Err(DriverError::UnknownRequest(RequestId(0)))
        );
    };
    let mut waiting = relay_session(relay_config());
    check(&mut waiting);
    let mut refused = relay_session(relay_config());
    feed(
        &mut refused,
        &hello(PROTOCOL_VERSION, "forged", &["team"]),
        0,
    );
    check(&mut refused);
}

#[test]
fn ping_is_answered_before_and_after_hello() {
    let mut session = relay_session(relay_config());
    let pong = [RelayEffect::Send(Frame::Pong { nonce: 9 })];
    assert_eq!(feed(&mut session, &Frame::Ping { nonce: 9 }, 0), pong);
    assert!(session.device().is_none());
    let mut session = authenticated(relay_config());
    assert_eq!(feed(&mut session, &Frame::Ping { nonce: 9 }, 0), pong);
    assert!(feed(&mut session, &Frame::Pong { nonce: 9 }, 0).is_empty());
}

#[test]
fn a_second_hello_is_malformed() {
    let mut session = authenticated(relay_config());
    let effects = feed(&mut session, &hello(PROTOCOL_VERSION, "writer", &[]), 0);
    check_fails(&session, &effects, ErrorCode::Malformed);
}

#[test]
fn an_error_from_the_device_closes() {
    let mut session = authenticated(relay_config());
    let error = Frame::Error {
        code: ErrorCode::Internal,
        message: String::new(),
    };
    assert_eq!(
        feed(&mut session, &error, 0),
        [RelayEffect::Close(CloseReason::Received(
            ErrorCode::Internal
        ))]
    );
    assert!(session.is_closed());
}

// --- Hostile bytes ------------------------------------------------------------------------

#[test]
fn bad_bytes_are_an_error_and_a_close() {
    let check = |bytes: &[u8], code: ErrorCode| {
        for mut session in [relay_session(relay_config()), authenticated(relay_config())] {
            let effects = session.handle_bytes(bytes, 0);
            check_fails(&session, &effects, code.clone());
            // Closed: anything more is ignored.
            assert!(feed(&mut session, &Frame::Ping { nonce: 1 }, 0).is_empty());
            assert_eq!(session.handle_tick(u64::MAX), []);
        }
    };
    let too_large = ErrorCode::FrameTooLarge {
        max: FRAME_BYTES_MAX as u32,
    };
    check(&[], ErrorCode::Malformed);
    check(&[1], ErrorCode::Malformed);
    check(&[1, 0, 200, 3, 4], ErrorCode::Malformed);
    check(&[1, 0b10, 8, 0], ErrorCode::Malformed);
    check(&vec![1; FRAME_BYTES_MAX + 1], too_large.clone());
    check(&zip_bomb(), too_large);
    // A list claiming more spaces than a hello may name.
    let mut claim = vec![1, 0, 0, 1, 16];
    claim.extend_from_slice(&[0; 16]);
    claim.extend_from_slice(&[0, 253]);
    claim.extend_from_slice(&(SPACES_PER_HELLO_MAX as u64 + 1).to_le_bytes());
    check(&claim, ErrorCode::Malformed);
}

#[test]
fn frames_above_the_configured_limit_are_refused_unread() {
    let mut config = relay_config();
    config.limits.frame_bytes_max = 64;
    let mut session = authenticated(config);
    let push = Frame::Push {
        entries: vec![entry("team", 1); 3],
    };
    let effects = feed(&mut session, &push, 0);
    check_fails(&session, &effects, ErrorCode::FrameTooLarge { max: 64 });
}

/// A frame whose compressed body inflates past `BODY_BYTES_MAX`.
fn zip_bomb() -> Vec<u8> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
    let zeros = vec![0; 1 << 20];
    for _ in 0..=BODY_BYTES_MAX >> 20 {
        encoder.write_all(&zeros).unwrap();
    }
    [&[1, 1][..], &encoder.finish().unwrap()].concat()
}

// --- Pushes -------------------------------------------------------------------------------

fn store_request(effects: &[RelayEffect]) -> (RequestId, Vec<PushEntry>) {
    match effects {
        [RelayEffect::Store {
            request_id,
            entries,
        }] => (*request_id, entries.clone()),
        other => panic!("expected one Store, got {other:?}"),
    }
}

fn stored(entries: &[PushEntry], seq_first: u64) -> Vec<AckResult> {
    (seq_first..)
        .zip(entries)
        .map(|(seq, entry)| AckResult {
            event_id: entry.event_id,
            outcome: Outcome::Stored { seq },
        })
        .collect()
}

#[test]
fn a_push_to_an_unwritable_space_is_refused_and_the_rest_stored_in_order() {
    let mut session = authenticated(relay_config());
    let push = vec![
        entry("team", 1),
        entry("news", 2),
        entry("team", 3),
        entry("other", 4),
    ];
    let (request_id, entries) =
        store_request(&feed(&mut session, &Frame::Push { entries: push }, 0));
    assert_eq!(entries, [entry("team", 1), entry("team", 3)]);

    let effects = session
        .handle_store_result(request_id, stored(&entries, 10))
        .unwrap();
    let [RelayEffect::Send(Frame::Ack { results })] = &effects[..] else {
        panic!("expected an Ack, got {effects:?}");
    };
    let check = |result: &AckResult, n: u8, expected: Outcome| {
        assert_eq!(result.event_id, EventId::from_bytes([n; 16]));
        assert_eq!(result.outcome, expected);
    };
    let forbidden = |name: &str| Outcome::Rejected {
        code: RejectCode::Forbidden { space: space(name) },
        reason: format!("You no longer have write access to {name}"),
        permanent: true,
    };
    check(&results[0], 1, Outcome::Stored { seq: 10 });
    check(&results[1], 2, forbidden("news"));
    check(&results[2], 3, Outcome::Stored { seq: 11 });
    check(&results[3], 4, forbidden("other"));
    assert_eq!(session.requests_in_flight(), 0);
}

#[test]
fn a_push_with_nothing_writable_is_acked_at_once() {
    let mut session = authenticated(relay_config());
    let effects = feed(
        &mut session,
        &Frame::Push {
            entries: vec![entry("news", 1)],
        },
        0,
    );
    assert!(
        matches!(&effects[..], [RelayEffect::Send(Frame::Ack { results })] if results.len() == 1)
    );
    let effects = feed(&mut session, &Frame::Push { entries: vec![] }, 0);
    assert_eq!(effects, [RelayEffect::Send(Frame::Ack { results: vec![] })]);
}

#[test]
fn store_results_must_answer_their_request() {
    let mut session = authenticated(relay_config());
    let push = Frame::Push {
        entries: vec![entry("team", 1), entry("team", 2)],
    };
    let (request_id, entries) = store_request(&feed(&mut session, &push, 0));
    let check = |session: &mut RelaySession,
                 id: RequestId,
                 results: Vec<AckResult>,
                 expected: DriverError| {
        assert_eq!(session.handle_store_result(id, results), Err(expected));
    };
    let mismatch = DriverError::ResultMismatch {
        request: request_id,
        expected: 2,
    };
    check(
        &mut session,
        RequestId(99),
        stored(&entries, 1),
        DriverError::UnknownRequest(RequestId(99)),
    );
    check(
        &mut session,
        request_id,
        stored(&entries[..1], 1),
        mismatch.clone(),
    );
    check(
        &mut session,
        request_id,
        stored(&[entries[1].clone(), entries[0].clone()], 1),
        mismatch.clone(),
    );
    check(
        &mut session,
        request_id,
        stored(&[&entries[..], &entries[..1]].concat(), 1),
        mismatch,
    );
    // The session is unchanged: the right answer still goes through.
    assert!(session
        .handle_store_result(request_id, stored(&entries, 1))
        .is_ok());
    // After a close, late results are dropped quietly.
    let (request_id, entries) = store_request(&feed(&mut session, &push, 0));
    session.shut_down();
    assert_eq!(
        session.handle_store_result(request_id, stored(&entries, 1)),
        Ok(vec![])
    );
}

#[test]
fn batches_above_the_advertised_limits_are_malformed() {
    let mut config = relay_config();
    config.limits.batch_entries_max = 2;
    config.limits.changes_per_entry_max = 1;
    let check = |entries: Vec<PushEntry>, refused: bool| {
        let mut session = authenticated(config.clone());
        let effects = feed(&mut session, &Frame::Push { entries }, 0);
        if refused {
            check_fails(&session, &effects, ErrorCode::Malformed);
        } else {
            store_request(&effects);
        }
    };
    check(vec![entry("team", 1); 2], false);
    check(vec![entry("team", 1); 3], true);
    let mut two_changes = entry("team", 1);
    two_changes.changes.push(vec![2]);
    check(vec![two_changes], true);
}

// --- Rate limit ---------------------------------------------------------------------------

#[test]
fn pushes_above_the_rate_are_rejected_for_a_while() {
    let mut config = relay_config();
    config.push_rate_per_sec = 2;
    config.push_burst = 3;
    config.limits.pushes_in_flight_max = 100;
    let mut session = authenticated(config);
    let mut check = |now_ms: u64, accepted: Option<u32>| {
        let effects = feed(
            &mut session,
            &Frame::Push {
                entries: vec![entry("team", 1)],
            },
            now_ms,
        );
        match (accepted, &effects[..]) {
            (None, [RelayEffect::Store { .. }]) => {}
            (Some(secs), [RelayEffect::Send(Frame::Ack { results })]) => {
                let code = RejectCode::RateLimited {
                    retry_after_secs: secs,
                };
                let reason = code.to_string();
                assert_eq!(
                    results[0].outcome,
                    Outcome::Rejected {
                        code,
                        reason,
                        permanent: false
                    }
                );
            }
            (_, other) => panic!("at {now_ms} ms expected {accepted:?}, got {other:?}"),
        }
        assert!(!session.is_closed(), "a rate limit does not close");
    };
    // The burst, just below and just above.
    check(0, None);
    check(0, None);
    check(0, None);
    check(0, Some(1));
    // Two pushes a second: one more 500 ms later, not 499.
    check(499, Some(1));
    check(500, None);
    check(500, Some(1));
    // A long quiet spell refills the burst, no more.
    check(100_000, None);
    check(100_000, None);
    check(100_000, None);
    check(100_000, Some(1));
}

#[test]
fn the_bucket_says_how_many_milliseconds_until_the_next_push() {
    let check = |per_sec: u32, wait_ms: u64| {
        let mut bucket = TokenBucket::new(per_sec, 1, 0);
        assert_eq!(bucket.take(0), Ok(()));
        assert_eq!(bucket.take(0), Err(wait_ms), "{per_sec} per second");
    };
    check(1000, 1);
    check(3, 334);
    check(1, 1000);
    // A rate of 0 is no limit.
    let mut bucket = TokenBucket::new(0, 1, 0);
    assert!((0..10_000).all(|_| bucket.take(0).is_ok()));
}

// --- Backpressure -------------------------------------------------------------------------

#[test]
fn reading_stops_at_the_in_flight_limits() {
    let mut config = relay_config();
    config.limits.pushes_in_flight_max = 2;
    config.pulls_in_flight_max = 1;
    let mut session = authenticated(config);
    let push = Frame::Push {
        entries: vec![entry("team", 1)],
    };

    let (first, entries) = store_request(&feed(&mut session, &push, 0));
    assert!(session.wants_read());
    store_request(&feed(&mut session, &push, 0));
    assert!(!session.wants_read(), "two stores in flight");
    session
        .handle_store_result(first, stored(&entries, 1))
        .unwrap();
    assert!(session.wants_read());

    let effects = feed(&mut session, &pull("team", 0), 0);
    assert!(matches!(effects[..], [RelayEffect::Pull { .. }]));
    assert!(!session.wants_read(), "one pull in flight");
    assert_eq!(session.requests_in_flight(), 2);
}

#[test]
fn a_push_past_the_in_flight_limit_is_malformed() {
    let mut config = relay_config();
    config.limits.pushes_in_flight_max = 1;
    let mut session = authenticated(config);
    let push = Frame::Push {
        entries: vec![entry("team", 1)],
    };
    store_request(&feed(&mut session, &push, 0));
    let effects = feed(&mut session, &push, 0);
    check_fails(&session, &effects, ErrorCode::Malformed);
}

#[test]
fn a_pull_past_the_in_flight_limit_is_busy() {
    let mut config = relay_config();
    config.pulls_in_flight_max = 1;
    let mut session = authenticated(config);
    feed(&mut session, &pull("team", 0), 0);
    let effects = feed(&mut session, &pull("team", 0), 0);
    check_fails(
        &session,
        &effects,
        ErrorCode::ServerBusy {
            retry_after_secs: 5,
        },
    );
}

// --- Pulls, live changes and repair -------------------------------------------------------

fn pull(name: &str, seq: u64) -> Frame {
    Frame::Pull {
        space: space(name),
        cursor: Cursor { epoch: 1, seq },
        max_bytes: u64::MAX,
    }
}

fn change(seq: u64) -> ChangeEntry {
    ChangeEntry {
        seq,
        record: RecordId::from_bytes([1; 16]),
        event_id: EventId::from_bytes([seq as u8; 16]),
        changes: vec![vec![seq as u8; 8]],
    }
}

#[test]
fn a_pull_is_answered_with_changes_within_the_byte_limit() {
    let mut session = authenticated(relay_config());
    let effects = feed(&mut session, &pull("news", 3), 0);
    let [RelayEffect::Pull {
        request_id,
        space: pulled,
        cursor,
        max_bytes,
    }] = &effects[..]
    else {
        panic!("expected a Pull, got {effects:?}");
    };
    assert_eq!(
        (pulled, cursor.seq, *max_bytes),
        (&space("news"), 3, PULL_BYTES_MAX_DEFAULT)
    );

    let reply = PullReply::Changes {
        entries: vec![change(4)],
        next_cursor: Cursor { epoch: 1, seq: 4 },
        more: true,
    };
    let effects = session.handle_pulled(*request_id, reply).unwrap();
    assert_eq!(
        effects,
        [RelayEffect::Send(Frame::Changes {
            space: space("news"),
            entries: vec![change(4)],
            next_cursor: Cursor { epoch: 1, seq: 4 },
            more: true,
        })]
    );
    assert_eq!(
        session.handle_pulled(*request_id, PullReply::Failed),
        Err(DriverError::UnknownRequest(*request_id))
    );
}

#[test]
fn a_pull_of_an_unreadable_space_is_forbidden_without_document_bytes() {
    let mut session = authenticated(relay_config());
    let effects = feed(&mut session, &pull("secret", 0), 0);
    check_fails(
        &session,
        &effects,
        ErrorCode::Forbidden {
            space: space("secret"),
        },
    );
    assert!(sent(&effects).iter().all(|frame| !carries_documents(frame)));
    // Nothing reaches the device afterwards either.
    assert!(session
        .handle_live(&space("team"), &[change(1)], Cursor { epoch: 1, seq: 1 })
        .is_empty());
    assert!(session
        .send_repair(space("team"), RecordId::from_bytes([1; 16]), vec![1])
        .is_empty());
}

#[test]
fn a_bootstrap_is_answered_with_a_snapshot_page() {
    let mut session = authenticated(relay_config());
    let from = Some(BootstrapFrom {
        base: Cursor { epoch: 1, seq: 4 },
        after: RecordId::from_bytes([1; 16]),
    });
    let bootstrap = Frame::Bootstrap {
        space: space("news"),
        from,
        max_bytes: u64::MAX,
    };
    let effects = feed(&mut session, &bootstrap, 0);
    let [RelayEffect::Bootstrap {
        request_id,
        space: asked,
        from: asked_from,
        max_bytes,
    }] = &effects[..]
    else {
        panic!("expected a Bootstrap, got {effects:?}");
    };
    assert_eq!(
        (asked, *asked_from, *max_bytes),
        (&space("news"), from, PULL_BYTES_MAX_DEFAULT),
        "max_bytes is capped like a pull's"
    );
    assert_eq!(session.requests_in_flight(), 1);
    let records = vec![RecordState {
        record: RecordId::from_bytes([2; 16]),
        doc: vec![1, 2, 3],
        changes: vec![vec![4]],
    }];
    let reply = PullReply::Snapshot {
        records: records.clone(),
        base: Cursor { epoch: 1, seq: 4 },
        next: None,
    };
    let effects = session.handle_pulled(*request_id, reply).unwrap();
    assert_eq!(
        effects,
        [RelayEffect::Send(Frame::Snapshot {
            space: space("news"),
            records,
            base: Cursor { epoch: 1, seq: 4 },
            next: None,
        })]
    );
    assert_eq!(session.requests_in_flight(), 0);

    // A bootstrap of an unreadable space is forbidden, with no document byte.
    let bootstrap = Frame::Bootstrap {
        space: space("secret"),
        from: None,
        max_bytes: 1,
    };
    let effects = feed(&mut session, &bootstrap, 0);
    check_fails(
        &session,
        &effects,
        ErrorCode::Forbidden {
            space: space("secret"),
        },
    );
}

#[test]
fn a_failed_pull_is_an_internal_error() {
    let mut session = authenticated(relay_config());
    let effects = feed(&mut session, &pull("team", 0), 0);
    let [RelayEffect::Pull { request_id, .. }] = effects[..] else {
        panic!()
    };
    let effects = session
        .handle_pulled(request_id, PullReply::Failed)
        .unwrap();
    check_fails(&session, &effects, ErrorCode::Internal);
}

#[test]
fn a_pull_from_another_epoch_can_be_answered_with_repair() {
    let mut session = authenticated(relay_config());
    let effects = feed(&mut session, &pull("team", 0), 0);
    let [RelayEffect::Pull { request_id, .. }] = effects[..] else {
        panic!()
    };
    let record = RecordId::from_bytes([3; 16]);
    let reply = PullReply::Repair {
        messages: vec![(record, vec![1, 2])],
    };
    let effects = session.handle_pulled(request_id, reply).unwrap();
    let repair = Frame::Repair {
        space: space("team"),
        record,
        message: vec![1, 2],
    };
    let resync = Frame::Resync {
        space: space("team"),
        epoch: relay_config().epoch,
    };
    assert_eq!(
        effects,
        [RelayEffect::Send(resync), RelayEffect::Send(repair.clone())]
    );

    let effects = feed(&mut session, &repair, 0);
    assert_eq!(
        effects,
        [RelayEffect::Repair {
            space: space("team"),
            record,
            message: vec![1, 2],
            may_write: true
        }]
    );
    let effects = session.send_repair(space("team"), record, vec![3]);
    assert!(matches!(
        effects[..],
        [RelayEffect::Send(Frame::Repair { .. })]
    ));
}

#[test]
fn live_changes_go_only_to_subscribed_spaces() {
    let mut session = authenticated(relay_config());
    let next_cursor = Cursor { epoch: 1, seq: 1 };
    let check = |session: &mut RelaySession, name: &str, forwarded: bool| {
        let effects = session.handle_live(&space(name), &[change(1)], next_cursor);
        assert_eq!(effects.len(), usize::from(forwarded), "{name}");
    };
    check(&mut session, "team", true);
    // Readable, but not named in the hello.
    check(&mut session, "news", false);
    check(&mut session, "secret", false);
    let mut waiting = relay_session(relay_config());
    check(&mut waiting, "team", false);
}

// --- Time ---------------------------------------------------------------------------------

#[test]
fn a_hello_must_come_in_time() {
    let mut session = relay_session(relay_config());
    assert!(session
        .handle_tick(HANDSHAKE_TIMEOUT_MS_DEFAULT - 1)
        .is_empty());
    assert_eq!(
        session.handle_tick(HANDSHAKE_TIMEOUT_MS_DEFAULT),
        [RelayEffect::Close(CloseReason::HandshakeTimeout)]
    );
}

#[test]
fn a_quiet_device_is_pinged_then_closed() {
    let mut session = authenticated(relay_config());
    assert!(session
        .handle_tick(KEEPALIVE_INTERVAL_MS_DEFAULT - 1)
        .is_empty());
    let ping = [RelayEffect::Send(Frame::Ping { nonce: 0 })];
    assert_eq!(session.handle_tick(KEEPALIVE_INTERVAL_MS_DEFAULT), ping);
    // One ping until it is answered.
    assert!(session
        .handle_tick(KEEPALIVE_INTERVAL_MS_DEFAULT + 1)
        .is_empty());
    assert!(session.handle_tick(IDLE_TIMEOUT_MS_DEFAULT - 1).is_empty());
    assert_eq!(
        session.handle_tick(IDLE_TIMEOUT_MS_DEFAULT),
        [RelayEffect::Close(CloseReason::IdleTimeout)]
    );
}

#[test]
fn an_answered_ping_keeps_the_connection() {
    let mut session = authenticated(relay_config());
    let t = KEEPALIVE_INTERVAL_MS_DEFAULT;
    session.handle_tick(t);
    feed(&mut session, &Frame::Pong { nonce: 0 }, t + 1);
    assert!(session
        .handle_tick(t + KEEPALIVE_INTERVAL_MS_DEFAULT)
        .is_empty());
    assert_eq!(
        session.handle_tick(t + 1 + KEEPALIVE_INTERVAL_MS_DEFAULT),
        [RelayEffect::Send(Frame::Ping { nonce: 1 })]
    );
    // Idle is counted from the pong, not from the start.
    assert!(session.handle_tick(IDLE_TIMEOUT_MS_DEFAULT).is_empty());
    assert!(!session.is_closed());
}

#[test]
fn pings_from_the_device_do_not_keep_a_connection_that_never_answers() {
    let mut session = authenticated(relay_config());
    // A ping every second is answered, but the relay's own ping never is.
    for t in (1_000..IDLE_TIMEOUT_MS_DEFAULT).step_by(1_000) {
        let effects = feed(&mut session, &Frame::Ping { nonce: t }, t);
        assert_eq!(effects, [RelayEffect::Send(Frame::Pong { nonce: t })]);
        session.handle_tick(t);
    }
    assert_eq!(
        session.handle_tick(IDLE_TIMEOUT_MS_DEFAULT),
        [RelayEffect::Close(CloseReason::IdleTimeout)]
    );
}

#[test]
fn pings_past_the_budget_of_a_second_end_the_session() {
    let mut config = relay_config();
    config.pings_per_sec_max = 3;
    let mut session = authenticated(config);
    // Two frames and one WebSocket ping: the budget, just at it.
    feed(&mut session, &Frame::Ping { nonce: 1 }, 5_000);
    assert!(session.websocket_ping(5_100).is_empty());
    feed(&mut session, &Frame::Ping { nonce: 2 }, 5_999);
    // A new second has a new budget.
    feed(&mut session, &Frame::Ping { nonce: 3 }, 6_000);
    feed(&mut session, &Frame::Ping { nonce: 4 }, 6_001);
    assert!(session.websocket_ping(6_002).is_empty());
    assert!(!session.is_closed());
    // One past it.
    let effects = session.websocket_ping(6_003);
    let code = ErrorCode::RateLimited {
        retry_after_secs: crate::limits::PING_FLOOD_RETRY_AFTER_SECS,
    };
    check_fails(&session, &effects, code);
}

#[test]
fn requests_are_progress_and_keep_the_connection() {
    let mut session = authenticated(relay_config());
    let t = IDLE_TIMEOUT_MS_DEFAULT - 1;
    let effects = feed(&mut session, &pull("team", 0), t);
    assert!(matches!(effects[..], [RelayEffect::Pull { .. }]));
    assert!(session.handle_tick(IDLE_TIMEOUT_MS_DEFAULT).is_empty());
    assert!(!session.is_closed());
}

fn repair_frame(n: u8) -> Frame {
    Frame::Repair {
        space: space("team"),
        record: RecordId::from_bytes([n; 16]),
        message: vec![n],
    }
}

#[test]
fn repairs_spend_the_push_rate_and_pause_reading_instead_of_refusing() {
    let mut config = relay_config();
    config.push_rate_per_sec = 2;
    config.push_burst = 3;
    let mut session = authenticated(config);
    // The burst, just below and just above: every repair is handled, and the one that
    // finds the bucket empty pauses reading until a tick finds it refilled.
    for n in 0..3 {
        let effects = feed(&mut session, &repair_frame(n), 0);
        assert!(matches!(effects[..], [RelayEffect::Repair { .. }]), "{n}");
        assert!(session.wants_read(), "repair {n} is within the burst");
    }
    let effects = feed(&mut session, &repair_frame(3), 0);
    assert!(matches!(effects[..], [RelayEffect::Repair { .. }]));
    assert!(!session.wants_read(), "the fourth repair spent the bucket");
    session.handle_tick(499);
    assert!(!session.wants_read(), "one repair takes 500 ms to refill");
    session.handle_tick(500);
    assert!(session.wants_read());
    // The refilled push is taken by a repair, and a push after it finds the bucket spent.
    let effects = feed(&mut session, &repair_frame(4), 500);
    assert!(matches!(effects[..], [RelayEffect::Repair { .. }]));
    assert!(session.wants_read());
    let effects = feed(
        &mut session,
        &Frame::Push {
            entries: vec![entry("team", 1)],
        },
        500,
    );
    assert!(
        matches!(&effects[..], [RelayEffect::Send(Frame::Ack { results })]
            if matches!(results[0].outcome, Outcome::Rejected { permanent: false, .. })),
        "{effects:?}"
    );
}

#[test]
fn an_expired_token_ends_the_session() {
    let mut session = relay_session(relay_config());
    feed(
        &mut session,
        &hello(PROTOCOL_VERSION, "expiring", &["team"]),
        0,
    );
    assert!(session.handle_tick(4_999).is_empty());
    let effects = session.handle_tick(5_000);
    check_fails(&session, &effects, ErrorCode::Unauthorized);

    // Or on the first request after it expired.
    let mut session = relay_session(relay_config());
    feed(
        &mut session,
        &hello(PROTOCOL_VERSION, "expiring", &["team"]),
        0,
    );
    let effects = feed(
        &mut session,
        &Frame::Push {
            entries: vec![entry("team", 1)],
        },
        5_000,
    );
    check_fails(&session, &effects, ErrorCode::Unauthorized);
}

#[test]
fn shutting_down_turns_the_device_away() {
    let mut session = authenticated(relay_config());
    let effects = session.shut_down();
    check_fails(
        &session,
        &effects,
        ErrorCode::ServerBusy {
            retry_after_secs: 5,
        },
    );
    assert!(session.shut_down().is_empty());
}
