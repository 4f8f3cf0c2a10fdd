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
    let config = bincode::config::standard().with_limit::<ROW_BYTES_MAX>();
    let (row, used) = bincode::serde::decode_from_slice(&bytes[1..], config)
        .map_err(|e| RowError::Body(e.to_string()))?;
    if used + 1 != bytes.len() {
        return Err(RowError::TrailingBytes);
    }
    Ok(row)
}
