//! The app's state and actions on real stores, driven by keys, without a terminal.

use std::time::{Duration, Instant};

use holdfast::{ConnectionState, FieldValue, Query, Store, StoreConfig, SyncState, Value};
use holdfast_relay_harness::{incompressible, Frozen};
use ratatui::crossterm::event::KeyCode;

use super::{App, Focus, Screen};
use crate::model::{self, Status};
use crate::sync_link::SyncLink;
use crate::testing::{
    ctrl, delete_edit_conflict, press, render, status_conflict, team, type_keys, Device,
};

/// A new note on `app`'s device: title typed, then the body.
fn write_note(app: &mut App, title: &str, body: &str) -> holdfast::RecordId {
    press(app, KeyCode::Char('n'));
    assert_eq!(app.screen, Screen::Note);
    assert_eq!(app.editor.as_ref().map(|e| e.focus), Some(Focus::Title));
    type_keys(app, title);
    press(app, KeyCode::Enter);
    type_keys(app, body);
    app.editor.as_ref().expect("an open note").id()
}

fn focus(app: &mut App, want: Focus) {
    for _ in 0..4 {
        if app.editor.as_ref().map(|e| e.focus) == Some(want) {
            return;
        }
        press(app, KeyCode::Tab);
    }
    panic!("no field {want:?}");
}

#[test]
fn a_new_note_is_typed_and_saved_durably() {
    let device = Device::new();
    let mut app = device.app();
    let id = write_note(&mut app, "Groceries", "milk, eggs");
    assert_eq!(device.scalar(id, "title"), "Groceries");
    assert_eq!(device.body(id), "milk, eggs");
    assert_eq!(device.scalar(id, "status"), "draft");
    // create, one burst of title, one of body: each burst one durable change.
    assert_eq!(device.store.sync_summary().unwrap().pending, 3);
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.screen, Screen::List);
    assert_eq!(app.notes.len(), 1);
    assert_eq!(app.notes[0].title, "Groceries");
    assert_eq!(app.notes[0].sync, SyncState::Queued);

    // Closed and opened again: everything is in the file.
    let Device { store, dir } = device;
    drop(app);
    drop(store);
    let store = Store::open(
        dir.path().join("notes.redb"),
        StoreConfig::new(model::schema()),
    )
    .unwrap();
    let note = store.get(id).unwrap();
    assert_eq!(note.text("body").unwrap(), "milk, eggs");
    assert_eq!(store.sync_summary().unwrap().pending, 3);
}

#[test]
fn each_key_typed_alone_is_its_own_change() {
    let device = Device::new();
    let mut app = device.app();
    let id = write_note(&mut app, "T", "");
    let before = device.store.sync_summary().unwrap().pending;
    for c in "abc".chars() {
        press(&mut app, KeyCode::Char(c));
    }
    assert_eq!(device.body(id), "abc");
    assert_eq!(device.store.sync_summary().unwrap().pending, before + 3);
}

#[test]
fn the_body_is_edited_at_the_cursor() {
    let device = Device::new();
    let mut app = device.app();
    let id = write_note(&mut app, "T", "hello world\nsecond line");
    // Cursor at the end; up a line lands in "hello world" at column 11 (its end).
    press(&mut app, KeyCode::Up);
    type_keys(&mut app, "!");
    assert_eq!(device.body(id), "hello world!\nsecond line");
    press(&mut app, KeyCode::Home);
    press(&mut app, KeyCode::Delete);
    type_keys(&mut app, "H");
    assert_eq!(device.body(id), "Hello world!\nsecond line");
    press(&mut app, KeyCode::Down);
    press(&mut app, KeyCode::End);
    press(&mut app, KeyCode::Backspace);
    press(&mut app, KeyCode::Backspace);
    press(&mut app, KeyCode::Left);
    type_keys(&mut app, "\n");
    assert_eq!(device.body(id), "Hello world!\nsecond l\ni");
    assert_eq!(app.editor.as_ref().unwrap().cursor, 22);
    // Nothing to delete at the start: no change is written.
    press(&mut app, KeyCode::Up);
    press(&mut app, KeyCode::Up);
    press(&mut app, KeyCode::Home);
    let pending = device.store.sync_summary().unwrap().pending;
    press(&mut app, KeyCode::Backspace);
    assert_eq!(device.store.sync_summary().unwrap().pending, pending);
}

