//! Helpers for the unit and screen tests: stores in a temporary directory, an app on one
//! with a fixed clock, keys, and two devices exchanging bundles.

use holdfast::{RecordId, SpaceId, Store, StoreConfig};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;

use crate::app::App;
use crate::model;

/// The clock of test apps: a fixed instant (ms since the epoch).
pub const NOW_MS: i64 = 1_750_000_000_000;

/// A device: a store in its own temporary directory.
pub struct Device {
    pub store: Store,
    pub dir: tempfile::TempDir,
}

impl Device {
    pub fn new() -> Device {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Store::open(
            dir.path().join("notes.redb"),
            StoreConfig::new(model::schema()),
        )
        .expect("the store opens");
        Device { store, dir }
    }

    /// An app on this device's store, in space "team", without a relay.
    pub fn app(&self) -> App {
        App::with_clock(self.store.clone(), team(), None, Box::new(|| NOW_MS))
            .expect("the app starts")
    }

    /// Merges every change of `other` into this device, as a bundle; every record must
    /// apply (a refused one would leave the tests checking notes that never arrived).
    pub fn receive(&self, other: &Device) {
        let export = other.store.export_changes(None, None).expect("export");
        let imported = self.store.import_changes(&export.bytes).expect("import");
        if let Err(refused) = imported.complete() {
            panic!("the import refused records: {refused}");
        }
    }

    pub fn body(&self, id: RecordId) -> String {
        let note = self.store.get(id).expect("the note");
        note.text("body").expect("a body").to_owned()
    }

    pub fn scalar(&self, id: RecordId, field: &str) -> String {
        let note = self.store.get(id).expect("the note");
        let value = note.get(field).expect("a settled field");
        value.map(|v| v.to_string()).unwrap_or_default()
    }

    pub fn tags(&self, id: RecordId) -> Vec<String> {
        let note = self.store.get(id).expect("the note");
        model::strings(note.list("tags").expect("a list"))
    }
}

pub fn team() -> SpaceId {
    SpaceId::new("team").expect("a space name")
}

/// A key without modifiers.
pub fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

/// Ctrl and a letter.
pub fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

/// Presses `code`.
pub fn press(app: &mut App, code: KeyCode) {
    app.handle_key(key(code));
}

/// Types `s` as one burst of keys ("\n" as Enter), as `main` hands them over.
pub fn type_keys(app: &mut App, s: &str) {
    let keys = s.chars().map(|c| match c {
        '\n' => key(KeyCode::Enter),
        c => key(KeyCode::Char(c)),
    });
    app.handle_keys(keys);
}

/// Two devices with one shared note (title "Plan", body "Ship on Friday", status
/// "draft"), then the status set to `mine` on the first and `theirs` on the second and
/// exchanged both ways: a status conflict on both.
pub fn status_conflict(mine: &str, theirs: &str) -> (Device, Device, RecordId) {
    let (a, b, id) = shared_plan("Ship on Friday");
    a.store
        .update(id, |tx| tx.set(id, "status", "draft"))
        .expect("a status");
    b.receive(&a);
    a.store
        .update(id, |tx| tx.set(id, "status", mine))
        .expect("a status");
    b.store
        .update(id, |tx| tx.set(id, "status", theirs))
        .expect("a status");
    a.receive(&b);
    b.receive(&a);
    (a, b, id)
}

/// Two devices with one shared note (title "Plan"), deleted on the first while the
/// second adds to its body, then exchanged both ways: a delete/edit conflict on both.
pub fn delete_edit_conflict() -> (Device, Device, RecordId) {
    let (a, b, id) = shared_plan("Ship");
    a.store.write(|tx| tx.delete(id)).expect("a delete");
    b.store
        .update(id, |tx| tx.splice_text(id, "body", 4, 0, " on Friday"))
        .expect("an edit");
    a.receive(&b);
    b.receive(&a);
    (a, b, id)
}

/// Two devices sharing one note titled "Plan" with `body`, written on the first.
fn shared_plan(body: &str) -> (Device, Device, RecordId) {
    let (a, b) = (Device::new(), Device::new());
    let id = a
        .store
        .write(|tx| {
            let id = tx.create(model::NOTE, &team())?;
            tx.set(id, "title", "Plan")?;
            tx.splice_text(id, "body", 0, 0, body)?;
            Ok(id)
        })
        .expect("a note");
    b.receive(&a);
    (a, b, id)
}

/// The system clock (ms since the epoch), for apps that talk to a relay.
pub fn real_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The screen (100×24) as text, one string per row, after one turn of `main`'s loop
/// (take in notifications, refresh what is due).
pub fn render(app: &mut App) -> Vec<String> {
    app.poll_changes(std::time::Duration::ZERO).unwrap();
    app.tick().unwrap();
    let mut terminal = Terminal::new(TestBackend::new(100, 24)).unwrap();
    terminal.draw(|frame| crate::ui::draw(frame, app)).unwrap();
    let buffer = terminal.backend().buffer();
    (0..buffer.area.height)
        .map(|y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect()
}

#[cfg(test)]
mod tests;
