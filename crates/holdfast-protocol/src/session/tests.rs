//! A scripted conversation of two devices and a relay, wired through `encode` and
//! `decode`, and the fixtures the session tests share.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use uuid::Uuid;

use super::*;
use crate::codec::encode;
use crate::frame::{AckResult, ChangeEntry, Cursor, Outcome, PushEntry, Token};
use crate::ids::{DeviceId, EventId, RecordId, SpaceId};

mod simulation;

// --- Fixtures -----------------------------------------------------------------------------

pub(crate) fn space(name: &str) -> SpaceId {
    SpaceId::new(name).unwrap()
}

/// A push entry of `space` whose one change is `n` as bytes.
pub(crate) fn entry(space_name: &str, n: u8) -> PushEntry {
    PushEntry {
        event_id: EventId::from_bytes([n; 16]),
        space: space(space_name),
        record: RecordId::from_bytes([n; 16]),
        changes: vec![vec![n; 4]],
    }
}

/// Accepts `writer` (writes `team`, reads `news`), `reader` (reads `team`), `owner`
/// (writes both) and `expiring` (writes `team` until 5 s); refuses anything else.
pub(crate) struct FakeAuth;

impl Authenticator for FakeAuth {
    fn authenticate(&self, token: &Token, _now_ms: u64) -> Result<Grants, AuthError> {
        let (spaces, expires_at_ms) = match token.as_str() {
            "writer" => (vec![("team", Role::Write), ("news", Role::Read)], None),
            "reader" => (vec![("team", Role::Read)], None),
            "owner" => (vec![("team", Role::Write), ("news", Role::Write)], None),
            "expiring" => (vec![("team", Role::Write)], Some(5_000)),
            other => {
                return Err(AuthError::Invalid {
                    reason: format!("unknown token {other:?}"),
                })
            }
        };
        Ok(Grants {
            subject: token.as_str().to_owned(),
            spaces: spaces
                .into_iter()
                .map(|(name, role)| (space(name), role))
                .collect(),
            expires_at_ms,
        })
    }
}

pub(crate) fn relay_config() -> RelayConfig {
    RelayConfig::new(Uuid::from_bytes([7; 16]), 1)
}

pub(crate) fn relay_session(config: RelayConfig) -> RelaySession {
    RelaySession::new(config, Arc::new(FakeAuth), 0)
}

/// Whether a frame carries document bytes (changes or sync messages).
pub(crate) fn carries_documents(frame: &Frame) -> bool {
    match frame {
        Frame::Changes { entries, .. } => !entries.is_empty(),
        Frame::Snapshot { records, .. } => !records.is_empty(),
        Frame::Repair { .. } => true,
        _ => false,
    }
}

/// splitmix64: small, fast and good enough to pick test inputs.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; `n` must not be zero.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The seed from `HOLDFAST_SEED`, or one from the clock; printed so a failure can be replayed.
pub(crate) fn seed() -> u64 {
    let seed = std::env::var("HOLDFAST_SEED")
        .ok()
        .map(|value| value.parse().expect("HOLDFAST_SEED is a number"))
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map_or(0, |now| now.as_nanos() as u64)
        });
    eprintln!("HOLDFAST_SEED={seed}");
    seed
}

// --- An in-memory driver ------------------------------------------------------------------

/// The storage effects of a relay, in memory: one log per space, numbered from 1, and the
/// outcome of every event id, so a repeat is answered `Duplicate`.
#[derive(Default)]
struct FakeStorage {
    logs: BTreeMap<SpaceId, Vec<ChangeEntry>>,
    events: HashMap<EventId, u64>,
}

impl FakeStorage {
    fn store(&mut self, entries: Vec<PushEntry>) -> (Vec<AckResult>, Vec<(SpaceId, ChangeEntry)>) {
        let mut results = Vec::new();
        let mut stored = Vec::new();
        for entry in entries {
            if let Some(&seq) = self.events.get(&entry.event_id) {
                let outcome = Outcome::Duplicate { seq };
                results.push(AckResult {
                    event_id: entry.event_id,
                    outcome,
                });
                continue;
            }
            let log = self.logs.entry(entry.space.clone()).or_default();
            let seq = log.len() as u64 + 1;
            let change = ChangeEntry {
                seq,
                record: entry.record,
                event_id: entry.event_id,
                changes: entry.changes,
            };
            log.push(change.clone());
            self.events.insert(entry.event_id, seq);
            results.push(AckResult {
                event_id: entry.event_id,
                outcome: Outcome::Stored { seq },
            });
            stored.push((entry.space, change));
        }
        (results, stored)
    }

    /// A bootstrap answered as a relay without snapshots may answer it: no record states,
    /// and a base at the start of the log, so the device pulls every entry. (The real
    /// relay's snapshots are tested in `holdfast-relay`.)
    pub(crate) fn bootstrap(&self) -> PullReply {
        PullReply::Snapshot {
            records: Vec::new(),
            base: Cursor::start(1),
            next: None,
        }
    }

