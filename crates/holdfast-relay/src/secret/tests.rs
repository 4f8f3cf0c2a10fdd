//! The secret file: created private, refused when exposed, short or not hex.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn check_refused(contents: &str, mode: u32, expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    fs::write(&path, contents).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    let error = Secret::load_or_create(&path).unwrap_err().to_string();
    assert!(error.contains(expected), "{error}");
}

#[test]
fn a_new_secret_is_created_once_and_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    let created = Secret::load_or_create(&path).unwrap();
    assert_eq!(created.as_bytes().len(), SECRET_BYTES);
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(Secret::load_or_create(&path).unwrap(), created);
    assert_eq!(Secret::load(&path).unwrap(), created);
    assert_eq!(format!("{created:?}"), "Secret(<32 bytes>)");
}

#[test]
fn an_unsafe_or_damaged_secret_is_refused() {
    let ok = "ab".repeat(SECRET_BYTES);
    check_refused(&ok, 0o644, "can be read by other users");
    check_refused(&ok, 0o640, "can be read by other users");
    check_refused(&"ab".repeat(SECRET_BYTES - 1), 0o600, "holds 31 bytes");
    check_refused("not hex at all", 0o600, "not hex");
    let dir = tempfile::tempdir().unwrap();
    let error = Secret::load(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(error, SecretError::Missing { .. }), "{error}");
}

#[test]
fn a_secret_has_at_least_32_bytes() {
    assert!(Secret::new(vec![0; SECRET_BYTES - 1]).is_none());
    assert!(Secret::new(vec![0; SECRET_BYTES]).is_some());
}
