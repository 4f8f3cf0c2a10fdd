use std::io::Write;

use uuid::Uuid;

use super::*;
use crate::error::{LimitExceeded, LimitKind};
use crate::frame::{
    AckResult, BootstrapFrom, ChangeEntry, Cursor, ErrorCode, Limits, Outcome, PushEntry,
    RecordState, RejectCode, SpaceCursor, Token,
};
use crate::ids::{DeviceId, EventId, RecordId, SpaceId};
use crate::limits::{
    BATCH_ENTRIES_MAX, CHANGES_PER_ENTRY_MAX, MESSAGE_BYTES_MAX, SPACE_ID_BYTES_MAX,
    TOKEN_BYTES_MAX,
};

mod model;
mod mutate;

/// Asserts that decoding `$bytes` fails with an error matching `$pattern`.
macro_rules! check_decode_err {
    ($bytes:expr, $pattern:pat $(if $guard:expr)?) => {
        match decode(&$bytes) {
            Err($pattern) $(if $guard)? => {}
            other => panic!("expected {}, got {other:?}", stringify!($pattern)),
        }
    };
}

/// Asserts that encoding `$frame` fails with an error matching `$pattern`.
macro_rules! check_encode_err {
    ($frame:expr, $pattern:pat $(if $guard:expr)?) => {
        match encode(&$frame) {
            Err($pattern) $(if $guard)? => {}
            other => panic!("expected {}, got {other:?}", stringify!($pattern)),
        }
    };
}

// --- Round trips -------------------------------------------------------------------------

#[test]
fn every_frame_round_trips() {
    for frame in sample_frames() {
        let (bytes, stats) = encode_with_stats(&frame).unwrap();
        assert!(!stats.compressed, "{} is small", frame.name());
        assert_eq!(decode(&bytes).unwrap(), frame);
    }
}

#[test]
fn every_frame_round_trips_compressed() {
    for frame in sample_frames() {
        let frame = padded(frame, 64 * 1024);
        let (bytes, stats) = encode_with_stats(&frame).unwrap();
        assert!(
            stats.compressed,
            "{} is large and compressible",
            frame.name()
        );
        assert_eq!(decode(&bytes).unwrap(), frame);
    }
}

#[test]
fn version_1_layout_is_stable() {
    // Written by hand from docs/protocol.md; frames of version 1 must keep decoding.
    check_fixture(Frame::Ping { nonce: 7 }, &[1, 0, 8, 7]);
    check_fixture(Frame::Pong { nonce: 300 }, &[1, 0, 9, 0xfb, 0x2c, 0x01]);
    #[rustfmt::skip]
    check_fixture(
        Frame::Hello {
            protocol: 1,
            device: DeviceId::from_bytes([0xaa; 16]),
            token: Token::new("jwt"),
            spaces: vec![
                SpaceCursor { space: space("team"), cursor: Some(Cursor { epoch: 3, seq: 251 }) },
                SpaceCursor { space: space("me"), cursor: None },
            ],
        },
        &[
            1, 0, // version 1, not compressed
            0, // Hello
            1, // protocol
            16, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
                0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, // device
            3, b'j', b'w', b't', // token
            2, // spaces
            4, b't', b'e', b'a', b'm', 1, 3, 0xfb, 251, 0, // "team", Some(3/251)
            2, b'm', b'e', 0, // "me", None
        ],
    );
    #[rustfmt::skip]
    check_fixture(
        Frame::Ack {
            results: vec![AckResult {
                event_id: EventId::from_bytes([0x11; 16]),
                outcome: Outcome::Rejected {
                    code: RejectCode::Forbidden { space: space("s") },
                    reason: "ro".into(),
                    permanent: true,
                },
            }],
        },
        &[
            1, 0, 4, 1, // Ack, one result
            16, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
                0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, // event id
            2, 0, 1, b's', // Rejected, Forbidden { "s" }
            2, b'r', b'o', 1, // reason, permanent
        ],
    );
}

#[track_caller]
fn check_fixture(frame: Frame, bytes: &[u8]) {
    assert_eq!(encode(&frame).unwrap(), bytes);
    assert_eq!(decode(bytes).unwrap(), frame);
}

