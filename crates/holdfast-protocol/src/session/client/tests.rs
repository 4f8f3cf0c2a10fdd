use super::*;
use crate::codec::encode;
use crate::frame::Outcome;
use crate::session::tests::{entry, space};

fn config() -> ClientConfig {
    ClientConfig::new(DeviceId::from_bytes([1; 16]), Token::new("writer"))
}

fn cursor(epoch: u64, seq: u64) -> Cursor {
    Cursor { epoch, seq }
}

fn session(spaces: &[(&str, Option<Cursor>)]) -> ClientSession {
    let spaces = spaces
        .iter()
        .map(|&(name, cursor)| SpaceCursor {
            space: space(name),
            cursor,
        })
        .collect();
    ClientSession::new(config(), spaces, 0)
}

/// Sends `frame` through `encode`, as a driver would.
fn feed(session: &mut ClientSession, frame: &Frame) -> Vec<ClientEffect> {
    session.handle_bytes(&encode(frame).unwrap(), 0)
}

fn welcome(epoch: u64, limits: Limits) -> Frame {
    Frame::Welcome {
        relay_id: Uuid::from_bytes([7; 16]),
        epoch,
        limits,
    }
}

/// A started session on `team` (never pulled), past a `Welcome` with `limits`, its
/// bootstrap and first pull answered with nothing.
fn ready(limits: Limits) -> ClientSession {
    let mut session = session(&[("team", None)]);
    session.start(0);
    feed(&mut session, &welcome(1, limits));
    feed(&mut session, &snapshot(&[], cursor(1, 0), None));
    session.handle_applied(&space("team"));
    feed(&mut session, &changes(&[], cursor(1, 0), false));
    session
}

fn snapshot(records: &[u8], base: Cursor, next: Option<u8>) -> Frame {
    Frame::Snapshot {
        space: space("team"),
        records: records.iter().map(|&n| record_state(n)).collect(),
        base,
        next: next.map(|n| RecordId::from_bytes([n; 16])),
    }
}

fn record_state(n: u8) -> RecordState {
    RecordState {
        record: RecordId::from_bytes([n; 16]),
        doc: vec![n],
        changes: vec![],
    }
}

fn bootstrap(from: Option<(Cursor, u8)>) -> ClientEffect {
    ClientEffect::Send(Frame::Bootstrap {
        space: space("team"),
        from: from.map(|(base, n)| BootstrapFrom {
            base,
            after: RecordId::from_bytes([n; 16]),
        }),
        max_bytes: PULL_BYTES_MAX_DEFAULT,
    })
}

fn changes(seqs: &[u64], next_cursor: Cursor, more: bool) -> Frame {
    Frame::Changes {
        space: space("team"),
        entries: seqs.iter().map(|&seq| change(seq)).collect(),
        next_cursor,
        more,
    }
}

fn change(seq: u64) -> ChangeEntry {
    ChangeEntry {
        seq,
        record: RecordId::from_bytes([1; 16]),
        event_id: EventId::from_bytes([seq as u8; 16]),
        changes: vec![vec![seq as u8]],
    }
}

fn pushes(effects: &[ClientEffect]) -> Vec<Vec<u8>> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            ClientEffect::Send(Frame::Push { entries }) => {
                Some(entries.iter().map(|e| e.event_id.as_bytes()[0]).collect())
            }
            _ => None,
        })
        .collect()
}

fn ack(ns: &[u8]) -> Frame {
    Frame::Ack {
        results: ns
            .iter()
            .map(|&n| AckResult {
                event_id: EventId::from_bytes([n; 16]),
                outcome: Outcome::Stored { seq: u64::from(n) },
            })
            .collect(),
    }
}

// --- Handshake ----------------------------------------------------------------------------

