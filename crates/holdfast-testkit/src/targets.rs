//! The fuzz target bodies. Each panics when one of its properties fails.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use arbitrary::Unstructured;
use holdfast::{Field, ScalarType, Schema, Store, StoreConfig};
use holdfast_protocol::limits::BODY_BYTES_MAX;
use holdfast_protocol::session::{
    AuthError, Authenticator, Grants, PullReply, RelayConfig, RelayEffect, RelaySession, RequestId,
    Role,
};
use holdfast_protocol::{
    decode, encode, AckResult, ChangeEntry, Cursor, EventId, Frame, Outcome, PushEntry, RecordId,
    SpaceId, Token,
};

use crate::alloc::peak_during;
use crate::gen;

/// Most bytes decoding may hold at once beyond the input, for an uncompressed frame, per
/// byte of input: a byte string's length prefix on the wire (one byte) becomes a 24-byte
/// `Vec` header in memory, so some growth is the price of owned values; more means an
/// allocation a frame's bytes do not pay for.
const DECODE_BYTES_PER_INPUT_BYTE_MAX: usize = 64;

/// Fixed allowance for decoding any frame (error values, small buffers).
const DECODE_BYTES_BASE: usize = 64 * 1024;

/// Wire frames from arbitrary bytes: decoding never panics, allocates no more than the
/// input pays for (or, for a compressed body, than the body limit), and a frame that
/// decodes encodes again to a frame that decodes to the same value. Then a valid frame
/// built from the same bytes by [`gen::frame`] survives encode and decode unchanged.
pub fn frame_decode(data: &[u8]) {
    let (decoded, peak) = peak_during(|| decode(data));
    let compressed = data.get(1).is_some_and(|flags| flags & 1 == 1);
    let bound = if compressed {
        2 * BODY_BYTES_MAX + DECODE_BYTES_BASE
    } else {
        DECODE_BYTES_PER_INPUT_BYTE_MAX * data.len() + DECODE_BYTES_BASE
    };
    assert!(
        peak <= bound,
        "decoding {} bytes held {peak} bytes at once (bound {bound})",
        data.len()
    );
    if let Ok(frame) = decoded {
        let again = encode(&frame).expect("a frame that decoded encodes");
        assert_eq!(decode(&again).expect("its encoding decodes"), frame);
    }

    let mut u = Unstructured::new(data);
    if let Ok(frame) = gen::frame(&mut u) {
        // A valid frame may still be too large to encode; then it must say so.
        if let Ok(bytes) = encode(&frame) {
            assert_eq!(decode(&bytes).expect("an encoded frame decodes"), frame);
        }
    }
}

/// Change bundles from arbitrary bytes: importing gives a typed error or an import, never
/// a panic; importing the same bytes again changes nothing.
pub fn bundle_decode(data: &[u8]) {
    let store = bundle_store();
    if store.import_changes(data).is_ok() {
        let again = store
            .import_changes(data)
            .expect("a bundle that imported imports again");
        assert_eq!(
            again.changes_applied, 0,
            "a second import changed {again:?}"
        );
        assert_eq!(
            again.records_changed, 0,
            "a second import changed {again:?}"
        );
    }
}

fn bundle_store() -> &'static Store {
    static STORE: OnceLock<(Store, tempfile::TempDir)> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let schema = Schema::new(1).collection(
                "note",
                [
                    ("title", Field::lww(ScalarType::String)),
                    ("body", Field::text()),
                    ("status", Field::versioned(ScalarType::String)),
                ],
            );
            let path = dir.path().join("fuzz.redb");
            let store = Store::open(path, StoreConfig::new(schema)).expect("the store opens");
            (store, dir)
        })
        .0
}

/// Fails on purpose for inputs that start with `CANARY`, proving that the harness
/// reports a failing target (its crash input is committed and replayed).
pub fn canary(data: &[u8]) {
    assert!(
        !data.starts_with(b"CANARY"),
        "the canary target fails on purpose"
    );
}

/// Arbitrary sequences of frames, raw bytes, time and storage answers driven into a
/// [`RelaySession`] the way a driver that honours `wants_read` would. Properties, checked
/// after every step:
///
/// - before the session names an authenticated device, it asks for no storage work and
///   sends no frame carrying document bytes;
/// - document frames go only to spaces the grants can read, stores only to spaces they
///   can write;
/// - a closed session produces nothing more;
/// - the work waiting for storage stays within the configured limits (bounded memory);
/// - every frame it sends encodes, and it never sends more acks than pushes it read.
pub fn relay_session(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut driver = Driver::new();
    while !u.is_empty() {
        let Ok(step) = u.int_in_range(0..=6u8) else {
            break;
        };
        if driver.step(step, &mut u).is_err() {
            break;
        }
    }
}

