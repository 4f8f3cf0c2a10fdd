//! A look at Automerge's binary chunks before Automerge parses them, for stored documents
//! and changes read back from a file.
//!
//! Automerge 0.12 parses a chunk's columns before it compares the chunk's checksum, and
//! on some damaged bytes its parser (hexane 1.0.0-alpha.5, `lib.rs:354`) panics after
//! allocating tens of megabytes for a few hundred bytes of input (found by the
//! `stored_record_decode` fuzz target; the input is
//! `fuzz/artifacts/stored_record_decode/automerge-load-panics`, and the report for upstream is
//! `docs/upstream/automerge-load-panics.md`). [`check_chunks`] walks the chunk headers,
//! refuses chunk types the caller never writes, and verifies each checksum (the first
//! four bytes of the SHA-256 of the chunk's type, length and contents) first, so damaged
//! bytes are refused in time and memory linear in their length and never reach that
//! parser. It is the one place this workaround lives; both the device and the relay call
//! it where they load stored documents.
//!
//! Bytes made on purpose to match their checksum still reach Automerge: the callers load
//! under `catch_unwind` as well, and such bytes are not damage but forgery of a file only
//! its own process writes.

use sha2::{Digest, Sha256};

/// The four bytes every Automerge chunk starts with.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// Chunk type: a whole document (`Automerge::save`).
pub const CHUNK_DOCUMENT: u8 = 0;
/// Chunk type: one change (`Change::raw_bytes`).
pub const CHUNK_CHANGE: u8 = 1;
/// Chunk type: one deflate-compressed change (`Change::bytes` of a large change). Its
/// checksum is that of the change inside, so only Automerge can verify it.
pub const CHUNK_COMPRESSED: u8 = 2;

/// Checks that `bytes` is a sequence of whole Automerge chunks, each of a type in
/// `allowed` and, unless compressed, with a checksum that matches its contents. Returns
/// how many chunks there are, or what is wrong in words. Empty bytes hold no chunk.
pub fn check_chunks(bytes: &[u8], allowed: &[u8]) -> Result<usize, String> {
    let mut rest = bytes;
    let mut count = 0;
    while !rest.is_empty() {
        let at = bytes.len() - rest.len();
        let fail = |what: &str| Err(format!("Automerge chunk at byte {at}: {what}"));
        if rest.len() < 10 {
            return fail("truncated header");
        }
        if rest[..4] != MAGIC {
            return fail("not a chunk (magic bytes differ)");
        }
        let checksum = &rest[4..8];
        let kind = rest[8];
        if !allowed.contains(&kind) {
            return fail(&format!("chunk type {kind} is not one stored here"));
        }
        let Some((len, len_bytes)) = uleb128(&rest[9..]) else {
            return fail("length is not a number");
        };
        let start = 9 + len_bytes;
        let Some(data) = usize::try_from(len)
            .ok()
            .and_then(|len| rest.get(start..start.checked_add(len)?))
        else {
            return fail(&format!("length {len} runs past the end"));
        };
        if kind != CHUNK_COMPRESSED && checksum != &chunk_hash(kind, data)[..4] {
            return fail("checksum does not match its contents");
        }
        rest = &rest[start + data.len()..];
        count += 1;
    }
    Ok(count)
}

/// Automerge's hash of a chunk: SHA-256 of its type, its length (LEB128) and contents.
fn chunk_hash(kind: u8, data: &[u8]) -> [u8; 32] {
    let mut header = vec![kind];
    let mut len = data.len() as u64;
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            header.push(byte);
            break;
        }
        header.push(byte | 0x80);
    }
    let mut hasher = Sha256::new();
    hasher.update(&header);
    hasher.update(data);
    hasher.finalize().into()
}

/// An unsigned LEB128 number at the start of `bytes` and how many bytes it took; `None`
/// when it does not end within ten bytes or overflows 64 bits.
fn uleb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        let low = u64::from(byte & 0x7f);
        let shift = 7 * i as u32;
        if shift == 63 && low > 1 {
            return None;
        }
        value |= low << shift;
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests;
