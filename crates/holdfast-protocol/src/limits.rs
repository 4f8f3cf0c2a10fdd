//! Every limit of the wire protocol, as a named constant in one place.
//!
//! [`decode`](crate::decode) holds a peer to these limits with a typed error, and
//! [`encode`](crate::encode) refuses to produce a frame the other side would refuse. A relay
//! may advertise lower values for the policy limits in [`Limits`](crate::Limits); the hard
//! limits below bound what any frame may claim, whatever the relay says.

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// The protocol version this crate speaks: byte 0 of every frame it encodes, and the
/// `protocol` field of the `Hello` it sends.
pub const PROTOCOL_VERSION: u16 = 1;

/// The oldest protocol version [`decode`](crate::decode) accepts.
///
/// A release accepts the current and the previous version, so that devices and relays can be
/// upgraded one at a time. Version 1 is the first, so for now only version 1 is accepted.
pub const PROTOCOL_VERSION_MIN_SUPPORTED: u16 = 1;

/// Largest frame on the wire, header included, compressed or not.
///
/// Checked before anything else, so a larger message is refused without being read.
pub const FRAME_BYTES_MAX: usize = 16 * MIB;

/// Largest frame body after decompression.
///
/// Decompression stops with an error as soon as the output would pass this bound, so a
/// small compressed body that inflates to gigabytes (a "zip bomb") costs at most this much.
pub const BODY_BYTES_MAX: usize = 64 * MIB;

/// Bodies of at most this many bytes are sent uncompressed: zstd cannot win much on them.
pub const COMPRESS_THRESHOLD_BYTES: usize = KIB;

/// A compressed body is sent only if it is at least this many percent smaller than the plain
/// body. Already-compressed payloads, such as whole-document snapshots, fail this test and
/// are sent as they are, instead of costing the receiver a decompression that wins nothing.
pub const COMPRESS_SAVINGS_PERCENT_MIN: usize = 10;

/// zstd compression level of frame bodies: zstd's default, fast and already effective on
/// Automerge change bytes.
pub const COMPRESS_LEVEL: i32 = 3;

/// Base-2 logarithm of the largest zstd window a compressed body may use (8 MiB).
///
/// The window is memory the decoder must allocate, and the frame header chooses it, so it
/// is bounded too. [`COMPRESS_LEVEL`] uses at most a 2 MiB window.
pub const COMPRESS_WINDOW_LOG_MAX: u32 = 23;

/// Most entries in one `Push`, results in one `Ack`, or entries in one `Changes`.
pub const BATCH_ENTRIES_MAX: usize = 1024;

/// Most Automerge changes in one push or change entry.
pub const CHANGES_PER_ENTRY_MAX: usize = 1024;

/// Most spaces a device may name in one `Hello`.
pub const SPACES_PER_HELLO_MAX: usize = 4096;

/// Longest bearer token in a `Hello`, in bytes. A JWT with a few dozen space roles fits.
pub const TOKEN_BYTES_MAX: usize = 8 * KIB;

/// Longest free-text message in an `Error` frame or a rejection reason, in bytes.
pub const MESSAGE_BYTES_MAX: usize = KIB;

/// Longest space id, in bytes.
pub const SPACE_ID_BYTES_MAX: usize = 128;

/// Default for [`Limits::record_bytes_max`](crate::Limits::record_bytes_max): the largest
/// saved Automerge document a relay stores for one record.
///
/// A bootstrap sends a record's state in one `Snapshot` frame, so a record must fit in a
/// frame with room for the frame's other fields.
pub const RECORD_BYTES_MAX_DEFAULT: u64 = 12 * MIB as u64;

/// Default for [`Limits::pushes_in_flight_max`](crate::Limits::pushes_in_flight_max): how
/// many `Push` frames a device may send before the first of them is acked.
pub const PUSHES_IN_FLIGHT_MAX_DEFAULT: u32 = 8;

