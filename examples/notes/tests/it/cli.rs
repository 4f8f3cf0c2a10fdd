//! The command line: `--help` with an example, mistakes reported in words.

use std::process::{Command, Stdio};

fn notes() -> Command {
    Command::new(env!("CARGO_BIN_EXE_notes"))
}

#[test]
fn help_shows_every_flag_and_an_example() {
    let out = notes().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for text in [
        "--db <PATH>",
        "NOTES_DB",
        "--space <NAME>",
        "--relay <URL>",
        "--token <T>",
        "Example",
        "holdfast-relay token --space team:write",
        "notes --db a.redb --space team --relay ws://127.0.0.1:7700 --token",
        "Ctrl-S sync panel",
    ] {
        assert!(help.contains(text), "{text:?} not in:\n{help}");
    }
}

#[test]
fn a_relay_without_a_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = notes()
        .args(["--db", "x.redb", "--relay", "ws://127.0.0.1:9"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--token <T>"), "{err}");
}

#[test]
fn without_a_terminal_it_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = notes()
        .args(["--db", "x.redb"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("notes: the terminal could not be set up"),
        "{err}"
    );
}
