//! Frames to bytes and back: a version byte, a flags byte, then a bincode body that is
//! zstd-compressed when that pays.
//!
//! Decoding trusts nothing it reads. Every length is checked against a limit before memory
//! is claimed for it: the frame's size first, then the decompressed size as it grows, then
//! each length prefix in the body (see the `bounded` module).

use std::io::{self, Read};

use bincode::config::{self, Configuration, Limit, LittleEndian, Varint};

use crate::bounded::{self, Trapped};
use crate::error::{DecodeError, EncodeError};
use crate::frame::Frame;
use crate::limits::{
    BATCH_ENTRIES_MAX, BODY_BYTES_MAX, CHANGES_PER_ENTRY_MAX, COMPRESS_LEVEL,
    COMPRESS_SAVINGS_PERCENT_MIN, COMPRESS_THRESHOLD_BYTES, COMPRESS_WINDOW_LOG_MAX,
    FRAME_BYTES_MAX, PROTOCOL_VERSION, PROTOCOL_VERSION_MIN_SUPPORTED,
};

#[cfg(test)]
mod tests;

/// Sizes of one encoded frame, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeStats {
    /// Size of the body before compression.
    pub body_bytes_plain: usize,
    /// Size of the body as sent: compressed if `compressed`, else `body_bytes_plain`.
    pub body_bytes_wire: usize,
    /// Whether the body was sent compressed.
    pub compressed: bool,
}

/// Encodes a frame for the wire.
///
/// Fails if the frame breaks a limit the other side holds it to, so that a frame this
/// returns is one [`decode`] accepts.
pub fn encode(frame: &Frame) -> Result<Vec<u8>, EncodeError> {
    encode_with_stats(frame).map(|(bytes, _)| bytes)
}

/// Encodes a frame for the wire, also returning its sizes before and after compression.
pub fn encode_with_stats(frame: &Frame) -> Result<(Vec<u8>, EncodeStats), EncodeError> {
    let mut bytes = vec![VERSION_BYTE, 0];
    bounded::trap(|| bincode::serde::encode_into_std_write(frame, &mut bytes, BODY_CONFIG))
        .map_err(|trapped| match trapped {
            Trapped::Limit(exceeded) => EncodeError::LimitExceeded(exceeded),
            Trapped::Other(source) => EncodeError::Body { source },
        })?;
    let body_bytes_plain = bytes.len() - HEADER_BYTES;
    if body_bytes_plain > BODY_BYTES_MAX {
        return Err(EncodeError::BodyTooLarge {
            len: body_bytes_plain,
            max: BODY_BYTES_MAX,
        });
    }

    if body_bytes_plain > COMPRESS_THRESHOLD_BYTES {
        let packed = zstd::bulk::compress(&bytes[HEADER_BYTES..], COMPRESS_LEVEL)
            .map_err(|source| EncodeError::Compress { source })?;
        if pays_off(body_bytes_plain, packed.len()) {
            bytes = Vec::with_capacity(HEADER_BYTES + packed.len());
            bytes.extend_from_slice(&[VERSION_BYTE, FLAG_COMPRESSED]);
            bytes.extend_from_slice(&packed);
        }
    }

    if bytes.len() > FRAME_BYTES_MAX {
        return Err(EncodeError::FrameTooLarge {
            len: bytes.len(),
            max: FRAME_BYTES_MAX,
        });
    }
    let stats = EncodeStats {
        body_bytes_plain,
        body_bytes_wire: bytes.len() - HEADER_BYTES,
        compressed: bytes[1] & FLAG_COMPRESSED != 0,
    };
    Ok((bytes, stats))
}

/// Decodes a frame received from the wire.
///
/// Any input, however malformed or hostile, gives an error rather than a panic, and costs at
/// most [`BODY_BYTES_MAX`] of memory for the body plus the frame it decodes to.
pub fn decode(bytes: &[u8]) -> Result<Frame, DecodeError> {
    if bytes.len() > FRAME_BYTES_MAX {
        return Err(DecodeError::FrameTooLarge {
            len: bytes.len(),
            max: FRAME_BYTES_MAX,
        });
    }
    let [version, flags, payload @ ..] = bytes else {
        return Err(DecodeError::HeaderTruncated { len: bytes.len() });
    };
    let version = u16::from(*version);
    if !(PROTOCOL_VERSION_MIN_SUPPORTED..=PROTOCOL_VERSION).contains(&version) {
        return Err(DecodeError::UnsupportedVersion { got: version });
    }
    if flags & !FLAG_COMPRESSED != 0 {
        return Err(DecodeError::UnknownFlags { flags: *flags });
    }
    if flags & FLAG_COMPRESSED == 0 {
        return decode_body(payload);
    }
    decode_body(&decompress(payload)?)
}

/// Bytes before a frame's body: the version byte and the flags byte.
pub const HEADER_BYTES: usize = 2;