#[test]
fn model_layout_matches() {
    // The model that builds over-limit frames below must agree with the real layout.
    for n in [0, 1, 3] {
        assert_eq!(
            decode(&model::bytes(&model_push(n, 2))).unwrap(),
            push(n, 2)
        );
        assert_eq!(decode(&model::bytes(&model_ack(n, 5))).unwrap(), ack(n, 5));
        assert_eq!(
            decode(&model::bytes(&model_changes(n, 2))).unwrap(),
            changes(n, 2)
        );
        assert_eq!(
            decode(&model::bytes(&model_hello(n, 9))).unwrap(),
            hello(n, 9)
        );
        assert_eq!(decode(&model::bytes(&model_error(n))).unwrap(), error(n));
    }
}

// --- Compression -------------------------------------------------------------------------

#[test]
fn compressible_body_is_compressed() {
    let frame = repair(vec![0; 64 * 1024]);
    let (bytes, stats) = encode_with_stats(&frame).unwrap();
    assert!(stats.compressed);
    assert_eq!(bytes[1], FLAG_COMPRESSED);
    assert_eq!(stats.body_bytes_wire, bytes.len() - HEADER_BYTES);
    assert!(stats.body_bytes_wire < stats.body_bytes_plain / 100);
    assert_eq!(decode(&bytes).unwrap(), frame);
}

#[test]
fn incompressible_body_is_sent_plain() {
    // Random bytes stand for an already-compressed document snapshot.
    let frame = repair(Rng::new(1).bytes(64 * 1024));
    let (bytes, stats) = encode_with_stats(&frame).unwrap();
    assert!(!stats.compressed);
    assert_eq!(bytes[1], 0);
    assert_eq!(stats.body_bytes_wire, stats.body_bytes_plain);
    assert_eq!(decode(&bytes).unwrap(), frame);
}

#[test]
fn compress_threshold() {
    let at = sized_repair(COMPRESS_THRESHOLD_BYTES, |len| vec![0; len]);
    let (_, stats) = encode_with_stats(&at).unwrap();
    assert_eq!(stats.body_bytes_plain, COMPRESS_THRESHOLD_BYTES);
    assert!(!stats.compressed);

    let above = sized_repair(COMPRESS_THRESHOLD_BYTES + 1, |len| vec![0; len]);
    let (bytes, stats) = encode_with_stats(&above).unwrap();
    assert_eq!(stats.body_bytes_plain, COMPRESS_THRESHOLD_BYTES + 1);
    assert!(stats.compressed);
    assert_eq!(decode(&bytes).unwrap(), above);
}

#[test]
fn compression_must_save_enough() {
    let kept_max = 100 - COMPRESS_SAVINGS_PERCENT_MIN;
    assert!(pays_off(1000, kept_max * 10));
    assert!(!pays_off(1000, kept_max * 10 + 1));
    assert!(!pays_off(1000, 1000));
    assert!(!pays_off(1000, 1200));
    assert!(pays_off(BODY_BYTES_MAX, BODY_BYTES_MAX / 100 * kept_max));
}

#[test]
fn compressed_body_may_be_small() {
    // Whether to compress is the sender's choice; any valid zstd body decodes.
    let body = body_of(&Frame::Ping { nonce: 1 });
    let bytes = with_header(FLAG_COMPRESSED, &zstd::bulk::compress(&body, 3).unwrap());
    assert_eq!(decode(&bytes).unwrap(), Frame::Ping { nonce: 1 });
}

#[test]
fn compression_window_limit() {
    let body = body_of(&Frame::Ping { nonce: 1 });
    let within = with_header(
        FLAG_COMPRESSED,
        &zstd_with_window_log(&body, COMPRESS_WINDOW_LOG_MAX),
    );
    assert_eq!(decode(&within).unwrap(), Frame::Ping { nonce: 1 });
    let beyond = zstd_with_window_log(&body, COMPRESS_WINDOW_LOG_MAX + 1);
    check_decode_err!(
        with_header(FLAG_COMPRESSED, &beyond),
        DecodeError::Decompress { .. }
    );
}