#[test]
fn start_says_hello_with_the_stored_cursors() {
    let mut session = session(&[("team", Some(cursor(1, 4))), ("news", None)]);
    let effects = session.start(0);
    assert_eq!(
        effects,
        [ClientEffect::Send(Frame::Hello {
            protocol: PROTOCOL_VERSION,
            device: DeviceId::from_bytes([1; 16]),
            token: Token::new("writer"),
            spaces: vec![
                SpaceCursor {
                    space: space("news"),
                    cursor: None
                },
                SpaceCursor {
                    space: space("team"),
                    cursor: Some(cursor(1, 4))
                },
            ],
        })]
    );
    assert!(session.start(0).is_empty(), "one hello per session");
}

#[test]
fn welcome_pulls_each_space_and_repairs_those_of_another_epoch() {
    let mut session = session(&[
        ("a", None),
        ("b", Some(cursor(2, 7))),
        ("c", Some(cursor(1, 9))),
    ]);
    session.start(0);
    let effects = feed(&mut session, &welcome(2, Limits::PROTOCOL));
    let pull = |name: &str, cursor: Cursor| {
        ClientEffect::Send(Frame::Pull {
            space: space(name),
            cursor,
            max_bytes: PULL_BYTES_MAX_DEFAULT,
        })
    };
    assert_eq!(
        effects,
        [
            ClientEffect::Welcomed {
                relay_id: Uuid::from_bytes([7; 16]),
                epoch: 2
            },
            // Never pulled: its current state first.
            ClientEffect::Send(Frame::Bootstrap {
                space: space("a"),
                from: None,
                max_bytes: PULL_BYTES_MAX_DEFAULT
            }),
            pull("b", cursor(2, 7)),
            // From epoch 1: repaired, never reset to the start of epoch 2.
            ClientEffect::Repair { space: space("c") },
        ]
    );
    // Changes of a space under repair are not applied.
    let live = Frame::Changes {
        space: space("c"),
        entries: vec![change(1)],
        next_cursor: cursor(2, 1),
        more: false,
    };
    assert!(feed(&mut session, &live).is_empty());
    assert_eq!(session.cursor(&space("c")), Some(cursor(1, 9)));

    // Sync messages go both ways, then the space is bootstrapped again.
    let record = RecordId::from_bytes([3; 16]);
    let repair = Frame::Repair {
        space: space("c"),
        record,
        message: vec![1],
    };
    assert_eq!(
        feed(&mut session, &repair),
        [ClientEffect::RepairMessage {
            space: space("c"),
            record,
            message: vec![1]
        }]
    );
    assert_eq!(
        session.send_repair(space("c"), record, vec![2]),
        [ClientEffect::Send(Frame::Repair {
            space: space("c"),
            record,
            message: vec![2]
        })]
    );
    assert_eq!(
        session.handle_repaired(&space("c")),
        [ClientEffect::Send(Frame::Bootstrap {
            space: space("c"),
            from: None,
            max_bytes: PULL_BYTES_MAX_DEFAULT
        })]
    );
    assert_eq!(session.cursor(&space("c")), None);
}

/// A space without a cursor whose records the device holds (its bootstrap was cut short
/// after some of its changes were acked) is repaired before it is bootstrapped: the relay
/// may have been restored from a backup that lacks those changes, and a bootstrap would
/// never give them back (found by the simulation, `holdfast-sim` seed 3360).
#[test]
fn a_space_held_without_a_cursor_is_repaired_before_its_bootstrap() {
    let mut session = session(&[("a", None), ("b", None), ("c", Some(cursor(2, 1)))]);
    session.repair_before_bootstrap(&space("a"));
    // Ignored for a space with a cursor: its epoch decides.
    session.repair_before_bootstrap(&space("c"));
    session.start(0);
    let effects = feed(&mut session, &welcome(2, Limits::PROTOCOL));
    assert_eq!(
        effects[1..],
        [
            ClientEffect::Repair { space: space("a") },
            ClientEffect::Send(Frame::Bootstrap {
                space: space("b"),
                from: None,
                max_bytes: PULL_BYTES_MAX_DEFAULT
            }),
            ClientEffect::Send(Frame::Pull {
                space: space("c"),
                cursor: cursor(2, 1),
                max_bytes: PULL_BYTES_MAX_DEFAULT
            }),
        ]
    );
    assert!(!session.is_caught_up());
    assert_eq!(
        session.handle_repaired(&space("a")),
        [ClientEffect::Send(Frame::Bootstrap {
            space: space("a"),
            from: None,
            max_bytes: PULL_BYTES_MAX_DEFAULT
        })]
    );
}

