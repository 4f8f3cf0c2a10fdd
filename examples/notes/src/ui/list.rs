//! The list of notes: sync indicator, status (or its conflict), title and tags; below,
//! how many notes were deleted on one device while edited on another.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, List, ListItem, ListState, Paragraph};
use ratatui::Frame;

use crate::app::App;
use crate::model::{Note, Status};

pub fn draw(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let mut block = Block::bordered().title(" Notes ");
    if let Some(hidden) = deleted_and_edited(app.deleted_conflicts.len()) {
        block = block.title_bottom(Line::from(hidden).fg(Color::Magenta));
    }
    if app.notes.is_empty() {
        let text = Paragraph::new("No notes yet. Press n to write one.").block(block);
        frame.render_widget(text, area);
        return;
    }
    let items: Vec<ListItem<'_>> = app.notes.iter().map(row).collect();
    let list = List::new(items)
        .block(block)
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ");
    let mut state = ListState::default().with_selected(Some(app.selected));
    frame.render_stateful_widget(list, area, &mut state);
}

fn row(note: &Note) -> ListItem<'_> {
    let (indicator, style) = super::indicator(&note.sync);
    let status = match &note.status {
        Status::Set(s) => Span::raw(format!("{s:<11}")),
        Status::Unset => Span::raw(format!("{:<11}", "-")),
        Status::Conflict(_) => Span::raw(format!("{:<11}", "⚠ conflict")).fg(Color::Magenta),
    };
    let tags: String = note.tags.iter().map(|t| format!(" #{t}")).collect();
    ListItem::new(Line::from(vec![
        Span::styled(format!("{indicator:<10}"), style),
        status,
        Span::raw(note.display_title().to_owned()).bold(),
        Span::raw(tags).fg(Color::Blue),
    ]))
}

/// "⚠ 2 notes were deleted on one device and edited on another: press c".
fn deleted_and_edited(n: usize) -> Option<String> {
    let what = match n {
        0 => return None,
        1 => "1 note was".to_owned(),
        n => format!("{n} notes were"),
    };
    Some(format!(
        " ⚠ {what} deleted on one device and edited on another: press c "
    ))
}