#[test]
fn the_title_is_edited_in_place() {
    let device = Device::new();
    let mut app = device.app();
    let id = write_note(&mut app, "Plan", "x");
    focus(&mut app, Focus::Title);
    press(&mut app, KeyCode::Home);
    type_keys(&mut app, "The ");
    press(&mut app, KeyCode::End);
    press(&mut app, KeyCode::Backspace);
    assert_eq!(device.scalar(id, "title"), "The Pla");
}

#[test]
fn tags_are_added_and_removed() {
    let device = Device::new();
    let mut app = device.app();
    let id = write_note(&mut app, "Plan", "x");
    focus(&mut app, Focus::Tags);
    type_keys(&mut app, "work\nurgent,q3,");
    assert_eq!(device.tags(id), ["work", "urgent", "q3"]);
    type_keys(&mut app, "work\n");
    assert_eq!(device.tags(id), ["work", "urgent", "q3"], "no duplicate");
    assert!(app
        .message
        .as_deref()
        .unwrap()
        .contains("already has the tag"));
    // Backspace takes back typed letters first, then whole tags.
    type_keys(&mut app, "ab");
    press(&mut app, KeyCode::Backspace);
    press(&mut app, KeyCode::Backspace);
    press(&mut app, KeyCode::Backspace);
    assert_eq!(device.tags(id), ["work", "urgent"]);
    assert_eq!(app.editor.as_ref().unwrap().note.tags, ["work", "urgent"]);
}

#[test]
fn the_status_moves_through_draft_review_published_and_is_indexed() {
    let device = Device::new();
    let mut app = device.app();
    let id = write_note(&mut app, "Plan", "x");
    focus(&mut app, Focus::Status);
    press(&mut app, KeyCode::Right);
    assert_eq!(device.scalar(id, "status"), "review");
    press(&mut app, KeyCode::Char(' '));
    assert_eq!(device.scalar(id, "status"), "published");
    press(&mut app, KeyCode::Right);
    assert_eq!(device.scalar(id, "status"), "draft");
    press(&mut app, KeyCode::Left);
    assert_eq!(device.scalar(id, "status"), "published");
    let query = Query::Equals {
        collection: model::NOTE,
        field: "status",
        value: Value::String("published".into()),
    };
    assert_eq!(device.store.query(&query, 10, None).unwrap().ids, [id]);
    assert_eq!(app.notes[0].status, Status::Set("published".into()));
}

#[test]
fn a_status_conflict_is_settled_with_use_theirs_on_the_conflict_screen() {
    let (a, b, id) = status_conflict("review", "published");
    let mut app = a.app();
    assert!(app.notes[0].status.is_conflict());
    press(&mut app, KeyCode::Char('c'));
    assert_eq!(app.screen, Screen::Conflict);
    let conflict = app.conflict.clone().unwrap();
    assert_eq!(conflict.mine.unwrap().value, Value::String("review".into()));
    assert_eq!(
        conflict.theirs.unwrap().value,
        Value::String("published".into())
    );
    press(&mut app, KeyCode::Char('t'));
    assert_eq!(app.screen, Screen::List);
    assert_eq!(a.scalar(id, "status"), "published");
    assert!(a.store.conflicts().unwrap().is_empty());
    assert_eq!(app.notes[0].status, Status::Set("published".into()));
    // The choice travels: the other device is settled too.
    b.receive(&a);
    assert_eq!(b.scalar(id, "status"), "published");
}

