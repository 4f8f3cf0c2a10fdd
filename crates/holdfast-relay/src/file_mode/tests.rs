//! New files are private whatever the umask; existing files keep their mode.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
#[allow(unsafe_code)]
fn a_new_file_is_private_under_umask_022_and_an_old_one_keeps_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new");
    let old = dir.path().join("old");
    fs::write(&old, "kept").unwrap();
    fs::set_permissions(&old, fs::Permissions::from_mode(0o644)).unwrap();

    // The umask is the process's: 022, the usual one, under which `File::create` gives 0644.
    // SAFETY: umask only swaps an integer of the process; it cannot fail.
    let umask = unsafe { libc::umask(0o022) };
    let created = create_private(&new).and_then(|()| create_private(&old));
    unsafe { libc::umask(umask) };
    created.unwrap();

    assert_eq!(mode(&new), 0o600);
    assert_eq!(mode(&old), 0o644, "an existing file's mode is left alone");
    assert_eq!(fs::read_to_string(&old).unwrap(), "kept");
    assert_eq!(exposed_mode(&fs::metadata(&old).unwrap()), Some(0o644));
    assert_eq!(exposed_mode(&fs::metadata(&new).unwrap()), None);
}

#[test]
fn a_file_others_may_touch_is_exposed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file");
    fs::write(&path, "").unwrap();
    for (bits, exposed) in [(0o600, false), (0o400, false), (0o640, true), (0o604, true)] {
        fs::set_permissions(&path, fs::Permissions::from_mode(bits)).unwrap();
        let got = exposed_mode(&fs::metadata(&path).unwrap());
        assert_eq!(got, exposed.then_some(bits), "{bits:o}");
    }
}
