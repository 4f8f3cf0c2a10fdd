//! The frames devices and relays exchange, and the values they carry.
//!
//! Field and variant order is the wire format: bincode writes a variant as its index and a
//! struct as its fields in order. New variants go at the end of their enum; anything else
//! is a new [`PROTOCOL_VERSION`](crate::limits::PROTOCOL_VERSION).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::bounded;
use crate::error::LimitKind;
use crate::ids::{DeviceId, EventId, RecordId, SpaceId};
use crate::limits::{
    BATCH_ENTRIES_MAX, BODY_BYTES_MAX, CHANGES_PER_ENTRY_MAX, FRAME_BYTES_MAX,
    PUSHES_IN_FLIGHT_MAX_DEFAULT, RECORD_BYTES_MAX_DEFAULT,
};

#[cfg(test)]
mod tests;

/// One message between a device and a relay.
///
/// Requests flow from device to relay and each has one kind of answer; `Changes` also
/// arrives unasked when another device pushes to a subscribed space, and `Repair` flows both
/// ways.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Frame {
    /// Device → relay, the first frame of every connection. Answered by `Welcome`, or by
    /// `Error` and a close.
    Hello {
        /// The protocol version the device speaks.
        protocol: u16,
        /// The device.
        device: DeviceId,
        /// Proves who the device is and which spaces it may read and write.
        token: Token,
        /// The spaces the device syncs, each with the position it has pulled to.
        #[serde(with = "bounded::spaces")]
        spaces: Vec<SpaceCursor>,
    },

    /// Relay → device: the `Hello` is accepted.
    Welcome {
        /// The relay's identity, stable across restarts.
        relay_id: Uuid,
        /// The relay's current epoch; see [`Cursor`].
        epoch: u64,
        /// Limits the device must keep to on this connection.
        limits: Limits,
    },

    /// Either way: the connection cannot go on; the sender closes it after this frame.
    Error {
        /// What went wrong; its `Display` is the message for the user.
        code: ErrorCode,
        /// Detail for logs, not for the user.
        #[serde(with = "bounded::message")]
        message: String,
    },

    /// Device → relay: local commits to store. Answered by one `Ack` with a result per
    /// entry, in the same order.
    Push {
        /// The commits, in the order the device made them.
        #[serde(with = "bounded::batch")]
        entries: Vec<PushEntry>,
    },

    /// Relay → device: the answer to one `Push`, sent once every stored entry is durable.
    Ack {
        /// One result per pushed entry, in the order of the push.
        #[serde(with = "bounded::batch")]
        results: Vec<AckResult>,
    },

    /// Device → relay: send the changes of `space` after `cursor`. Answered by `Changes`.
    Pull {
        /// The space.
        space: SpaceId,
        /// Where the device's copy of the space's log ends.
        cursor: Cursor,
        /// The most change bytes the device wants in the answer; the relay sends at least
        /// one entry however large, and at most its own frame limit.
        max_bytes: u64,
    },

    /// Relay → device: changes of a space, in log order, in answer to a `Pull` or live.
    Changes {
        /// The space.
        space: SpaceId,
        /// Entries of the space's log, in order.
        #[serde(with = "bounded::batch")]
        entries: Vec<ChangeEntry>,
        /// The cursor to pull from next, once `entries` are applied.
        next_cursor: Cursor,
        /// Whether the log holds more entries after `next_cursor`.
        more: bool,
    },

    /// Either way: one message of the Automerge sync protocol for one record.
    ///
    /// Sent instead of `Changes` when the device's cursor is from another relay epoch, so
    /// both sides exchange exactly what the other lacks and nothing is thrown away.
    Repair {
        /// The space of the record.
        space: SpaceId,
        /// The record.
        record: RecordId,
        /// An encoded Automerge sync message.
        #[serde(with = "bounded::bytes")]
        message: Vec<u8>,
    },

    /// Either way: are you there? Answered by a `Pong` with the same nonce.
    Ping {
        /// Chosen by the sender, echoed in the `Pong`.
        nonce: u64,
    },

    /// Either way: the answer to a `Ping`.
    Pong {
        /// The nonce of the `Ping`.
        nonce: u64,
    },

    /// Device → relay: send the current state of the space's records, instead of its whole
    /// log. A device that never pulled a space starts here. Answered by `Snapshot`.
    Bootstrap {
        /// The space.
        space: SpaceId,
        /// Where to go on: `None` for the first page, else the `base` and `next` of the
        /// previous `Snapshot`.
        from: Option<BootstrapFrom>,
        /// The most document and change bytes the device wants in the answer; the relay
        /// sends at least one record however large.
        max_bytes: u64,
    },

    /// Relay → device: one page of a space's current state, in record id order.
    ///
    /// Every record state holds at least every change of the record up to `base`. Once the
    /// last page (`next` is `None`) is applied, the device holds the space's log up to
    /// `base` and pulls from there.
    Snapshot {
        /// The space.
        space: SpaceId,
        /// The records of this page.
        #[serde(with = "bounded::batch")]
        records: Vec<RecordState>,
        /// The log position every record state covers: the relay's position when the first
        /// page was asked for.
        base: Cursor,
        /// The last record of this page, if more pages follow.
        next: Option<RecordId>,
    },

    /// Relay → device: the relay cannot vouch for the device's cursor of `space` (it is
    /// from another epoch, or past the end of the log because the relay was restored from
    /// a backup). The device repairs the space with `Repair` messages, then bootstraps it
    /// again; it discards nothing.
    Resync {
        /// The space.
        space: SpaceId,
        /// The relay's epoch.
        epoch: u64,
    },
}

