//! The app's state and every action a key can take, with no terminal: the list of notes,
//! the open note, the conflict screen, the sync panel, and what sync shows. `main` feeds
//! it keys and store notifications; `ui` draws it. Each action writes through the store,
//! so what the screens show is what is durable on the device.

mod conflict;
mod editor;
mod keys;
mod sync;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use holdfast::{
    Notification, OutboxEntry, Query, RecordId, SpaceId, Store, Subscription, SyncStatus,
    SyncSummary, STATE_FIELD,
};

pub use conflict::{ConflictScreen, Deletion};
pub use editor::{Editor, Focus};

use crate::model::{self, Note, NOTE};
use crate::sync_link::SyncLink;

/// How often sync states and counts are re-read while nothing else happens.
pub const REFRESH_INTERVAL: Duration = Duration::from_millis(200);

/// Outbox entries the sync panel lists.
pub const OUTBOX_SHOWN_MAX: usize = 200;

/// Which screen is in front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    /// Every note with its sync indicator.
    List,
    /// One note being edited.
    Note,
    /// Choosing between two versions of a note's status.
    Conflict,
    /// Sync controls and the pending changes.
    Sync,
}

/// The whole app state.
pub struct App {
    store: Store,
    space: SpaceId,
    link: Option<SyncLink>,
    changes: Subscription,
    clock: Box<dyn Fn() -> i64>,
    refreshed: Option<Instant>,
    /// The screen in front.
    pub screen: Screen,
    /// Where the conflict screen goes back to.
    back: Screen,
    /// Where the sync panel goes back to.
    sync_back: Screen,
    /// The space's notes, oldest first.
    pub notes: Vec<Note>,
    /// The selected row of the list.
    pub selected: usize,
    /// The open note, while one is open.
    pub editor: Option<Editor>,
    /// The conflict being settled, while the conflict screen is up.
    pub conflict: Option<ConflictScreen>,
    /// Notes deleted on one device while edited on another: hidden from the list until
    /// the user restores them or confirms the delete.
    pub deleted_conflicts: Vec<RecordId>,
    /// The titles of notes that left the list (a deleted note can no longer be read).
    titles_gone: HashMap<RecordId, String>,
    /// Outbox totals and the last sync the store recorded.
    pub summary: SyncSummary,
    /// The sync worker's status, when syncing with a relay.
    pub status: Option<SyncStatus>,
    /// The first outbox entries, for the sync panel.
    pub outbox: Vec<OutboxEntry>,
    /// The first outbox row the sync panel shows.
    pub outbox_scroll: usize,
    /// A note waiting for "y" to be deleted.
    pub confirm_delete: Option<RecordId>,
    /// A one-line message for the user, until the next key.
    pub message: Option<String>,
    /// Set when the user asked to quit.
    pub quit: bool,
}

impl App {
    /// The app on `store`, showing the notes of `space`, syncing through `link` if given.
    pub fn new(store: Store, space: SpaceId, link: Option<SyncLink>) -> anyhow::Result<App> {
        App::with_clock(store, space, link, Box::new(now_ms))
    }

    /// [`App::new`] with a clock (ms since the epoch) for "2 min ago" labels.
    pub fn with_clock(
        store: Store,
        space: SpaceId,
        link: Option<SyncLink>,
        clock: Box<dyn Fn() -> i64>,
    ) -> anyhow::Result<App> {
        // Subscribe before the first read so no change falls in between.
        let changes = store.subscribe();
        let mut app = App {
            store,
            space,
            link,
            changes,
            clock,
            refreshed: None,
            screen: Screen::List,
            back: Screen::List,
            sync_back: Screen::List,
            notes: Vec::new(),
            selected: 0,
            editor: None,
            conflict: None,
            deleted_conflicts: Vec::new(),
            titles_gone: HashMap::new(),
            summary: SyncSummary::default(),
            status: None,
            outbox: Vec::new(),
            outbox_scroll: 0,
            confirm_delete: None,
            message: None,
            quit: false,
        };
        app.reload_all()?;
        Ok(app)
    }

    /// The space shown.
    pub fn space(&self) -> &SpaceId {
        &self.space
    }

