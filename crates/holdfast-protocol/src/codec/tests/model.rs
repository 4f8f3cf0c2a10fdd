//! An independent model of the version 1 body layout, with no limits, to build the frames
//! `encode` refuses to produce.
//!
//! Only variant order, field order and field types matter to bincode: a UUID is a byte
//! string of 16 (written here as a `Vec<u8>`, which bincode lays out the same way), a space
//! id or token is a string.

// Variants never built here still hold the wire index of those after them.
#![allow(dead_code)]

use serde::Serialize;

#[derive(Serialize)]
pub(super) enum Frame {
    Hello {
        protocol: u16,
        device: Vec<u8>,
        token: String,
        spaces: Vec<SpaceCursor>,
    },
    Welcome {
        relay_id: Vec<u8>,
        epoch: u64,
        limits: (u32, u32, u32, u32, u64, u32),
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    Push {
        entries: Vec<PushEntry>,
    },
    Ack {
        results: Vec<AckResult>,
    },
    Pull {
        space: String,
        cursor: (u64, u64),
        max_bytes: u64,
    },
    Changes {
        space: String,
        entries: Vec<ChangeEntry>,
        next_cursor: (u64, u64),
        more: bool,
    },
    Repair {
        space: String,
        record: Vec<u8>,
        message: Vec<u8>,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
}

#[derive(Serialize)]
pub(super) struct SpaceCursor {
    pub space: String,
    pub cursor: Option<(u64, u64)>,
}

#[derive(Serialize)]
pub(super) struct PushEntry {
    pub event_id: Vec<u8>,
    pub space: String,
    pub record: Vec<u8>,
    pub changes: Vec<Vec<u8>>,
}

#[derive(Serialize)]
pub(super) struct AckResult {
    pub event_id: Vec<u8>,
    pub outcome: Outcome,
}

#[derive(Serialize)]
pub(super) enum Outcome {
    Stored {
        seq: u64,
    },
    Duplicate {
        seq: u64,
    },
    Rejected {
        code: RejectCode,
        reason: String,
        permanent: bool,
    },
}

#[derive(Serialize)]
pub(super) enum ErrorCode {
    Unauthorized,
}

#[derive(Serialize)]
pub(super) enum RejectCode {
    Forbidden { space: String },
    MissingDependencies,
}

#[derive(Serialize)]
pub(super) struct ChangeEntry {
    pub seq: u64,
    pub record: Vec<u8>,
    pub event_id: Vec<u8>,
    pub changes: Vec<Vec<u8>>,
}

/// The frame as version 1 puts it on the wire, uncompressed.
pub(super) fn bytes(frame: &Frame) -> Vec<u8> {
    let mut bytes = vec![1, 0];
    bytes.extend(bincode::serde::encode_to_vec(frame, bincode::config::standard()).unwrap());
    bytes
}
