//! Errors of encoding and decoding frames, and of making ids.

use std::fmt;

use thiserror::Error;

use crate::frame::ErrorCode;
use crate::limits::{
    BATCH_ENTRIES_MAX, CHANGES_PER_ENTRY_MAX, FRAME_BYTES_MAX, MESSAGE_BYTES_MAX, PROTOCOL_VERSION,
    PROTOCOL_VERSION_MIN_SUPPORTED, SPACES_PER_HELLO_MAX, TOKEN_BYTES_MAX,
};

/// Why [`encode`](crate::encode) refused a frame.
///
/// Apart from `Compress`, the frame breaks a limit the other side would refuse it for: a
/// batch the caller should have split, or a bug.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A list or a string in the frame is longer than the protocol allows.
    #[error(transparent)]
    LimitExceeded(#[from] LimitExceeded),

    /// The body is larger than [`BODY_BYTES_MAX`](crate::limits::BODY_BYTES_MAX).
    #[error("frame body is {len} bytes, more than the limit of {max}")]
    BodyTooLarge {
        /// Size of the body.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The encoded frame is larger than [`FRAME_BYTES_MAX`], even after compression.
    #[error("encoded frame is {len} bytes, more than the limit of {max}")]
    FrameTooLarge {
        /// Size of the encoded frame.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// bincode could not serialize the body.
    #[error("could not serialize the frame body")]
    Body {
        /// What bincode reported.
        #[source]
        source: bincode::error::EncodeError,
    },

    /// zstd could not compress the body.
    #[error("could not compress the frame body")]
    Compress {
        /// What zstd reported.
        #[source]
        source: std::io::Error,
    },
}

/// Why [`decode`](crate::decode) refused some bytes.
///
/// [`DecodeError::code`] gives the [`ErrorCode`] a relay answers with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is larger than [`FRAME_BYTES_MAX`]; none of it was read.
    #[error("frame is {len} bytes, more than the limit of {max}")]
    FrameTooLarge {
        /// Size of the frame.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The frame is shorter than its two-byte header.
    #[error("frame is {len} bytes, shorter than its 2-byte header")]
    HeaderTruncated {
        /// Size of the frame.
        len: usize,
    },

    /// The frame's version byte is outside the versions this crate decodes.
    #[error(
        "protocol version {got} is not supported (supported: \
         {PROTOCOL_VERSION_MIN_SUPPORTED} to {PROTOCOL_VERSION})"
    )]
    UnsupportedVersion {
        /// The version the frame claims.
        got: u16,
    },

    /// The flags byte has bits set that this version does not define.
    #[error("frame flags {flags:#010b} set undefined bits")]
    UnknownFlags {
        /// The whole flags byte.
        flags: u8,
    },

    /// The compressed body inflates to more than
    /// [`BODY_BYTES_MAX`](crate::limits::BODY_BYTES_MAX); decompression stopped there.
    #[error("decompressed frame body is more than the limit of {max} bytes")]
    BodyTooLarge {
        /// The limit.
        max: usize,
    },

    /// The compressed body is not a valid zstd frame within the window limit.
    #[error("compressed frame body is corrupt")]
    Decompress {
        /// What zstd reported.
        #[source]
        source: std::io::Error,
    },

    /// The body is not a valid frame.
    #[error("frame body is malformed")]
    Body {
        /// What bincode reported.
        #[source]
        source: bincode::error::DecodeError,
    },

    /// Bytes follow the end of the body (or of the compressed body).
    #[error("{len} unexpected bytes follow the frame body")]
    TrailingBytes {
        /// How many bytes follow.
        len: usize,
    },

    /// A list or a string in the frame is longer than the protocol allows.
    #[error(transparent)]
    LimitExceeded(#[from] LimitExceeded),
}

impl DecodeError {
    /// The code a relay sends back in an `Error` frame when a device's frame fails to decode.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::FrameTooLarge { .. } | Self::BodyTooLarge { .. } => ErrorCode::FrameTooLarge {
                max: FRAME_BYTES_MAX as u32,
            },
            Self::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion {
                min: PROTOCOL_VERSION_MIN_SUPPORTED,
                max: PROTOCOL_VERSION,
            },
            _ => ErrorCode::Malformed,
        }
    }
}

/// A list or a string in a frame is longer than the protocol allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("{actual} {kind} exceed the limit of {max}")]
#[non_exhaustive]
pub struct LimitExceeded {
    /// Which limit.
    pub kind: LimitKind,
    /// The length found. When decoding it is the length the frame claims, which the frame
    /// may not actually hold.
    pub actual: usize,
    /// The limit.
    pub max: usize,
}

/// The limits a frame's lists and strings are held to, each a constant in
/// [`limits`](crate::limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitKind {
    /// Entries in a `Push` or `Changes`, or results in an `Ack`: [`BATCH_ENTRIES_MAX`].
    BatchEntries,
    /// Changes in one push or change entry: [`CHANGES_PER_ENTRY_MAX`].
    ChangesPerEntry,
    /// Spaces in a `Hello`: [`SPACES_PER_HELLO_MAX`].
    SpacesPerHello,
    /// Bytes of a `Hello`'s token: [`TOKEN_BYTES_MAX`].
    TokenBytes,
    /// Bytes of an error message or rejection reason: [`MESSAGE_BYTES_MAX`].
    MessageBytes,
}

impl LimitKind {
    /// The value of the limit.
    pub const fn max(self) -> usize {
        match self {
            Self::BatchEntries => BATCH_ENTRIES_MAX,
            Self::ChangesPerEntry => CHANGES_PER_ENTRY_MAX,
            Self::SpacesPerHello => SPACES_PER_HELLO_MAX,
            Self::TokenBytes => TOKEN_BYTES_MAX,
            Self::MessageBytes => MESSAGE_BYTES_MAX,
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BatchEntries => "entries in one batch",
            Self::ChangesPerEntry => "changes in one entry",
            Self::SpacesPerHello => "spaces in one hello",
            Self::TokenBytes => "bytes of token",
            Self::MessageBytes => "bytes of message",
        })
    }
}

/// Why a string is not a valid [`SpaceId`](crate::SpaceId).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InvalidSpaceId {
    /// The name is empty.
    #[error("space id is empty")]
    Empty,

    /// The name is longer than [`SPACE_ID_BYTES_MAX`](crate::limits::SPACE_ID_BYTES_MAX).
    #[error("space id is {len} bytes, more than the limit of {max}")]
    TooLong {
        /// Length of the name in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// The name contains a character other than an ASCII letter, digit, `.`, `_` or `-`.
    #[error(
        "space id contains {ch:?} at byte {index}; only ASCII letters, digits, '.', '_' \
         and '-' are allowed"
    )]
    InvalidChar {
        /// The first character not allowed.
        ch: char,
        /// Its byte offset in the name.
        index: usize,
    },
}