    /// The relay link, when syncing.
    pub fn link(&self) -> Option<&SyncLink> {
        self.link.as_ref()
    }

    /// Now, by the app's clock (ms since the epoch).
    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    /// The selected note of the list.
    pub fn selected_note(&self) -> Option<&Note> {
        self.notes.get(self.selected)
    }

    // ----- list ---------------------------------------------------------------------

    /// Moves the list selection by `by` rows, within the list.
    pub fn select(&mut self, by: isize) {
        let last = self.notes.len().saturating_sub(1);
        self.selected = self.selected.saturating_add_signed(by).min(last);
    }

    /// Creates an empty draft note and opens it with the cursor in its title.
    pub fn new_note(&mut self) -> anyhow::Result<RecordId> {
        let space = self.space.clone();
        let id = self
            .store
            .write(|tx| {
                let id = tx.create(NOTE, &space)?;
                tx.set(id, "title", "")?;
                tx.set(id, "status", model::STATUSES[0])?;
                Ok(id)
            })
            .context("The new note could not be saved")?;
        self.reload_note(id)?;
        self.open_note(id)?;
        if let Some(editor) = &mut self.editor {
            editor.focus = Focus::Title;
        }
        Ok(id)
    }

    /// Opens the selected note.
    pub fn open_selected(&mut self) -> anyhow::Result<()> {
        match self.selected_note() {
            Some(note) => self.open_note(note.id),
            None => {
                self.message = Some("No note yet: press n to write one.".into());
                Ok(())
            }
        }
    }

    /// Opens note `id` with the cursor at the end of its body.
    pub fn open_note(&mut self, id: RecordId) -> anyhow::Result<()> {
        let note = Note::load(&self.store, id)?
            .ok_or_else(|| anyhow::anyhow!("This note was deleted."))?;
        if let Some(i) = self.notes.iter().position(|n| n.id == id) {
            self.selected = i;
        }
        self.editor = Some(Editor::new(note));
        self.screen = Screen::Note;
        Ok(())
    }

    /// Closes the open note and shows the list.
    pub fn close_note(&mut self) {
        self.editor = None;
        self.screen = Screen::List;
    }

    /// Asks to delete the selected note (confirmed by [`App::confirm_delete`]).
    pub fn ask_delete(&mut self) {
        if let Some(note) = self.selected_note() {
            self.confirm_delete = Some(note.id);
        }
    }

    /// Deletes the note waiting for confirmation (`yes`), or keeps it.
    pub fn confirm_delete(&mut self, yes: bool) -> anyhow::Result<()> {
        let Some(id) = self.confirm_delete.take() else {
            return Ok(());
        };
        if !yes {
            return Ok(());
        }
        let title = self.title_of(id);
        self.store
            .write(|tx| tx.delete(id))
            .context("The note could not be deleted")?;
        self.reload_note(id)?;
        self.message = Some(format!("Deleted \"{title}\"."));
        Ok(())
    }

    /// Shows `screen` again, or the list when it was a note that is no longer open.
    fn go_back(&mut self, screen: Screen) {
        self.screen = match screen {
            Screen::Note if self.editor.is_none() => Screen::List,
            Screen::Conflict if self.conflict.is_none() => Screen::List,
            other => other,
        };
    }

    fn title_of(&self, id: RecordId) -> String {
        self.title_seen(id)
            .unwrap_or("(a note not seen here)")
            .to_owned()
    }

    /// The title of note `id` as this app last listed it, if it did.
    fn title_seen(&self, id: RecordId) -> Option<&str> {
        match self.notes.iter().find(|n| n.id == id) {
            Some(note) => Some(note.display_title()),
            None => self.titles_gone.get(&id).map(|t| model::display_title(t)),
        }
    }

    // ----- refreshing ---------------------------------------------------------------

    /// Waits up to `timeout` for store notifications and takes in every one waiting;
    /// true if any came.
    pub fn poll_changes(&mut self, timeout: Duration) -> anyhow::Result<bool> {
        let mut next = self.changes.recv_timeout(timeout);
        let any = next.is_some();
        while let Some(notification) = next {
            self.on_notification(notification)?;
            next = self.changes.try_recv();
        }
        Ok(any)
    }

