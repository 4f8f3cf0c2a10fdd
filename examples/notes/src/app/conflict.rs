//! The conflict screen: a note's status was changed on two devices at once, and the user
//! keeps their version, takes the latest other one, or types a new value; or a note was
//! deleted on one device while edited on another, and the user, shown the note with the
//! edit (read from the deleted record), restores it with the edit or confirms the delete
//! (the two answers the store takes for its `_state`).

use anyhow::Context;
use holdfast::{Candidate, RecordId, Resolution, Value, STATE_FIELD};

use super::{App, Screen};
use crate::model::{self, Note, Status};

/// A status conflict being settled.
#[derive(Clone, Debug, PartialEq)]
pub struct ConflictScreen {
    /// The note.
    pub id: RecordId,
    /// Its title.
    pub title: String,
    /// The latest version written on this device, if any.
    pub mine: Option<Candidate>,
    /// The latest version written on another device, if any.
    pub theirs: Option<Candidate>,
    /// How many versions there are in all.
    pub versions: usize,
    /// The new value being typed, after "e".
    pub input: Option<String>,
    /// Why the last choice could not be made.
    pub error: Option<String>,
    /// For a note deleted on one device while edited on another: who did which. The
    /// status fields above are then empty.
    pub deletion: Option<Deletion>,
}

/// A delete that met an edit its device had not seen: the note stays hidden, the edit
/// kept, until the user restores the note or confirms the delete.
#[derive(Clone, Debug, PartialEq)]
pub struct Deletion {
    /// The deletes, oldest first.
    pub deletes: Vec<Candidate>,
    /// The edits the deleting device had not seen, oldest first.
    pub edits: Vec<Candidate>,
    /// The note with those edits, as restoring it would bring it back: what the user
    /// keeps or loses. `None` only if the store no longer holds it.
    pub edited: Option<Note>,
}

impl Deletion {
    /// Splits the store's candidates for `_state`; `None` when there is no conflict.
    fn new(mut candidates: Vec<Candidate>) -> Option<Deletion> {
        candidates.sort_by_key(|c| c.at_ms);
        let (deletes, edits): (Vec<_>, Vec<_>) = candidates
            .into_iter()
            .partition(|c| c.value.as_str() == Some(DELETED));
        (!deletes.is_empty() && !edits.is_empty()).then_some(Deletion {
            deletes,
            edits,
            edited: None,
        })
    }
}

/// The value of `_state` for a deleted record (the other is "live").
const DELETED: &str = "deleted";

impl ConflictScreen {
    fn new(note: &Note, candidates: &[Candidate]) -> ConflictScreen {
        let latest = |mine: bool| {
            candidates
                .iter()
                .filter(|c| c.mine == mine)
                .max_by_key(|c| c.at_ms)
                .cloned()
        };
        ConflictScreen {
            id: note.id,
            title: note.display_title().to_owned(),
            mine: latest(true),
            theirs: latest(false),
            versions: candidates.len(),
            input: None,
            error: None,
            deletion: None,
        }
    }

    fn deleted(id: RecordId, title: String, deletion: Deletion) -> ConflictScreen {
        ConflictScreen {
            id,
            title,
            mine: None,
            theirs: None,
            versions: deletion.deletes.len() + deletion.edits.len(),
            input: None,
            error: None,
            deletion: Some(deletion),
        }
    }
}

/// How the user settles the conflict.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    /// Keep this device's version.
    KeepMine,
    /// Take the other device's latest version.
    UseTheirs,
    /// Write this value.
    Value(String),
    /// Bring a deleted note back, with the edit made meanwhile.
    Restore,
    /// Confirm the delete (the edit goes with the note).
    Delete,
}

impl App {
    /// Opens the conflict screen for the status of note `id`.
    pub fn open_conflict(&mut self, id: RecordId) -> anyhow::Result<()> {
        let note = Note::load(&self.store, id)?
            .ok_or_else(|| anyhow::anyhow!("This note was deleted."))?;
        let Status::Conflict(candidates) = &note.status else {
            self.message = Some("This note's status has no conflict to settle.".into());
            return Ok(());
        };
        self.conflict = Some(ConflictScreen::new(&note, candidates));
        if self.screen != Screen::Conflict {
            self.back = self.screen;
        }
        self.screen = Screen::Conflict;
        Ok(())
    }

    /// Opens the delete/edit conflict of note `id`.
    pub fn open_deleted_conflict(&mut self, id: RecordId) -> anyhow::Result<()> {
        let Some(deletion) = self.deletion(id)? else {
            self.message = Some("This note has no delete to settle.".into());
            return Ok(());
        };
        self.conflict = Some(self.deleted_screen(id, deletion));
        if self.screen != Screen::Conflict {
            self.back = self.screen;
        }
        self.screen = Screen::Conflict;
        Ok(())
    }

    /// Opens the conflict of the selected note, or else of the first note with one, or
    /// else the first note deleted on one device while edited on another.
    pub fn open_any_conflict(&mut self) -> anyhow::Result<()> {
        let selected = self.selected_note().filter(|n| n.status.is_conflict());
        let first = || self.notes.iter().find(|n| n.status.is_conflict());
        if let Some(id) = selected.or_else(first).map(|n| n.id) {
            return self.open_conflict(id);
        }
        match self.deleted_conflicts.first() {
            Some(&id) => self.open_deleted_conflict(id),
            None => {
                self.message = Some("No note has a conflict to settle.".into());
                Ok(())
            }
        }
    }