#[test]
fn a_bootstrap_pages_through_records_then_pulls_from_its_first_base() {
    let mut session = session(&[("team", None)]);
    session.start(0);
    let effects = feed(&mut session, &welcome(1, Limits::PROTOCOL));
    assert_eq!(effects[1], bootstrap(None));

    // Live changes before the space has a cursor are left to the pull from the base.
    assert!(feed(&mut session, &changes(&[1], cursor(1, 1), false)).is_empty());

    let effects = feed(&mut session, &snapshot(&[1, 2], cursor(1, 5), Some(2)));
    assert_eq!(
        effects,
        [
            ClientEffect::ApplySnapshot {
                space: space("team"),
                records: vec![record_state(1), record_state(2)],
                cursor: None
            },
            bootstrap(Some((cursor(1, 5), 2))),
        ]
    );
    assert_eq!(session.cursor(&space("team")), None, "not complete yet");
    assert!(session.handle_applied(&space("team")).is_empty());

    // A later page may cover more of the log; the first base is what every page covers.
    let effects = feed(&mut session, &snapshot(&[3], cursor(1, 8), None));
    assert_eq!(
        effects,
        [ClientEffect::ApplySnapshot {
            space: space("team"),
            records: vec![record_state(3)],
            cursor: Some(cursor(1, 5))
        }]
    );
    assert_eq!(session.cursor(&space("team")), Some(cursor(1, 5)));
    // A repeated last page changes nothing.
    assert!(feed(&mut session, &snapshot(&[3], cursor(1, 8), None)).is_empty());
    assert_eq!(
        session.handle_applied(&space("team")),
        [ClientEffect::Send(Frame::Pull {
            space: space("team"),
            cursor: cursor(1, 5),
            max_bytes: PULL_BYTES_MAX_DEFAULT
        })]
    );
}

#[test]
fn a_snapshot_of_another_epoch_is_malformed() {
    let mut session = session(&[("team", None)]);
    session.start(0);
    feed(&mut session, &welcome(1, Limits::PROTOCOL));
    let effects = feed(&mut session, &snapshot(&[1], cursor(2, 5), None));
    assert!(matches!(
        effects.last(),
        Some(ClientEffect::Closed(CloseReason::Sent(
            ErrorCode::Malformed
        )))
    ));
}

#[test]
fn resync_stops_pulling_and_asks_for_repair() {
    let mut session = ready(Limits::PROTOCOL);
    feed(&mut session, &changes(&[1, 2], cursor(1, 2), true));
    // The pull from 2 is answered: the relay cannot vouch for cursor 2.
    let effects = session.handle_applied(&space("team"));
    assert!(matches!(
        &effects[..],
        [ClientEffect::Send(Frame::Pull { .. })]
    ));
    let resync = Frame::Resync {
        space: space("team"),
        epoch: 1,
    };
    assert_eq!(
        feed(&mut session, &resync),
        [ClientEffect::Repair {
            space: space("team")
        }]
    );
    assert!(feed(&mut session, &resync).is_empty(), "already repairing");
    assert!(feed(&mut session, &changes(&[3], cursor(1, 3), false)).is_empty());
    assert_eq!(session.handle_repaired(&space("team")), [bootstrap(None)]);

    // A resync naming another epoch is not the relay's: malformed.
    let mut session = ready(Limits::PROTOCOL);
    let wrong = Frame::Resync {
        space: space("team"),
        epoch: 9,
    };
    assert!(matches!(
        feed(&mut session, &wrong).last(),
        Some(ClientEffect::Closed(CloseReason::Sent(
            ErrorCode::Malformed
        )))
    ));
}

