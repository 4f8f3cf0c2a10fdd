//! Drawing the app with ratatui: a header with the connection and the last sync, the
//! screen in front, the pending-changes bar (only while changes wait), a sync problem in
//! plain words with its action, a message, and the screen's keys on the bottom line.

mod conflict;
mod list;
mod note;
mod sync_panel;
#[cfg(test)]
mod tests;

use holdfast::{ConnectionState, SyncState};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::app::{App, Focus, Screen};
use crate::model;

/// Draws the whole app.
pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let problem = app.sync_problem();
    let pending = app.summary.pending > 0;
    let message = message(app);
    let [header, main, bar, problem_row, message_row, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(u16::from(pending)),
        Constraint::Length(u16::from(problem.is_some())),
        Constraint::Length(u16::from(message.is_some())),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_header(frame, app, header);
    match app.screen {
        Screen::List => list::draw(frame, app, main),
        Screen::Note => note::draw(frame, app, main),
        Screen::Conflict => conflict::draw(frame, app, main),
        Screen::Sync => sync_panel::draw(frame, app, main),
    }
    if pending {
        let line = Line::from(pending_bar(app)).style(Style::new().black().on_yellow());
        frame.render_widget(Paragraph::new(line), bar);
    }
    if let Some(problem) = problem {
        let line = Line::from(vec![
            Span::raw(format!(" {problem} ")),
            Span::raw("Ctrl-R Retry now ").add_modifier(Modifier::BOLD),
        ])
        .style(Style::new().white().on_red());
        frame.render_widget(Paragraph::new(line), problem_row);
    }
    if let Some(message) = message {
        frame.render_widget(Paragraph::new(format!(" {message}")).cyan(), message_row);
    }
    let keys =
        Line::from(format!(" {}", keys(app))).style(Style::new().add_modifier(Modifier::DIM));
    frame.render_widget(Paragraph::new(keys), help);
}

/// "3 changes saved on this device — syncing when online".
pub fn pending_bar(app: &App) -> String {
    let what = model::count(app.summary.pending, "change");
    let when = if app.online() {
        "syncing now"
    } else {
        "syncing when online"
    };
    format!(" {what} saved on this device — {when}")
}

fn draw_header(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let right = format!("{} · {} ", connection(app), last_synced(app));
    let width = u16::try_from(right.chars().count()).unwrap_or(u16::MAX);
    let [left_area, right_area] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(width)]).areas(area);
    let left = Line::from(vec![
        Span::raw(" Notes").bold(),
        Span::raw(format!(" · space {}", app.space())),
    ]);
    frame.render_widget(Paragraph::new(left), left_area);
    frame.render_widget(Paragraph::new(right), right_area);
}

/// The connection in a few words.
pub fn connection(app: &App) -> String {
    let (Some(link), Some(status)) = (app.link(), &app.status) else {
        return "Offline: this device only".into();
    };
    if link.paused() {
        return "Sync paused".into();
    }
    if link.simulated_offline() {
        return "Offline (simulated)".into();
    }
    match &status.connection {
        ConnectionState::Offline { .. } => "Offline".into(),
        ConnectionState::Connecting => "Connecting…".into(),
        ConnectionState::Syncing => "Syncing…".into(),
        _ => "Online".into(),
    }
}

/// "Last synced 2 min ago", or "Not synced yet".
pub fn last_synced(app: &App) -> String {
    match app.last_synced_ms() {
        Some(at) => format!("Last synced {}", model::ago(app.now_ms(), at)),
        None => "Not synced yet".into(),
    }
}

/// A note's sync indicator: a mark and a word.
pub fn indicator(state: &SyncState) -> (String, Style) {
    let (mark, color) = match state {
        SyncState::Queued => ("·", Color::Yellow),
        SyncState::Syncing => ("↑", Color::Cyan),
        SyncState::Synced => ("✓", Color::Green),
        _ => ("!", Color::Red),
    };
    (
        format!("{mark} {}", model::sync_word(state)),
        Style::new().fg(color),
    )
}

fn message(app: &App) -> Option<String> {
    if let Some(id) = app.confirm_delete {
        let title = app
            .notes
            .iter()
            .find(|n| n.id == id)
            .map_or("(untitled)", model::Note::display_title);
        return Some(format!(
            "Delete \"{title}\"? y deletes it, any other key keeps it."
        ));
    }
    app.message.clone()
}

/// The keys of the screen in front.
pub fn keys(app: &App) -> String {
    match app.screen {
        Screen::List => {
            "n new · Enter open · x delete · c conflict · s sync panel · r retry now · q quit"
                .into()
        }
        Screen::Note => {
            let field = match app.editor.as_ref().map(|e| e.focus) {
                Some(Focus::Status) => "←/→ change status · ",
                Some(Focus::Tags) => "Enter add tag · Backspace remove tag · ",
                Some(Focus::Title) => "Enter to body · ",
                _ => "",
            };
            format!(
                "{field}Tab next field · Esc back · Ctrl-S sync panel · Ctrl-R retry · Ctrl-Q quit"
            )
        }
        Screen::Conflict => match app.conflict.as_ref() {
            Some(c) if c.deletion.is_some() => {
                "r restore with the edit · d delete · Esc decide later".into()
            }
            Some(c) if c.input.is_some() => "Enter save · Esc cancel".into(),
            _ => "m keep mine · t use theirs · e edit · Esc decide later".into(),
        },
        Screen::Sync => {
            "p pause/resume · o simulate offline · r retry now · ↑/↓ scroll · Esc back".into()
        }
    }
}