/// The size of a frame as received, with its body uncompressed and its header counted, for
/// metrics: the content size a compressed body's zstd header declares (the encoder always
/// writes it), else the size as received. A hostile header may declare anything; it is
/// clamped to what [`decode`] would ever inflate.
pub fn plain_bytes(wire: &[u8]) -> usize {
    match wire {
        [_, flags, body @ ..] if flags & FLAG_COMPRESSED != 0 => {
            match zstd::zstd_safe::get_frame_content_size(body) {
                Ok(Some(size)) => {
                    let size = usize::try_from(size).unwrap_or(BODY_BYTES_MAX);
                    HEADER_BYTES + size.min(BODY_BYTES_MAX)
                }
                _ => wire.len(),
            }
        }
        _ => wire.len(),
    }
}

impl EncodeStats {
    /// The frame's size with its body uncompressed, header counted: what
    /// [`plain_bytes`] says of it once received.
    pub fn plain_bytes(&self) -> usize {
        HEADER_BYTES + self.body_bytes_plain
    }
}

/// Byte 0: the version, which must fit a byte (checked in `limits`).
const VERSION_BYTE: u8 = PROTOCOL_VERSION as u8;

/// Flags bit 0: the body is one zstd frame. The other bits are reserved and must be zero.
const FLAG_COMPRESSED: u8 = 0b0000_0001;

/// bincode's standard layout: little-endian, variable-length integers and length prefixes.
/// The limit bounds the bytes one decode may claim; it has no effect on encoding.
const BODY_CONFIG: Configuration<LittleEndian, Varint, Limit<CLAIM_BYTES_MAX>> =
    config::standard().with_limit::<CLAIM_BYTES_MAX>();

/// The most bytes bincode may claim while decoding one body.
///
/// bincode claims each byte string at its length, but each integer at its width in memory
/// (8 bytes for a length prefix) rather than its 1 to 9 bytes on the wire, so a valid body
/// claims more than its size. The excess is at most 8 bytes per integer, and the list limits
/// bound the integers: a batch of entries of changes has the most, fewer than
/// `BATCH_ENTRIES_MAX * (CHANGES_PER_ENTRY_MAX + 8)`.
const CLAIM_BYTES_MAX: usize = BODY_BYTES_MAX + 8 * BATCH_ENTRIES_MAX * (CHANGES_PER_ENTRY_MAX + 8);

/// Bytes read from the decompressor at a time.
const INFLATE_CHUNK_BYTES: usize = 16 * 1024;

/// Whether a compressed body saves enough over the plain one to be sent instead.
fn pays_off(plain_len: usize, packed_len: usize) -> bool {
    let percent_kept_max = (100 - COMPRESS_SAVINGS_PERCENT_MIN) as u64;
    (packed_len as u64) * 100 <= (plain_len as u64) * percent_kept_max
}

fn decode_body(body: &[u8]) -> Result<Frame, DecodeError> {
    let (frame, read) =
        bounded::trap(|| bincode::serde::decode_from_slice::<Frame, _>(body, BODY_CONFIG))
            .map_err(|trapped| match trapped {
                Trapped::Limit(exceeded) => DecodeError::LimitExceeded(exceeded),
                Trapped::Other(source) => DecodeError::Body { source },
            })?;
    if read < body.len() {
        return Err(DecodeError::TrailingBytes {
            len: body.len() - read,
        });
    }
    Ok(frame)
}

/// Inflates a compressed body, stopping with an error once it passes [`BODY_BYTES_MAX`].
fn decompress(payload: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let corrupt = |source| DecodeError::Decompress { source };
    let mut decoder = zstd::stream::read::Decoder::with_buffer(payload)
        .map_err(corrupt)?
        .single_frame();
    decoder
        .window_log_max(COMPRESS_WINDOW_LOG_MAX)
        .map_err(corrupt)?;

    // One byte past the limit is enough to know the limit is passed.
    let mut capped = decoder.take(BODY_BYTES_MAX as u64 + 1);
    let body = read_capped(&mut capped, BODY_BYTES_MAX)?;
    let rest = capped.into_inner().finish();
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { len: rest.len() });
    }
    Ok(body)
}

/// Reads `reader` to its end, failing once more than `cap` bytes come out.
///
/// The buffer grows by doubling but never past `cap`, so a body that passes the cap is
/// refused having cost at most `cap` bytes (`read_to_end` could double to twice that).
fn read_capped(reader: &mut impl Read, cap: usize) -> Result<Vec<u8>, DecodeError> {
    let mut body = Vec::new();
    let mut chunk = [0; INFLATE_CHUNK_BYTES];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(body),
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(DecodeError::Decompress { source }),
        };
        if n > cap - body.len() {
            return Err(DecodeError::BodyTooLarge { max: cap });
        }
        if n > body.capacity() - body.len() {
            let capacity = (body.capacity() * 2).max(body.len() + n).min(cap);
            body.reserve_exact(capacity - body.len());
        }
        body.extend_from_slice(&chunk[..n]);
    }
}
