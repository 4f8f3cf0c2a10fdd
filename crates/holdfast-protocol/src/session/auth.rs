//! Who a connection is and what it may do: the token check the relay plugs in, and the
//! grants per space it returns.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::frame::Token;
use crate::ids::SpaceId;

/// Checks a bearer token and says what it grants. The relay implements it (JWT
/// verification); the session only asks.
///
/// Called once per connection, on its `Hello`, synchronously: an implementation should be
/// a signature check against keys already in memory, not a network call.
pub trait Authenticator: Send + Sync {
    /// What `token` grants at `now_ms` (milliseconds since the Unix epoch, the session's
    /// clock), or why it grants nothing.
    fn authenticate(&self, token: &Token, now_ms: u64) -> Result<Grants, AuthError>;
}

/// What an authenticated connection may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grants {
    /// Who the token names (a user or a device), for logs.
    pub subject: String,
    /// The role in each space; a space not listed may be neither read nor written.
    pub spaces: BTreeMap<SpaceId, Role>,
    /// When the grants end, on the clock passed to [`Authenticator::authenticate`]; `None`
    /// for never. A session past it closes with `Unauthorized`.
    pub expires_at_ms: Option<u64>,
}

impl Grants {
    /// Whether the grants allow reading `space`.
    pub fn can_read(&self, space: &SpaceId) -> bool {
        self.spaces.contains_key(space)
    }

    /// Whether the grants allow writing `space`.
    pub fn can_write(&self, space: &SpaceId) -> bool {
        self.spaces.get(space) == Some(&Role::Write)
    }

    /// Whether the grants have ended at `now_ms`.
    pub(crate) fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| now_ms >= at)
    }
}

/// What a connection may do in one space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Pull and receive the space's changes.
    Read,
    /// Read, and push changes to the space.
    Write,
}

/// Why a token grants nothing. The detail goes to logs and to the `Error` frame's message;
/// the device shows the user the plain words of
/// [`ErrorCode::Unauthorized`](crate::ErrorCode::Unauthorized).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The token is malformed, or its signature does not verify.
    #[error("token is not valid: {reason}")]
    Invalid {
        /// What is wrong with it.
        reason: String,
    },
    /// The token was valid until `expired_at_ms`.
    #[error("token expired at {expired_at_ms} ms")]
    Expired {
        /// When it expired.
        expired_at_ms: u64,
    },
}
