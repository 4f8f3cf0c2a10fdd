//! Keys to actions, screen by screen. Every screen's keys are listed on its bottom line
//! (`ui`), and the README's table of keys is this file in words.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::conflict::Choice;
use super::{App, Focus, Screen};
use crate::text;

impl App {
    /// Takes a burst of keys (all that were waiting). A run of characters typed into the
    /// body or the title is written as one change: one durable commit per small batch
    /// rather than per character when typing outpaces the screen.
    pub fn handle_keys(&mut self, keys: impl IntoIterator<Item = KeyEvent>) {
        let mut run = String::new();
        for key in keys {
            match self.typed_char(&key) {
                Some(c) => run.push(c),
                None => {
                    self.flush_run(&mut run);
                    self.handle_key(key);
                }
            }
        }
        self.flush_run(&mut run);
    }

    fn flush_run(&mut self, run: &mut String) {
        if !run.is_empty() {
            self.message = None;
            let typed = std::mem::take(run);
            let result = self.type_text(&typed);
            self.report(result);
            self.refresh_soon();
        }
    }

    /// The character `key` types into the body or title, if it does.
    fn typed_char(&self, key: &KeyEvent) -> Option<char> {
        let typing = self.screen == Screen::Note
            && matches!(
                self.editor.as_ref().map(|e| e.focus),
                Some(Focus::Body | Focus::Title)
            );
        match key.code {
            KeyCode::Char(c) if typing && plain(key) => Some(c),
            _ => None,
        }
    }

    /// Takes one key.
    pub fn handle_key(&mut self, key: KeyEvent) {
        self.message = None;
        let result = self.dispatch(key);
        self.report(result);
        self.refresh_soon();
    }

    /// Shows a failed action's reason in plain words.
    fn report(&mut self, result: anyhow::Result<()>) {
        if let Err(e) = result {
            self.message = Some(format!("{e:#}"));
        }
    }

    fn dispatch(&mut self, key: KeyEvent) -> anyhow::Result<()> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('q' | 'c') if ctrl => {
                self.quit = true;
                return Ok(());
            }
            KeyCode::Char('r') if ctrl => return self.retry_now(),
            KeyCode::Char('s') if ctrl => return self.toggle_sync_panel(),
            _ => {}
        }
        match self.screen {
            Screen::List => self.list_key(key),
            Screen::Note => self.note_key(key),
            Screen::Conflict => self.conflict_key(key),
            Screen::Sync => self.sync_key(key),
        }
    }

    fn list_key(&mut self, key: KeyEvent) -> anyhow::Result<()> {
        if self.confirm_delete.is_some() {
            return self.confirm_delete(key.code == KeyCode::Char('y'));
        }
        match key.code {
            KeyCode::Up | KeyCode::Char('k') => self.select(-1),
            KeyCode::Down | KeyCode::Char('j') => self.select(1),
            KeyCode::Enter => self.open_selected()?,
            KeyCode::Char('n') => {
                self.new_note()?;
            }
            KeyCode::Char('x') | KeyCode::Delete => self.ask_delete(),
            KeyCode::Char('c') => self.open_any_conflict()?,
            KeyCode::Char('s') => self.toggle_sync_panel()?,
            KeyCode::Char('r') => self.retry_now()?,
            KeyCode::Char('q') => self.quit = true,
            _ => {}
        }
        Ok(())
    }

    fn note_key(&mut self, key: KeyEvent) -> anyhow::Result<()> {
        let Some(focus) = self.editor.as_ref().map(|e| e.focus) else {
            self.screen = Screen::List;
            return Ok(());
        };
        match key.code {
            KeyCode::Esc => self.close_note(),
            KeyCode::Tab => self.next_field(true),
            KeyCode::BackTab => self.next_field(false),
            KeyCode::Enter => self.enter()?,
            KeyCode::Backspace => self.backspace()?,
            KeyCode::Delete => self.delete_forward()?,
            KeyCode::Left if focus == Focus::Status => self.cycle_status(false)?,
            KeyCode::Right if focus == Focus::Status => self.cycle_status(true)?,
            KeyCode::Left => self.move_cursor(|_, c| c.saturating_sub(1)),
            KeyCode::Right => self.move_cursor(|s, c| (c + 1).min(text::len(s))),
            KeyCode::Up => self.move_cursor(text::line_up),
            KeyCode::Down => self.move_cursor(text::line_down),
            KeyCode::Home => self.move_cursor(text::home),
            KeyCode::End => self.move_cursor(text::end),
            KeyCode::Char(c) if plain(&key) => self.type_text(c.encode_utf8(&mut [0; 4]))?,
            _ => {}
        }
        Ok(())
    }

    fn conflict_key(&mut self, key: KeyEvent) -> anyhow::Result<()> {
        let Some(conflict) = &mut self.conflict else {
            self.screen = Screen::List;
            return Ok(());
        };
        if let Some(input) = &mut conflict.input {
            match key.code {
                KeyCode::Esc => self.edit_conflict_value(None),
                KeyCode::Enter => {
                    let typed = input.clone();
                    self.resolve_conflict(Choice::Value(typed))?;
                }
                KeyCode::Backspace => {
                    input.pop();
                }
                KeyCode::Char(c) if plain(&key) => input.push(c),
                _ => {}
            }
            return Ok(());
        }
        if conflict.deletion.is_some() {
            match key.code {
                KeyCode::Char('r') => self.resolve_conflict(Choice::Restore)?,
                KeyCode::Char('d') => self.resolve_conflict(Choice::Delete)?,
                KeyCode::Esc => self.close_conflict(),
                _ => {}
            }
            return Ok(());
        }
        match key.code {
            KeyCode::Char('m') => self.resolve_conflict(Choice::KeepMine)?,
            KeyCode::Char('t') => self.resolve_conflict(Choice::UseTheirs)?,
            KeyCode::Char('e') => self.edit_conflict_value(Some(String::new())),
            KeyCode::Esc => self.close_conflict(),
            _ => {}
        }
        Ok(())
    }

    fn sync_key(&mut self, key: KeyEvent) -> anyhow::Result<()> {
        match key.code {
            KeyCode::Esc | KeyCode::Char('s') => self.toggle_sync_panel()?,
            KeyCode::Char('p') => self.toggle_pause()?,
            KeyCode::Char('o') => self.toggle_offline()?,
            KeyCode::Char('r') => self.retry_now()?,
            KeyCode::Up | KeyCode::Char('k') => {
                self.outbox_scroll = self.outbox_scroll.saturating_sub(1);
            }
            KeyCode::Down | KeyCode::Char('j') => {
                let last = self.outbox.len().saturating_sub(1);
                self.outbox_scroll = (self.outbox_scroll + 1).min(last);
            }
            _ => {}
        }
        Ok(())
    }
}

/// A key without Ctrl or Alt (Shift is part of the character).
fn plain(key: &KeyEvent) -> bool {
    !key.modifiers
        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
}