#[test]
fn frames_out_of_order_are_malformed() {
    let check = |session: &mut ClientSession, frame: Frame| {
        let effects = feed(session, &frame);
        assert!(
            matches!(
                &effects[..],
                [
                    ClientEffect::Send(Frame::Error {
                        code: ErrorCode::Malformed,
                        ..
                    }),
                    ClientEffect::Closed(CloseReason::Sent(ErrorCode::Malformed))
                ]
            ),
            "{frame:?}: {effects:?}"
        );
        assert!(session.is_closed());
    };
    let mut waiting = session(&[]);
    waiting.start(0);
    check(&mut waiting, ack(&[1]));
    check(&mut ready(Limits::PROTOCOL), welcome(1, Limits::PROTOCOL));
    check(
        &mut ready(Limits::PROTOCOL),
        Frame::Pull {
            space: space("team"),
            cursor: cursor(1, 0),
            max_bytes: 1,
        },
    );
    check(&mut ready(Limits::PROTOCOL), ack(&[1]));
    let other = Frame::Changes {
        space: space("other"),
        entries: vec![],
        next_cursor: cursor(1, 0),
        more: false,
    };
    check(&mut ready(Limits::PROTOCOL), other);
}

#[test]
fn relay_errors_are_fatal_in_plain_words() {
    let check = |code: ErrorCode, reason: &str, permanent: bool, retry_after_secs: Option<u32>| {
        let mut session = ready(Limits::PROTOCOL);
        let effects = feed(
            &mut session,
            &Frame::Error {
                code: code.clone(),
                message: "detail".into(),
            },
        );
        assert_eq!(
            effects,
            [
                ClientEffect::Fatal {
                    code: code.clone(),
                    reason: reason.into(),
                    permanent,
                    retry_after_secs
                },
                ClientEffect::Closed(CloseReason::Received(code)),
            ]
        );
        assert!(session.is_closed());
    };
    check(
        ErrorCode::Unauthorized,
        "Your sign-in has expired or is not valid for this sync server",
        true,
        None,
    );
    check(
        ErrorCode::Forbidden {
            space: space("team"),
        },
        "You no longer have access to team",
        true,
        None,
    );
    check(
        ErrorCode::RateLimited {
            retry_after_secs: 3,
        },
        "Sync server is limiting requests, retrying in 3 s",
        false,
        Some(3),
    );
    check(
        ErrorCode::ServerBusy {
            retry_after_secs: 30,
        },
        "Sync server unavailable, retrying in 30 s",
        false,
        Some(30),
    );
    check(
        ErrorCode::Internal,
        "The sync server ran into a problem, retrying later",
        false,
        None,
    );
}

#[test]
fn garbage_from_the_relay_is_malformed() {
    let mut session = ready(Limits::PROTOCOL);
    let effects = session.handle_bytes(&[1, 0, 250], 0);
    assert!(matches!(
        effects.last(),
        Some(ClientEffect::Closed(CloseReason::Sent(
            ErrorCode::Malformed
        )))
    ));
    assert!(session.handle_bytes(&[1, 0, 250], 0).is_empty());
}

// --- Pushes -------------------------------------------------------------------------------

#[test]
fn pushes_wait_for_the_welcome() {
    let mut session = session(&[]);
    session.start(0);
    assert!(session.push(vec![entry("team", 1)]).is_empty());
    assert_eq!(session.queued_len(), 1);
    let effects = feed(&mut session, &welcome(1, Limits::PROTOCOL));
    assert_eq!(pushes(&effects), [[1]]);
}

