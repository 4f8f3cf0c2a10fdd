//! The sync panel, for support and testing: the connection, the last sync and the last
//! problem, the controls, and every pending change (outbox entry) with its state and why.

use holdfast::{OutboxEntry, SyncState};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use crate::app::{App, NO_RELAY};
use crate::model;

pub fn draw(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let info = info(app);
    let height = u16::try_from(info.len() + 2).unwrap_or(u16::MAX);
    let [top, bottom] =
        Layout::vertical([Constraint::Length(height), Constraint::Min(3)]).areas(area);
    let panel = Paragraph::new(info).block(Block::bordered().title(" Sync "));
    frame.render_widget(panel, top);

    let total = app.summary.pending + app.summary.failed;
    let title = format!(" Pending changes ({total}) ");
    let block = Block::bordered().title(title);
    let lines: Vec<Line<'_>> = if app.outbox.is_empty() {
        vec![Line::from("Nothing waiting: every change is on the sync server.").dim()]
    } else {
        let now = app.now_ms();
        app.outbox
            .iter()
            .skip(app.outbox_scroll)
            .flat_map(|e| entry(app, e, now))
            .collect()
    };
    frame.render_widget(Paragraph::new(lines).block(block), bottom);
}

fn info(app: &App) -> Vec<Line<'static>> {
    let row = |label: &str, value: String| {
        Line::from(vec![
            Span::raw(format!(" {label:<14}")).bold(),
            Span::raw(value),
        ])
    };
    let Some(link) = app.link() else {
        return vec![
            row("Server", "none".into()),
            Line::from(format!(" {NO_RELAY}")),
            row("Last synced", last_synced(app)),
        ];
    };
    let now = app.now_ms();
    let status = app.status.as_ref();
    let mut lines = vec![
        row("Server", link.url().to_owned()),
        row("Connection", connection_detail(app)),
        row("Last synced", last_synced(app)),
    ];
    if let Some(error) = status.and_then(|s| s.last_error.clone()) {
        lines.push(row("Last problem", error));
    }
    if let Some(at) = status.and_then(|s| s.next_retry_ms) {
        lines.push(row("Next try", model::until(now, at)));
    }
    lines.push(Line::from(""));
    let pause = if link.paused() {
        "Resume sync"
    } else {
        "Pause sync"
    };
    let offline = if link.simulated_offline() {
        "Go back online (stop simulating offline)"
    } else {
        "Simulate offline: cut this device off from the sync server"
    };
    lines.push(Line::from(format!("  p  {pause}")));
    lines.push(Line::from(format!("  o  {offline}")));
    lines.push(Line::from("  r  Retry now"));
    lines
}

/// "2 min ago", or "not yet".
fn last_synced(app: &App) -> String {
    match app.last_synced_ms() {
        Some(at) => model::ago(app.now_ms(), at),
        None => "not yet".into(),
    }
}

fn connection_detail(app: &App) -> String {
    let mut words = super::connection(app);
    if let Some(holdfast::ConnectionState::Offline { reason, .. }) =
        app.status.as_ref().map(|s| &s.connection)
    {
        words += &format!(": {reason}");
    }
    words
}

/// An entry's line, and a second one with the reason when it failed.
fn entry(app: &App, e: &OutboxEntry, now: i64) -> Vec<Line<'static>> {
    // A note not in the list was deleted, or is in another space.
    let title = match app.notes.iter().find(|n| n.id == e.record) {
        Some(note) => note.display_title().to_owned(),
        None => format!("note {}", &e.record.to_string()[..8]),
    };
    let (state, color) = match &e.state {
        SyncState::Queued => ("queued", Color::Yellow),
        SyncState::Syncing => ("syncing", Color::Cyan),
        SyncState::Synced => ("synced", Color::Green),
        _ => ("failed", Color::Red),
    };
    let attempts = match e.attempts {
        0 => String::new(),
        n => format!("{} so far", model::count(u64::from(n), "attempt")),
    };
    let mut title = title;
    if title.chars().count() > 20 {
        title = title.chars().take(19).collect::<String>() + "…";
    }
    let mut lines = vec![Line::from(vec![
        Span::raw(format!(" #{:<5} ", e.seq)),
        Span::raw(format!("{title:<21}")),
        Span::raw(format!("{state:<8} ")).fg(color),
        Span::raw(format!("{:<12} ", model::ago(now, e.created_ms))).dim(),
        Span::raw(attempts),
    ])];
    if let SyncState::Failed { reason, permanent } = &e.state {
        let wait = if *permanent {
            "waits for Retry now"
        } else {
            "retried by itself"
        };
        lines.push(Line::from(format!("        why: {reason} ({wait})")).fg(Color::Red));
    }
    lines
}