impl Frame {
    /// The frame's kind in lower case (`"push"`, `"ack"`...), for logs and metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Welcome { .. } => "welcome",
            Self::Error { .. } => "error",
            Self::Push { .. } => "push",
            Self::Ack { .. } => "ack",
            Self::Pull { .. } => "pull",
            Self::Changes { .. } => "changes",
            Self::Repair { .. } => "repair",
            Self::Ping { .. } => "ping",
            Self::Pong { .. } => "pong",
            Self::Bootstrap { .. } => "bootstrap",
            Self::Snapshot { .. } => "snapshot",
            Self::Resync { .. } => "resync",
        }
    }
}

/// A bearer token: a JWT naming the device's user and its roles per space.
///
/// Its `Debug` output shows only its length, so frames can be logged without leaking it.
/// At most [`TOKEN_BYTES_MAX`](crate::limits::TOKEN_BYTES_MAX) bytes go on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for Token {
    fn from(token: String) -> Self {
        Self(token)
    }
}

impl From<&str> for Token {
    fn from(token: &str) -> Self {
        Self(token.to_owned())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(<{} bytes>)", self.0.len())
    }
}

impl Serialize for Token {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        bounded::serialize_str(&self.0, LimitKind::TokenBytes, serializer)
    }
}

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        bounded::deserialize_string(deserializer, LimitKind::TokenBytes).map(Self)
    }
}

/// A position in one space's log on one relay epoch.
///
/// `seq` counts the log entries the holder has applied: a pull from `seq` returns the
/// entries numbered `seq + 1` onwards, and the same cursor always returns the same entries.
/// The `epoch` changes when the relay's log is restored from a backup and so may have
/// forgotten entries: a cursor from another epoch is answered with `Repair`, not with
/// changes and never with a reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cursor {
    /// The relay epoch the position belongs to.
    pub epoch: u64,
    /// How many entries of the space's log are applied.
    pub seq: u64,
}

impl Cursor {
    /// The cursor before the first entry of a space's log in `epoch`.
    pub const fn start(epoch: u64) -> Self {
        Self { epoch, seq: 0 }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.epoch, self.seq)
    }
}

/// A space a device syncs, and how far it has pulled it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceCursor {
    /// The space.
    pub space: SpaceId,
    /// Where the device's copy of the space's log ends; `None` if it never pulled.
    pub cursor: Option<Cursor>,
}

/// One local commit in a `Push`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushEntry {
    /// The commit's idempotency key.
    pub event_id: EventId,
    /// The space of the record.
    pub space: SpaceId,
    /// The record.
    pub record: RecordId,
    /// The commit's Automerge changes, one encoded change per element.
    #[serde(with = "bounded::changes")]
    pub changes: Vec<Vec<u8>>,
}