/// Tokens the session's authenticator knows; any other is refused.
const TOKEN_WRITER: &str = "writer";
const TOKEN_READER: &str = "reader";

struct KnownTokens;

impl Authenticator for KnownTokens {
    fn authenticate(&self, token: &Token, _now_ms: u64) -> Result<Grants, AuthError> {
        let (a, b) = (space("a"), space("b"));
        let spaces = match token.as_str() {
            TOKEN_WRITER => [(a, Role::Write), (b, Role::Read)].into(),
            TOKEN_READER => [(a, Role::Read)].into(),
            _ => {
                return Err(AuthError::Invalid {
                    reason: "unknown token".into(),
                })
            }
        };
        Ok(Grants {
            subject: token.as_str().to_owned(),
            spaces,
            expires_at_ms: Some(1_000_000),
        })
    }
}

fn space(name: &str) -> SpaceId {
    SpaceId::new(name).expect("a valid space id")
}

/// Drives one session and checks it.
struct Driver {
    session: RelaySession,
    config: RelayConfig,
    now_ms: u64,
    stores: VecDeque<(RequestId, Vec<PushEntry>)>,
    pulls: VecDeque<RequestId>,
    seq_next: u64,
    pushes_read: usize,
    acks_sent: usize,
    closed: bool,
}

impl Driver {
    fn new() -> Self {
        let config = RelayConfig::new(uuid::Uuid::nil(), 7);
        let session = RelaySession::new(config.clone(), Arc::new(KnownTokens), 0);
        Self {
            session,
            config,
            now_ms: 0,
            stores: VecDeque::new(),
            pulls: VecDeque::new(),
            seq_next: 1,
            pushes_read: 0,
            acks_sent: 0,
            closed: false,
        }
    }

    fn step(&mut self, step: u8, u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
        let effects = match step {
            // Bytes from the peer, only when the session wants them.
            0..=2 if !self.session.wants_read() => Vec::new(),
            0 => {
                let len = u.int_in_range(0..=64usize)?;
                let bytes = u.bytes(len)?.to_vec();
                self.count_push(&bytes);
                self.session.handle_bytes(&bytes, self.now_ms)
            }
            1 => {
                let frame = self.frame(u)?;
                let Ok(bytes) = encode(&frame) else {
                    return Ok(());
                };
                self.count_push(&bytes);
                self.session.handle_bytes(&bytes, self.now_ms)
            }
            2 => {
                let token = *u.choose(&[TOKEN_WRITER, TOKEN_READER, "forged"])?;
                let spaces = gen::list(u, |u| {
                    Ok(holdfast_protocol::SpaceCursor {
                        space: space(u.choose(&["a", "b", "c"])?),
                        cursor: None,
                    })
                })?;
                let hello = Frame::Hello {
                    protocol: *u.choose(&[0, 1, 2])?,
                    device: holdfast_protocol::DeviceId::from_bytes(u.arbitrary()?),
                    token: Token::new(token),
                    spaces,
                };
                let bytes = encode(&hello).expect("a small hello encodes");
                self.session.handle_bytes(&bytes, self.now_ms)
            }
            3 => {
                self.now_ms += u64::from(u.arbitrary::<u16>()?) * 100;
                self.session.handle_tick(self.now_ms)
            }
            4 => match self.stores.pop_front() {
                Some((request_id, entries)) => {
                    let results = entries
                        .iter()
                        .map(|e| {
                            let seq = self.seq_next;
                            self.seq_next += 1;
                            AckResult {
                                event_id: e.event_id,
                                outcome: Outcome::Stored { seq },
                            }
                        })
                        .collect();
                    self.session
                        .handle_store_result(request_id, results)
                        .expect("results answer the store one for one")
                }
                None => Vec::new(),
            },
            5 => match self.pulls.pop_front() {
                Some(request_id) => {
                    let reply = PullReply::Changes {
                        entries: vec![change(self.seq_next)],
                        next_cursor: Cursor {
                            epoch: 7,
                            seq: self.seq_next,
                        },
                        more: u.arbitrary()?,
                    };
                    self.session
                        .handle_pulled(request_id, reply)
                        .expect("a pull waits for this answer")
                }
                None => Vec::new(),
            },
            _ => {
                let live = space(u.choose(&["a", "b", "c"])?);
                let cursor = Cursor {
                    epoch: 7,
                    seq: self.seq_next,
                };
                self.session
                    .handle_live(&live, &[change(self.seq_next)], cursor)
            }
        };
        self.check(effects);
        Ok(())
    }

