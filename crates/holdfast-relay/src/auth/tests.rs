//! Token minting and checking.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use holdfast_protocol::session::{AuthError, Authenticator, Role};
use holdfast_protocol::{SpaceId, Token};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::*;

const NOW_SECS: u64 = 1_800_000_000;

fn secret(byte: u8) -> Secret {
    Secret::new(vec![byte; 32]).unwrap()
}

fn request(spaces: &[(&str, RoleClaim)], ttl_secs: u64) -> TokenRequest {
    TokenRequest {
        subject: "alice-laptop".into(),
        spaces: spaces
            .iter()
            .map(|(space, role)| (SpaceId::new(*space).unwrap(), *role))
            .collect(),
        not_before: None,
        ttl: Duration::from_secs(ttl_secs),
    }
}

fn mint(secret: &Secret, ttl_secs: u64) -> String {
    let spaces = [("team", RoleClaim::Write), ("archive", RoleClaim::Read)];
    let now = UNIX_EPOCH + Duration::from_secs(NOW_SECS);
    mint_token(secret, &request(&spaces, ttl_secs), now).unwrap()
}

/// What `token` is refused with at `now_ms`, checked by `secret(1)`.
fn refusal(token: &str, now_ms: u64) -> AuthError {
    JwtAuthenticator::new(&secret(1))
        .authenticate(&Token::new(token), now_ms)
        .unwrap_err()
}

fn reason(error: AuthError) -> String {
    match error {
        AuthError::Invalid { reason } => reason,
        other => panic!("expected an invalid token, got {other:?}"),
    }
}

/// An HS256 token of any claims, signed with `secret(1)`.
fn signed(claims: &serde_json::Value) -> String {
    let key = EncodingKey::from_secret(secret(1).as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).unwrap()
}

#[test]
fn a_minted_token_grants_its_roles_until_it_expires() {
    let token = mint(&secret(1), 3600);
    let grants = JwtAuthenticator::new(&secret(1))
        .authenticate(&Token::new(token), NOW_SECS * 1000)
        .unwrap();
    assert_eq!(grants.subject, "alice-laptop");
    let expected: BTreeMap<SpaceId, Role> = [
        (SpaceId::new("team").unwrap(), Role::Write),
        (SpaceId::new("archive").unwrap(), Role::Read),
    ]
    .into();
    assert_eq!(grants.spaces, expected);
    assert_eq!(grants.expires_at_ms, Some((NOW_SECS + 3600) * 1000));
}

#[test]
fn expiry_has_no_leeway() {
    let token = mint(&secret(1), 60);
    let exp_ms = (NOW_SECS + 60) * 1000;
    let auth = JwtAuthenticator::new(&secret(1));
    assert!(auth.authenticate(&Token::new(&token), exp_ms - 1).is_ok());
    assert_eq!(
        refusal(&token, exp_ms),
        AuthError::Expired {
            expired_at_ms: exp_ms
        }
    );
}

#[test]
fn a_token_signed_with_another_secret_is_refused() {
    let token = mint(&secret(2), 3600);
    let reason = reason(refusal(&token, NOW_SECS * 1000));
    assert!(
        reason.contains("not signed with this relay's secret"),
        "{reason}"
    );
}

#[test]
fn only_hs256_is_accepted() {
    let key = EncodingKey::from_secret(secret(1).as_bytes());
    let claims =
        serde_json::json!({"sub": "x", "iat": NOW_SECS, "exp": NOW_SECS + 60, "spaces": {}});
    let hs384 = jsonwebtoken::encode(&Header::new(Algorithm::HS384), &claims, &key).unwrap();
    assert!(reason(refusal(&hs384, NOW_SECS * 1000)).contains("HS256"));

    assert!(
        reason(refusal(&hs384, NOW_SECS * 1000)).contains("header names the \"HS384\""),
        "the header is named"
    );
}

