//! What a sync token names, read without checking its signature (the relay checks it):
//! the spaces a new device syncs when its store holds none yet.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use holdfast::SpaceId;

#[cfg(test)]
mod tests;

/// The spaces the token's `spaces` claim names, by name; `None` when the
/// token is not a JWT whose claims name spaces by valid names.
pub fn spaces(token: &str) -> Option<Vec<SpaceId>> {
    let mut parts = token.trim().split('.');
    let (_header, claims) = (parts.next()?, parts.next()?);
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()?;
    let names = claims.get("spaces")?.as_object()?;
    let spaces: Vec<SpaceId> = names
        .keys()
        .map(|name| SpaceId::new(name.as_str()).ok())
        .collect::<Option<_>>()?;
    (!spaces.is_empty()).then_some(spaces)
}
