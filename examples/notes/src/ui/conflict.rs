//! The conflict screen: "Your version" and "Latest version" of a note's status, or who
//! deleted a note and who edited it meanwhile and the note with the edit, and what each
//! key does, in plain words.

use holdfast::Candidate;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};
use ratatui::Frame;

use crate::app::{App, ConflictScreen, Deletion};
use crate::model::{self, Note};

/// How many lines of the edited note's body the delete/edit screen shows.
const BODY_LINES_MAX: usize = 3;

/// How many characters of each of those lines it shows.
const BODY_LINE_CHARS_MAX: usize = 70;

pub fn draw(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let Some(conflict) = &app.conflict else {
        return;
    };
    if let Some(deletion) = &conflict.deletion {
        return draw_deletion(frame, app, conflict, deletion, area);
    }
    let now = app.now_ms();
    let version = |label: &str, c: &Option<Candidate>, whose: &str| -> Line<'static> {
        match c {
            Some(c) => Line::from(vec![
                Span::raw(format!("  {label:<16}")).bold(),
                Span::raw(format!("{:<12}", c.value.to_string())).fg(Color::Yellow),
                Span::raw(format!("({whose}, {})", model::ago(now, c.at_ms))).dim(),
            ]),
            None => Line::from(vec![
                Span::raw(format!("  {label:<16}")).bold(),
                Span::raw("none on this device").dim(),
            ]),
        }
    };
    let value_of =
        |c: &Option<Candidate>| c.as_ref().map_or(String::new(), |c| c.value.to_string());
    let mut lines = vec![
        Line::from(format!(
            "The status of \"{}\" was changed on two devices at the same time.",
            conflict.title
        )),
        Line::from("Nothing was lost: choose which version to keep."),
        Line::from(""),
        version("Your version", &conflict.mine, "this device"),
        version("Latest version", &conflict.theirs, "another device"),
    ];
    if conflict.versions > 2 {
        lines.push(Line::from(format!(
            "  ({} versions in all; the latest from other devices is shown)",
            conflict.versions
        )));
    }
    lines.push(Line::from(""));
    let mut cursor = None;
    match &conflict.input {
        Some(input) => {
            lines.push(Line::from(
                "Type the status to keep (draft, review or published):",
            ));
            lines.push(Line::from(vec![
                Span::raw("  New status: ").bold(),
                Span::raw(input.clone()),
            ]));
            cursor = Some((14 + input.chars().count(), lines.len() - 1));
            lines.push(Line::from(""));
            lines.push(Line::from("  Enter  Save this status"));
            lines.push(Line::from("  Esc    Cancel"));
        }
        None => {
            lines.push(Line::from(format!(
                "  m  Keep mine: keep \"{}\"",
                value_of(&conflict.mine)
            )));
            lines.push(Line::from(format!(
                "  t  Use theirs: use \"{}\"",
                value_of(&conflict.theirs)
            )));
            lines.push(Line::from("  e  Edit: type a new status"));
            lines.push(Line::from(
                "  Esc  Decide later (the note keeps both versions until then)",
            ));
        }
    }
    if let Some(error) = &conflict.error {
        lines.push(Line::from(""));
        lines.push(Line::from(error.clone()).fg(Color::Red));
    }
    let block = Block::bordered()
        .title(" Choose a status ")
        .border_style(Style::new().fg(Color::Magenta));
    let inner = block.inner(area);
    let text = Paragraph::new(lines)
        .block(block)
        .wrap(Wrap { trim: false });
    frame.render_widget(text, area);
    if let Some((x, y)) = cursor {
        let x = inner.x
            + u16::try_from(x)
                .unwrap_or(0)
                .min(inner.width.saturating_sub(1));
        let y = inner.y
            + u16::try_from(y)
                .unwrap_or(0)
                .min(inner.height.saturating_sub(1));
        frame.set_cursor_position(Position::new(x, y));
    }
}

/// A note deleted on one device while edited on another.
fn draw_deletion(
    frame: &mut Frame<'_>,
    app: &App,
    conflict: &ConflictScreen,
    deletion: &Deletion,
    area: Rect,
) {
    let now = app.now_ms();
    let who = |c: &Candidate| -> String {
        let device = match (c.mine, &c.device) {
            (true, _) => "on this device".to_owned(),
            (false, Some(d)) => {
                let d = d.to_string();
                format!("on another device ({})", &d[..d.len().min(8)])
            }
            (false, None) => "by another program".to_owned(),
        };
        format!("{device}, {}", model::ago(now, c.at_ms))
    };
    let row = |label: &str, c: &Candidate| {
        Line::from(vec![
            Span::raw(format!("  {label:<10}")).bold(),
            Span::raw(who(c)).fg(Color::Yellow),
        ])
    };
    let mut lines = vec![
        Line::from(format!(
            "\"{}\" was deleted on one device while it was being edited on another.",
            conflict.title
        )),
        Line::from("The note is hidden until you choose; the edit is kept until then."),
        Line::from(""),
    ];
    lines.extend(deletion.deletes.iter().map(|c| row("Deleted", c)));
    lines.extend(deletion.edits.iter().map(|c| row("Edited", c)));
    if let Some(edited) = &deletion.edited {
        lines.push(Line::from(""));
        lines.extend(edited_note(edited));
    }
    lines.extend([
        Line::from(""),
        Line::from("  r  Restore: bring the note back, with the edit"),
        Line::from("  d  Delete: confirm the delete (the edit goes with the note)"),
        Line::from("  Esc  Decide later (the note stays hidden until then)"),
    ]);
    if let Some(error) = &conflict.error {
        lines.push(Line::from(""));
        lines.push(Line::from(error.clone()).fg(Color::Red));
    }
    let block = Block::bordered()
        .title(" Deleted and edited ")
        .border_style(Style::new().fg(Color::Magenta));
    let text = Paragraph::new(lines)
        .block(block)
        .wrap(Wrap { trim: false });
    frame.render_widget(text, area);
}

/// The note as restoring it would bring it back: its title and the first lines of its body.
fn edited_note(note: &Note) -> Vec<Line<'static>> {
    let field = |label: &str, text: String| {
        Line::from(vec![
            Span::raw(format!("  {label:<10}")).bold(),
            Span::raw(text),
        ])
    };
    let mut lines = vec![
        Line::from("The note with the edit:"),
        field("Title", note.display_title().to_owned()),
    ];
    let body: Vec<&str> = note.body.lines().collect();
    if body.is_empty() {
        lines.push(field("Body", "(empty)".to_owned()).dim());
    }
    for (i, line) in body.iter().take(BODY_LINES_MAX).enumerate() {
        lines.push(field(if i == 0 { "Body" } else { "" }, clipped(line)));
    }
    if body.len() > BODY_LINES_MAX {
        let more = body.len() - BODY_LINES_MAX;
        let text = format!("({more} more line{})", if more == 1 { "" } else { "s" });
        lines.push(field("", text).dim());
    }
    lines
}

/// `line` cut to `BODY_LINE_CHARS_MAX` characters, with "…" when cut.
fn clipped(line: &str) -> String {
    match line.char_indices().nth(BODY_LINE_CHARS_MAX) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line.to_owned(),
    }
}