#[test]
fn a_header_that_is_not_hs256_is_refused_for_its_header() {
    // A minted token's claims and signature under other headers.
    let minted = mint(&secret(1), 3600);
    let (_, rest) = minted.split_once('.').unwrap();
    let check = |header: &str, expected: &str| {
        let token = format!("{header}.{rest}");
        let reason = reason(refusal(&token, NOW_SECS * 1000));
        assert!(reason.contains(expected), "{header}: {reason}");
        assert!(!reason.contains("claims"), "{header}: {reason}");
    };
    // {"alg":"none"}, and {"alg":"none","typ":"JWT"}.
    let only_hs256 = "its header names the \"none\" algorithm; only HS256 is accepted";
    check("eyJhbGciOiJub25lIn0", only_hs256);
    check("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0", only_hs256);
    // {"alg":"RS256"}: a name the library knows.
    check(
        "eyJhbGciOiJSUzI1NiJ9",
        "its header names the \"RS256\" algorithm",
    );
    // {"typ":"JWT"}: no algorithm at all.
    check("eyJ0eXAiOiJKV1QifQ", "its header is malformed");
    // Not base64url, and base64url of text that is not JSON ("hello").
    check("!!!", "its header is not base64url-encoded JSON");
    check("aGVsbG8", "its header is malformed");

    // The token: `alg: none`, claims, and no signature at all.
    let unsigned = format!("eyJhbGciOiJub25lIn0.{}.", rest.split('.').next().unwrap());
    assert!(reason(refusal(&unsigned, NOW_SECS * 1000)).contains(only_hs256));
}

#[test]
fn nbf_is_checked_on_the_session_clock_with_the_exp_leeway() {
    let now = UNIX_EPOCH + Duration::from_secs(NOW_SECS);
    let mut later = request(&[("team", RoleClaim::Write)], 600);
    later.not_before = Some(Duration::from_secs(3600));
    let token = mint_token(&secret(1), &later, now).unwrap();
    let auth = JwtAuthenticator::new(&secret(1));
    let nbf = NOW_SECS + 3600;
    let claims = auth.verify(&token, nbf * 1000).unwrap();
    assert_eq!(claims.nbf, Some(nbf));
    assert_eq!(claims.exp, nbf + 600, "the ttl counts from nbf");

    // Valid from `nbf - LEEWAY_SECS`, as it is valid until `exp + LEEWAY_SECS`.
    let valid_from_ms = (nbf - LEEWAY_SECS) * 1000;
    let expired_at_ms = (nbf + 600 + LEEWAY_SECS) * 1000;
    assert!(auth.verify(&token, valid_from_ms).is_ok());
    assert!(auth.verify(&token, expired_at_ms - 1).is_ok());
    assert_eq!(
        refusal(&token, expired_at_ms),
        AuthError::Expired { expired_at_ms }
    );
    let not_yet = format!(
        "it is not valid before {} (its nbf claim)",
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(nbf))
    );
    for early_ms in [valid_from_ms - 1, valid_from_ms - 1000, NOW_SECS * 1000] {
        assert_eq!(reason(refusal(&token, early_ms)), not_yet, "at {early_ms}");
    }
    assert!(not_yet.contains("2027-01-15T09:00:00Z"), "{not_yet}");
}

#[test]
fn a_token_without_nbf_is_valid_from_minting() {
    // Minted without `not_before`: no `nbf` claim at all, as tokens were before it.
    let minted = mint(&secret(1), 60);
    let claims: serde_json::Value =
        jsonwebtoken::dangerous::insecure_decode_claims(&minted).unwrap();
    assert!(claims.get("nbf").is_none(), "{claims}");
    let auth = JwtAuthenticator::new(&secret(1));
    assert_eq!(auth.verify(&minted, 0).unwrap().nbf, None);

    // A token signed before `nbf` existed, and one with an `nbf` in the past.
    let old = signed(
        &serde_json::json!({"sub": "x", "iat": NOW_SECS, "exp": NOW_SECS + 60,
        "spaces": {"team": "read"}}),
    );
    assert!(auth.verify(&old, NOW_SECS * 1000).is_ok());
    let past = signed(
        &serde_json::json!({"sub": "x", "iat": NOW_SECS, "nbf": NOW_SECS - 5,
        "exp": NOW_SECS + 60, "spaces": {}}),
    );
    assert_eq!(
        auth.verify(&past, NOW_SECS * 1000).unwrap().nbf,
        Some(NOW_SECS - 5)
    );
    let bad_nbf = signed(
        &serde_json::json!({"sub": "x", "iat": NOW_SECS, "nbf": "soon",
        "exp": NOW_SECS + 60, "spaces": {}}),
    );
    assert!(reason(refusal(&bad_nbf, NOW_SECS * 1000)).contains("claims are malformed"));
}

