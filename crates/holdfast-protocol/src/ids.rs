//! Identifiers shared by devices and relays: devices, records, events, spaces, changes.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::InvalidSpaceId;
use crate::limits::SPACE_ID_BYTES_MAX;

#[cfg(test)]
mod tests;

/// The hash of an Automerge change (SHA-256), which is also its identity: a change is
/// content-addressed, so the same bytes always have the same hash.
pub type ChangeHash = [u8; 32];

macro_rules! uuid_id {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        ///
        /// Displayed and parsed as a hyphenated UUID; its byte order is its sort order. On
        /// the wire it is the 16 UUID bytes.
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// The id with these 16 bytes, as returned by [`Self::as_bytes`].
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(bytes))
            }

            /// The 16 bytes of the id, in the order ids sort by.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// The id as a [`Uuid`].
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            /// Parses a UUID in any of the forms [`Uuid::parse_str`] accepts.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id! {
    /// A device: one store on one machine, created with [`DeviceId::random`] when the store
    /// is first opened.
    DeviceId
}

uuid_id! {
    /// A record: one Automerge document, named by the device that creates it.
    RecordId
}

uuid_id! {
    /// One local commit pushed to the relay: the idempotency key of a push.
    ///
    /// The relay remembers each event id with the outcome of storing it, and answers a
    /// repeated push of the same event id with that same outcome.
    EventId
}

impl DeviceId {
    /// A new random (version 4) device id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl RecordId {
    /// A new time-ordered (version 7) record id: ids created later in this process sort
    /// after ids created earlier, so records list in creation order.
    pub fn new_v7() -> Self {
        Self(Uuid::now_v7())
    }
}

impl EventId {
    /// A new time-ordered (version 7) event id: ids created later in this process sort after
    /// ids created earlier.
    pub fn new_v7() -> Self {
        Self(Uuid::now_v7())
    }
}

/// A space: the unit of sharing, authorization and sync cursor (a team notebook, a job site).
///
/// A space id is 1 to [`SPACE_ID_BYTES_MAX`] bytes of ASCII letters, digits, `.`, `_` and
/// `-`, so it is safe in file names, URLs, log lines and storage keys. Every way of making
/// one validates it, deserializing included.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize)]
#[serde(transparent)]
pub struct SpaceId(String);

impl SpaceId {
    /// The space id `name`, if it is valid.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidSpaceId> {
        let name = name.into();
        validate(&name)?;
        Ok(Self(name))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

fn validate(name: &str) -> Result<(), InvalidSpaceId> {
    if name.is_empty() {
        return Err(InvalidSpaceId::Empty);
    }
    if name.len() > SPACE_ID_BYTES_MAX {
        return Err(InvalidSpaceId::TooLong {
            len: name.len(),
            max: SPACE_ID_BYTES_MAX,
        });
    }
    let allowed = |ch: char| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-');
    match name.char_indices().find(|&(_, ch)| !allowed(ch)) {
        Some((index, ch)) => Err(InvalidSpaceId::InvalidChar { ch, index }),
        None => Ok(()),
    }
}

impl fmt::Display for SpaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SpaceId {
    type Err = InvalidSpaceId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for SpaceId {
    type Error = InvalidSpaceId;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::new(name)
    }
}

impl TryFrom<&str> for SpaceId {
    type Error = InvalidSpaceId;

    fn try_from(name: &str) -> Result<Self, Self::Error> {
        Self::new(name)
    }
}

impl From<SpaceId> for String {
    fn from(id: SpaceId) -> Self {
        id.0
    }
}

impl AsRef<str> for SpaceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SpaceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

// Deserialized from a borrowed `str` where the format allows: the name is validated, and its
// length bounded, before any allocation.
impl<'de> Deserialize<'de> for SpaceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(SpaceIdVisitor)
    }
}

struct SpaceIdVisitor;

impl Visitor<'_> for SpaceIdVisitor {
    type Value = SpaceId;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a space id of 1 to {SPACE_ID_BYTES_MAX} bytes")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<SpaceId, E> {
        validate(name).map_err(E::custom)?;
        Ok(SpaceId(name.to_owned()))
    }

    fn visit_string<E: de::Error>(self, name: String) -> Result<SpaceId, E> {
        validate(&name).map_err(E::custom)?;
        Ok(SpaceId(name))
    }
}