#[test]
fn a_status_conflict_is_settled_with_keep_mine_from_the_open_note() {
    let (a, _b, id) = status_conflict("review", "published");
    let mut app = a.app();
    press(&mut app, KeyCode::Enter);
    focus(&mut app, Focus::Status);
    // Changing a conflicted status asks which version to keep first.
    press(&mut app, KeyCode::Right);
    assert_eq!(app.screen, Screen::Conflict);
    press(&mut app, KeyCode::Char('m'));
    assert_eq!(app.screen, Screen::Note, "back to the note it came from");
    assert_eq!(a.scalar(id, "status"), "review");
    let editor = app.editor.as_ref().unwrap();
    assert_eq!(editor.note.status, Status::Set("review".into()));
}

#[test]
fn a_status_conflict_is_settled_with_a_typed_value() {
    let (a, _b, id) = status_conflict("review", "published");
    let mut app = a.app();
    press(&mut app, KeyCode::Char('c'));
    press(&mut app, KeyCode::Char('e'));
    type_keys(&mut app, "done");
    press(&mut app, KeyCode::Enter);
    let error = app.conflict.as_ref().unwrap().error.clone().unwrap();
    assert!(error.contains("\"done\" is not a status"), "{error}");
    assert!(matches!(
        a.store.field(id, "status").unwrap(),
        FieldValue::Conflict(_)
    ));
    for _ in 0..4 {
        press(&mut app, KeyCode::Backspace);
    }
    type_keys(&mut app, "Draft");
    press(&mut app, KeyCode::Enter);
    assert_eq!(app.screen, Screen::List);
    assert_eq!(a.scalar(id, "status"), "draft");
}

#[test]
fn decide_later_keeps_both_versions() {
    let (a, _b, id) = status_conflict("review", "published");
    let mut app = a.app();
    press(&mut app, KeyCode::Char('c'));
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.screen, Screen::List);
    assert!(matches!(
        a.store.field(id, "status").unwrap(),
        FieldValue::Conflict(_)
    ));
}

#[test]
fn a_conflict_settled_elsewhere_closes_the_conflict_screen() {
    let (a, b, id) = status_conflict("review", "published");
    let mut app = a.app();
    press(&mut app, KeyCode::Char('c'));
    b.store
        .resolve(id, "status", holdfast::Resolution::KeepMine)
        .unwrap();
    a.receive(&b);
    assert!(app.poll_changes(Duration::from_secs(1)).unwrap());
    assert_eq!(app.screen, Screen::List);
    assert!(app
        .message
        .as_deref()
        .unwrap()
        .contains("settled on another device"));
    assert_eq!(app.notes[0].status, Status::Set("published".into()));
}

#[test]
fn another_devices_edit_appears_in_the_open_note_and_the_cursor_stays_put() {
    let (a, b) = (Device::new(), Device::new());
    let mut app = a.app();
    let id = write_note(&mut app, "Plan", "world");
    b.receive(&a);
    b.store
        .update(id, |tx| tx.splice_text(id, "body", 0, 0, "hello "))
        .unwrap();
    a.receive(&b);
    assert!(app.poll_changes(Duration::from_secs(1)).unwrap());
    let editor = app.editor.as_ref().unwrap();
    assert_eq!(editor.note.body, "hello world");
    assert_eq!(editor.cursor, 11, "still after \"world\"");
    type_keys(&mut app, "!");
    assert_eq!(a.body(id), "hello world!");
}

#[test]
fn typing_right_after_a_remote_edit_lands_where_the_cursor_was() {
    let (a, b) = (Device::new(), Device::new());
    let mut app = a.app();
    let id = write_note(&mut app, "Plan", "world");
    b.receive(&a);
    b.store
        .update(id, |tx| tx.splice_text(id, "body", 0, 0, "hello "))
        .unwrap();
    a.receive(&b);
    // The notification is not taken in yet: the write itself reads the current body.
    type_keys(&mut app, "!");
    assert_eq!(a.body(id), "hello world!");
    assert_eq!(app.editor.as_ref().unwrap().cursor, 12);
}