/// Default for [`RelayConfig::push_rate_per_sec`]: `Push` frames one connection may send per
/// second, on average, before pushes are refused with `RateLimited`.
///
/// [`RelayConfig::push_rate_per_sec`]: crate::session::RelayConfig::push_rate_per_sec
///
/// A device paces its pushes below it (a push that is not full waits 25 ms after the
/// previous one), so an honest device catching up never meets it: BENCHMARKS.md, "Push
/// rate of a device catching up".
pub const PUSH_RATE_PER_SEC_DEFAULT: u32 = 50;

/// Default for [`RelayConfig::push_burst`]: `Push` frames one connection may send at once
/// after a quiet spell (the size of its token bucket).
///
/// [`RelayConfig::push_burst`]: crate::session::RelayConfig::push_burst
pub const PUSH_BURST_DEFAULT: u32 = 100;

/// Default for [`RelayConfig::pulls_in_flight_max`]: pulls of one connection the relay's
/// storage works on at once; beyond it the relay stops reading.
///
/// [`RelayConfig::pulls_in_flight_max`]: crate::session::RelayConfig::pulls_in_flight_max
pub const PULLS_IN_FLIGHT_MAX_DEFAULT: u32 = 4;

/// Default most change bytes asked for, or answered, in one `Pull`.
pub const PULL_BYTES_MAX_DEFAULT: u64 = 4 * MIB as u64;

/// Default most change bytes a device puts in one `Push`; a larger entry goes alone.
pub const PUSH_BYTES_MAX_DEFAULT: u64 = MIB as u64;

/// Default time a relay waits for a connection's `Hello`, or a device for the `Welcome`,
/// in milliseconds.
pub const HANDSHAKE_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// Default time without hearing from the peer after which a session sends a `Ping`, in
/// milliseconds.
pub const KEEPALIVE_INTERVAL_MS_DEFAULT: u64 = 30_000;

/// Default time without hearing from the peer after which a session closes, in
/// milliseconds: a peer that answers pings is never idle.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 90_000;

/// Default for [`RelayConfig::pings_per_sec_max`]: pings (protocol `Ping` frames and
/// WebSocket pings together) one connection may send in one second. A device pings only
/// after a quiet keepalive interval, but a burst of a few hundred is still answered (with
/// backpressure); a peer past this floods (one was measured at 1.4 million a second), and
/// is closed.
///
/// [`RelayConfig::pings_per_sec_max`]: crate::session::RelayConfig::pings_per_sec_max
pub const PINGS_PER_SEC_MAX_DEFAULT: u32 = 1_000;

/// `retry_after_secs` sent to a peer closed for pinging too fast.
pub const PING_FLOOD_RETRY_AFTER_SECS: u32 = 30;

/// Default `retry_after_secs` a relay sends when it turns a connection away because it is
/// shutting down or overloaded.
pub const BUSY_RETRY_AFTER_SECS_DEFAULT: u32 = 5;

// The version travels in one header byte; `Limits` carries byte counts as `u32`.
const _: () = assert!(PROTOCOL_VERSION <= u8::MAX as u16);
const _: () = assert!(PROTOCOL_VERSION_MIN_SUPPORTED <= PROTOCOL_VERSION);
const _: () = assert!(FRAME_BYTES_MAX <= BODY_BYTES_MAX);
const _: () = assert!(BODY_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(BATCH_ENTRIES_MAX <= u32::MAX as usize);
const _: () = assert!(CHANGES_PER_ENTRY_MAX <= u32::MAX as usize);
const _: () = assert!(COMPRESS_SAVINGS_PERCENT_MIN < 100);
const _: () = assert!(KEEPALIVE_INTERVAL_MS_DEFAULT < IDLE_TIMEOUT_MS_DEFAULT);
const _: () = assert!(PUSH_BYTES_MAX_DEFAULT < FRAME_BYTES_MAX as u64);
const _: () = assert!(PULL_BYTES_MAX_DEFAULT < FRAME_BYTES_MAX as u64);
const _: () = assert!(RECORD_BYTES_MAX_DEFAULT + MIB as u64 <= FRAME_BYTES_MAX as u64);

/// Largest persisted row (device store or relay) that is decoded; a larger length prefix
/// means a damaged file.
pub const ROW_BYTES_MAX: usize = 256 << 20;
