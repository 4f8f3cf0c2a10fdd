//! Sans-IO session state machines: frames and events in, frames to send and effects out.
//!
//! A session owns the rules of one connection and nothing else. It never touches a socket,
//! a clock or a database: its caller (the *driver*) reads a WebSocket message and hands the
//! bytes to `handle_bytes`, passes the time as milliseconds since the Unix epoch, and
//! carries out the effects that come back, in order: send a frame, store entries, apply
//! changes, close. Results of slow work (a durable store, a pull from the log) come back
//! through `handle_*` methods. Because nothing waits inside a session, a test or a
//! deterministic simulation can drive many of them in one thread, on a simulated clock.
//!
//! Time is wall time because token expiry is; a clock that steps back never makes a peer
//! look idle or a token look expired sooner, it only delays timeouts.
//!
//! - [`RelaySession`] is the relay's side of one connection: authentication, version
//!   negotiation, grants per space, rate limits and backpressure.
//! - [`ClientSession`] is the device's side, driven by the sync worker: the handshake,
//!   pipelined pushes within the relay's [`Limits`](crate::Limits), a bootstrap from
//!   record snapshots for a space never pulled, pulls per space, and repair when the relay
//!   cannot vouch for a cursor.
//!
//! A handshake, with the bytes carried by hand:
//!
//! ```
//! use std::sync::Arc;
//!
//! use holdfast_protocol::session::{
//!     AuthError, Authenticator, ClientConfig, ClientEffect, ClientSession, Grants,
//!     RelayConfig, RelayEffect, RelaySession, Role,
//! };
//! use holdfast_protocol::{encode, DeviceId, Frame, SpaceCursor, SpaceId, Token};
//!
//! /// Lets every token write `team` (a real relay verifies a JWT here).
//! struct Trusting;
//!
//! impl Authenticator for Trusting {
//!     fn authenticate(&self, token: &Token, _now_ms: u64) -> Result<Grants, AuthError> {
//!         let team = SpaceId::new("team").expect("a valid space id");
//!         Ok(Grants {
//!             subject: token.as_str().to_owned(),
//!             spaces: [(team, Role::Write)].into(),
//!             expires_at_ms: None,
//!         })
//!     }
//! }
//!
//! let config = RelayConfig::new(uuid::Uuid::nil(), 1);
//! let mut relay = RelaySession::new(config, Arc::new(Trusting), 0);
//! let spaces = vec![SpaceCursor { space: SpaceId::new("team")?, cursor: None }];
//! let config = ClientConfig::new(DeviceId::random(), Token::new("a jwt"));
//! let mut client = ClientSession::new(config, spaces, 0);
//!
//! let [ClientEffect::Send(hello)] = &client.start(0)[..] else { unreachable!() };
//! let effects = relay.handle_bytes(&encode(hello)?, 0);
//! let RelayEffect::Send(welcome) = &effects[0] else { unreachable!() };
//! assert!(matches!(effects[1], RelayEffect::Subscribe { .. }));
//!
//! let effects = client.handle_bytes(&encode(welcome)?, 0);
//! assert!(matches!(effects[0], ClientEffect::Welcomed { epoch: 1, .. }));
//! // A space never pulled starts from its current state, not from its whole history.
//! assert!(matches!(effects[1], ClientEffect::Send(Frame::Bootstrap { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod auth;
mod client;
mod relay;

#[cfg(test)]
mod tests;

pub use auth::{AuthError, Authenticator, Grants, Role};
pub use client::{ClientConfig, ClientEffect, ClientSession};
pub use relay::{DriverError, PullReply, RelayConfig, RelayEffect, RelaySession};

use crate::frame::{ErrorCode, Frame};

/// Why a session ended, in a `Close` effect.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// This side sent an `Error` frame with this code just before closing.
    Sent(ErrorCode),
    /// The peer sent an `Error` frame with this code.
    Received(ErrorCode),
    /// The handshake (`Hello`, then `Welcome`) did not finish in time.
    HandshakeTimeout,
    /// Nothing was heard from the peer for the idle timeout, pings included.
    IdleTimeout,
}

impl CloseReason {
    /// The WebSocket close code (RFC 6455, section 7.4.1) a driver closes the socket with.
    pub fn websocket_code(&self) -> u16 {
        match self {
            Self::Sent(code) => match code {
                ErrorCode::Unauthorized | ErrorCode::Forbidden { .. } => 1008,
                ErrorCode::FrameTooLarge { .. } => 1009,
                ErrorCode::RateLimited { .. } | ErrorCode::ServerBusy { .. } => 1013,
                ErrorCode::Internal => 1011,
                _ => 1002,
            },
            Self::Received(_) => 1000,
            Self::HandshakeTimeout | Self::IdleTimeout => 1001,
        }
    }
}

/// Identifies one piece of work a session hands to its driver (a store or a pull), so the
/// result can be handed back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// Keepalive and idle timeout, the same on both sides.
#[derive(Debug)]
struct Liveness {
    /// When the peer was last heard from (or the session started).
    heard_ms: u64,
    /// When this side last sent a `Ping` that is not answered yet.
    ping_sent_ms: Option<u64>,
    nonce_next: u64,
    keepalive_interval_ms: u64,
    idle_timeout_ms: u64,
}

/// What [`Liveness::tick`] asks of the session.
enum Pulse {
    Quiet,
    Ping(Frame),
    Idle,
}

impl Liveness {
    fn new(now_ms: u64, keepalive_interval_ms: u64, idle_timeout_ms: u64) -> Self {
        Self {
            heard_ms: now_ms,
            ping_sent_ms: None,
            nonce_next: 0,
            keepalive_interval_ms,
            idle_timeout_ms,
        }
    }

    fn heard(&mut self, now_ms: u64) {
        // A clock that steps back must not make a peer look idle for ever.
        self.heard_ms = self.heard_ms.max(now_ms);
        self.ping_sent_ms = None;
    }

    fn tick(&mut self, now_ms: u64) -> Pulse {
        let quiet_ms = now_ms.saturating_sub(self.heard_ms);
        if quiet_ms >= self.idle_timeout_ms {
            return Pulse::Idle;
        }
        if quiet_ms >= self.keepalive_interval_ms && self.ping_sent_ms.is_none() {
            self.ping_sent_ms = Some(now_ms);
            let nonce = self.nonce_next;
            self.nonce_next = self.nonce_next.wrapping_add(1);
            return Pulse::Ping(Frame::Ping { nonce });
        }
        Pulse::Quiet
    }
}

/// An `Error` frame with `detail` for logs, cut to the protocol's message limit.
fn error_frame(code: ErrorCode, detail: impl Into<String>) -> Frame {
    Frame::Error {
        code,
        message: truncate_message(detail.into()),
    }
}

/// `message` cut at a character boundary to at most
/// [`MESSAGE_BYTES_MAX`](crate::limits::MESSAGE_BYTES_MAX) bytes, so it always encodes.
fn truncate_message(mut message: String) -> String {
    let max = crate::limits::MESSAGE_BYTES_MAX;
    if message.len() > max {
        let mut end = max;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}