#[test]
fn a_note_is_deleted_after_confirmation() {
    let device = Device::new();
    let mut app = device.app();
    let id = write_note(&mut app, "Old", "x");
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('x'));
    assert_eq!(app.confirm_delete, Some(id));
    press(&mut app, KeyCode::Char('n'));
    assert!(device.store.get(id).is_ok(), "any other key keeps it");
    assert_eq!(app.notes.len(), 1);
    press(&mut app, KeyCode::Char('x'));
    press(&mut app, KeyCode::Char('y'));
    assert!(matches!(
        device.store.get(id),
        Err(holdfast::Error::Deleted(_))
    ));
    assert!(app.notes.is_empty());
    assert_eq!(app.message.as_deref(), Some("Deleted \"Old\"."));
}

#[test]
fn a_note_deleted_elsewhere_closes_with_a_message() {
    let (a, b) = (Device::new(), Device::new());
    let mut app = a.app();
    let id = write_note(&mut app, "Plan", "x");
    b.receive(&a);
    b.store.write(|tx| tx.delete(id)).unwrap();
    a.receive(&b);
    app.poll_changes(Duration::from_secs(1)).unwrap();
    assert_eq!(app.screen, Screen::List);
    assert!(app.editor.is_none());
    assert!(app.notes.is_empty());
    assert_eq!(
        app.message.as_deref(),
        Some("This note was deleted on another device.")
    );
}

#[test]
fn notes_of_other_spaces_are_not_listed() {
    let device = Device::new();
    let other = holdfast::SpaceId::new("elsewhere").unwrap();
    device
        .store
        .write(|tx| {
            let id = tx.create(model::NOTE, &other)?;
            tx.set(id, "title", "Not here")
        })
        .unwrap();
    let mut app = device.app();
    assert!(app.notes.is_empty());
    app.poll_changes(Duration::from_millis(10)).unwrap();
    assert!(app.notes.is_empty());
}

#[test]
fn the_sync_panel_without_a_relay_says_how_to_sync() {
    let device = Device::new();
    let mut app = device.app();
    write_note(&mut app, "Plan", "x");
    app.handle_key(ctrl('s'));
    assert_eq!(app.screen, Screen::Sync);
    assert_eq!(app.outbox.len(), 3);
    press(&mut app, KeyCode::Char('p'));
    assert_eq!(app.message.as_deref(), Some(super::NO_RELAY));
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.screen, Screen::Note, "back where it was opened");
    app.handle_key(ctrl('q'));
    assert!(app.quit);
}

/// The delete/edit conflict screen of `app`, opened with "c" from the list.
fn open_deletion(app: &mut App) -> super::Deletion {
    app.refresh().unwrap();
    press(app, KeyCode::Char('c'));
    assert_eq!(app.screen, Screen::Conflict);
    app.conflict.as_ref().unwrap().deletion.clone().unwrap()
}