    /// Re-reads sync states and counts if [`REFRESH_INTERVAL`] has passed.
    pub fn tick(&mut self) -> anyhow::Result<()> {
        if self
            .refreshed
            .is_none_or(|at| at.elapsed() >= REFRESH_INTERVAL)
        {
            self.refresh()?;
        }
        Ok(())
    }

    /// Makes the next [`App::tick`] refresh (after a key: counts may have changed).
    fn refresh_soon(&mut self) {
        self.refreshed = None;
    }

    /// Re-reads sync states, counts, the worker's status and (for the panel) the outbox.
    pub fn refresh(&mut self) -> anyhow::Result<()> {
        self.refreshed = Some(Instant::now());
        self.status = self.link.as_ref().map(SyncLink::status);
        self.summary = self.store.sync_summary()?;
        let conflicts = self.store.conflicts()?.into_iter();
        self.deleted_conflicts = conflicts
            .filter(|c| c.field == STATE_FIELD)
            .map(|c| c.record)
            .collect();
        for note in &mut self.notes {
            note.sync = self.store.sync_state(note.id)?;
        }
        if let Some(editor) = &mut self.editor {
            editor.note.sync = self.store.sync_state(editor.note.id)?;
        }
        if self.screen == Screen::Sync {
            self.outbox = self.store.outbox().list(None, OUTBOX_SHOWN_MAX)?;
            self.outbox_scroll = self.outbox_scroll.min(self.outbox.len().saturating_sub(1));
        }
        Ok(())
    }

    fn on_notification(&mut self, notification: Notification) -> anyhow::Result<()> {
        match notification {
            Notification::Changed(events) => {
                let mut ids: Vec<RecordId> = events
                    .into_iter()
                    .filter(|e| e.space == self.space && e.collection == NOTE)
                    .map(|e| e.record)
                    .collect();
                ids.sort();
                ids.dedup();
                for id in ids {
                    self.reload_note(id)?;
                }
                Ok(())
            }
            _ => self.reload_all(),
        }
    }

    /// Reads every note of the space again.
    pub fn reload_all(&mut self) -> anyhow::Result<()> {
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .query(&Query::Space(&self.space, NOTE), 500, after.as_ref())?;
            ids.extend(page.ids);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let mut notes = Vec::with_capacity(ids.len());
        for id in ids {
            notes.extend(Note::load(&self.store, id)?);
        }
        for gone in &self.notes {
            if notes.binary_search_by_key(&gone.id, |n| n.id).is_err() {
                self.titles_gone.insert(gone.id, gone.title.clone());
            }
        }
        self.notes = notes;
        self.select(0);
        if let Some(id) = self.editor.as_ref().map(|e| e.note.id) {
            self.reload_open(id)?;
        }
        if let Some(id) = self.conflict.as_ref().map(|c| c.id) {
            self.reload_conflict(id)?;
        }
        self.refresh()
    }

    /// Reads note `id` again into the list, the open note and the conflict screen.
    fn reload_note(&mut self, id: RecordId) -> anyhow::Result<()> {
        let note = Note::load(&self.store, id)?;
        let at = self.notes.binary_search_by_key(&id, |n| n.id);
        match (note, at) {
            (Some(note), Ok(i)) => self.notes[i] = note,
            (Some(note), Err(i)) => self.notes.insert(i, note),
            (None, Ok(i)) => {
                let gone = self.notes.remove(i);
                self.titles_gone.insert(id, gone.title);
                self.select(0);
            }
            (None, Err(_)) => {}
        }
        if self.editor.as_ref().is_some_and(|e| e.note.id == id) {
            self.reload_open(id)?;
        }
        if self.conflict.as_ref().is_some_and(|c| c.id == id) {
            self.reload_conflict(id)?;
        }
        Ok(())
    }
}

/// What the sync controls say when the app runs without a relay.
pub const NO_RELAY: &str =
    "Not syncing: this device works offline. Start with --relay URL --token T to sync.";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
