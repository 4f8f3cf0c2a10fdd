//! What a sync worker is told: the relay's address, the token, the spaces, the runtime,
//! extra TLS roots, and every delay and size it works with, each with a named default.

use std::time::Duration;

use holdfast_protocol::limits::{
    BATCH_ENTRIES_MAX, PULL_BYTES_MAX_DEFAULT, PUSH_BYTES_MAX_DEFAULT,
};

use super::backoff::{HEALTHY_SESSION_MIN, RECONNECT_DELAY_MAX, RECONNECT_DELAY_MIN};
use crate::SpaceId;

/// Longest wait for a TCP connection, the TLS and WebSocket handshakes together.
pub const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(15);

/// Longest wait for the relay's answer to one repair message. The relay answers every
/// message (with an empty one when it has nothing more to say), so silence this long
/// ends the connection, and the next one repairs the space again.
pub const REPAIR_REPLY_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);

/// How often the worker passes the time to its session (keepalive pings, timeouts).
pub const TICK_INTERVAL: Duration = Duration::from_secs(1);

/// Longest a blocking [`SyncHandle::stop`](super::SyncHandle::stop) waits for the worker
/// (for its store work: a send under way is interrupted).
pub const STOP_WAIT_MAX: Duration = Duration::from_secs(10);

/// How to sync a store with a relay; see [`Store::sync`](crate::Store::sync).
///
/// `SyncConfig::new(url, token, spaces)` gives the defaults; every field is public.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SyncConfig {
    /// The relay, `ws://host:port/` or `wss://host:port/`.
    pub url: String,
    /// The bearer token the relay issued (`holdfast-relay token`).
    pub token: String,
    /// The spaces to pull (and to repair when the relay asks). Every local change in the
    /// outbox is pushed; the relay refuses those of spaces the token may not write.
    pub spaces: Vec<SpaceId>,
    /// The tokio runtime to run on; `None`: the worker starts its own, on one thread.
    pub runtime: Option<tokio::runtime::Handle>,
    /// PEM certificates trusted as roots for `wss://`, besides the public web roots
    /// (for a relay with a self-signed or private certificate).
    pub root_certificates_pem: Vec<Vec<u8>>,
    /// The first reconnect delay's cap.
    pub reconnect_delay_min: Duration,
    /// The largest reconnect delay.
    pub reconnect_delay_max: Duration,
    /// A connection welcomed and up this long resets the reconnect delay.
    pub healthy_session_min: Duration,
    /// Longest wait for a connection to open (TCP, TLS, WebSocket).
    pub connect_timeout: Duration,
    /// Longest wait for the relay's answer to one repair message.
    pub repair_reply_timeout: Duration,
    /// Most outbox entries in one push (the relay's `Welcome` may ask for fewer).
    pub push_entries_max: usize,
    /// Most change bytes in one push; a larger entry goes alone.
    pub push_bytes_max: u64,
    /// Most change bytes asked for in one pull or bootstrap page.
    pub pull_bytes_max: u64,
}

impl SyncConfig {
    /// The defaults, for this relay, token and spaces.
    pub fn new(url: impl Into<String>, token: impl Into<String>, spaces: Vec<SpaceId>) -> Self {
        Self {
            url: url.into(),
            token: token.into(),
            spaces,
            runtime: None,
            root_certificates_pem: Vec::new(),
            reconnect_delay_min: RECONNECT_DELAY_MIN,
            reconnect_delay_max: RECONNECT_DELAY_MAX,
            healthy_session_min: HEALTHY_SESSION_MIN,
            connect_timeout: CONNECT_TIMEOUT_DEFAULT,
            repair_reply_timeout: REPAIR_REPLY_TIMEOUT_DEFAULT,
            push_entries_max: BATCH_ENTRIES_MAX,
            push_bytes_max: PUSH_BYTES_MAX_DEFAULT,
            pull_bytes_max: PULL_BYTES_MAX_DEFAULT,
        }
    }

    /// Runs the worker on `runtime` instead of a runtime of its own.
    pub fn runtime(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Trusts the PEM certificate(s) in `pem` as roots for `wss://`.
    pub fn root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates_pem.push(pem.into());
        self
    }

    /// The reconnect delay's first cap and its largest value.
    pub fn reconnect_delays(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_delay_min = min;
        self.reconnect_delay_max = max;
        self
    }
}
