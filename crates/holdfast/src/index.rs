//! Index keys: collection listing, space listing and indexed field values, all in one
//! ordered redb table so every query is a range scan.
//!
//! Key layouts (strings escaped so no key is a prefix of another; see `Value::index_encode`):
//! - `0x01 collection record`
//! - `0x02 space collection record`
//! - `0x03 collection field type value record`
//!
//! `record` is the 16 id bytes; UUID v7 ids make each listing sort by creation time.

use crate::value::Value;
use crate::{RecordId, SpaceId};

const TAG_COLLECTION: u8 = 1;
const TAG_SPACE: u8 = 2;
const TAG_FIELD: u8 = 3;

fn push_str(out: &mut Vec<u8>, s: &str) {
    Value::String(s.to_owned()).index_encode(out);
}

fn push_id(out: &mut Vec<u8>, id: Option<RecordId>) {
    if let Some(id) = id {
        out.extend_from_slice(id.as_bytes());
    }
}

/// The key of a record in its collection listing; without `id`, the listing's prefix.
pub(crate) fn collection_key(collection: &str, id: Option<RecordId>) -> Vec<u8> {
    let mut k = vec![TAG_COLLECTION];
    push_str(&mut k, collection);
    push_id(&mut k, id);
    k
}

/// The key of a record in its space listing; without `id`, the prefix of that collection
/// within the space.
pub(crate) fn space_key(space: &SpaceId, collection: &str, id: Option<RecordId>) -> Vec<u8> {
    let mut k = space_prefix(space);
    push_str(&mut k, collection);
    push_id(&mut k, id);
    k
}

/// The prefix of all records of a space.
pub(crate) fn space_prefix(space: &SpaceId) -> Vec<u8> {
    let mut k = vec![TAG_SPACE];
    push_str(&mut k, space.as_str());
    k
}

/// The prefix of all index entries of one field.
pub(crate) fn field_prefix(collection: &str, field: &str) -> Vec<u8> {
    let mut k = vec![TAG_FIELD];
    push_str(&mut k, collection);
    push_str(&mut k, field);
    k
}

/// The key of an indexed value; without `id`, the prefix of all records with that value.
pub(crate) fn field_key(
    collection: &str,
    field: &str,
    value: &Value,
    id: Option<RecordId>,
) -> Vec<u8> {
    let mut k = field_prefix(collection, field);
    k.push(value.scalar_type() as u8);
    value.index_encode(&mut k);
    push_id(&mut k, id);
    k
}

/// The record id at the end of any index key.
pub(crate) fn record_of(key: &[u8]) -> RecordId {
    let tail: [u8; 16] = key[key.len() - 16..]
        .try_into()
        .expect("index keys end in an id");
    RecordId::from_bytes(tail)
}

/// The smallest key greater than every key starting with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xFF; prefix.len() + 1]
}
