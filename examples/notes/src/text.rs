//! Text positions in characters (Unicode scalar values, as `splice_text` counts them):
//! moving a cursor, keeping it in place when another device edits the text, and laying
//! text out in lines of a given width with the cursor's row and column.

#[cfg(test)]
mod tests;

/// The number of characters in `s`.
pub fn len(s: &str) -> usize {
    s.chars().count()
}

/// The byte offset of character `pos` of `s` (its length when `pos` is past the end).
pub fn byte_at(s: &str, pos: usize) -> usize {
    s.char_indices().nth(pos).map_or(s.len(), |(i, _)| i)
}

/// `s` with `insert` put at character `pos` in place of `delete` characters.
pub fn splice(s: &str, pos: usize, delete: usize, insert: &str) -> String {
    let (start, end) = (byte_at(s, pos), byte_at(s, pos + delete));
    let mut out = String::with_capacity(s.len() + insert.len());
    out.push_str(&s[..start]);
    out.push_str(insert);
    out.push_str(&s[end..]);
    out
}

/// Where a cursor at `cursor` in `old` belongs in `new`, the same text after someone
/// else's edit. The edit is taken as the one region where the two differ: a cursor before
/// it stays, one after it moves by the length change, one inside it goes to its end.
pub fn shift_cursor(old: &str, new: &str, cursor: usize) -> usize {
    if old == new {
        return cursor.min(len(new));
    }
    let (old_c, new_c): (Vec<char>, Vec<char>) = (old.chars().collect(), new.chars().collect());
    let prefix = old_c.iter().zip(&new_c).take_while(|(a, b)| a == b).count();
    let max_suffix = old_c.len().min(new_c.len()) - prefix;
    let suffix = old_c
        .iter()
        .rev()
        .zip(new_c.iter().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    let (old_end, new_end) = (old_c.len() - suffix, new_c.len() - suffix);
    if cursor <= prefix {
        cursor
    } else if cursor >= old_end {
        cursor - old_end + new_end
    } else {
        new_end
    }
}

/// The start of the line the cursor is on and the cursor's column in it.
fn line_start(chars: &[char], cursor: usize) -> (usize, usize) {
    let start = chars[..cursor]
        .iter()
        .rposition(|&c| c == '\n')
        .map_or(0, |i| i + 1);
    (start, cursor - start)
}

/// The cursor moved one line up, keeping its column where the line is long enough.
pub fn line_up(s: &str, cursor: usize) -> usize {
    let chars: Vec<char> = s.chars().collect();
    let cursor = cursor.min(chars.len());
    let (start, col) = line_start(&chars, cursor);
    if start == 0 {
        return 0;
    }
    let (prev_start, _) = line_start(&chars, start - 1);
    prev_start + col.min(start - 1 - prev_start)
}

/// The cursor moved one line down, keeping its column where the line is long enough.
pub fn line_down(s: &str, cursor: usize) -> usize {
    let chars: Vec<char> = s.chars().collect();
    let cursor = cursor.min(chars.len());
    let (_, col) = line_start(&chars, cursor);
    let Some(end) = chars[cursor..].iter().position(|&c| c == '\n') else {
        return chars.len();
    };
    let next_start = cursor + end + 1;
    let next_len = chars[next_start..]
        .iter()
        .position(|&c| c == '\n')
        .unwrap_or(chars.len() - next_start);
    next_start + col.min(next_len)
}

/// The start of the cursor's line.
pub fn home(s: &str, cursor: usize) -> usize {
    let chars: Vec<char> = s.chars().collect();
    line_start(&chars, cursor.min(chars.len())).0
}

/// The end of the cursor's line.
pub fn end(s: &str, cursor: usize) -> usize {
    let chars: Vec<char> = s.chars().collect();
    let cursor = cursor.min(chars.len());
    cursor
        + chars[cursor..]
            .iter()
            .position(|&c| c == '\n')
            .unwrap_or(chars.len() - cursor)
}

/// `s` laid out in rows of at most `width` characters (breaking at newlines, and
/// anywhere in a longer line), with the cursor's (row, column).
pub fn wrap(s: &str, width: usize, cursor: usize) -> (Vec<String>, (usize, usize)) {
    let width = width.max(1);
    let mut rows = vec![String::new()];
    let mut col = 0;
    let mut at = (0, 0);
    for (i, c) in s.chars().enumerate() {
        if i == cursor {
            at = (rows.len() - 1, col);
        }
        if c == '\n' {
            rows.push(String::new());
            col = 0;
            continue;
        }
        let w = char_width(c);
        if col + w > width && col > 0 {
            rows.push(String::new());
            col = 0;
            if i == cursor {
                at = (rows.len() - 1, 0);
            }
        }
        rows.last_mut().expect("one row at least").push(c);
        col += w;
    }
    if cursor >= len(s) {
        if col >= width {
            rows.push(String::new());
            col = 0;
        }
        at = (rows.len() - 1, col);
    }
    (rows, at)
}

/// The columns `s` takes on a terminal: two for a wide character (CJK, most emoji), none
/// for a combining one.
pub fn width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// The columns the first `chars` characters of `s` take.
pub fn width_before(s: &str, chars: usize) -> usize {
    s.chars().take(chars).map(char_width).sum()
}

fn char_width(c: char) -> usize {
    unicode_width::UnicodeWidthChar::width(c).unwrap_or(0)
}
