//! The conflict screen: a note's status was changed on two devices at once, and the user
//! keeps their version, takes the latest other one, or types a new value.

use anyhow::Context;
use holdfast::{Candidate, RecordId, Resolution, Value};

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
}

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

    /// Opens the conflict of the selected note, or else of the first note with one.
    pub fn open_any_conflict(&mut self) -> anyhow::Result<()> {
        let selected = self.selected_note().filter(|n| n.status.is_conflict());
        let first = || self.notes.iter().find(|n| n.status.is_conflict());
        match selected.or_else(first).map(|n| n.id) {
            Some(id) => self.open_conflict(id),
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

    /// Leaves the conflict for later.
    pub fn close_conflict(&mut self) {
        self.conflict = None;
        self.go_back(self.back);
    }

    /// Takes in the conflict as the store has it now: settled elsewhere, it closes.
    pub(super) fn reload_conflict(&mut self, id: RecordId) -> anyhow::Result<()> {
        let note = Note::load(&self.store, id)?;
        match note.as_ref().map(|n| (n, &n.status)) {
            Some((note, Status::Conflict(candidates))) => {
                let input = self.conflict.as_mut().and_then(|c| c.input.take());
                let mut screen = ConflictScreen::new(note, candidates);
                screen.input = input;
                self.conflict = Some(screen);
            }
            _ => {
                self.conflict = None;
                if self.screen == Screen::Conflict {
                    self.go_back(self.back);
                    self.message =
                        Some("The status conflict was settled on another device.".into());
                }
            }
        }
        Ok(())
    }
}
