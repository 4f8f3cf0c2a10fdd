//! Screens drawn into ratatui's `TestBackend`, checked on the text of the buffer.

use ratatui::crossterm::event::KeyCode;

use crate::app::{App, Screen};
use crate::testing::{
    ctrl, delete_edit_conflict, press, render, status_conflict, team, type_keys, Device,
};

fn screen_has(screen: &[String], text: &str) -> bool {
    screen.iter().any(|row| row.contains(text))
}

#[track_caller]
fn assert_shows(app: &mut App, texts: &[&str]) {
    let screen = render(app);
    for text in texts {
        assert!(
            screen_has(&screen, text),
            "{text:?} not on screen:\n{}",
            screen.join("\n")
        );
    }
}

#[track_caller]
fn assert_hides(app: &mut App, texts: &[&str]) {
    let screen = render(app);
    for text in texts {
        assert!(
            !screen_has(&screen, text),
            "{text:?} on screen:\n{}",
            screen.join("\n")
        );
    }
}

/// The first row of the screen showing `title` (a note's title, or a label).
fn row_of(app: &mut App, title: &str) -> String {
    let screen = render(app);
    let row = screen.iter().find(|r| r.contains(title));
    row.unwrap_or_else(|| panic!("no row for {title:?}:\n{}", screen.join("\n")))
        .clone()
}

/// Notes written through the app, back on the list: (title, tag or "").
fn notes(device: &Device, notes: &[(&str, &str)]) -> App {
    let mut app = device.app();
    for (title, tag) in notes {
        press(&mut app, KeyCode::Char('n'));
        type_keys(&mut app, title);
        if !tag.is_empty() {
            press(&mut app, KeyCode::Tab);
            type_keys(&mut app, &format!("{tag}\n"));
        }
        press(&mut app, KeyCode::Esc);
    }
    app
}

#[test]
fn the_list_shows_each_notes_sync_state_status_and_tags() {
    let device = Device::new();
    // Two changes each (created, titled), Alpha three (tagged).
    let titles = [
        ("Bravo", ""),
        ("Charlie", ""),
        ("Delta", ""),
        ("Alpha", "work"),
    ];
    let mut app = notes(&device, &titles);
    let id = |title: &str| app.notes.iter().find(|n| n.title == title).unwrap().id;
    let (bravo, delta) = (id("Bravo"), id("Delta"));
    // Play the sync worker: the first six changes go out; the relay stores Bravo's and
    // refuses Delta's, Charlie's are still in flight, Alpha's wait.
    let outbox = device.store.outbox();
    let batch = outbox.take_batch(6, u64::MAX).unwrap();
    assert_eq!(batch.len(), 6);
    let seqs = |id| {
        batch
            .iter()
            .filter(move |p| p.entry.record == id)
            .map(|p| p.entry.seq)
    };
    let acked: Vec<_> = seqs(bravo).map(|seq| (seq, seq)).collect();
    outbox.mark_acked(&acked).unwrap();
    for seq in seqs(delta) {
        let reason = "You no longer have write access to team";
        outbox.mark_failed(seq, reason, true).unwrap();
    }
    app.refresh().unwrap();

    let alpha = row_of(&mut app, "Alpha");
    assert!(alpha.contains("· queued") && alpha.contains("draft") && alpha.contains("#work"));
    assert!(row_of(&mut app, "Bravo").contains("✓ synced"));
    assert!(row_of(&mut app, "Charlie").contains("↑ syncing"));
    assert!(row_of(&mut app, "Delta").contains("! failed"));
    assert_shows(
        &mut app,
        &[
            "2 changes could not be sent: You no longer have write access to team.",
            "Ctrl-R Retry now",
            "Last synced just now",
        ],
    );
}

#[test]
fn a_queued_note_shows_queued_and_an_empty_list_says_what_to_do() {
    let device = Device::new();
    let mut app = device.app();
    assert_shows(
        &mut app,
        &["No notes yet. Press n to write one.", "Not synced yet"],
    );
    press(&mut app, KeyCode::Char('n'));
    type_keys(&mut app, "Plan");
    press(&mut app, KeyCode::Esc);
    assert!(row_of(&mut app, "Plan").contains("· queued"));
}

#[test]
fn the_pending_bar_is_there_only_while_changes_wait() {
    let device = Device::new();
    let mut app = device.app();
    let bar = "changes saved on this device — syncing when online";
    assert_hides(&mut app, &["saved on this device"]);
    press(&mut app, KeyCode::Char('n'));
    type_keys(&mut app, "Plan");
    assert_shows(&mut app, &[&format!("2 {bar}")]);
    // The relay acknowledges everything: the bar goes, the last sync time shows.
    let outbox = device.store.outbox();
    let batch = outbox.take_batch(100, u64::MAX).unwrap();
    app.refresh().unwrap();
    assert_shows(&mut app, &[&format!("2 {bar}")]);
    let acked: Vec<_> = batch.iter().map(|p| (p.entry.seq, p.entry.seq)).collect();
    outbox.mark_acked(&acked).unwrap();
    app.refresh().unwrap();
    assert_hides(&mut app, &["saved on this device", "Not synced yet"]);
    assert_shows(&mut app, &["Last synced"]);
    type_keys(&mut app, "!");
    assert_shows(
        &mut app,
        &["1 change saved on this device — syncing when online"],
    );
}

#[test]
fn the_last_sync_time_reads_in_words() {
    let device = Device::new();
    let mut app = device.app();
    press(&mut app, KeyCode::Char('n'));
    let outbox = device.store.outbox();
    let batch = outbox.take_batch(100, u64::MAX).unwrap();
    outbox.mark_acked(&[(batch[0].entry.seq, 1)]).unwrap();
    app.refresh().unwrap();
    let synced = app.last_synced_ms().unwrap();
    let mut app = App::with_clock(
        device.store.clone(),
        crate::testing::team(),
        None,
        Box::new(move || synced + 130_000),
    )
    .unwrap();
    assert_shows(&mut app, &["Last synced 2 min ago"]);
}