/// The relay's answer for one pushed entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckResult {
    /// The entry's event id.
    pub event_id: EventId,
    /// What became of it.
    pub outcome: Outcome,
}

/// What became of one pushed entry.
///
/// Deliberately exhaustive: a device must handle every outcome, and a new one is a new
/// protocol version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Stored durably as entry `seq` of the space's log.
    Stored {
        /// The entry's position in the space's log.
        seq: u64,
    },
    /// The event id was already stored, as entry `seq`: the push was a repeat.
    Duplicate {
        /// The position the first push got.
        seq: u64,
    },
    /// Not stored. Other entries of the same push are unaffected, except later entries
    /// that depend on this one, which are rejected too.
    Rejected {
        /// Why; its `Display` is the message for the user.
        code: RejectCode,
        /// Detail for logs, not for the user.
        #[serde(with = "bounded::message")]
        reason: String,
        /// Whether resending can never succeed. A device stops retrying a permanent
        /// rejection and shows it to the user; it retries the others later.
        permanent: bool,
    },
}

/// One entry of a space's log in a `Changes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEntry {
    /// The entry's position in the space's log.
    pub seq: u64,
    /// The record.
    pub record: RecordId,
    /// The event id it was pushed with.
    pub event_id: EventId,
    /// Its Automerge changes, one encoded change per element.
    #[serde(with = "bounded::changes")]
    pub changes: Vec<Vec<u8>>,
}

/// One record's state in a `Snapshot`: a saved document and the changes after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordState {
    /// The record.
    pub record: RecordId,
    /// A saved Automerge document (`Automerge::save`), or empty when the relay holds no
    /// snapshot of the record yet.
    #[serde(with = "bounded::bytes")]
    pub doc: Vec<u8>,
    /// Encoded Automerge changes the document does not hold, in log order.
    #[serde(with = "bounded::changes")]
    pub changes: Vec<Vec<u8>>,
}

impl RecordState {
    /// Document and change bytes, the measure `max_bytes` of a `Bootstrap` counts.
    pub fn byte_len(&self) -> u64 {
        let changes: usize = self.changes.iter().map(Vec::len).sum();
        (self.doc.len() + changes) as u64
    }
}

/// Where a `Bootstrap` goes on from: the `base` and `next` of the previous `Snapshot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapFrom {
    /// The `base` of the first page.
    pub base: Cursor,
    /// The last record sent so far.
    pub after: RecordId,
}

/// Limits a relay asks the devices connected to it to keep to, sent in `Welcome`.
///
/// [`Limits::PROTOCOL`] is the most any relay may ask; a relay may ask for less.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Limits {
    /// Largest encoded frame the relay reads.
    pub frame_bytes_max: u32,
    /// Largest frame body after decompression the relay reads.
    pub body_bytes_max: u32,
    /// Most entries in one `Push`.
    pub batch_entries_max: u32,
    /// Most changes in one push entry.
    pub changes_per_entry_max: u32,
    /// Largest saved Automerge document the relay stores for one record.
    pub record_bytes_max: u64,
    /// How many `Push` frames may be unacked at once.
    pub pushes_in_flight_max: u32,
}

impl Limits {
    /// The protocol's hard limits, with the default policy limits.
    pub const PROTOCOL: Self = Self {
        frame_bytes_max: FRAME_BYTES_MAX as u32,
        body_bytes_max: BODY_BYTES_MAX as u32,
        batch_entries_max: BATCH_ENTRIES_MAX as u32,
        changes_per_entry_max: CHANGES_PER_ENTRY_MAX as u32,
        record_bytes_max: RECORD_BYTES_MAX_DEFAULT,
        pushes_in_flight_max: PUSHES_IN_FLIGHT_MAX_DEFAULT,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::PROTOCOL
    }
}

