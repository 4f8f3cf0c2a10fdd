//! Versioned rows: how the device store and the relay persist a value. One version byte,
//! then the bincode 2 body; decoding is bounded and refuses trailing bytes. Shared here so
//! both sides of the sync read their files the same careful way without the relay
//! depending on the device library.

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use crate::limits::ROW_BYTES_MAX;

#[cfg(test)]
mod tests;

/// Why a stored row does not decode: the file is damaged or from a newer version.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RowError {
    /// No bytes at all.
    #[error("empty")]
    Empty,
    /// A row version this code does not know.
    #[error("unknown row version {0}")]
    UnknownVersion(u8),
    /// The body does not decode (or claims more than [`ROW_BYTES_MAX`]).
    #[error("{0}")]
    Body(String),
    /// Bytes left after the body.
    #[error("trailing bytes")]
    TrailingBytes,
}

/// A row: `version`, then the bincode body of `row`.
pub fn encode_row<T: Serialize>(version: u8, row: &T) -> Vec<u8> {
    let mut out = vec![version];
    // Serializing plain structs into a Vec cannot fail.
    let body =
        bincode::serde::encode_to_vec(row, bincode::config::standard()).expect("row encodes");
    out.extend_from_slice(&body);
    out
}

/// Decodes a row written by [`encode_row`] with the same `version`.
pub fn decode_row<T: DeserializeOwned>(version: u8, bytes: &[u8]) -> Result<T, RowError> {
    match bytes.first() {
        Some(v) if *v == version => {}
        Some(v) => return Err(RowError::UnknownVersion(*v)),
        None => return Err(RowError::Empty),
    }
    let body = &bytes[1..];
    let (row, used) = decode_body(body).map_err(|e| RowError::Body(plain(&e)))?;
    if used + 1 != bytes.len() {
        return Err(RowError::TrailingBytes);
    }
    Ok(row)
}

/// Most bytes decoding may claim (bincode's measure: the in-memory size of what it is about
/// to read) per byte of row, a bound no valid row comes near: a one-byte length prefix of
/// an empty list becomes a 24-byte header, and nothing in a row grows more than that.
pub const ROW_CLAIM_BYTES_PER_BYTE: usize = 64;

/// What is wrong with a body, in plain words: bincode's own text for some errors is a
/// debug dump (`Utf8 { inner: Utf8Error { .. } }`), and it reaches users.
fn plain(error: &bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError as E;
    match error {
        E::UnexpectedEnd { .. } => "the row ends early".into(),
        E::LimitExceeded => "the row claims more bytes than it can hold".into(),
        E::Utf8 { .. } => "a text in the row is not UTF-8".into(),
        E::InvalidBooleanValue(_) | E::InvalidCharEncoding(_) => {
            "a value in the row is not valid".into()
        }
        E::UnexpectedVariant { .. } => "the row names a kind that does not exist".into(),
        _ => "the row does not decode".into(),
    }
}

/// Decodes a row body with bincode's claim limit scaled to the body's length, so a damaged
/// length prefix claiming far more than the row holds is refused before anything is
/// allocated: bincode reserves a string's or a byte string's claimed length before reading
/// it, so under the flat [`ROW_BYTES_MAX`] limit ten bytes of damaged row could allocate
/// 256 MiB (found by the `stored_record_decode` fuzz target). The limit is a const generic,
/// so it comes in steps of four; a row is never held to less than four times its claim
/// bound.
fn decode_body<T: DeserializeOwned>(
    body: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    use bincode::config::standard;
    use bincode::serde::decode_from_slice;
    let claim = body
        .len()
        .saturating_mul(ROW_CLAIM_BYTES_PER_BYTE)
        .saturating_add(4096);
    match claim {
        0..=0x4000 => decode_from_slice(body, standard().with_limit::<0x4000>()),
        0x4001..=0x1_0000 => decode_from_slice(body, standard().with_limit::<0x1_0000>()),
        0x1_0001..=0x4_0000 => decode_from_slice(body, standard().with_limit::<0x4_0000>()),
        0x4_0001..=0x10_0000 => decode_from_slice(body, standard().with_limit::<0x10_0000>()),
        0x10_0001..=0x40_0000 => decode_from_slice(body, standard().with_limit::<0x40_0000>()),
        0x40_0001..=0x100_0000 => decode_from_slice(body, standard().with_limit::<0x100_0000>()),
        0x100_0001..=0x400_0000 => decode_from_slice(body, standard().with_limit::<0x400_0000>()),
        _ => decode_from_slice(body, standard().with_limit::<ROW_BYTES_MAX>()),
    }
}