#[test]
fn the_open_note_shows_its_fields_and_sync_state() {
    let device = Device::new();
    let mut app = device.app();
    press(&mut app, KeyCode::Char('n'));
    type_keys(&mut app, "Plan\nShip on Friday");
    assert_shows(
        &mut app,
        &[
            "Title    Plan",
            "Status   ‹ draft ›",
            "Ship on Friday",
            "· queued",
            "Tab next field",
        ],
    );
}

#[test]
fn the_conflict_screen_speaks_plainly() {
    let (a, _b, _id) = status_conflict("review", "published");
    let mut app = a.app();
    assert!(row_of(&mut app, "Plan").contains("⚠ conflict"));
    press(&mut app, KeyCode::Enter);
    assert_shows(
        &mut app,
        &[
            "Changed on two devices",
            "review (yours)",
            "published (theirs)",
        ],
    );
    press(&mut app, KeyCode::Char('c')); // typed into the body, not a command here
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('c'));
    assert_eq!(app.screen, Screen::Conflict);
    assert_shows(
        &mut app,
        &[
            "The status of \"Plan\" was changed on two devices at the same time.",
            "Your version",
            "Latest version",
            "review",
            "published",
            "(this device,",
            "(another device,",
            "m  Keep mine: keep \"review\"",
            "t  Use theirs: use \"published\"",
            "e  Edit: type a new status",
            "Esc  Decide later",
        ],
    );
    press(&mut app, KeyCode::Char('e'));
    type_keys(&mut app, "done");
    press(&mut app, KeyCode::Enter);
    assert_shows(
        &mut app,
        &[
            "New status: done",
            "\"done\" is not a status: type draft, review or published.",
            "Enter save · Esc cancel",
        ],
    );
}

#[test]
fn the_conflict_screen_says_who_deleted_and_who_edited() {
    let (a, b, _id) = delete_edit_conflict();
    for (device, deleted, edited) in [
        (&a, "on this device", "on another device"),
        (&b, "on another device", "on this device"),
    ] {
        let mut app = device.app();
        assert_shows(
            &mut app,
            &["⚠ 1 note was deleted on one device and edited on another: press c"],
        );
        press(&mut app, KeyCode::Char('c'));
        let row = row_of(&mut app, "Deleted   ");
        assert!(row.contains(deleted), "{row}");
        let row = row_of(&mut app, "Edited    ");
        assert!(row.contains(edited), "{row}");
        assert_shows(
            &mut app,
            &[
                "was deleted on one device while it was being edited on another.",
                "The note is hidden until you choose; the edit is kept until then.",
                "The note with the edit:",
                "Ship on Friday",
                "r  Restore: bring the note back, with the edit",
                "d  Delete: confirm the delete (the edit goes with the note)",
                "Esc  Decide later (the note stays hidden until then)",
                "r restore with the edit · d delete · Esc decide later",
            ],
        );
        assert_hides(&mut app, &["Keep mine", "Use theirs"]);
    }
}

#[test]
fn the_delete_conflict_screen_shows_the_note_with_the_edit() {
    let (a, b) = (Device::new(), Device::new());
    let id = a
        .store
        .write(|tx| {
            let id = tx.create(crate::model::NOTE, &team())?;
            tx.set(id, "title", "Plan")?;
            tx.splice_text(
                id,
                "body",
                0,
                0,
                "Ship\nmilestone two\nmilestone three\nfourth",
            )?;
            Ok(id)
        })
        .unwrap();
    b.receive(&a);
    a.store.write(|tx| tx.delete(id)).unwrap();
    b.store
        .update(id, |tx| {
            tx.set(id, "title", "Plan v2")?;
            tx.splice_text(id, "body", 0, 0, "Urgent: ")
        })
        .unwrap();
    a.receive(&b);
    b.receive(&a);
    for device in [&a, &b] {
        let mut app = device.app();
        press(&mut app, KeyCode::Char('c'));
        let row = row_of(&mut app, "Title     ");
        assert!(row.contains("Plan v2"), "{row}");
        let row = row_of(&mut app, "Body      ");
        assert!(row.contains("Urgent: Ship"), "{row}");
        assert_shows(
            &mut app,
            &[
                "The note with the edit:",
                "milestone two",
                "milestone three",
                "(1 more line)",
                "r  Restore: bring the note back, with the edit",
            ],
        );
        assert_hides(&mut app, &["fourth"]);
    }
}

#[test]
fn the_sync_panel_lists_pending_changes_with_state_and_reason() {
    let device = Device::new();
    let mut app = device.app();
    press(&mut app, KeyCode::Char('n'));
    type_keys(&mut app, "Plan\nbody");
    let outbox = device.store.outbox();
    let batch = outbox.take_batch(1, u64::MAX).unwrap();
    outbox
        .mark_failed(
            batch[0].entry.seq,
            "This change is too large to send to the sync server",
            true,
        )
        .unwrap();
    app.handle_key(ctrl('s'));
    assert_eq!(app.screen, Screen::Sync);
    assert_shows(
        &mut app,
        &[
            "Pending changes (3)",
            "#1",
            "#3",
            "Plan",
            "failed",
            "This change is too large to send to the sync server (waits for Retry now)",
            // The note's later changes build on the refused one: they wait on it.
            "why: Waiting on an earlier change of this record that the sync server refused",
            "Not syncing: this device works offline.",
            "Last synced   not yet",
            "p pause/resume · o simulate offline · r retry now",
        ],
    );
}