#[test]
fn zip_bomb_stops_at_body_limit() {
    // 200 MiB of zeros compress to a few kilobytes.
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    let zeros = vec![0; 1024 * 1024];
    for _ in 0..200 {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 64 * 1024);
    check_decode_err!(
        with_header(FLAG_COMPRESSED, &bomb),
        DecodeError::BodyTooLarge {
            max: BODY_BYTES_MAX
        }
    );
}

#[test]
fn read_capped_grows_up_to_the_cap() {
    let body = read_capped(&mut &[7; 100][..], 100).unwrap();
    assert_eq!(body, [7; 100]);
    assert!(body.capacity() <= 100);
    assert!(matches!(
        read_capped(&mut &[7; 101][..], 100),
        Err(DecodeError::BodyTooLarge { max: 100 })
    ));
    let body = read_capped(
        &mut &vec![7; 3 * INFLATE_CHUNK_BYTES][..],
        3 * INFLATE_CHUNK_BYTES,
    )
    .unwrap();
    assert_eq!(body.capacity(), 3 * INFLATE_CHUNK_BYTES);
}

// --- Header ------------------------------------------------------------------------------

#[test]
fn header() {
    check_decode_err!([], DecodeError::HeaderTruncated { len: 0 });
    check_decode_err!([1], DecodeError::HeaderTruncated { len: 1 });
    check_decode_err!([1, 0], DecodeError::Body { .. });
    check_decode_err!([1, FLAG_COMPRESSED], DecodeError::Decompress { .. });
    check_decode_err!([0, 0, 8, 7], DecodeError::UnsupportedVersion { got: 0 });
    check_decode_err!([2, 0, 8, 7], DecodeError::UnsupportedVersion { got: 2 });
    check_decode_err!([255, 0, 8, 7], DecodeError::UnsupportedVersion { got: 255 });
    for bit in 1..8 {
        let flags = 1 << bit;
        check_decode_err!([1, flags, 8, 7], DecodeError::UnknownFlags { flags: f } if f == flags);
        check_decode_err!(
            [1, flags | FLAG_COMPRESSED, 8, 7],
            DecodeError::UnknownFlags { .. }
        );
    }
}

#[test]
fn supported_versions() {
    let body = body_of(&Frame::Ping { nonce: 7 });
    for version in PROTOCOL_VERSION_MIN_SUPPORTED..=PROTOCOL_VERSION {
        let mut bytes = vec![version as u8, 0];
        bytes.extend_from_slice(&body);
        assert_eq!(decode(&bytes).unwrap(), Frame::Ping { nonce: 7 });
    }
    assert_eq!(
        encode(&Frame::Ping { nonce: 7 }).unwrap()[0],
        PROTOCOL_VERSION as u8
    );
}

// --- Malformed bodies --------------------------------------------------------------------

#[test]
fn trailing_bytes() {
    let mut plain = encode(&Frame::Ping { nonce: 7 }).unwrap();
    plain.push(0);
    check_decode_err!(plain, DecodeError::TrailingBytes { len: 1 });

    let mut compressed = encode(&repair(vec![0; 4096])).unwrap();
    assert_eq!(compressed[1], FLAG_COMPRESSED);
    compressed.extend_from_slice(&[0, 0]);
    check_decode_err!(compressed, DecodeError::TrailingBytes { len: 2 });

    let mut body = body_of(&Frame::Ping { nonce: 7 });
    body.extend_from_slice(&[0, 0, 0]);
    let inside = with_header(FLAG_COMPRESSED, &zstd::bulk::compress(&body, 3).unwrap());
    check_decode_err!(inside, DecodeError::TrailingBytes { len: 3 });
}