/// A request of one write space whose token is `bytes` long, if one is.
fn request_of_length(bytes: usize) -> Option<TokenRequest> {
    let now = UNIX_EPOCH + Duration::from_secs(NOW_SECS);
    let mut request = request(&[("team", RoleClaim::Write)], 3600);
    request.subject = String::new();
    let base = mint_token(&secret(1), &request, now).unwrap().len();
    // Each subject byte is 4/3 of a token byte; look around the estimate.
    let estimate = (bytes - base) * 3 / 4;
    (estimate.saturating_sub(4)..estimate + 4).find_map(|n| {
        request.subject = "s".repeat(n);
        match mint_token(&secret(1), &request, now) {
            Ok(token) if token.len() == bytes => Some(request.clone()),
            Err(MintError::TooLarge { bytes: b, .. }) if b == bytes => Some(request.clone()),
            _ => None,
        }
    })
}

#[test]
fn a_token_a_relay_would_refuse_is_not_minted() {
    use holdfast_protocol::limits::TOKEN_BYTES_MAX;

    let now = UNIX_EPOCH + Duration::from_secs(NOW_SECS);
    let at_limit = request_of_length(TOKEN_BYTES_MAX).expect("a token of exactly the limit");
    let token = mint_token(&secret(1), &at_limit, now).unwrap();
    assert_eq!(token.len(), TOKEN_BYTES_MAX);
    let auth = JwtAuthenticator::new(&secret(1));
    assert!(auth
        .authenticate(&Token::new(&token), NOW_SECS * 1000)
        .is_ok());

    let over = request_of_length(TOKEN_BYTES_MAX + 1).expect("a token one byte over");
    assert_eq!(
        mint_token(&secret(1), &over, now),
        Err(MintError::TooLarge {
            bytes: TOKEN_BYTES_MAX + 1,
            max: TOKEN_BYTES_MAX
        })
    );

    // The 700 spaces.
    let names: Vec<String> = (0..700).map(|i| format!("space-{i:03}")).collect();
    let spaces: Vec<(&str, RoleClaim)> = names
        .iter()
        .map(|n| (n.as_str(), RoleClaim::Write))
        .collect();
    let error = mint_token(&secret(1), &request(&spaces, 3600), now).unwrap_err();
    assert!(
        matches!(error, MintError::TooLarge { bytes, .. } if bytes > 2 * TOKEN_BYTES_MAX),
        "{error}"
    );
    assert_eq!(
        MintError::TooLarge {
            bytes: 20_696,
            max: 8_192
        }
        .to_string(),
        "the token would be 20,696 bytes; a relay accepts at most 8,192: \
         grant fewer spaces per token"
    );
}

#[test]
fn malformed_tokens_are_refused_in_plain_words() {
    let check = |token: &str, expected: &str| {
        let reason = reason(refusal(token, NOW_SECS * 1000));
        assert!(reason.contains(expected), "{token:?}: {reason}");
    };
    check("", "not a well-formed JWT");
    check("not-a-jwt", "not a well-formed JWT");
    check("a.b.c", "not a well-formed JWT");
    let no_exp = serde_json::json!({"sub": "x", "iat": NOW_SECS, "spaces": {}});
    check(&signed(&no_exp), "missing field `exp`");
    let bad_role = serde_json::json!({"sub": "x", "iat": NOW_SECS, "exp": NOW_SECS + 60,
        "spaces": {"team": "admin"}});
    check(&signed(&bad_role), "malformed");
    let bad_space = serde_json::json!({"sub": "x", "iat": NOW_SECS, "exp": NOW_SECS + 60,
        "spaces": {"no spaces allowed": "read"}});
    check(&signed(&bad_space), "not valid");
}

#[test]
fn a_token_must_live_a_second() {
    let now = UNIX_EPOCH + Duration::from_secs(NOW_SECS);
    let zero = request(&[("team", RoleClaim::Read)], 0);
    assert_eq!(
        mint_token(&secret(1), &zero, now),
        Err(MintError::TtlTooShort)
    );
}
