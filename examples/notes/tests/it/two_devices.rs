//! Two real `notes` apps, each in its own pseudo-terminal with its own store, syncing one
//! space through a real relay process: what is typed into one appears in the other while
//! it shows the note, and back.

use std::path::Path;
use std::time::Instant;

use holdfast_relay_harness::Relay;

use crate::pty::Term;

const ENTER: &str = "\r";
const CTRL_Q: &str = "\x11";
const END: &str = "\x1b[F";

fn notes_app(name: &str, dir: &Path, relay: &Relay, token: &str) -> Term {
    let db = format!("{name}.redb");
    let url = relay.url();
    let args = [
        "--db", &db, "--space", "team", "--relay", &url, "--token", token,
    ];
    Term::spawn(name, Path::new(env!("CARGO_BIN_EXE_notes")), &args, dir)
}

#[test]
fn an_edit_typed_in_one_app_appears_in_the_other() {
    let started = Instant::now();
    let relay = Relay::start();
    let (token_a, token_b) = (relay.token(&["team:write"]), relay.token(&["team:write"]));
    let dir = tempfile::tempdir().unwrap();
    let mut a = notes_app("a", dir.path(), &relay, &token_a);
    let mut b = notes_app("b", dir.path(), &relay, &token_b);
    a.wait_for("No notes yet");
    b.wait_for("No notes yet");
    a.wait_for("Online");
    b.wait_for("Online");

    // A writes a note; B sees it in its list and opens it.
    a.send("n");
    a.wait_for("Title");
    a.send("Shared plan");
    a.send(ENTER);
    a.send("hello from A");
    a.wait_for("hello from A");
    b.wait_for("Shared plan");
    b.send(ENTER);
    b.wait_for("hello from A");

    // Live: A keeps typing while B looks at the note.
    a.send(" and more");
    b.wait_for("hello from A and more");

    // And back, from the end of B's line.
    b.send(END);
    b.send("!");
    a.wait_for("hello from A and more!");
    b.wait_for("hello from A and more!");

    // Both devices' changes are on the relay: the indicator says so, the bar is gone.
    for app in [&a, &b] {
        app.wait_until("\"✓ synced\" without a pending bar", |screen| {
            screen.contains("✓ synced") && !screen.contains("saved on this device")
        });
    }

    a.send(CTRL_Q);
    b.send(CTRL_Q);
    assert!(a.wait_exit(), "a exits cleanly");
    assert!(b.wait_exit(), "b exits cleanly");
    eprintln!(
        "two apps synced an edit both ways in {:?}",
        started.elapsed()
    );
}