#[test]
fn pushes_are_pipelined_within_the_welcome_limits() {
    let limits = Limits {
        batch_entries_max: 3,
        pushes_in_flight_max: 2,
        ..Limits::PROTOCOL
    };
    let mut session = ready(limits);
    let effects = session.push((1..=10).map(|n| entry("team", n)).collect());
    assert_eq!(pushes(&effects), [vec![1, 2, 3], vec![4, 5, 6]]);
    assert_eq!((session.pushes_in_flight(), session.queued_len()), (2, 4));
    assert!(
        pushes(&session.push(vec![entry("team", 11)])).is_empty(),
        "in flight is full"
    );

    // Each ack frees a slot for the next batch; acks may come in any order.
    let effects = feed(&mut session, &ack(&[4, 5, 6]));
    assert!(matches!(&effects[0], ClientEffect::Acked(results) if results.len() == 3));
    assert_eq!(pushes(&effects), [vec![7, 8, 9]]);
    assert_eq!(
        pushes(&feed(&mut session, &ack(&[1, 2, 3]))),
        [vec![10, 11]]
    );
    assert!(pushes(&feed(&mut session, &ack(&[7, 8, 9]))).is_empty());
    assert!(pushes(&feed(&mut session, &ack(&[10, 11]))).is_empty());
    assert_eq!((session.pushes_in_flight(), session.queued_len()), (0, 0));
}

#[test]
fn batches_are_cut_by_bytes_too() {
    let mut config = config();
    config.push_bytes_max = 8;
    let mut session = ClientSession::new(config, vec![], 0);
    session.start(0);
    feed(&mut session, &welcome(1, Limits::PROTOCOL));
    // Each entry is 4 bytes of changes; a 9-byte entry goes alone.
    let mut big = entry("team", 3);
    big.changes = vec![vec![3; 9]];
    let effects = session.push(vec![
        entry("team", 1),
        entry("team", 2),
        big,
        entry("team", 4),
    ]);
    assert_eq!(pushes(&effects), [vec![1, 2], vec![3], vec![4]]);
}

// --- Pulls --------------------------------------------------------------------------------

#[test]
fn changes_are_applied_and_pulled_on_while_there_are_more() {
    let mut session = ready(Limits::PROTOCOL);
    let effects = feed(&mut session, &changes(&[1, 2], cursor(1, 2), true));
    assert_eq!(
        effects,
        [ClientEffect::Apply {
            space: space("team"),
            entries: vec![change(1), change(2)],
            next_cursor: cursor(1, 2)
        }]
    );
    // The next pull waits until the batch is applied.
    let pull = Frame::Pull {
        space: space("team"),
        cursor: cursor(1, 2),
        max_bytes: PULL_BYTES_MAX_DEFAULT,
    };
    assert_eq!(
        session.handle_applied(&space("team")),
        [ClientEffect::Send(pull)]
    );
    let effects = feed(&mut session, &changes(&[3], cursor(1, 3), false));
    assert!(matches!(&effects[..], [ClientEffect::Apply { .. }]));
    assert!(
        session.handle_applied(&space("team")).is_empty(),
        "no more to pull"
    );
    assert_eq!(session.cursor(&space("team")), Some(cursor(1, 3)));
}

#[test]
fn live_changes_are_applied_once_and_gaps_pulled() {
    let mut session = ready(Limits::PROTOCOL);
    let check =
        |session: &mut ClientSession, frame: Frame, applied: &[u64], pulls_from: Option<u64>| {
            let mut effects = feed(session, &frame);
            let mut seqs = Vec::new();
            let mut pulled = None;
            let mut i = 0;
            while i < effects.len() {
                match &effects[i] {
                    ClientEffect::Apply { entries, .. } => {
                        seqs.extend(entries.iter().map(|e| e.seq));
                        let more = session.handle_applied(&space("team"));
                        effects.extend(more);
                    }
                    ClientEffect::Send(Frame::Pull { cursor, .. }) => pulled = Some(cursor.seq),
                    other => panic!("unexpected {other:?}"),
                }
                i += 1;
            }
            assert_eq!((&seqs[..], pulled), (applied, pulls_from), "{frame:?}");
        };
    check(&mut session, changes(&[1], cursor(1, 1), false), &[1], None);
    // A repeat, and an overlap: only what is new is applied.
    check(&mut session, changes(&[1], cursor(1, 1), false), &[], None);
    check(
        &mut session,
        changes(&[1, 2], cursor(1, 2), false),
        &[2],
        None,
    );
    // A gap: entry 3 went missing, so pull from 2 rather than apply 4.
    check(
        &mut session,
        changes(&[4], cursor(1, 4), false),
        &[],
        Some(2),
    );
    check(
        &mut session,
        changes(&[3, 4], cursor(1, 4), false),
        &[3, 4],
        None,
    );
    // Changes of another epoch are ignored.
    check(&mut session, changes(&[5], cursor(2, 5), false), &[], None);
    // A gap inside one frame: the run before it is applied, the rest pulled.
    check(
        &mut session,
        changes(&[5, 6, 8], cursor(1, 8), false),
        &[5, 6],
        Some(6),
    );
    assert_eq!(session.cursor(&space("team")), Some(cursor(1, 6)));
}

