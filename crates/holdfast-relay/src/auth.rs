//! Bearer tokens: HS256 JWTs naming a subject and a role per space, minted by
//! `holdfast-relay token` and checked against the relay's secret on every `Hello`.
//!
//! Claims: `sub` (the user or device, for logs), `iat` and `exp` (seconds since the Unix
//! epoch), optionally `nbf` (the same; omitted when the token is valid from minting) and
//! `spaces`, an object mapping each space id to `"read"` or `"write"`:
//!
//! ```json
//! {"sub":"alice-laptop","iat":1767225600,"exp":1769817600,"spaces":{"team-notes":"write"}}
//! ```
//!
//! Both ends of the validity window are checked on the session's clock with the same
//! leeway, [`LEEWAY_SECS`] (none): a token is refused before the second its `nbf` names
//! (RFC 7519 section 4.1.5) and from the second its `exp` names, and a session whose token
//! expires meanwhile is closed at its next tick. `holdfast-relay token --not-before 1h`
//! mints a token valid from an hour after minting, for `--ttl` from then.
//!
//! The header is read first: only HS256 is accepted, and a header that names `none` or any
//! other algorithm, or does not decode, is refused in words that name the header, before
//! the signature or the claims are looked at. A minted token is at most
//! [`TOKEN_BYTES_MAX`] bytes, the most a relay reads in a `Hello`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use holdfast_protocol::limits::TOKEN_BYTES_MAX;
use holdfast_protocol::session::{AuthError, Authenticator, Grants, Role};
use holdfast_protocol::{SpaceId, Token};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::secret::Secret;

#[cfg(test)]
mod tests;

/// Seconds a token is still accepted after its `exp`, and already accepted before its
/// `nbf`: none.
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
    /// When it becomes valid, in seconds since the Unix epoch; `None` (no claim): at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
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
    /// How long after minting it becomes valid (its `nbf`); `None`: at once, with no `nbf`
    /// claim.
    pub not_before: Option<Duration>,
    /// How long it is valid from when it becomes valid.
    pub ttl: Duration,
}

/// Mints a token signed with `secret`, valid from `now` plus `request.not_before` (or from
/// `now`) for `request.ttl`; refused if a relay would not read it ([`TOKEN_BYTES_MAX`]).
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
    let nbf = request
        .not_before
        .map(|after| iat.saturating_add(after.as_secs()));
    let claims = Claims {
        sub: request.subject.clone(),
        iat,
        exp: nbf.unwrap_or(iat).saturating_add(request.ttl.as_secs()),
        nbf,
        spaces: request
            .spaces
            .iter()
            .map(|(space, role)| (space.as_str().to_owned(), *role))
            .collect(),
    };
    let key = EncodingKey::from_secret(secret.as_bytes());
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
        .map_err(|e| MintError::Sign(e.to_string()))?;
    if token.len() > TOKEN_BYTES_MAX {
        return Err(MintError::TooLarge {
            bytes: token.len(),
            max: TOKEN_BYTES_MAX,
        });
    }
    Ok(token)
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
    /// The token is longer than a relay reads in a `Hello`.
    #[error(
        "the token would be {} bytes; a relay accepts at most {}: grant fewer spaces per token",
        thousands(*bytes),
        thousands(*max)
    )]
    TooLarge {
        /// The token's length in bytes.
        bytes: usize,
        /// The most a relay accepts, [`TOKEN_BYTES_MAX`].
        max: usize,
    },
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
        // Expiry and `nbf` are checked on the session's clock below, not on the library's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// The claims of `token` if it is well formed, signed with the secret, already valid
    /// (its `nbf`) and not expired at `now_ms` (milliseconds since the Unix epoch).
    pub fn verify(&self, token: &str, now_ms: u64) -> Result<Claims, AuthError> {
        check_header(token).map_err(invalid)?;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|error| invalid(plain(error.kind())))?
            .claims;
        let expired_at_ms = claims.exp.saturating_add(LEEWAY_SECS).saturating_mul(1000);
        if now_ms >= expired_at_ms {
            return Err(AuthError::Expired { expired_at_ms });
        }
        if let Some(nbf) = claims.nbf {
            let valid_from_ms = nbf.saturating_sub(LEEWAY_SECS).saturating_mul(1000);
            if now_ms < valid_from_ms {
                let at = UNIX_EPOCH + Duration::from_secs(nbf);
                return Err(invalid(format!(
                    "it is not valid before {} (its nbf claim)",
                    humantime::format_rfc3339_seconds(at)
                )));
            }
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

/// Refuses a token whose header does not decode or names another algorithm than HS256, in
/// words that name the header: the claims and the signature are not looked at.
fn check_header(token: &str) -> Result<(), String> {
    let error = match jsonwebtoken::decode_header(token) {
        Ok(header) if header.alg == Algorithm::HS256 => return Ok(()),
        Ok(header) => return Err(other_algorithm(&format!("{:?}", header.alg))),
        Err(error) => error,
    };
    match error.kind() {
        ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            Err("it is not a well-formed JWT: its header is not base64url-encoded JSON".into())
        }
        ErrorKind::Json(json) => {
            // An algorithm this library has no name for (`none`) fails the header's parse:
            // read the `alg` alone to say which one it is. The claims reader decodes any
            // part of base64url JSON; given the header as the middle part, it reads that
            // (nothing is verified or trusted: the token is refused either way).
            #[derive(Deserialize)]
            struct Alg {
                alg: String,
            }
            let header = token.split('.').next().unwrap_or_default();
            let alg = jsonwebtoken::dangerous::insecure_decode_claims::<Alg>(format!(".{header}."));
            match alg {
                Ok(Alg { alg }) if alg != "HS256" => Err(other_algorithm(&alg)),
                _ => Err(format!("its header is malformed: {json}")),
            }
        }
        _ => Err("it is not a well-formed JWT".into()),
    }
}

fn other_algorithm(alg: &str) -> String {
    format!("its header names the {alg:?} algorithm; only HS256 is accepted")
}

/// `n` with a comma between thousands: "20,696".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// What is wrong with a token whose header is sound, in plain words for logs and the
/// `Error` frame.
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
