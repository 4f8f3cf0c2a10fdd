//! Bad input to the real binary: each bad peer is answered with an `Error` frame of the
//! right code and a close, and gets no document byte, while a device welcomed before it
//! goes on pushing.

use std::io::Write;
use std::time::{Duration, SystemTime};

use automerge::sync::SyncDoc;
use holdfast_protocol::limits::{BODY_BYTES_MAX, FRAME_BYTES_MAX};
use holdfast_protocol::{encode, Cursor, ErrorCode, Frame, RecordId, SpaceId};
use holdfast_relay::{RoleClaim, Secret};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{hello, Peer, Relay};
use crate::{entry, seed, space, stored, Doc, Rng};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_the_right_code_while_a_welcomed_device_keeps_pushing() {
    let mut bystander = Bystander::start().await;
    let token = bystander.token.clone();
    let team = bystander.team.clone();
    let other = space("other");
    let mut rng = Rng(seed());

    let malformed = || ErrorCode::Malformed;
    let unauthorized = || ErrorCode::Unauthorized;
    let forbidden = || ErrorCode::Forbidden {
        space: team.clone(),
    };
    let unsupported = || ErrorCode::UnsupportedVersion { min: 1, max: 1 };
    let too_large = || ErrorCode::FrameTooLarge {
        max: FRAME_BYTES_MAX as u32,
    };

    // Bytes that are no frame, before any hello.
    let mut garbage = vec![1, 0, 13 + rng.below(200) as u8];
    garbage.extend((0..rng.below(512)).map(|_| rng.next() as u8));
    bystander
        .check("a variant no frame has", None, garbage, malformed(), 1002)
        .await;
    bystander
        .check("a cut header", None, vec![1], malformed(), 1002)
        .await;
    let mut body: Vec<u8> = vec![1, 0, 3];
    body.extend((0..64 + rng.below(512)).map(|_| rng.next() as u8));
    let welcomed = Some((token.as_str(), &[][..]));
    bystander
        .check("a push of random bytes", welcomed, body, malformed(), 1002)
        .await;

    // Length prefixes claiming 2^40 elements or bytes, before and after the hello.
    let push = claiming_2_pow_40(Frame::Push { entries: vec![] });
    bystander
        .check("a push of 2^40 entries", welcomed, push, malformed(), 1002)
        .await;
    let spaces = claiming_2_pow_40(hello(&token, &[]));
    bystander
        .check("a hello of 2^40 spaces", None, spaces, malformed(), 1002)
        .await;
    let message = claiming_2_pow_40(Frame::Repair {
        space: team.clone(),
        record: RecordId::new_v7(),
        message: vec![],
    });
    bystander
        .check(
            "a repair of 2^40 bytes",
            welcomed,
            message,
            malformed(),
            1002,
        )
        .await;

    let bomb = zip_bomb();
    assert!(
        bomb.len() < 64 << 10,
        "a small message: {} bytes",
        bomb.len()
    );
    bystander
        .check("a zip bomb", welcomed, bomb, too_large(), 1009)
        .await;

    for version in [0, 2, 255] {
        let mut frame = encode(&hello(&token, &[])).unwrap();
        frame[0] = version;
        bystander
            .check("another version byte", None, frame, unsupported(), 1002)
            .await;
    }
    let mut newer = hello(&token, &[]);
    if let Frame::Hello { protocol, .. } = &mut newer {
        *protocol = 2;
    }
    let newer = encode(&newer).unwrap();
    bystander
        .check("a hello of protocol 2", None, newer, unsupported(), 1002)
        .await;

    let empty = encode(&hello("", &[&team])).unwrap();
    bystander
        .check("an empty token", None, empty, unauthorized(), 1008)
        .await;
    let write = [("team", RoleClaim::Write)];
    let hour = Duration::from_secs(60 * 60);
    let minted = SystemTime::now() - 2 * hour;
    let expired = Relay::token_signed(&bystander.relay.secret(), &write, minted, hour);
    let expired = encode(&hello(&expired, &[&team])).unwrap();
    bystander
        .check("an expired token", None, expired, unauthorized(), 1008)
        .await;
    let forger = Secret::new(vec![0x5a; 32]).unwrap();
    let forged = Relay::token_signed(&forger, &write, SystemTime::now(), hour);
    let forged = encode(&hello(&forged, &[&team])).unwrap();
    bystander
        .check("a forged token", None, forged, unauthorized(), 1008)
        .await;

    // A token for `other` reads nothing of `team`, however it asks.
    let elsewhere = bystander.relay.token(&["other:write"]).await;
    let naming = encode(&hello(&elsewhere, &[&other, &team])).unwrap();
    bystander
        .check("a hello naming team", None, naming, forbidden(), 1008)
        .await;
    let welcomed = Some((elsewhere.as_str(), &[&other][..]));
    let reads = [
        Frame::Pull {
            space: team.clone(),
            cursor: Cursor::start(bystander.epoch),
            max_bytes: 1 << 20,
        },
        Frame::Bootstrap {
            space: team.clone(),
            from: None,
            max_bytes: 1 << 20,
        },
        Frame::Repair {
            space: team.clone(),
            record: bystander.doc.record,
            message: first_sync_message_of_an_empty_document(),
        },
    ];
    for read in reads {
        let what = format!("a {} of team", read.name());
        let bytes = encode(&read).unwrap();
        bystander
            .check(&what, welcomed, bytes, forbidden(), 1008)
            .await;
    }
}