/// Why a peer ended the connection, in an `Error` frame.
///
/// `Display` gives a message in plain words for the person using the app.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The token is expired, malformed or not signed for this relay.
    Unauthorized,
    /// The token grants no access to a space the device named.
    Forbidden {
        /// The space.
        space: SpaceId,
    },
    /// The peer does not speak a protocol version in `min..=max`.
    UnsupportedVersion {
        /// Oldest version the sender speaks.
        min: u16,
        /// Newest version the sender speaks.
        max: u16,
    },
    /// A frame, or its decompressed body, was larger than the sender accepts.
    FrameTooLarge {
        /// Largest frame the sender accepts, in bytes.
        max: u32,
    },
    /// A frame could not be decoded, or broke the conversation's order.
    Malformed,
    /// The device sends faster than the relay allows.
    RateLimited {
        /// Seconds to wait before reconnecting.
        retry_after_secs: u32,
    },
    /// The relay is overloaded or shutting down.
    ServerBusy {
        /// Seconds to wait before reconnecting.
        retry_after_secs: u32,
    },
    /// The relay failed in a way that is not the device's fault.
    Internal,
}

impl ErrorCode {
    /// Whether reconnecting later may succeed without anything changing on the device
    /// (a new token, an app update, a smaller frame).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::ServerBusy { .. } | Self::Internal
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unauthorized => {
                f.write_str("Your sign-in has expired or is not valid for this sync server")
            }
            Self::Forbidden { space } => write!(f, "You no longer have access to {space}"),
            Self::UnsupportedVersion { .. } => f.write_str(
                "This version of the app cannot sync with this server; check for an app update",
            ),
            Self::FrameTooLarge { max } => write!(
                f,
                "A change was too large to send to the sync server (limit {})",
                Size(u64::from(*max))
            ),
            Self::Malformed => f.write_str("The sync server could not understand this app's data"),
            Self::RateLimited { retry_after_secs } => write!(
                f,
                "Sync server is limiting requests, retrying in {retry_after_secs} s"
            ),
            Self::ServerBusy { retry_after_secs } => {
                write!(
                    f,
                    "Sync server unavailable, retrying in {retry_after_secs} s"
                )
            }
            Self::Internal => f.write_str("The sync server ran into a problem, retrying later"),
        }
    }
}

/// Why the relay did not store one pushed entry, in [`Outcome::Rejected`].
///
/// `Display` gives a message in plain words for the person using the app.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RejectCode {
    /// The token grants no write access to the entry's space.
    Forbidden {
        /// The space.
        space: SpaceId,
    },
    /// The changes depend on changes of the record the relay does not hold yet.
    MissingDependencies,
    /// The changes depend on an earlier entry that was rejected.
    DependencyRejected {
        /// The rejected entry.
        event_id: EventId,
    },
    /// Storing the changes would make the record larger than the relay allows.
    RecordTooLarge {
        /// Largest saved document the relay stores for one record, in bytes.
        max: u64,
    },
    /// The changes are not valid Automerge changes.
    Malformed,
    /// The device pushes faster than the relay allows.
    RateLimited {
        /// Seconds to wait before pushing again.
        retry_after_secs: u32,
    },
    /// The relay failed in a way that is not the device's fault.
    Internal,
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Forbidden { space } => write!(f, "You no longer have write access to {space}"),
            Self::MissingDependencies => f.write_str(
                "This change builds on changes the sync server has not received yet, retrying",
            ),
            Self::DependencyRejected { .. } => {
                f.write_str("This change builds on an earlier change the sync server refused")
            }
            Self::RecordTooLarge { max } => write!(
                f,
                "This record is too large for the sync server (limit {})",
                Size(*max)
            ),
            Self::Malformed => f.write_str("This change is damaged and cannot be synced"),
            Self::RateLimited { retry_after_secs } => write!(
                f,
                "Sync server is limiting requests, retrying in {retry_after_secs} s"
            ),
            Self::Internal => {
                f.write_str("The sync server could not store this change, retrying later")
            }
        }
    }
}

/// A byte count in the units people read: "512 bytes", "16 KB", "64 MB".
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KB: u64 = 1024;
        const MB: u64 = 1024 * KB;
        match self.0 {
            n if n >= MB => write!(f, "{} MB", n / MB),
            n if n >= KB => write!(f, "{} KB", n / KB),
            n => write!(f, "{n} bytes"),
        }
    }
}
