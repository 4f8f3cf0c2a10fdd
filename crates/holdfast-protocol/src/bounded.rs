//! Serde adapters that hold a frame's lists and strings to their limits while it is
//! serialized or deserialized.
//!
//! Checking the lengths after decoding would come too late: an entry claiming 60 million
//! empty changes costs one byte per change on the wire but 24 bytes per change in memory.
//! These adapters compare the length a frame claims with its limit before allocating
//! anything, and read strings and byte strings borrowed from the body, so that what decoding
//! allocates is bounded by the body it reads.
//!
//! serde's error types are chosen by the format, so a typed [`LimitExceeded`] cannot travel
//! up through them. An adapter that refuses parks the typed error in a thread-local and
//! returns a plain serde error; [`trap`], wrapped around the one encode or decode, picks the
//! typed error up again. Encoding and decoding are synchronous, so the slot cannot be seen
//! by another frame.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{self, Serialize, Serializer};

use crate::error::{LimitExceeded, LimitKind};

thread_local! {
    static EXCEEDED: Cell<Option<LimitExceeded>> = const { Cell::new(None) };
}

/// The failure of an encode or decode run by [`trap`].
pub(crate) enum Trapped<E> {
    /// An adapter refused a length.
    Limit(LimitExceeded),
    /// Anything else.
    Other(E),
}

/// Runs one encode or decode and tells a refused length apart from other failures.
pub(crate) fn trap<T, E>(run: impl FnOnce() -> Result<T, E>) -> Result<T, Trapped<E>> {
    EXCEEDED.set(None);
    let result = run();
    let exceeded = EXCEEDED.take();
    result.map_err(|error| match exceeded {
        Some(exceeded) => Trapped::Limit(exceeded),
        None => Trapped::Other(error),
    })
}

fn check(kind: LimitKind, actual: usize) -> Result<(), LimitExceeded> {
    let max = kind.max();
    if actual > max {
        let exceeded = LimitExceeded { kind, actual, max };
        EXCEEDED.set(Some(exceeded));
        return Err(exceeded);
    }
    Ok(())
}

fn check_ser<E: ser::Error>(kind: LimitKind, actual: usize) -> Result<(), E> {
    check(kind, actual).map_err(E::custom)
}

fn check_de<E: de::Error>(kind: LimitKind, actual: usize) -> Result<(), E> {
    check(kind, actual).map_err(E::custom)
}

/// `Vec<T>` of at most [`BATCH_ENTRIES_MAX`](crate::limits::BATCH_ENTRIES_MAX) elements.
pub(crate) mod batch {
    use super::*;

    pub(crate) fn serialize<S: Serializer, T: Serialize>(
        items: &[T],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serialize_seq(items, LimitKind::BatchEntries, serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Vec<T>, D::Error> {
        deserialize_seq(deserializer, LimitKind::BatchEntries)
    }
}

/// `Vec<T>` of at most [`SPACES_PER_HELLO_MAX`](crate::limits::SPACES_PER_HELLO_MAX)
/// elements.
pub(crate) mod spaces {
    use super::*;

    pub(crate) fn serialize<S: Serializer, T: Serialize>(
        items: &[T],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serialize_seq(items, LimitKind::SpacesPerHello, serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Vec<T>, D::Error> {
        deserialize_seq(deserializer, LimitKind::SpacesPerHello)
    }
}

/// `Vec<Vec<u8>>` of at most [`CHANGES_PER_ENTRY_MAX`](crate::limits::CHANGES_PER_ENTRY_MAX)
/// byte strings.
pub(crate) mod changes {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        changes: &[Vec<u8>],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        check_ser(LimitKind::ChangesPerEntry, changes.len())?;
        serializer.collect_seq(changes.iter().map(|change| BytesRef(change)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Vec<u8>>, D::Error> {
        let changes: Vec<ByteBuf> = deserialize_seq(deserializer, LimitKind::ChangesPerEntry)?;
        Ok(changes.into_iter().map(|change| change.0).collect())
    }
}

/// `Vec<u8>` as a byte string rather than a sequence of numbers, read borrowed.
pub(crate) mod bytes {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        ByteBuf::deserialize(deserializer).map(|bytes| bytes.0)
    }
}

/// `String` of at most [`MESSAGE_BYTES_MAX`](crate::limits::MESSAGE_BYTES_MAX) bytes.
pub(crate) mod message {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        message: &str,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serialize_str(message, LimitKind::MessageBytes, serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<String, D::Error> {
        deserialize_string(deserializer, LimitKind::MessageBytes)
    }
}

/// Serializes a string after checking its length against `kind`.
pub(crate) fn serialize_str<S: Serializer>(
    s: &str,
    kind: LimitKind,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    check_ser(kind, s.len())?;
    serializer.serialize_str(s)
}

/// Deserializes a string, refusing it before allocation if it is longer than `kind` allows.
pub(crate) fn deserialize_string<'de, D: Deserializer<'de>>(
    deserializer: D,
    kind: LimitKind,
) -> Result<String, D::Error> {
    deserializer.deserialize_str(StringVisitor { kind })
}

fn serialize_seq<S: Serializer, T: Serialize>(
    items: &[T],
    kind: LimitKind,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    check_ser(kind, items.len())?;
    serializer.collect_seq(items)
}

fn deserialize_seq<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
    kind: LimitKind,
) -> Result<Vec<T>, D::Error> {
    deserializer.deserialize_seq(SeqVisitor {
        kind,
        element: PhantomData,
    })
}

/// Most elements reserved before any is decoded; the rest grow with what the bytes hold.
const SEQ_RESERVE_MAX: usize = 16;

struct SeqVisitor<T> {
    kind: LimitKind,
    element: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for SeqVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a sequence of at most {} elements", self.kind.max())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        // bincode's hint is the length prefix, exact but not yet backed by bytes: it is
        // checked against the limit, and sizes at most a small first allocation, so a few
        // bytes claiming the most elements allowed reserve nothing much (the frame_decode
        // fuzz target found 12 bytes reserving 72 KiB when the claim sized it whole).
        let claimed = seq.size_hint().unwrap_or(0);
        check_de(self.kind, claimed)?;
        let mut items = Vec::with_capacity(claimed.min(SEQ_RESERVE_MAX));
        while let Some(item) = seq.next_element()? {
            check_de(self.kind, items.len() + 1)?;
            items.push(item);
        }
        Ok(items)
    }
}

struct StringVisitor {
    kind: LimitKind,
}

impl Visitor<'_> for StringVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a string of at most {} bytes", self.kind.max())
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<String, E> {
        check_de(self.kind, s.len())?;
        Ok(s.to_owned())
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<String, E> {
        check_de(self.kind, s.len())?;
        Ok(s)
    }
}

struct BytesRef<'a>(&'a [u8]);

impl Serialize for BytesRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

struct ByteBuf(Vec<u8>);

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bytes(ByteBufVisitor)
    }
}

struct ByteBufVisitor;

impl<'de> Visitor<'de> for ByteBufVisitor {
    type Value = ByteBuf;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<ByteBuf, E> {
        Ok(ByteBuf(bytes.to_vec()))
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<ByteBuf, E> {
        Ok(ByteBuf(bytes))
    }

    // Self-describing formats such as JSON write byte strings as arrays of numbers.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
        let mut bytes = Vec::new();
        while let Some(byte) = seq.next_element()? {
            bytes.push(byte);
        }
        Ok(ByteBuf(bytes))
    }
}