// --- Time ---------------------------------------------------------------------------------

#[test]
fn the_welcome_must_come_in_time() {
    let mut session = session(&[]);
    assert!(session.handle_tick(u64::MAX).is_empty(), "not started");
    session.start(100);
    assert!(session
        .handle_tick(100 + HANDSHAKE_TIMEOUT_MS_DEFAULT - 1)
        .is_empty());
    assert_eq!(
        session.handle_tick(100 + HANDSHAKE_TIMEOUT_MS_DEFAULT),
        [ClientEffect::Closed(CloseReason::HandshakeTimeout)]
    );
}

#[test]
fn a_quiet_relay_is_pinged_then_given_up() {
    let mut session = ready(Limits::PROTOCOL);
    assert_eq!(
        session.handle_tick(KEEPALIVE_INTERVAL_MS_DEFAULT),
        [ClientEffect::Send(Frame::Ping { nonce: 0 })]
    );
    assert_eq!(
        feed(&mut session, &Frame::Ping { nonce: 4 }),
        [ClientEffect::Send(Frame::Pong { nonce: 4 })]
    );
    // The relay's ping was heard at 0 (the feed's clock), so idle counts from there.
    assert_eq!(
        session.handle_tick(IDLE_TIMEOUT_MS_DEFAULT),
        [ClientEffect::Closed(CloseReason::IdleTimeout)]
    );
}

// --- Progress -----------------------------------------------------------------------------

#[test]
fn caught_up_once_the_bootstrap_and_the_pulls_are_applied() {
    let mut session = session(&[("team", None)]);
    assert!(!session.is_caught_up(), "not before the welcome");
    assert_eq!(session.limits(), None);
    session.start(0);
    feed(&mut session, &welcome(1, Limits::default()));
    assert_eq!(session.limits(), Some(Limits::default()));
    assert!(!session.is_caught_up(), "bootstrap asked for");
    feed(&mut session, &snapshot(&[1], cursor(1, 2), None));
    assert!(!session.is_caught_up(), "page not applied yet");
    session.handle_applied(&space("team"));
    assert!(
        !session.is_caught_up(),
        "the pull from the base is in flight"
    );
    feed(&mut session, &changes(&[3], cursor(1, 3), false));
    assert!(!session.is_caught_up(), "the answer is being applied");
    session.handle_applied(&space("team"));
    assert!(session.is_caught_up());
    let caught_up = |session: &ClientSession| -> Vec<(SpaceId, Cursor)> {
        session.caught_up().map(|(s, c)| (s.clone(), c)).collect()
    };
    assert_eq!(caught_up(&session), [(space("team"), cursor(1, 3))]);
    // A live entry leaves the space behind until it is applied.
    feed(&mut session, &changes(&[4], cursor(1, 4), false));
    assert_eq!(caught_up(&session), []);
    session.handle_applied(&space("team"));
    assert_eq!(caught_up(&session), [(space("team"), cursor(1, 4))]);
    // A pull answer saying the log goes on is not the head.
    feed(&mut session, &changes(&[5], cursor(1, 5), true));
    session.handle_applied(&space("team"));
    assert_eq!(caught_up(&session), [], "pulling the rest");
    feed(&mut session, &changes(&[], cursor(1, 5), false));
    assert_eq!(caught_up(&session), [(space("team"), cursor(1, 5))]);
    feed(
        &mut session,
        &Frame::Resync {
            space: space("team"),
            epoch: 1,
        },
    );
    assert!(!session.is_caught_up(), "under repair");
}