    /// At most `per_pull` entries after `cursor`.
    fn pull(&self, space: &SpaceId, cursor: Cursor, per_pull: usize) -> PullReply {
        let log = self.logs.get(space).map_or(&[][..], Vec::as_slice);
        let from = (cursor.seq as usize).min(log.len());
        let entries: Vec<ChangeEntry> = log[from..].iter().take(per_pull).cloned().collect();
        let seq = cursor.seq + entries.len() as u64;
        PullReply::Changes {
            more: (seq as usize) < log.len(),
            next_cursor: Cursor {
                epoch: cursor.epoch,
                seq,
            },
            entries,
        }
    }
}

/// A device: its session and the entries it has applied, per space.
struct Device {
    session: ClientSession,
    applied: BTreeMap<SpaceId, Vec<u64>>,
    acked: Vec<AckResult>,
}

/// Relay sessions, devices and the bytes in flight between them, pumped until quiet.
struct Network {
    storage: FakeStorage,
    relays: Vec<RelaySession>,
    subscriptions: Vec<Vec<SpaceId>>,
    devices: Vec<Device>,
    to_relay: VecDeque<(usize, Vec<u8>)>,
    to_device: VecDeque<(usize, Vec<u8>)>,
    per_pull: usize,
    now_ms: u64,
}

impl Network {
    fn new(per_pull: usize) -> Self {
        Self {
            storage: FakeStorage::default(),
            relays: Vec::new(),
            subscriptions: Vec::new(),
            devices: Vec::new(),
            to_relay: VecDeque::new(),
            to_device: VecDeque::new(),
            per_pull,
            now_ms: 0,
        }
    }

    /// Connects a device holding `spaces` and runs its handshake.
    fn connect(&mut self, token: &str, spaces: &[&str]) -> usize {
        let config = ClientConfig::new(DeviceId::random(), Token::new(token));
        let spaces = spaces
            .iter()
            .map(|name| crate::frame::SpaceCursor {
                space: space(name),
                cursor: None,
            })
            .collect();
        let mut session = ClientSession::new(config, spaces, self.now_ms);
        let effects = session.start(self.now_ms);
        self.devices.push(Device {
            session,
            applied: BTreeMap::new(),
            acked: Vec::new(),
        });
        self.relays.push(relay_session(relay_config()));
        self.subscriptions.push(Vec::new());
        let id = self.devices.len() - 1;
        self.device_effects(id, effects);
        self.run();
        id
    }

    fn push(&mut self, device: usize, entries: Vec<PushEntry>) {
        let effects = self.devices[device].session.push(entries);
        self.device_effects(device, effects);
        self.run();
    }

    fn run(&mut self) {
        loop {
            if let Some((id, bytes)) = self.to_relay.pop_front() {
                let effects = self.relays[id].handle_bytes(&bytes, self.now_ms);
                self.relay_effects(id, effects);
            } else if let Some((id, bytes)) = self.to_device.pop_front() {
                let effects = self.devices[id].session.handle_bytes(&bytes, self.now_ms);
                self.device_effects(id, effects);
            } else {
                return;
            }
        }
    }

    fn relay_effects(&mut self, id: usize, effects: Vec<RelayEffect>) {
        for effect in effects {
            match effect {
                RelayEffect::Send(frame) => {
                    self.to_device.push_back((id, encode(&frame).unwrap()));
                }
                RelayEffect::Subscribe { spaces } => self.subscriptions[id] = spaces,
                RelayEffect::Store {
                    request_id,
                    entries,
                } => {
                    let (results, stored) = self.storage.store(entries);
                    let more = self.relays[id].handle_store_result(request_id, results);
                    self.relay_effects(id, more.unwrap());
                    self.fan_out(stored);
                }
                RelayEffect::Pull {
                    request_id,
                    space,
                    cursor,
                    ..
                } => {
                    let reply = self.storage.pull(&space, cursor, self.per_pull);
                    let more = self.relays[id].handle_pulled(request_id, reply);
                    self.relay_effects(id, more.unwrap());
                }
                RelayEffect::Bootstrap { request_id, .. } => {
                    let reply = self.storage.bootstrap();
                    let more = self.relays[id].handle_pulled(request_id, reply);
                    self.relay_effects(id, more.unwrap());
                }
                other => panic!("unexpected relay effect {other:?}"),
            }
        }
    }

    /// Live changes to every session subscribed to their space, the pusher's too.
    fn fan_out(&mut self, stored: Vec<(SpaceId, ChangeEntry)>) {
        for (space, entry) in stored {
            let next_cursor = Cursor {
                epoch: 1,
                seq: entry.seq,
            };
            for id in 0..self.relays.len() {
                let effects =
                    self.relays[id].handle_live(&space, std::slice::from_ref(&entry), next_cursor);
                self.relay_effects(id, effects);
            }
        }
    }

