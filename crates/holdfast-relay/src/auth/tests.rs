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

    // `alg: none`, unsigned: a minted token's claims under a `none` header.
    let minted = mint(&secret(1), 3600);
    let claims_b64 = minted.split('.').nth(1).unwrap();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{claims_b64}.");
    let _ = reason(refusal(&none, NOW_SECS * 1000));
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