    /// Counts a push the session will read as one, to hold it to one ack per push.
    fn count_push(&mut self, bytes: &[u8]) {
        if self.session.device().is_some() && matches!(decode(bytes), Ok(Frame::Push { .. })) {
            self.pushes_read += 1;
        }
    }

    /// A frame a device might send: mostly well-formed requests for the known spaces.
    fn frame(&self, u: &mut Unstructured<'_>) -> arbitrary::Result<Frame> {
        if u.ratio(1, 4)? {
            return gen::frame(u);
        }
        let name = *u.choose(&["a", "b", "c"])?;
        Ok(match u.int_in_range(0..=3u8)? {
            0 => Frame::Push {
                entries: gen::list(u, |u| {
                    let mut entry = gen::push_entry(u)?;
                    entry.space = space(u.choose(&["a", "b", "c"])?);
                    Ok(entry)
                })?,
            },
            1 => Frame::Pull {
                space: space(name),
                cursor: Cursor {
                    epoch: 7,
                    seq: u.arbitrary()?,
                },
                max_bytes: u.arbitrary()?,
            },
            2 => Frame::Bootstrap {
                space: space(name),
                from: None,
                max_bytes: u.arbitrary()?,
            },
            _ => Frame::Repair {
                space: space(name),
                record: RecordId::from_bytes(u.arbitrary()?),
                message: gen::bytes(u)?,
            },
        })
    }

    fn check(&mut self, effects: Vec<RelayEffect>) {
        if self.closed {
            assert!(effects.is_empty(), "a closed session acted: {effects:?}");
            return;
        }
        let grants = self.session.grants().cloned();
        for effect in effects {
            let Some(grants) = &grants else {
                // Not authenticated (or closed by this very step before authenticating).
                match &effect {
                    RelayEffect::Send(frame) => assert!(
                        !carries_documents(frame),
                        "document bytes before authentication: {frame:?}"
                    ),
                    RelayEffect::Close(_) => self.closed = true,
                    other => panic!("storage work before authentication: {other:?}"),
                }
                continue;
            };
            match effect {
                RelayEffect::Send(frame) => {
                    if let Some(space) = document_space(&frame) {
                        assert!(
                            grants.can_read(space),
                            "{frame:?} to a reader of {grants:?}"
                        );
                    }
                    if matches!(frame, Frame::Ack { .. }) {
                        self.acks_sent += 1;
                        assert!(self.acks_sent <= self.pushes_read, "more acks than pushes");
                    }
                    encode(&frame).expect("every frame the session sends encodes");
                }
                RelayEffect::Close(_) => self.closed = true,
                RelayEffect::Subscribe { spaces } => {
                    assert!(spaces.iter().all(|s| grants.can_read(s)));
                }
                RelayEffect::Store {
                    request_id,
                    entries,
                } => {
                    assert!(entries.iter().all(|e| grants.can_write(&e.space)));
                    self.stores.push_back((request_id, entries));
                }
                RelayEffect::Pull {
                    request_id, space, ..
                }
                | RelayEffect::Bootstrap {
                    request_id, space, ..
                } => {
                    assert!(grants.can_read(&space));
                    self.pulls.push_back(request_id);
                }
                RelayEffect::Repair {
                    space, may_write, ..
                } => {
                    assert!(grants.can_read(&space));
                    assert_eq!(may_write, grants.can_write(&space));
                }
                other => panic!("an effect this driver does not know: {other:?}"),
            }
        }
        if self.closed {
            // Answers to work in flight are dropped quietly once closed.
            self.stores.clear();
            self.pulls.clear();
        }
        let in_flight_max = self.config.limits.pushes_in_flight_max as usize
            + self.config.pulls_in_flight_max as usize;
        assert!(self.session.requests_in_flight() <= in_flight_max);
        assert_eq!(
            self.session.requests_in_flight(),
            self.stores.len() + self.pulls.len()
        );
    }
}

fn change(seq: u64) -> ChangeEntry {
    ChangeEntry {
        seq,
        record: RecordId::from_bytes([1; 16]),
        event_id: EventId::from_bytes([2; 16]),
        changes: vec![vec![3; 8]],
    }
}

fn carries_documents(frame: &Frame) -> bool {
    document_space(frame).is_some()
}

/// The space of a frame that carries document bytes.
fn document_space(frame: &Frame) -> Option<&SpaceId> {
    match frame {
        Frame::Changes { space, entries, .. } if !entries.is_empty() => Some(space),
        Frame::Snapshot { space, records, .. } if !records.is_empty() => Some(space),
        Frame::Repair { space, .. } => Some(space),
        _ => None,
    }
}