    fn device_effects(&mut self, id: usize, effects: Vec<ClientEffect>) {
        for effect in effects {
            match effect {
                ClientEffect::Send(frame) => {
                    self.to_relay.push_back((id, encode(&frame).unwrap()));
                }
                ClientEffect::Apply { space, entries, .. } => {
                    let device = &mut self.devices[id];
                    let applied = device.applied.entry(space.clone()).or_default();
                    applied.extend(entries.iter().map(|e| e.seq));
                    let more = device.session.handle_applied(&space);
                    self.device_effects(id, more);
                }
                ClientEffect::ApplySnapshot { space, records, .. } => {
                    assert!(records.is_empty(), "the fake relay sends no record states");
                    let more = self.devices[id].session.handle_applied(&space);
                    self.device_effects(id, more);
                }
                ClientEffect::Acked(results) => self.devices[id].acked.extend(results),
                ClientEffect::Welcomed { .. } => {}
                other => panic!("unexpected device effect {other:?}"),
            }
        }
    }
}

fn stored(seqs: &[u64]) -> Vec<Outcome> {
    seqs.iter().map(|&seq| Outcome::Stored { seq }).collect()
}

fn outcomes(results: &[AckResult]) -> Vec<Outcome> {
    results.iter().map(|r| r.outcome.clone()).collect()
}

#[test]
fn two_devices_converge_through_a_relay() {
    // Pulls of at most 2 entries, so catching up takes several pulls.
    let mut net = Network::new(2);
    let alice = net.connect("writer", &["team"]);
    let bob = net.connect("writer", &["team"]);

    net.push(alice, (1..=3).map(|n| entry("team", n)).collect());
    assert_eq!(outcomes(&net.devices[alice].acked), stored(&[1, 2, 3]));
    // Live changes reach the pusher too, so its cursor moves past its own entries.
    assert_eq!(net.devices[alice].applied[&space("team")], [1, 2, 3]);
    // Bob was subscribed: the entries reached him live, in order.
    assert_eq!(net.devices[bob].applied[&space("team")], [1, 2, 3]);

    // A resend of the same event ids is a duplicate, stored once.
    net.push(alice, vec![entry("team", 1)]);
    assert_eq!(
        net.devices[alice].acked[3].outcome,
        Outcome::Duplicate { seq: 1 }
    );
    assert_eq!(net.storage.logs[&space("team")].len(), 3);

    // A device arriving later catches up by pulling, two entries at a time.
    let carol = net.connect("reader", &["team"]);
    assert_eq!(net.devices[carol].applied[&space("team")], [1, 2, 3]);
    assert_eq!(
        net.devices[carol].session.cursor(&space("team")),
        Some(Cursor { epoch: 1, seq: 3 })
    );

    // Bob writes; Alice and Carol get it live.
    net.push(bob, vec![entry("team", 9)]);
    for device in [alice, carol] {
        assert_eq!(net.devices[device].applied[&space("team")].last(), Some(&4));
    }
    assert!(net.relays.iter().all(|relay| !relay.is_closed()));
}

#[test]
fn a_reader_pushing_is_refused_in_plain_words() {
    let mut net = Network::new(10);
    let reader = net.connect("reader", &["team"]);
    net.push(reader, vec![entry("team", 1)]);
    let [AckResult {
        outcome: Outcome::Rejected {
            reason, permanent, ..
        },
        ..
    }] = &net.devices[reader].acked[..]
    else {
        panic!(
            "expected one rejection, got {:?}",
            net.devices[reader].acked
        );
    };
    assert_eq!(reason, "You no longer have write access to team");
    assert!(permanent);
    assert!(net.storage.logs.is_empty());
}

#[test]
fn close_codes() {
    use crate::frame::ErrorCode;
    let check = |reason: CloseReason, code: u16| assert_eq!(reason.websocket_code(), code);
    check(CloseReason::Sent(ErrorCode::Unauthorized), 1008);
    check(CloseReason::Sent(ErrorCode::FrameTooLarge { max: 1 }), 1009);
    check(CloseReason::Sent(ErrorCode::Malformed), 1002);
    check(
        CloseReason::Sent(ErrorCode::ServerBusy {
            retry_after_secs: 1,
        }),
        1013,
    );
    check(CloseReason::Sent(ErrorCode::Internal), 1011);
    check(CloseReason::Received(ErrorCode::Internal), 1000);
    check(CloseReason::IdleTimeout, 1001);
}

#[test]
fn error_messages_are_cut_to_the_limit() {
    let long = "é".repeat(crate::limits::MESSAGE_BYTES_MAX);
    let frame = error_frame(crate::frame::ErrorCode::Internal, long);
    assert!(encode(&frame).is_ok());
}
