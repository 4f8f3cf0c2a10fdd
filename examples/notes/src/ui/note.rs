//! The open note: title, tags, status and body, the field with the cursor highlighted.

use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use crate::app::{App, Editor, Focus};
use crate::model::Status;
use crate::text;

const LABEL_WIDTH: u16 = 9;

pub fn draw(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let Some(editor) = &app.editor else {
        return;
    };
    let (indicator, style) = super::indicator(&editor.note.sync);
    let block = Block::bordered()
        .title(" Note ")
        .title_top(Line::from(Span::styled(format!(" {indicator} "), style)).right_aligned());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [title, tags, status, rule, body] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
    ])
    .areas(inner);

    field(
        frame,
        editor,
        Focus::Title,
        "Title",
        title,
        editor.note.title.clone().into(),
    );
    if editor.focus == Focus::Title {
        set_cursor(
            frame,
            title,
            usize::from(LABEL_WIDTH) + text::width_before(&editor.note.title, editor.title_cursor),
            0,
        );
    }

    let mut tag_spans: Vec<Span<'_>> = editor
        .note
        .tags
        .iter()
        .map(|t| Span::raw(format!("#{t} ")).fg(Color::Blue))
        .collect();
    let shown_before: usize = editor.note.tags.iter().map(|t| text::width(t) + 2).sum();
    tag_spans.push(Span::raw(editor.tag_input.as_str()));
    field(
        frame,
        editor,
        Focus::Tags,
        "Tags",
        tags,
        Line::from(tag_spans),
    );
    if editor.focus == Focus::Tags {
        let x = usize::from(LABEL_WIDTH) + shown_before + text::width(&editor.tag_input);
        set_cursor(frame, tags, x, 0);
    }

    field(
        frame,
        editor,
        Focus::Status,
        "Status",
        status,
        status_line(&editor.note.status),
    );

    let rule_text = "─".repeat(usize::from(rule.width));
    frame.render_widget(Paragraph::new(rule_text).dim(), rule);
    draw_body(frame, editor, body);
}

fn status_line(status: &Status) -> Line<'static> {
    match status {
        Status::Set(s) => Line::from(format!("‹ {s} ›")),
        Status::Unset => Line::from("‹ none ›"),
        Status::Conflict(candidates) => {
            let versions: Vec<String> = candidates
                .iter()
                .map(|c| {
                    let who = if c.mine { "yours" } else { "theirs" };
                    format!("{} ({who})", c.value)
                })
                .collect();
            Line::from(vec![
                Span::raw("⚠ Changed on two devices: ")
                    .fg(Color::Magenta)
                    .bold(),
                Span::raw(versions.join(" / ")),
                Span::raw(" — Enter to choose").fg(Color::Magenta),
            ])
        }
    }
}

fn field(
    frame: &mut Frame<'_>,
    editor: &Editor,
    which: Focus,
    label: &str,
    area: Rect,
    value: Line<'_>,
) {
    let focused = editor.focus == which;
    let label_style = if focused {
        Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    } else {
        Style::new().add_modifier(Modifier::DIM)
    };
    let mut spans = vec![
        Span::styled(format!("{label:<7}"), label_style),
        Span::raw("  "),
    ];
    spans.extend(value.spans);
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_body(frame: &mut Frame<'_>, editor: &Editor, area: Rect) {
    let width = usize::from(area.width.max(1));
    let height = usize::from(area.height.max(1));
    let (rows, (row, col)) = text::wrap(&editor.note.body, width, editor.cursor);
    let top = row.saturating_sub(height - 1);
    let lines: Vec<Line<'_>> = rows
        .into_iter()
        .skip(top)
        .take(height)
        .map(Line::from)
        .collect();
    frame.render_widget(Paragraph::new(lines), area);
    if editor.focus == Focus::Body {
        set_cursor(frame, area, col, row - top);
    }
}

fn set_cursor(frame: &mut Frame<'_>, area: Rect, x: usize, y: usize) {
    let x = area.x
        + u16::try_from(x)
            .unwrap_or(u16::MAX)
            .min(area.width.saturating_sub(1));
    let y = area.y
        + u16::try_from(y)
            .unwrap_or(u16::MAX)
            .min(area.height.saturating_sub(1));
    frame.set_cursor_position(Position::new(x, y));
}
