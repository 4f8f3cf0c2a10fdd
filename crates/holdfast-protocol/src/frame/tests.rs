use super::*;
use crate::error::DecodeError;
use crate::limits::PROTOCOL_VERSION;

#[test]
fn error_messages_are_plain_words() {
    let team = SpaceId::new("team-notes").unwrap();
    check(
        ErrorCode::Unauthorized,
        "Your sign-in has expired or is not valid for this sync server",
    );
    check(
        ErrorCode::Forbidden {
            space: team.clone(),
        },
        "You no longer have access to team-notes",
    );
    check(
        ErrorCode::UnsupportedVersion { min: 1, max: 1 },
        "This version of the app cannot sync with this server; check for an app update",
    );
    check(
        ErrorCode::FrameTooLarge { max: 16 << 20 },
        "A change was too large to send to the sync server (limit 16 MB)",
    );
    check(
        ErrorCode::Malformed,
        "The sync server could not understand this app's data",
    );
    check(
        ErrorCode::RateLimited {
            retry_after_secs: 30,
        },
        "Sync server is limiting requests, retrying in 30 s",
    );
    check(
        ErrorCode::ServerBusy {
            retry_after_secs: 30,
        },
        "Sync server unavailable, retrying in 30 s",
    );
    check(
        ErrorCode::Internal,
        "The sync server ran into a problem, retrying later",
    );
}

#[test]
fn reject_messages_are_plain_words() {
    let team = SpaceId::new("team-notes").unwrap();
    check(
        RejectCode::Forbidden { space: team },
        "You no longer have write access to team-notes",
    );
    check(
        RejectCode::MissingDependencies,
        "This change builds on changes the sync server has not received yet, retrying",
    );
    check(
        RejectCode::DependencyRejected {
            event_id: EventId::from_bytes([0; 16]),
        },
        "This change builds on an earlier change the sync server refused",
    );
    check(
        RejectCode::RecordTooLarge { max: 64 << 20 },
        "This record is too large for the sync server (limit 64 MB)",
    );
    check(
        RejectCode::Malformed,
        "This change is damaged and cannot be synced",
    );
    check(
        RejectCode::RateLimited {
            retry_after_secs: 5,
        },
        "Sync server is limiting requests, retrying in 5 s",
    );
    check(
        RejectCode::Internal,
        "The sync server could not store this change, retrying later",
    );
}

#[track_caller]
fn check(code: impl fmt::Display, message: &str) {
    assert_eq!(code.to_string(), message);
}

#[test]
fn sizes_read_plainly() {
    check(Size(0), "0 bytes");
    check(Size(1023), "1023 bytes");
    check(Size(1024), "1 KB");
    check(Size(1024 * 1024 - 1), "1023 KB");
    check(Size(1024 * 1024), "1 MB");
    check(Size(u64::MAX), "17592186044415 MB");
}

#[test]
fn transient_errors() {
    assert!(ErrorCode::ServerBusy {
        retry_after_secs: 1
    }
    .is_transient());
    assert!(ErrorCode::RateLimited {
        retry_after_secs: 1
    }
    .is_transient());
    assert!(ErrorCode::Internal.is_transient());
    assert!(!ErrorCode::Unauthorized.is_transient());
    assert!(!ErrorCode::Malformed.is_transient());
}

#[test]
fn decode_errors_map_to_codes() {
    let code = |error: DecodeError| error.code();
    assert_eq!(
        code(DecodeError::FrameTooLarge { len: 1, max: 0 }),
        ErrorCode::FrameTooLarge { max: 16 << 20 }
    );
    assert_eq!(
        code(DecodeError::BodyTooLarge { max: 0 }),
        ErrorCode::FrameTooLarge { max: 16 << 20 }
    );
    assert_eq!(
        code(DecodeError::UnsupportedVersion { got: 9 }),
        ErrorCode::UnsupportedVersion {
            min: 1,
            max: PROTOCOL_VERSION
        }
    );
    assert_eq!(
        code(DecodeError::TrailingBytes { len: 1 }),
        ErrorCode::Malformed
    );
}

#[test]
fn token_debug_hides_the_token() {
    let hello = Frame::Hello {
        protocol: 1,
        device: DeviceId::from_bytes([0; 16]),
        token: Token::new("secret.jwt.value"),
        spaces: vec![],
    };
    let debug = format!("{hello:?}");
    assert!(!debug.contains("secret"), "{debug}");
    assert!(debug.contains("Token(<16 bytes>)"), "{debug}");
}

#[test]
fn cursors() {
    assert_eq!(Cursor::start(3), Cursor { epoch: 3, seq: 0 });
    assert_eq!(Cursor { epoch: 3, seq: 17 }.to_string(), "3/17");
}

#[test]
fn limits_default_to_the_protocol() {
    assert_eq!(Limits::default(), Limits::PROTOCOL);
    assert_eq!(Limits::PROTOCOL.frame_bytes_max as usize, FRAME_BYTES_MAX);
    assert_eq!(
        Limits::PROTOCOL.batch_entries_max as usize,
        BATCH_ENTRIES_MAX
    );
}

#[test]
fn frame_names() {
    assert_eq!(Frame::Ping { nonce: 1 }.name(), "ping");
    assert_eq!(Frame::Push { entries: vec![] }.name(), "push");
}

#[test]
fn frames_decode_from_owned_readers_too() {
    // bincode's reader-based decoder hands over owned strings and byte strings, where the
    // slice decoder `decode` uses lends them; the types must accept both.
    let frame = Frame::Push {
        entries: vec![PushEntry {
            event_id: EventId::from_bytes([1; 16]),
            space: SpaceId::new("team").unwrap(),
            record: RecordId::from_bytes([2; 16]),
            changes: vec![vec![1, 2, 3], vec![]],
        }],
    };
    let config = bincode::config::standard();
    let body = bincode::serde::encode_to_vec(&frame, config).unwrap();
    let owned: Frame = bincode::serde::decode_from_std_read(&mut &body[..], config).unwrap();
    assert_eq!(owned, frame);
}
