use super::{base64url, spaces};

/// A JWT whose claims are `claims` (header and signature are not read).
fn jwt(claims: &str) -> String {
    format!("eyJhbGciOiJIUzI1NiJ9.{}.c2ln", encode(claims.as_bytes()))
}

/// Base64url without padding, the plain way, to check the decoder against.
fn encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bits: String = bytes.iter().map(|b| format!("{b:08b}")).collect();
    bits.as_bytes()
        .chunks(6)
        .map(|six| {
            let six = format!("{:0<6}", std::str::from_utf8(six).unwrap());
            ALPHABET[usize::from_str_radix(&six, 2).unwrap()] as char
        })
        .collect()
}

fn check(claims: &str) -> Option<Vec<String>> {
    let names = spaces(&jwt(claims))?;
    Some(names.iter().map(|s| s.as_str().to_owned()).collect())
}

#[test]
fn the_spaces_claim_names_the_spaces() {
    let want = |names: &[&str]| Some(names.iter().map(|n| n.to_string()).collect());
    assert_eq!(
        check(r#"{"sub":"alice","exp":9,"spaces":{"team":"write","handbook":"read"}}"#),
        want(&["handbook", "team"])
    );
    assert_eq!(check(r#"{"spaces":{"a":"read"}}"#), want(&["a"]));
    assert_eq!(check(r#"{"spaces":{}}"#), None);
    assert_eq!(check(r#"{"sub":"alice"}"#), None);
    assert_eq!(check(r#"{"spaces":["team"]}"#), None);
    assert_eq!(check(r#"{"spaces":{"":"read"}}"#), None, "not a space name");
    assert_eq!(spaces("not-a-token"), None);
    assert_eq!(spaces("a.b!.c"), None);
}

#[test]
fn base64url_decodes_every_length_and_refuses_other_alphabets() {
    for len in 0..40u8 {
        let bytes: Vec<u8> = (0..len)
            .map(|i| i.wrapping_mul(97).wrapping_add(251))
            .collect();
        assert_eq!(base64url(&encode(&bytes)), Some(bytes));
    }
    assert_eq!(base64url("+/8"), None, "standard base64's alphabet");
    assert_eq!(base64url("A"), None, "six bits are not a byte");
    assert_eq!(
        base64url("QQ=="),
        Some(b"A".to_vec()),
        "padding is tolerated"
    );
}
