//! The open note: which field has the cursor, and the edits of each field, every one
//! written durably as it is made (the body with `splice_text`, character by character,
//! so concurrent edits from other devices merge into it).

use anyhow::Context;
use holdfast::RecordId;

use super::{App, Screen};
use crate::model::{self, Note, Status};
use crate::text;

/// The fields of a note, in Tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    /// The title line.
    Title,
    /// The tags: typing makes a new tag.
    Tags,
    /// The status: draft, review, published.
    Status,
    /// The body text.
    Body,
}

impl Focus {
    const ORDER: [Focus; 4] = [Focus::Title, Focus::Tags, Focus::Status, Focus::Body];

    fn step(self, forward: bool) -> Focus {
        let i = Focus::ORDER.iter().position(|f| *f == self).unwrap_or(0);
        let n = Focus::ORDER.len();
        Focus::ORDER[if forward {
            (i + 1) % n
        } else {
            (i + n - 1) % n
        }]
    }
}

/// The open note and the cursors in it.
#[derive(Clone, Debug)]
pub struct Editor {
    /// The note as last written or read.
    pub note: Note,
    /// The field keys go to.
    pub focus: Focus,
    /// The cursor in the body, in characters.
    pub cursor: usize,
    /// The cursor in the title, in characters.
    pub title_cursor: usize,
    /// A tag being typed, added on Enter.
    pub tag_input: String,
}

impl Editor {
    pub(super) fn new(note: Note) -> Editor {
        Editor {
            cursor: text::len(&note.body),
            title_cursor: text::len(&note.title),
            note,
            focus: Focus::Body,
            tag_input: String::new(),
        }
    }

    /// The note's id.
    pub fn id(&self) -> RecordId {
        self.note.id
    }
}

/// A change to the body: replace `delete` characters at `pos` with `insert`.
struct Splice {
    pos: usize,
    delete: usize,
    insert: String,
}