#[test]
fn a_note_deleted_here_and_edited_elsewhere_is_restored_with_the_edit() {
    let (a, b) = (Device::new(), Device::new());
    let mut app = a.app();
    let id = write_note(&mut app, "Plan", "Ship");
    press(&mut app, KeyCode::Esc);
    b.receive(&a);
    // Deleted here, in the app, while b adds to the body.
    press(&mut app, KeyCode::Char('x'));
    press(&mut app, KeyCode::Char('y'));
    assert!(a.store.is_deleted(id).unwrap());
    b.store
        .update(id, |tx| tx.splice_text(id, "body", 4, 0, " on Friday"))
        .unwrap();
    a.receive(&b);
    let screen = render(&mut app).join("\n");
    assert!(app.notes.is_empty(), "hidden until the user chooses");
    assert_eq!(app.deleted_conflicts, [id]);
    assert!(
        screen.contains("⚠ 1 note was deleted on one device and edited on another: press c"),
        "{screen}"
    );

    let deletion = open_deletion(&mut app);
    assert_eq!(app.conflict.as_ref().unwrap().title, "Plan");
    let devices = |c: &[holdfast::Candidate]| -> Vec<_> { c.iter().map(|c| c.device).collect() };
    assert_eq!(devices(&deletion.deletes), [Some(a.store.device_id())]);
    assert!(deletion.deletes[0].mine);
    assert_eq!(devices(&deletion.edits), [Some(b.store.device_id())]);
    assert!(!deletion.edits[0].mine);
    // The note as restoring it would bring it back, read from the deleted record.
    let edited = deletion.edited.expect("the edited note");
    assert_eq!(
        (edited.title.as_str(), edited.body.as_str()),
        ("Plan", "Ship on Friday")
    );
    // The status choices are not offered; the store's two answers are.
    press(&mut app, KeyCode::Char('m'));
    assert_eq!(app.screen, Screen::Conflict);

    press(&mut app, KeyCode::Char('r'));
    assert_eq!(app.screen, Screen::List);
    assert_eq!(
        app.message.as_deref(),
        Some("Restored \"Plan\" with the edit made meanwhile.")
    );
    assert_eq!(app.notes.len(), 1);
    assert_eq!(app.notes[0].body, "Ship on Friday");
    assert!(app.deleted_conflicts.is_empty());
    assert!(a.store.conflicts().unwrap().is_empty());
    // The choice travels: the other device settles the same way.
    b.receive(&a);
    assert!(b.store.conflicts().unwrap().is_empty());
    assert_eq!(b.body(id), "Ship on Friday");
}

#[test]
fn a_note_edited_here_and_deleted_elsewhere_can_be_deleted_or_left_for_later() {
    let (a, b, id) = delete_edit_conflict();
    let mut app = b.app();
    app.refresh().unwrap();
    assert!(app.notes.is_empty());
    let deletion = open_deletion(&mut app);
    assert!(!deletion.deletes[0].mine, "deleted on the other device");
    assert!(deletion.edits[0].mine, "edited here");
    assert_eq!(
        app.conflict.as_ref().unwrap().title,
        "Plan",
        "not listed here: the title of the deleted record"
    );

    // Later: the conflict stays, and "c" finds it again.
    press(&mut app, KeyCode::Esc);
    assert_eq!(app.screen, Screen::List);
    assert_eq!(b.store.conflicts().unwrap().len(), 1);
    open_deletion(&mut app);
    press(&mut app, KeyCode::Char('d'));
    assert_eq!(app.screen, Screen::List);
    assert!(app.notes.is_empty());
    assert!(b.store.conflicts().unwrap().is_empty());
    assert!(b.store.is_deleted(id).unwrap());
    a.receive(&b);
    assert!(a.store.conflicts().unwrap().is_empty());
    assert!(a.store.is_deleted(id).unwrap());
}

#[test]
fn a_delete_settled_elsewhere_closes_the_conflict_screen() {
    let (a, b, id) = delete_edit_conflict();
    let mut app = b.app();
    open_deletion(&mut app);
    a.store
        .resolve(
            id,
            holdfast::STATE_FIELD,
            holdfast::Resolution::Value("live".into()),
        )
        .unwrap();
    b.receive(&a);
    render(&mut app);
    assert_eq!(app.screen, Screen::List);
    assert_eq!(
        app.message.as_deref(),
        Some("The delete conflict was settled on another device.")
    );
    assert_eq!(app.notes.len(), 1);
}

