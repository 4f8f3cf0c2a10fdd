use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::spaces;

/// A JWT whose claims are `claims` (header and signature are not read).
fn jwt(claims: &str) -> String {
    format!(
        "eyJhbGciOiJIUzI1NiJ9.{}.c2ln",
        URL_SAFE_NO_PAD.encode(claims)
    )
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
    assert_eq!(spaces("a.b!.c"), None, "not base64url");
    assert_eq!(spaces("a.e30=.c"), None, "padded: not a JWT part");
}
