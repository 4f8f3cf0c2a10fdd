//! Bearer tokens: HS256 JWTs naming a subject and a role per space, minted by
//! `holdfast-relay token` and checked against the relay's secret on every `Hello`.
//!
//! Claims: `sub` (the user or device, for logs), `iat` and `exp` (seconds since the Unix
//! epoch) and `spaces`, an object mapping each space id to `"read"` or `"write"`:
//!
//! ```json
//! {"sub":"alice-laptop","iat":1767225600,"exp":1769817600,"spaces":{"team-notes":"write"}}
//! ```
//!
//! Expiry is checked with no leeway ([`LEEWAY_SECS`]), on the session's clock: a token is
//! refused from the second its `exp` names, and a session whose token expires meanwhile is
//! closed at its next tick. Only HS256 is accepted; `alg: none` and every other algorithm
//! are refused before the signature is looked at.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use holdfast_protocol::session::{AuthError, Authenticator, Grants, Role};
use holdfast_protocol::{SpaceId, Token};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::secret::Secret;

#[cfg(test)]
mod tests;

/// Seconds a token is still accepted after its `exp`: none.
pub const LEEWAY_SECS: u64 = 0;

/// The claims of a relay token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who the token names: a user or a device, for logs.
    pub sub: String,
    /// When it was minted, in seconds since the Unix epoch.
    pub iat: u64,
    /// When it expires, in seconds since the Unix epoch.
    pub exp: u64,
    /// The role in each space, by space id.
    pub spaces: BTreeMap<String, RoleClaim>,
}

/// A role as written in a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleClaim {
    /// Pull and receive the space's changes.
    Read,
    /// Read, and push changes.
    Write,
}

impl From<RoleClaim> for Role {
    fn from(role: RoleClaim) -> Self {
        match role {
            RoleClaim::Read => Role::Read,
            RoleClaim::Write => Role::Write,
        }
    }
}

/// What a minted token grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// Who it names.
    pub subject: String,
    /// The role in each space.
    pub spaces: BTreeMap<SpaceId, RoleClaim>,
    /// How long it is valid from minting.
    pub ttl: Duration,
}

/// Mints a token signed with `secret`, valid from `now` for `request.ttl`.
pub fn mint_token(
    secret: &Secret,
    request: &TokenRequest,
    now: SystemTime,
) -> Result<String, MintError> {
    if request.ttl < Duration::from_secs(1) {
        return Err(MintError::TtlTooShort);
    }
    let iat = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| MintError::ClockBeforeEpoch)?
        .as_secs();
    let claims = Claims {
        sub: request.subject.clone(),
        iat,
        exp: iat.saturating_add(request.ttl.as_secs()),
        spaces: request
            .spaces
            .iter()
            .map(|(space, role)| (space.as_str().to_owned(), *role))
            .collect(),
    };
    let key = EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
        .map_err(|e| MintError::Sign(e.to_string()))
}

/// Why a token could not be minted.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MintError {
    /// The time to live is under a second.
    #[error("a token must be valid for at least one second")]
    TtlTooShort,
    /// The system clock is before 1970.
    #[error("the system clock is set before 1970")]
    ClockBeforeEpoch,
    /// Signing failed.
    #[error("could not sign the token: {0}")]
    Sign(String),
}

/// Checks relay tokens: the [`Authenticator`] a relay's sessions use.
pub struct JwtAuthenticator {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthenticator").finish_non_exhaustive()
    }
}

impl JwtAuthenticator {
    /// Verifies tokens signed with `secret`.
    pub fn new(secret: &Secret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = LEEWAY_SECS;
        // Expiry is checked on the session's clock below, not on the library's.
        validation.validate_exp = false;
        validation.validate_aud = false;
        Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// The claims of `token` if it is well formed, signed with the secret and not expired
    /// at `now_ms` (milliseconds since the Unix epoch).
    pub fn verify(&self, token: &str, now_ms: u64) -> Result<Claims, AuthError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|error| invalid(plain(error.kind())))?
            .claims;
        let expired_at_ms = claims.exp.saturating_add(LEEWAY_SECS).saturating_mul(1000);
        if now_ms >= expired_at_ms {
            return Err(AuthError::Expired { expired_at_ms });
        }
        Ok(claims)
    }
}

impl Authenticator for JwtAuthenticator {
    fn authenticate(&self, token: &Token, now_ms: u64) -> Result<Grants, AuthError> {
        let claims = self.verify(token.as_str(), now_ms)?;
        let mut spaces = BTreeMap::new();
        for (space, role) in claims.spaces {
            let space = SpaceId::new(&space)
                .map_err(|_| invalid(format!("it names a space that is not valid: {space:?}")))?;
            spaces.insert(space, role.into());
        }
        Ok(Grants {
            subject: claims.sub,
            spaces,
            expires_at_ms: Some(claims.exp.saturating_mul(1000)),
        })
    }
}

fn invalid(reason: impl Into<String>) -> AuthError {
    AuthError::Invalid {
        reason: reason.into(),
    }
}

/// What is wrong with a token, in plain words for logs and the `Error` frame.
fn plain(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidSignature => "it was not signed with this relay's secret".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "it is not signed with HS256".into()
        }
        ErrorKind::MissingRequiredClaim(claim) => format!("it has no {claim:?} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("its {claim:?} claim is malformed"),
        ErrorKind::Json(error) => format!("its claims are malformed: {error}"),
        _ => "it is not a well-formed JWT".into(),
    }
}