impl App {
    fn editor_mut(&mut self) -> anyhow::Result<&mut Editor> {
        self.editor
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("No note is open."))
    }

    /// Moves the cursor to the next field (or the previous one).
    pub fn next_field(&mut self, forward: bool) {
        if let Some(editor) = &mut self.editor {
            editor.focus = editor.focus.step(forward);
        }
    }

    /// Types `s` into the field with the cursor.
    pub fn type_text(&mut self, s: &str) -> anyhow::Result<()> {
        match self.editor_mut()?.focus {
            Focus::Body => self.edit_body(|_, cursor| {
                Some(Splice {
                    pos: cursor,
                    delete: 0,
                    insert: s.to_owned(),
                })
            }),
            Focus::Title => self.edit_title(|title, cursor| {
                *title = text::splice(title, *cursor, 0, s);
                *cursor += text::len(s);
            }),
            Focus::Tags => {
                for c in s.chars() {
                    if c == ',' {
                        self.add_tag()?;
                    } else {
                        self.editor_mut()?.tag_input.push(c);
                    }
                }
                Ok(())
            }
            Focus::Status => {
                if s == " " {
                    self.cycle_status(true)?;
                }
                Ok(())
            }
        }
    }

    /// Enter: a new line in the body, the next field from the title, a new tag.
    pub fn enter(&mut self) -> anyhow::Result<()> {
        match self.editor_mut()?.focus {
            Focus::Body => self.type_text("\n"),
            Focus::Title => {
                self.editor_mut()?.focus = Focus::Body;
                Ok(())
            }
            Focus::Tags => self.add_tag(),
            Focus::Status => self.cycle_status(true),
        }
    }

    /// Deletes the character before the cursor (a tag, in the tags field).
    pub fn backspace(&mut self) -> anyhow::Result<()> {
        match self.editor_mut()?.focus {
            Focus::Body => self.edit_body(|_, cursor| {
                (cursor > 0).then(|| Splice {
                    pos: cursor - 1,
                    delete: 1,
                    insert: String::new(),
                })
            }),
            Focus::Title => self.edit_title(|title, cursor| {
                if *cursor > 0 {
                    *title = text::splice(title, *cursor - 1, 1, "");
                    *cursor -= 1;
                }
            }),
            Focus::Tags => {
                let editor = self.editor_mut()?;
                if editor.tag_input.pop().is_none() {
                    if let Some(last) = editor.note.tags.last().cloned() {
                        self.remove_tag(&last)?;
                    }
                }
                Ok(())
            }
            Focus::Status => Ok(()),
        }
    }

    /// Deletes the character at the cursor.
    pub fn delete_forward(&mut self) -> anyhow::Result<()> {
        match self.editor_mut()?.focus {
            Focus::Body => self.edit_body(|body, cursor| {
                (cursor < text::len(body)).then(|| Splice {
                    pos: cursor,
                    delete: 1,
                    insert: String::new(),
                })
            }),
            Focus::Title => self.edit_title(|title, cursor| {
                if *cursor < text::len(title) {
                    *title = text::splice(title, *cursor, 1, "");
                }
            }),
            _ => Ok(()),
        }
    }

    /// Moves the cursor of the body or the title with `f(text, cursor)`.
    pub fn move_cursor(&mut self, f: impl Fn(&str, usize) -> usize) {
        let Some(editor) = &mut self.editor else {
            return;
        };
        match editor.focus {
            Focus::Body => editor.cursor = f(&editor.note.body, editor.cursor),
            Focus::Title => editor.title_cursor = f(&editor.note.title, editor.title_cursor),
            _ => {}
        }
    }

    /// Adds the typed tag to the note.
    pub fn add_tag(&mut self) -> anyhow::Result<()> {
        let editor = self.editor_mut()?;
        let tag = std::mem::take(&mut editor.tag_input).trim().to_owned();
        if tag.is_empty() {
            return Ok(());
        }
        if editor.note.tags.contains(&tag) {
            self.message = Some(format!("The note already has the tag \"{tag}\"."));
            return Ok(());
        }
        let id = editor.id();
        self.store
            .update(id, |tx| tx.list_push(id, "tags", tag.as_str()))
            .context("The tag could not be saved")?;
        self.reload_note(id)
    }

    /// Removes `tag` from the open note (the first one, as the store has it now).
    pub fn remove_tag(&mut self, tag: &str) -> anyhow::Result<()> {
        let id = self.editor_mut()?.id();
        self.store
            .update(id, |tx| {
                let tags = model::strings(tx.get(id)?.list("tags")?);
                match tags.iter().position(|t| t == tag) {
                    Some(i) => tx.list_delete(id, "tags", i),
                    None => Ok(()),
                }
            })
            .context("The tag could not be removed")?;
        self.reload_note(id)
    }

    /// Moves the status on (draft → review → published → draft) or back; on a
    /// conflicted status, opens the conflict screen instead.
    pub fn cycle_status(&mut self, forward: bool) -> anyhow::Result<()> {
        let editor = self.editor_mut()?;
        let id = editor.id();
        let current = match &editor.note.status {
            Status::Conflict(_) => return self.open_conflict(id),
            Status::Set(s) => model::STATUSES.iter().position(|x| x == s),
            Status::Unset => None,
        };
        let n = model::STATUSES.len();
        let next = match (current, forward) {
            (None, _) => 0,
            (Some(i), true) => (i + 1) % n,
            (Some(i), false) => (i + n - 1) % n,
        };
        self.set_status(model::STATUSES[next])
    }

    /// Sets the open note's status.
    pub fn set_status(&mut self, status: &str) -> anyhow::Result<()> {
        let editor = self.editor_mut()?;
        let id = editor.id();
        if editor.note.status.is_conflict() {
            return self.open_conflict(id);
        }
        self.store
            .update(id, |tx| tx.set(id, "status", status))
            .context("The status could not be saved")?;
        self.reload_note(id)
    }

    /// Writes a change of the body made by `f(body, cursor)`, computed against the body
    /// as the store has it at that moment (with the cursor moved past any edit that
    /// arrived from elsewhere since the screen last showed it).
    fn edit_body(&mut self, f: impl FnOnce(&str, usize) -> Option<Splice>) -> anyhow::Result<()> {
        let editor = self.editor_mut()?;
        let (id, shown, cursor) = (editor.id(), editor.note.body.clone(), editor.cursor);
        let (body, cursor) = self
            .store
            .update(id, |tx| {
                let body = tx.get(id)?.text("body")?.to_owned();
                let cursor = text::shift_cursor(&shown, &body, cursor);
                match f(&body, cursor) {
                    Some(s) => {
                        tx.splice_text(id, "body", s.pos, s.delete, &s.insert)?;
                        let cursor = s.pos + text::len(&s.insert);
                        Ok((text::splice(&body, s.pos, s.delete, &s.insert), cursor))
                    }
                    None => Ok((body, cursor)),
                }
            })
            .context("The note could not be saved")?;
        let editor = self.editor_mut()?;
        editor.note.body = body;
        editor.cursor = cursor;
        self.show_in_list()
    }

    /// Writes the title as `f` changes it (and its cursor).
    fn edit_title(&mut self, f: impl FnOnce(&mut String, &mut usize)) -> anyhow::Result<()> {
        let editor = self.editor_mut()?;
        let (mut title, mut cursor) = (editor.note.title.clone(), editor.title_cursor);
        f(&mut title, &mut cursor);
        let id = editor.id();
        if title != editor.note.title {
            self.store
                .update(id, |tx| tx.set(id, "title", title.as_str()))
                .context("The title could not be saved")?;
        }
        let editor = self.editor_mut()?;
        editor.note.title = title;
        editor.title_cursor = cursor;
        self.show_in_list()
    }

    /// Puts the open note, as just written, in its row of the list.
    fn show_in_list(&mut self) -> anyhow::Result<()> {
        let Some(editor) = &mut self.editor else {
            return Ok(());
        };
        editor.note.sync = self.store.sync_state(editor.note.id)?;
        if let Ok(i) = self.notes.binary_search_by_key(&editor.note.id, |n| n.id) {
            self.notes[i] = editor.note.clone();
        }
        Ok(())
    }

    /// Takes in the open note as the store has it now, keeping the cursors in place
    /// around edits made elsewhere; closes it if it was deleted.
    pub(super) fn reload_open(&mut self, id: RecordId) -> anyhow::Result<()> {
        let Some(note) = Note::load(&self.store, id)? else {
            self.editor = None;
            if self.screen == Screen::Note {
                self.screen = Screen::List;
            }
            self.message = Some("This note was deleted on another device.".into());
            return Ok(());
        };
        let editor = self.editor_mut()?;
        editor.cursor = text::shift_cursor(&editor.note.body, &note.body, editor.cursor);
        editor.title_cursor =
            text::shift_cursor(&editor.note.title, &note.title, editor.title_cursor);
        editor.note = note;
        Ok(())
    }
}
