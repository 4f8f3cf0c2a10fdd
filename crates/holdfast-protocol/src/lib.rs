//! The Holdfast wire protocol: frames, their byte encoding, and the limits both peers hold.
//!
//! A device and a relay talk in **frames**, one per binary WebSocket message. A frame is a
//! [`Frame`] value: a request (`Hello`, `Push`, `Pull`, `Repair`, `Ping`) or its answer
//! (`Welcome` or `Error`, `Ack`, `Changes`, `Repair`, `Pong`). The conversation is:
//!
//! ```text
//! device                                   relay
//!   Hello { protocol, device, token, spaces } ──▶
//!                  ◀── Welcome { relay_id, epoch, limits }   (or Error, then close)
//!   Push { entries: [event_id, space, record, changes] } ──▶
//!                  ◀── Ack { results: [event_id, Stored | Duplicate | Rejected] }
//!   Pull { space, cursor, max_bytes } ──▶
//!                  ◀── Changes { space, entries, next_cursor, more }   (also sent live)
//!   Repair { space, record, message } ◀─▶  (Automerge sync, when a cursor is unknown)
//! ```
//!
//! Three ideas carry the protocol:
//!
//! - **Event ids make pushes idempotent.** Every [`PushEntry`] carries an [`EventId`] chosen
//!   by the device. The relay remembers each event id with its [`Outcome`] and answers a
//!   repeat with the same outcome, so a device may resend anything it has not seen acked.
//! - **Cursors make pulls repeatable.** A [`Cursor`] names a position in a space's log on one
//!   relay *epoch*. The same cursor always yields the same changes. A cursor from another
//!   epoch (the relay was restored from a backup) is answered with [`Frame::Repair`], never
//!   with a reset that would throw away unsynced work.
//! - **Every decode is bounded.** [`decode`] rejects a frame before it can claim more memory
//!   than the [`limits`] allow, whatever its length prefixes or compressed body say.
//!
//! On the wire a frame is a version byte, a flags byte and a bincode body, zstd-compressed
//! when that pays; `docs/protocol.md` gives the byte layout. [`encode`] and [`decode`] are
//! the only functions that touch bytes. This crate does no I/O: sockets belong to the caller.
//!
//! ```
//! use holdfast_protocol::{decode, encode, Frame};
//!
//! let bytes = encode(&Frame::Ping { nonce: 7 })?;
//! assert_eq!(decode(&bytes)?, Frame::Ping { nonce: 7 });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The [`session`] module drives this conversation without doing I/O: a
//! [`RelaySession`] per connection on the relay, a [`ClientSession`] in the device's sync
//! worker. Each takes bytes and events and returns frames to send and effects to carry out.

#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod bounded;
pub mod chunks;
mod codec;
mod error;
mod frame;
mod ids;
pub mod limits;
pub mod row;
pub mod session;

pub use codec::{decode, encode, encode_with_stats, plain_bytes, EncodeStats, HEADER_BYTES};
pub use error::{DecodeError, EncodeError, InvalidSpaceId, LimitExceeded, LimitKind};
pub use frame::{
    AckResult, BootstrapFrom, ChangeEntry, Cursor, ErrorCode, Frame, Limits, Outcome, PushEntry,
    RecordState, RejectCode, SpaceCursor, Token,
};
pub use ids::{ChangeHash, DeviceId, EventId, RecordId, SpaceId};
pub use session::{ClientSession, RelaySession};