/// A relay, and a device welcomed on it that pushes after each bad peer is gone.
struct Bystander {
    relay: Relay,
    team: SpaceId,
    token: String,
    device: Peer,
    epoch: u64,
    doc: Doc,
    seq: u64,
}

impl Bystander {
    async fn start() -> Self {
        let relay = Relay::start(&[]).await;
        let team = space("team");
        let token = relay.token(&["team:write"]).await;
        let (device, epoch) = relay.device(&token, &[]).await;
        let mut bystander = Self {
            relay,
            team,
            token,
            device,
            epoch,
            doc: Doc::new(),
            seq: 0,
        };
        // The space has changes a bad peer could be sent.
        bystander.still_works().await;
        bystander
    }

    /// Sends `bytes` as one message on a new connection, first welcomed with a token and
    /// spaces if given: the relay answers `Error { code }` and closes with `close_code`,
    /// sending nothing else. Then the bystander pushes and is acked.
    async fn check(
        &mut self,
        what: &str,
        welcomed: Option<(&str, &[&SpaceId])>,
        bytes: Vec<u8>,
        code: ErrorCode,
        close_code: u16,
    ) {
        eprintln!("case: {what}");
        let mut peer = match welcomed {
            Some((token, spaces)) => self.relay.device(token, spaces).await.0,
            None => self.relay.connect().await,
        };
        peer.send_raw(Message::binary(bytes)).await;
        let (frames, closed) = peer.frames_until_close().await;
        match &frames[..] {
            [Frame::Error { code: got, .. }] => assert_eq!(got, &code, "{what}"),
            other => panic!("{what}: expected one error frame, got {other:?}"),
        }
        assert_eq!(closed, Some(close_code), "{what}");
        self.still_works().await;
    }

    /// The welcomed device pushes one entry and has it acked as stored.
    async fn still_works(&mut self) {
        let pushed = entry(&self.team, self.doc.record, vec![self.doc.change()]);
        self.seq += 1;
        assert_eq!(self.device.push(&[pushed]).await.0, [stored(self.seq)]);
    }
}

/// What a device holding nothing of a record sends first: answered with every change.
fn first_sync_message_of_an_empty_document() -> Vec<u8> {
    let mut state = automerge::sync::State::new();
    let message = automerge::Automerge::new().generate_sync_message(&mut state);
    message.expect("a first message").encode()
}

/// `frame` encoded, with its last length prefix (which must be its last byte: an empty
/// list or byte string) replaced by one claiming 2^40 elements, and nothing after it.
fn claiming_2_pow_40(frame: Frame) -> Vec<u8> {
    let mut bytes = encode(&frame).unwrap();
    assert_eq!(bytes.pop(), Some(0), "ends with an empty length prefix");
    bytes.push(253);
    bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
    bytes
}

/// A message flagged compressed whose body is a small zstd stream of zeros that inflates
/// to a MiB more than `BODY_BYTES_MAX`.
fn zip_bomb() -> Vec<u8> {
    let header = vec![1, 0b0000_0001];
    let mut encoder = zstd::stream::Encoder::new(header, 3).unwrap();
    let zeros = vec![0; 1 << 20];
    for _ in 0..=BODY_BYTES_MAX >> 20 {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.finish().unwrap()
}
