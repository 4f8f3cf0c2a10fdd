//! What a sync token names, read without checking its signature (the relay checks it):
//! the spaces a new device syncs when its store holds none yet.

use holdfast::SpaceId;

#[cfg(test)]
mod tests;

/// The spaces the token's `spaces` claim names, by name; `None` when the
/// token is not a JWT whose claims name spaces by valid names.
pub fn spaces(token: &str) -> Option<Vec<SpaceId>> {
    let mut parts = token.trim().split('.');
    let (_header, claims) = (parts.next()?, parts.next()?);
    let claims: serde_json::Value = serde_json::from_slice(&base64url(claims)?).ok()?;
    let names = claims.get("spaces")?.as_object()?;
    let spaces: Vec<SpaceId> = names
        .keys()
        .map(|name| SpaceId::new(name.as_str()).ok())
        .collect::<Option<_>>()?;
    (!spaces.is_empty()).then_some(spaces)
}

/// Base64url without padding (RFC 7515's encoding of a JWT's parts); `None` if `text` is
/// not that.
fn base64url(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut width) = (0u32, 0u32);
    for byte in text.trim_end_matches('=').bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        width += 6;
        if width >= 8 {
            width -= 8;
            out.push((bits >> width) as u8);
            bits &= (1 << width) - 1;
        }
    }
    // A lone sixth of a byte left over cannot come from whole bytes.
    (width < 6).then_some(out)
}
