//! Seeded random conversations: whatever a device sends and whatever order storage answers
//! in, a relay session never panics, never sends documents before authentication, and
//! holds no more than its config allows.

use super::*;

#[test]
fn random_conversations_keep_the_rules() {
    let seed = seed();
    let conversations = std::env::var("HOLDFAST_CONVERSATIONS")
        .ok()
        .map_or(300, |value| {
            value.parse().expect("HOLDFAST_CONVERSATIONS is a number")
        });
    let mut rng = Rng::new(seed);
    let mut welcomed = 0;
    for conversation in 0..conversations {
        let context = format!("HOLDFAST_SEED={seed}, conversation {conversation}");
        welcomed += usize::from(converse(&mut rng, &context));
    }
    // The rules after authentication were exercised too, not only the refusals before it.
    assert!(
        welcomed * 3 >= conversations,
        "HOLDFAST_SEED={seed}: only {welcomed} of {conversations} conversations were welcomed"
    );
}

/// A model of what the session may do, independent of its code: the spaces the `writer`
/// token lets it write, and whether it has welcomed the device yet.
struct Model {
    welcomed: bool,
}

/// Runs one conversation; returns whether the device was welcomed.
fn converse(rng: &mut Rng, context: &str) -> bool {
    let mut config = relay_config();
    config.limits.pushes_in_flight_max = 1 + rng.below(3) as u32;
    config.pulls_in_flight_max = 1 + rng.below(3) as u32;
    config.push_burst = 1 + rng.below(4) as u32;
    let in_flight_max = (config.limits.pushes_in_flight_max + config.pulls_in_flight_max) as usize;
    let mut session = relay_session(config);
    let mut model = Model { welcomed: false };
    let mut stores: Vec<(RequestId, Vec<PushEntry>)> = Vec::new();
    let mut pulls: Vec<RequestId> = Vec::new();
    let mut now_ms = 0;
    // Half the conversations start well, so the rules after authentication get exercised.
    if rng.below(2) == 0 {
        let effects = session.handle_bytes(
            &encode(&hello(PROTOCOL_VERSION, "writer", &["team", "news"])).unwrap(),
            0,
        );
        model.welcomed = matches!(effects[0], RelayEffect::Send(Frame::Welcome { .. }));
        assert!(model.welcomed, "{context}: {effects:?}");
    }

    for step in 0..40 {
        now_ms += rng.below(3_000) as u64;
        let effects = match rng.below(10) {
            // A driver that honours `wants_read`, mostly.
            0..=4 if session.wants_read() || rng.below(4) == 0 => {
                let frame = random_frame(rng);
                session.handle_bytes(&encode(&frame).unwrap(), now_ms)
            }
            5 => {
                let len = rng.below(64);
                let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                session.handle_bytes(&bytes, now_ms)
            }
            6 if !stores.is_empty() => {
                let (request_id, entries) = stores.swap_remove(rng.below(stores.len()));
                session
                    .handle_store_result(request_id, stored(&entries, 1))
                    .unwrap()
            }
            7 if !pulls.is_empty() => {
                let request_id = pulls.swap_remove(rng.below(pulls.len()));
                let reply = PullReply::Changes {
                    entries: vec![change(1)],
                    next_cursor: Cursor { epoch: 1, seq: 1 },
                    more: false,
                };
                session.handle_pulled(request_id, reply).unwrap()
            }
            8 => session.handle_live(
                &space(random_space(rng)),
                &[change(1)],
                Cursor { epoch: 1, seq: 1 },
            ),
            _ => session.handle_tick(now_ms),
        };
        let context = format!("{context}, step {step}");
        for effect in effects {
            match effect {
                RelayEffect::Send(Frame::Welcome { .. }) => model.welcomed = true,
                RelayEffect::Send(frame) => assert!(
                    model.welcomed || !carries_documents(&frame),
                    "{context}: {} before the welcome",
                    frame.name()
                ),
                RelayEffect::Store {
                    request_id,
                    entries,
                } => {
                    assert!(model.welcomed, "{context}: store before the welcome");
                    assert!(
                        entries.iter().all(|e| e.space.as_str() == "team"),
                        "{context}: {entries:?}"
                    );
                    stores.push((request_id, entries));
                }
                RelayEffect::Pull {
                    request_id, space, ..
                } => {
                    assert!(model.welcomed, "{context}: pull before the welcome");
                    assert!(
                        ["team", "news"].contains(&space.as_str()),
                        "{context}: {space}"
                    );
                    pulls.push(request_id);
                }
                RelayEffect::Close(_) => {}
                effect => assert!(model.welcomed, "{context}: {effect:?} before the welcome"),
            }
        }
        assert!(
            session.requests_in_flight() <= in_flight_max,
            "{context}: unbounded"
        );
        if session.is_closed() {
            assert_eq!(session.requests_in_flight(), 0, "{context}");
            return model.welcomed;
        }
    }
    model.welcomed
}

fn random_space(rng: &mut Rng) -> &'static str {
    ["team", "news", "secret"][rng.below(3)]
}

fn random_frame(rng: &mut Rng) -> Frame {
    match rng.below(12) {
        0..=2 => {
            let protocol = [PROTOCOL_VERSION, PROTOCOL_VERSION + 1, 0][rng.below(3)];
            let token = ["writer", "writer", "reader", "forged"][rng.below(4)];
            let spaces: Vec<&str> = (0..rng.below(3)).map(|_| random_space(rng)).collect();
            hello(protocol, token, &spaces)
        }
        3..=5 => Frame::Push {
            entries: (0..rng.below(4))
                .map(|n| entry(random_space(rng), n as u8))
                .collect(),
        },
        6 | 7 => pull(random_space(rng), rng.below(5) as u64),
        8 => Frame::Repair {
            space: space(random_space(rng)),
            record: RecordId::from_bytes([2; 16]),
            message: vec![1],
        },
        9 => Frame::Ping {
            nonce: rng.next_u64(),
        },
        10 => Frame::Changes {
            space: space("team"),
            entries: vec![change(1)],
            next_cursor: Cursor { epoch: 1, seq: 1 },
            more: false,
        },
        _ => Frame::Error {
            code: ErrorCode::Internal,
            message: String::new(),
        },
    }
}