    /// Starts typing a new value (`Some("")`), or stops (`None`).
    pub fn edit_conflict_value(&mut self, input: Option<String>) {
        if let Some(conflict) = &mut self.conflict {
            conflict.input = input;
            conflict.error = None;
        }
    }

    /// Settles the conflict on screen and goes back.
    pub fn resolve_conflict(&mut self, choice: Choice) -> anyhow::Result<()> {
        let Some(conflict) = &mut self.conflict else {
            return Ok(());
        };
        let id = conflict.id;
        if conflict.deletion.is_some() {
            return self.settle_deletion(choice);
        }
        let (resolution, value) = match choice {
            Choice::KeepMine => match &conflict.mine {
                Some(c) => (Resolution::KeepMine, c.value.clone()),
                None => {
                    conflict.error = Some("No version was made on this device.".into());
                    return Ok(());
                }
            },
            Choice::UseTheirs => match &conflict.theirs {
                Some(c) => (Resolution::UseTheirs, c.value.clone()),
                None => {
                    conflict.error = Some("Every version was made on this device.".into());
                    return Ok(());
                }
            },
            Choice::Value(typed) => {
                let typed = typed.trim().to_lowercase();
                if !model::STATUSES.contains(&typed.as_str()) {
                    conflict.error = Some(format!(
                        "\"{typed}\" is not a status: type draft, review or published."
                    ));
                    return Ok(());
                }
                let value = Value::String(typed);
                (Resolution::Value(value.clone()), value)
            }
            Choice::Restore | Choice::Delete => return Ok(()),
        };
        self.store
            .resolve(id, "status", resolution)
            .context("The choice could not be saved")?;
        self.conflict = None;
        self.go_back(self.back);
        self.message = Some(format!(
            "Status set to \"{}\" on this device; other devices get it when they sync.",
            value.as_str().unwrap_or_default()
        ));
        self.reload_note(id)
    }

    /// Restores the note on screen or confirms its delete, and goes back.
    fn settle_deletion(&mut self, choice: Choice) -> anyhow::Result<()> {
        let Some(conflict) = &self.conflict else {
            return Ok(());
        };
        let (id, title) = (conflict.id, conflict.title.clone());
        let (state, message) = match choice {
            Choice::Restore => (
                "live",
                format!("Restored \"{title}\" with the edit made meanwhile."),
            ),
            Choice::Delete => (
                DELETED,
                format!("Deleted \"{title}\"; other devices delete it when they sync."),
            ),
            _ => return Ok(()),
        };
        let resolution = Resolution::Value(Value::String(state.into()));
        self.store
            .resolve(id, STATE_FIELD, resolution)
            .context("The choice could not be saved")?;
        self.conflict = None;
        self.go_back(self.back);
        self.message = Some(message);
        self.reload_note(id)?;
        self.refresh()
    }

    /// Leaves the conflict for later.
    pub fn close_conflict(&mut self) {
        self.conflict = None;
        self.go_back(self.back);
    }

    /// Takes in the conflict as the store has it now: settled elsewhere, it closes.
    pub(super) fn reload_conflict(&mut self, id: RecordId) -> anyhow::Result<()> {
        if self.conflict.as_ref().is_some_and(|c| c.deletion.is_some()) {
            match self.deletion(id)? {
                Some(deletion) => self.conflict = Some(self.deleted_screen(id, deletion)),
                None => self.conflict_settled_elsewhere("delete"),
            }
            return Ok(());
        }
        let note = Note::load(&self.store, id)?;
        match note.as_ref().map(|n| (n, &n.status)) {
            Some((note, Status::Conflict(candidates))) => {
                let input = self.conflict.as_mut().and_then(|c| c.input.take());
                let mut screen = ConflictScreen::new(note, candidates);
                screen.input = input;
                self.conflict = Some(screen);
            }
            _ => self.conflict_settled_elsewhere("status"),
        }
        Ok(())
    }

    /// The delete/edit conflict of note `id` as the store has it now, with the edited
    /// note; `None` when there is none.
    fn deletion(&self, id: RecordId) -> anyhow::Result<Option<Deletion>> {
        let candidates = self.store.candidates(id, STATE_FIELD)?;
        let Some(mut deletion) = Deletion::new(candidates) else {
            return Ok(None);
        };
        deletion.edited = Note::load_deleted(&self.store, id)?;
        Ok(Some(deletion))
    }

    /// The screen for `deletion`, titled as this app listed the note, or else with the
    /// edited note's title.
    fn deleted_screen(&self, id: RecordId, deletion: Deletion) -> ConflictScreen {
        let title = match (self.title_seen(id), &deletion.edited) {
            (Some(title), _) => title.to_owned(),
            (None, Some(edited)) => edited.display_title().to_owned(),
            (None, None) => self.title_of(id),
        };
        ConflictScreen::deleted(id, title, deletion)
    }

    fn conflict_settled_elsewhere(&mut self, what: &str) {
        self.conflict = None;
        if self.screen == Screen::Conflict {
            self.go_back(self.back);
            self.message = Some(format!(
                "The {what} conflict was settled on another device."
            ));
        }
    }
}