#[test]
fn every_truncation_fails() {
    for frame in sample_frames()
        .into_iter()
        .chain([padded(push(3, 2), 4096)])
    {
        let bytes = encode(&frame).unwrap();
        for len in 0..bytes.len() {
            assert!(
                decode(&bytes[..len]).is_err(),
                "{} cut to {len}",
                frame.name()
            );
        }
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng::new(2);
    for len in 0..2000 {
        let mut bytes = rng.bytes(len % 200);
        if let Some(version) = bytes.first_mut() {
            *version = 1;
        }
        if let Some(flags) = bytes.get_mut(1) {
            *flags &= FLAG_COMPRESSED;
        }
        let _ = decode(&bytes);
    }
    check_decode_err!([1, 0, 99], DecodeError::Body { .. });
    check_decode_err!(
        [1, FLAG_COMPRESSED, 1, 2, 3, 4, 5],
        DecodeError::Decompress { .. }
    );
}

#[test]
fn huge_length_prefix_is_refused_without_allocating() {
    // 33 bytes claiming a 2^40-byte sync message.
    #[rustfmt::skip]
    let bytes: Vec<u8> = [
        &[1, 0, 7][..], // version 1, plain, Repair
        &[1, b'a'], // space "a"
        &[16], &[0x22; 16], // record
        &[0xfd], &(1u64 << 40).to_le_bytes(), // message length 2^40
        &[0xab, 0xcd], // and two bytes of it
    ]
    .concat();
    assert_eq!(bytes.len(), 33);
    check_decode_err!(
        bytes,
        DecodeError::Body {
            source: bincode::error::DecodeError::LimitExceeded
        }
    );
}

#[test]
fn huge_count_prefix_is_refused_before_reading() {
    let claim = 1usize << 40;
    let exceeded = |kind: LimitKind| LimitExceeded {
        kind,
        actual: claim,
        max: kind.max(),
    };
    let varint = |n: usize| bincode::encode_to_vec(n, bincode::config::standard()).unwrap();

    let entries = [&[1, 0, 3][..], &varint(claim)].concat();
    let want = exceeded(LimitKind::BatchEntries);
    check_decode_err!(entries, DecodeError::LimitExceeded(e) if e == want);

    #[rustfmt::skip]
    let changes = [
        &[1, 0, 3, 1][..], // Push, one entry
        &[16], &[0x33; 16], &[1, b'a'], &[16], &[0x44; 16], // event id, space, record
        &varint(claim), // changes
    ]
    .concat();
    let want = exceeded(LimitKind::ChangesPerEntry);
    check_decode_err!(changes, DecodeError::LimitExceeded(e) if e == want);
}

#[test]
fn invalid_space_id_is_refused() {
    let long = model::Frame::Pull {
        space: "s".repeat(SPACE_ID_BYTES_MAX + 1),
        cursor: (0, 0),
        max_bytes: 0,
    };
    check_decode_err!(model::bytes(&long), DecodeError::Body { .. });
    let bad = model::Frame::Pull {
        space: "a b".into(),
        cursor: (0, 0),
        max_bytes: 0,
    };
    check_decode_err!(model::bytes(&bad), DecodeError::Body { .. });
    let ok = model::Frame::Pull {
        space: "s".repeat(SPACE_ID_BYTES_MAX),
        cursor: (1, 2),
        max_bytes: 3,
    };
    assert!(decode(&model::bytes(&ok)).is_ok());
}

// --- Limits ------------------------------------------------------------------------------

#[test]
fn list_and_string_limits() {
    check_limit(LimitKind::BatchEntries, |n| (push(n, 1), model_push(n, 1)));
    check_limit(LimitKind::BatchEntries, |n| (ack(n, 1), model_ack(n, 1)));
    check_limit(LimitKind::BatchEntries, |n| {
        (changes(n, 1), model_changes(n, 1))
    });
    check_limit(LimitKind::ChangesPerEntry, |n| {
        (push(1, n), model_push(1, n))
    });
    check_limit(LimitKind::ChangesPerEntry, |n| {
        (changes(1, n), model_changes(1, n))
    });
    check_limit(LimitKind::SpacesPerHello, |n| {
        (hello(n, 1), model_hello(n, 1))
    });
    check_limit(LimitKind::TokenBytes, |n| (hello(1, n), model_hello(1, n)));
    check_limit(LimitKind::MessageBytes, |n| (error(n), model_error(n)));
    check_limit(LimitKind::MessageBytes, |n| (ack(1, n), model_ack(1, n)));
}

/// Checks that a frame with `kind.max()` elements encodes and decodes, and that one with a
/// single element more is refused by both.
#[track_caller]
fn check_limit(kind: LimitKind, make: impl Fn(usize) -> (Frame, model::Frame)) {
    let max = kind.max();
    let (frame, model) = make(max);
    assert_eq!(decode(&encode(&frame).unwrap()).unwrap(), frame);
    assert_eq!(decode(&model::bytes(&model)).unwrap(), frame);

    let exceeded = LimitExceeded {
        kind,
        actual: max + 1,
        max,
    };
    let (frame, model) = make(max + 1);
    check_encode_err!(frame, EncodeError::LimitExceeded(e) if e == exceeded);
    check_decode_err!(model::bytes(&model), DecodeError::LimitExceeded(e) if e == exceeded);
}

#[test]
fn frame_size_limit() {
    // Random bytes do not compress, so the body goes out as it is.
    let fill = |len| Rng::new(3).bytes(len);
    let at = sized_repair(FRAME_BYTES_MAX - HEADER_BYTES, fill);
    let mut bytes = encode(&at).unwrap();
    assert_eq!(bytes.len(), FRAME_BYTES_MAX);
    assert_eq!(decode(&bytes).unwrap(), at);

    let over = FRAME_BYTES_MAX + 1;
    bytes.push(0);
    check_decode_err!(bytes, DecodeError::FrameTooLarge { len, .. } if len == over);
    let above = sized_repair(over - HEADER_BYTES, fill);
    check_encode_err!(above, EncodeError::FrameTooLarge { len, .. } if len == over);
}

#[test]
fn body_size_limit() {
    // Zeros compress far below the frame limit, so only the body limit applies.
    let at = sized_repair(BODY_BYTES_MAX, |len| vec![0; len]);
    let (bytes, stats) = encode_with_stats(&at).unwrap();
    assert_eq!(stats.body_bytes_plain, BODY_BYTES_MAX);
    assert!(stats.compressed);
    assert_eq!(decode(&bytes).unwrap(), at);
    drop(bytes);

    let over = BODY_BYTES_MAX + 1;
    let above = sized_repair(over, |len| vec![0; len]);
    check_encode_err!(above, EncodeError::BodyTooLarge { len, max: BODY_BYTES_MAX } if len == over);
    let body = body_of(&above);
    drop(above);
    let bytes = with_header(FLAG_COMPRESSED, &zstd::bulk::compress(&body, 1).unwrap());
    check_decode_err!(
        bytes,
        DecodeError::BodyTooLarge {
            max: BODY_BYTES_MAX
        }
    );
}

#[test]
fn full_body_of_small_fields_decodes() {
    // bincode counts every integer at its width in memory, more than its bytes on the wire.
    // The most integers a valid body can hold must still fit the decoder's claim limit.
    let full = |filler: Vec<u8>| {
        let Frame::Push { mut entries } = push(BATCH_ENTRIES_MAX, 0) else {
            unreachable!()
        };
        for entry in &mut entries {
            entry.changes = vec![vec![]; CHANGES_PER_ENTRY_MAX];
        }
        entries[0].changes[0] = filler;
        Frame::Push { entries }
    };
    let frame = sized(BODY_BYTES_MAX, full, |len| vec![0; len]);
    let (bytes, stats) = encode_with_stats(&frame).unwrap();
    assert_eq!(stats.body_bytes_plain, BODY_BYTES_MAX);
    assert_eq!(decode(&bytes).unwrap(), frame);
}

// --- Frames to test with ----------------------------------------------------------------

/// One frame of every kind, each small enough to go uncompressed.
fn sample_frames() -> Vec<Frame> {
    let team = space("team-notes");
    let mut frames = vec![
        hello(2, 40),
        Frame::Welcome {
            relay_id: Uuid::from_bytes([9; 16]),
            epoch: 4,
            limits: Limits::PROTOCOL,
        },
        push(3, 2),
        ack(0, 0),
        Frame::Ack {
            results: vec![
                AckResult {
                    event_id: event(1),
                    outcome: Outcome::Stored { seq: 17 },
                },
                AckResult {
                    event_id: event(2),
                    outcome: Outcome::Duplicate { seq: u64::MAX },
                },
            ],
        },
        Frame::Pull {
            space: team.clone(),
            cursor: Cursor { epoch: 4, seq: 9 },
            max_bytes: 1 << 20,
        },
        changes(2, 3),
        Frame::Changes {
            space: team.clone(),
            entries: vec![],
            next_cursor: Cursor::start(4),
            more: false,
        },
        repair(vec![1, 2, 3]),
        Frame::Ping { nonce: 0 },
        Frame::Pong { nonce: u64::MAX },
        Frame::Bootstrap {
            space: team.clone(),
            from: None,
            max_bytes: 1 << 20,
        },
        Frame::Bootstrap {
            space: team.clone(),
            from: Some(BootstrapFrom {
                base: Cursor { epoch: 4, seq: 9 },
                after: record(3),
            }),
            max_bytes: 1 << 20,
        },
        snapshot(2, Some(record(2))),
        snapshot(0, None),
        Frame::Resync {
            space: team.clone(),
            epoch: 7,
        },
    ];
    let error_codes = [
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden {
            space: team.clone(),
        },
        ErrorCode::UnsupportedVersion { min: 1, max: 1 },
        ErrorCode::FrameTooLarge { max: 1 << 24 },
        ErrorCode::Malformed,
        ErrorCode::RateLimited {
            retry_after_secs: 30,
        },
        ErrorCode::ServerBusy {
            retry_after_secs: 5,
        },
        ErrorCode::Internal,
    ];
    for code in error_codes {
        frames.push(Frame::Error {
            code,
            message: "detail".into(),
        });
    }
    let reject_codes = [
        RejectCode::Forbidden { space: team },
        RejectCode::MissingDependencies,
        RejectCode::DependencyRejected { event_id: event(1) },
        RejectCode::RecordTooLarge { max: 1 << 26 },
        RejectCode::Malformed,
        RejectCode::RateLimited {
            retry_after_secs: 1,
        },
        RejectCode::Internal,
    ];
    let results = reject_codes
        .into_iter()
        .enumerate()
        .map(|(i, code)| AckResult {
            event_id: event(i as u64),
            outcome: Outcome::Rejected {
                code,
                reason: "why".into(),
                permanent: i % 2 == 0,
            },
        });
    frames.push(Frame::Ack {
        results: results.collect(),
    });
    frames
}

/// `frame` with a compressible payload of about `len` bytes added, where it has room.
fn padded(frame: Frame, len: usize) -> Frame {
    let payload = || b"the quick brown fox ".repeat(len / 20);
    match frame {
        Frame::Hello {
            protocol,
            device,
            spaces,
            ..
        } => Frame::Hello {
            protocol,
            device,
            token: Token::new(text(&payload(), TOKEN_BYTES_MAX)),
            spaces,
        },
        Frame::Error { code, .. } => Frame::Error {
            code,
            message: text(&payload(), MESSAGE_BYTES_MAX),
        },
        Frame::Push { mut entries } => {
            entries.push(PushEntry {
                event_id: event(99),
                space: space("pad"),
                record: record(99),
                changes: vec![payload()],
            });
            Frame::Push { entries }
        }
        Frame::Changes {
            space,
            mut entries,
            next_cursor,
            more,
        } => {
            entries.push(ChangeEntry {
                seq: 99,
                record: record(99),
                event_id: event(99),
                changes: vec![payload()],
            });
            Frame::Changes {
                space,
                entries,
                next_cursor,
                more,
            }
        }
        Frame::Repair { space, record, .. } => Frame::Repair {
            space,
            record,
            message: payload(),
        },
        Frame::Ack { mut results } => {
            // Ack carries no payload: grow it by results instead.
            let outcome = Outcome::Stored { seq: 1 };
            results.extend((0..len / 16).map(|i| AckResult {
                event_id: event(i as u64 % 7),
                outcome: outcome.clone(),
            }));
            results.truncate(BATCH_ENTRIES_MAX);
            Frame::Ack { results }
        }
        Frame::Snapshot {
            space,
            mut records,
            base,
            next,
        } => {
            records.push(RecordState {
                record: record(99),
                doc: payload(),
                changes: vec![],
            });
            Frame::Snapshot {
                space,
                records,
                base,
                next,
            }
        }
        Frame::Welcome { .. }
        | Frame::Pull { .. }
        | Frame::Ping { .. }
        | Frame::Pong { .. }
        | Frame::Bootstrap { .. }
        | Frame::Resync { .. } => Frame::Repair {
            space: space("pad"),
            record: record(0),
            message: payload(),
        },
    }
}

fn text(payload: &[u8], len_max: usize) -> String {
    String::from_utf8(payload[..payload.len().min(len_max)].to_vec()).unwrap()
}

fn space(name: &str) -> SpaceId {
    SpaceId::new(name).unwrap()
}

fn id(n: u64) -> [u8; 16] {
    u128::from(n).to_be_bytes()
}

fn event(n: u64) -> EventId {
    EventId::from_bytes(id(n))
}

fn record(n: u64) -> RecordId {
    RecordId::from_bytes(id(n | 1 << 63))
}

fn change(i: usize, j: usize) -> Vec<u8> {
    vec![i as u8, j as u8, 0x85]
}

fn snapshot(records: usize, next: Option<RecordId>) -> Frame {
    Frame::Snapshot {
        space: space("team-notes"),
        records: (0..records)
            .map(|i| RecordState {
                record: record(i as u64),
                doc: vec![0x85, 0x6f, 0x4a, 0x83, i as u8],
                changes: (0..i).map(|j| change(i, j)).collect(),
            })
            .collect(),
        base: Cursor { epoch: 4, seq: 12 },
        next,
    }
}

fn push(entries: usize, changes: usize) -> Frame {
    Frame::Push {
        entries: (0..entries)
            .map(|i| PushEntry {
                event_id: event(i as u64),
                space: space("s"),
                record: record(i as u64),
                changes: (0..changes).map(|j| change(i, j)).collect(),
            })
            .collect(),
    }
}

fn model_push(entries: usize, changes: usize) -> model::Frame {
    model::Frame::Push {
        entries: (0..entries)
            .map(|i| model::PushEntry {
                event_id: id(i as u64).to_vec(),
                space: "s".into(),
                record: record(i as u64).as_bytes().to_vec(),
                changes: (0..changes).map(|j| change(i, j)).collect(),
            })
            .collect(),
    }
}

fn ack(results: usize, reason_bytes: usize) -> Frame {
    Frame::Ack {
        results: (0..results)
            .map(|i| AckResult {
                event_id: event(i as u64),
                outcome: Outcome::Rejected {
                    code: RejectCode::MissingDependencies,
                    reason: "r".repeat(reason_bytes),
                    permanent: false,
                },
            })
            .collect(),
    }
}

fn model_ack(results: usize, reason_bytes: usize) -> model::Frame {
    model::Frame::Ack {
        results: (0..results)
            .map(|i| model::AckResult {
                event_id: id(i as u64).to_vec(),
                outcome: model::Outcome::Rejected {
                    code: model::RejectCode::MissingDependencies,
                    reason: "r".repeat(reason_bytes),
                    permanent: false,
                },
            })
            .collect(),
    }
}

fn changes(entries: usize, changes: usize) -> Frame {
    Frame::Changes {
        space: space("s"),
        entries: (0..entries)
            .map(|i| ChangeEntry {
                seq: i as u64 + 1,
                record: record(i as u64),
                event_id: event(i as u64),
                changes: (0..changes).map(|j| change(i, j)).collect(),
            })
            .collect(),
        next_cursor: Cursor {
            epoch: 2,
            seq: entries as u64,
        },
        more: true,
    }
}

fn model_changes(entries: usize, changes: usize) -> model::Frame {
    model::Frame::Changes {
        space: "s".into(),
        entries: (0..entries)
            .map(|i| model::ChangeEntry {
                seq: i as u64 + 1,
                record: record(i as u64).as_bytes().to_vec(),
                event_id: id(i as u64).to_vec(),
                changes: (0..changes).map(|j| change(i, j)).collect(),
            })
            .collect(),
        next_cursor: (2, entries as u64),
        more: true,
    }
}

fn space_name(i: usize) -> String {
    format!("space-{i}")
}

fn hello(spaces: usize, token_bytes: usize) -> Frame {
    Frame::Hello {
        protocol: PROTOCOL_VERSION,
        device: DeviceId::from_bytes(id(7)),
        token: Token::new("t".repeat(token_bytes)),
        spaces: (0..spaces)
            .map(|i| SpaceCursor {
                space: space(&space_name(i)),
                cursor: (i % 2 == 0).then_some(Cursor {
                    epoch: 1,
                    seq: i as u64,
                }),
            })
            .collect(),
    }
}

fn model_hello(spaces: usize, token_bytes: usize) -> model::Frame {
    model::Frame::Hello {
        protocol: PROTOCOL_VERSION,
        device: id(7).to_vec(),
        token: "t".repeat(token_bytes),
        spaces: (0..spaces)
            .map(|i| model::SpaceCursor {
                space: space_name(i),
                cursor: (i % 2 == 0).then_some((1, i as u64)),
            })
            .collect(),
    }
}

fn error(message_bytes: usize) -> Frame {
    Frame::Error {
        code: ErrorCode::Unauthorized,
        message: "m".repeat(message_bytes),
    }
}

fn model_error(message_bytes: usize) -> model::Frame {
    model::Frame::Error {
        code: model::ErrorCode::Unauthorized,
        message: "m".repeat(message_bytes),
    }
}

fn repair(message: Vec<u8>) -> Frame {
    Frame::Repair {
        space: space("s"),
        record: record(1),
        message,
    }
}

/// A `Repair` whose body is exactly `body_len` bytes, its message made by `fill`.
fn sized_repair(body_len: usize, fill: impl Fn(usize) -> Vec<u8>) -> Frame {
    sized(body_len, repair, fill)
}

/// The frame `make` builds around a payload, with the payload made by `fill` and sized so
/// that the body is exactly `body_len` bytes.
fn sized(
    body_len: usize,
    make: impl Fn(Vec<u8>) -> Frame,
    fill: impl Fn(usize) -> Vec<u8>,
) -> Frame {
    // The payload's length prefix grows with it, so converge on the right length.
    let mut payload_len = body_len;
    loop {
        let overhead = body_len_of(&make(vec![0; payload_len])) - payload_len;
        if payload_len + overhead == body_len {
            return make(fill(payload_len));
        }
        payload_len = body_len - overhead;
    }
}

fn body_len_of(frame: &Frame) -> usize {
    let mut counter = ByteCounter(0);
    bincode::serde::encode_into_std_write(frame, &mut counter, BODY_CONFIG).unwrap();
    counter.0
}

struct ByteCounter(usize);

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn body_of(frame: &Frame) -> Vec<u8> {
    bincode::serde::encode_to_vec(frame, BODY_CONFIG).unwrap()
}

fn with_header(flags: u8, body: &[u8]) -> Vec<u8> {
    [&[VERSION_BYTE, flags][..], body].concat()
}

/// `body` compressed as one zstd frame that declares a window of `2^log` bytes.
fn zstd_with_window_log(body: &[u8], log: u32) -> Vec<u8> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    encoder
        .set_parameter(zstd::zstd_safe::CParameter::WindowLog(log))
        .unwrap();
    encoder.include_contentsize(false).unwrap();
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

/// splitmix64: small, fast and good enough to pick test inputs.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; `n` must not be zero.
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(len + 8);
        while bytes.len() < len {
            bytes.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        bytes.truncate(len);
        bytes
    }
}

#[test]
fn plain_bytes_of_a_received_frame_match_what_its_sender_counted() {
    use crate::frame::Frame;
    let small = Frame::Ping { nonce: 3 };
    let large = Frame::Error {
        code: crate::frame::ErrorCode::Internal,
        message: "x".repeat(1000),
    };
    for frame in [small, large] {
        let (bytes, stats) = encode_with_stats(&frame).unwrap();
        assert_eq!(plain_bytes(&bytes), stats.plain_bytes(), "{}", frame.name());
    }
}

#[test]
fn plain_bytes_believe_no_hostile_header_past_the_body_limit() {
    // A zstd frame header declaring 2^40 bytes of content.
    let mut wire = vec![1, 1];
    wire.extend([0x28, 0xb5, 0x2f, 0xfd, 0xe0]);
    wire.extend((1u64 << 40).to_le_bytes());
    let declared = zstd::zstd_safe::get_frame_content_size(&wire[2..]);
    assert!(matches!(declared, Ok(Some(size)) if size == 1 << 40));
    assert_eq!(plain_bytes(&wire), HEADER_BYTES + BODY_BYTES_MAX);
    assert_eq!(plain_bytes(&[1]), 1, "a runt is counted as received");
}