/// Refreshes `app` until `until` holds, for up to 60 s.
fn wait(app: &mut App, what: &str, until: impl Fn(&App) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        app.poll_changes(Duration::from_millis(20)).unwrap();
        app.refresh().unwrap();
        if until(app) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

#[test]
fn two_apps_sync_through_a_relay_with_pause_offline_and_retry() {
    let relay = holdfast_relay_harness::Relay::start();
    let token = relay.token(&["team:write"]);
    let (a, b) = (Device::new(), Device::new());
    let link = |d: &Device| SyncLink::start(&d.store, &relay.url(), &token, team()).unwrap();
    let clock = || Box::new(crate::testing::real_now) as Box<dyn Fn() -> i64>;
    let mut app_a = App::with_clock(a.store.clone(), team(), Some(link(&a)), clock()).unwrap();
    let mut app_b = App::with_clock(b.store.clone(), team(), Some(link(&b)), clock()).unwrap();

    let id = write_note(&mut app_a, "Shared", "from a");
    wait(&mut app_a, "a's note synced", |app| {
        app.summary.pending == 0 && app.notes[0].sync == SyncState::Synced
    });
    assert!(app_a.last_synced_ms().is_some());
    wait(&mut app_b, "a's note on b", |app| {
        app.notes.first().is_some_and(|n| n.body == "from a")
    });

    // Simulated offline: edits queue, sync reports no connection in plain words.
    app_a.handle_key(ctrl('s'));
    press(&mut app_a, KeyCode::Char('o'));
    assert!(app_a.link().unwrap().simulated_offline());
    app_a.handle_key(ctrl('s'));
    type_keys(&mut app_a, " offline");
    wait(&mut app_a, "no connection", |app| {
        app.sync_problem()
            .is_some_and(|p| p.contains("No connection to the sync server"))
    });
    assert_eq!(app_a.summary.pending, 1);
    assert_eq!(app_a.notes[0].sync, SyncState::Queued);
    let screen = render(&mut app_a).join("\n");
    for text in [
        "Offline (simulated)",
        "1 change saved on this device — syncing when online",
        "Can't sync: No connection to the sync server.",
        "Ctrl-R Retry now",
    ] {
        assert!(screen.contains(text), "{text:?} not on screen:\n{screen}");
    }
    assert_eq!(b.body(id), "from a");
    // Retry now while offline fails again, the change still queued.
    app_a.handle_key(ctrl('r'));
    assert_eq!(a.store.sync_summary().unwrap().pending, 1);

    // Back online: the queued edit goes out and reaches b.
    app_a.handle_key(ctrl('s'));
    press(&mut app_a, KeyCode::Char('o'));
    wait(&mut app_a, "the queue sent", |app| app.summary.pending == 0);
    wait(&mut app_b, "the edit on b", |app| {
        app.notes
            .first()
            .is_some_and(|n| n.body == "from a offline")
    });

    // Paused: the worker says so, and edits wait until resumed.
    press(&mut app_a, KeyCode::Char('p'));
    wait(&mut app_a, "paused", |app| {
        app.status.as_ref().is_some_and(|s| s.paused)
    });
    assert!(app_a.sync_problem().is_none(), "a pause is not a problem");
    app_a.handle_key(ctrl('s'));
    type_keys(&mut app_a, "!");
    std::thread::sleep(Duration::from_millis(300));
    app_a.refresh().unwrap();
    assert_eq!(app_a.summary.pending, 1, "nothing sent while paused");
    app_a.handle_key(ctrl('s'));
    press(&mut app_a, KeyCode::Char('p'));
    wait(&mut app_a, "resumed and sent", |app| {
        app.summary.pending == 0
            && app
                .status
                .as_ref()
                .is_some_and(|s| s.connection == ConnectionState::Idle)
    });
    wait(&mut app_b, "the last edit on b", |app| {
        app.notes
            .first()
            .is_some_and(|n| n.body == "from a offline!")
    });
}

/// How long a key may take while a send is stalled (stopping a worker used to wait up to
/// holdfast's STOP_WAIT_MAX, 10 s, for the send).
const KEY_WAIT_MAX: Duration = Duration::from_secs(2);

/// An app on `device` syncing with `relay`, whose worker is stuck in a send: the relay
/// stopped reading once the app was connected and idle, and the device pushes more than
/// the sockets buffer. Returns the app, the frozen relay (thawed when dropped) and the
/// entries the relay had stored.
fn stalled_app(
    device: &Device,
    relay: &holdfast_relay_harness::Relay,
    token: &str,
) -> (App, Frozen, u64) {
    let link = SyncLink::start(&device.store, &relay.url(), token, team()).unwrap();
    let clock = Box::new(crate::testing::real_now);
    let mut app = App::with_clock(device.store.clone(), team(), Some(link), clock).unwrap();
    write_note(&mut app, "First", "sent");
    wait(&mut app, "connected and idle", |app| {
        app.summary.pending == 0
            && app
                .status
                .as_ref()
                .is_some_and(|s| s.connection == ConnectionState::Idle)
    });
    let stored = relay.push_entries("stored");
    let frozen = relay.freeze();
    for i in 0..16 {
        let title = incompressible(i + 1, 900_000);
        device
            .store
            .write(|tx| {
                let id = tx.create(model::NOTE, &team())?;
                tx.set(id, "title", title.as_str())
            })
            .unwrap();
    }
    wait(&mut app, "the pushes under way", |app| {
        app.status
            .as_ref()
            .is_some_and(|s| s.connection == ConnectionState::Syncing)
    });
    // Time for the sockets to fill: the worker then waits inside a send.
    std::thread::sleep(Duration::from_secs(2));
    (app, frozen, stored)
}

#[test]
fn simulating_offline_returns_at_once_while_a_send_is_stalled() {
    let relay = holdfast_relay_harness::Relay::start();
    let token = relay.token(&["team:write"]);
    let a = Device::new();
    let (mut app, frozen, stored) = stalled_app(&a, &relay, &token);

    app.handle_key(ctrl('s'));
    let pressed = Instant::now();
    press(&mut app, KeyCode::Char('o'));
    let took = pressed.elapsed();
    eprintln!("simulating offline with a stalled send took {took:?}");
    assert!(
        took < KEY_WAIT_MAX,
        "the switch blocked the UI for {took:?}"
    );
    assert!(app.link().unwrap().simulated_offline());
    let screen = render(&mut app).join("\n");
    assert!(screen.contains("Offline (simulated)"), "{screen}");

    // The network comes back; so does the device, and everything queued goes out.
    drop(frozen);
    let pressed = Instant::now();
    press(&mut app, KeyCode::Char('o'));
    assert!(pressed.elapsed() < KEY_WAIT_MAX);
    assert!(!app.link().unwrap().simulated_offline());
    wait(&mut app, "the queue sent", |app| app.summary.pending == 0);
    assert_eq!(app.notes.len(), 17);
    assert_eq!(relay.push_entries("stored"), stored + 16);
}

#[test]
fn quitting_returns_at_once_while_a_send_is_stalled() {
    let relay = holdfast_relay_harness::Relay::start();
    let token = relay.token(&["team:write"]);
    let a = Device::new();
    let (mut app, frozen, stored) = stalled_app(&a, &relay, &token);

    app.handle_key(ctrl('q'));
    assert!(app.quit);
    // What `main` does once the loop ends: the app, and with it the sync worker, goes.
    let quit = Instant::now();
    drop(app);
    let took = quit.elapsed();
    eprintln!("quitting with a stalled send took {took:?}");
    assert!(took < KEY_WAIT_MAX, "quitting took {took:?}");

    // Nothing was lost: with the network back, the app's next run sends it all.
    drop(frozen);
    let link = SyncLink::start(&a.store, &relay.url(), &token, team()).unwrap();
    let clock = Box::new(crate::testing::real_now);
    let mut app = App::with_clock(a.store.clone(), team(), Some(link), clock).unwrap();
    wait(&mut app, "the queue sent", |app| app.summary.pending == 0);
    assert_eq!(relay.push_entries("stored"), stored + 16);
}
