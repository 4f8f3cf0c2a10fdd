//! Cursor arithmetic and layout, one case a line.

use super::*;

#[track_caller]
fn check_shift(old: &str, new: &str, cursor: usize, want: usize) {
    assert_eq!(
        shift_cursor(old, new, cursor),
        want,
        "{old:?} -> {new:?} at {cursor}"
    );
}

#[test]
fn the_cursor_keeps_its_place_around_edits_from_elsewhere() {
    check_shift("world", "hello world", 5, 11); // insert before
    check_shift("world", "hello world", 0, 0); // at the insert point: stays before it
    check_shift("hello", "hello world", 2, 2); // insert after
    check_shift("hello world", "world", 8, 2); // delete before
    check_shift("hello world", "hello", 3, 3); // delete after
    check_shift("abcdef", "abXYef", 3, 4); // inside a replaced region: to its end
    check_shift("same", "same", 9, 4); // past the end: clamped
    check_shift("ééé", "aééé", 3, 4); // characters, not bytes
    check_shift("aaa", "aaaa", 3, 3); // ambiguous: taken as an insert at the cursor
    check_shift("aaa", "aaaa", 2, 2);
}

#[test]
fn splicing_counts_characters() {
    assert_eq!(splice("héllo", 1, 1, "e"), "hello");
    assert_eq!(splice("abc", 3, 0, "d"), "abcd");
    assert_eq!(splice("abc", 0, 3, ""), "");
}

#[test]
fn lines_up_down_home_end() {
    let s = "ab\nlonger line\nc";
    assert_eq!(line_up(s, 10), 2); // col 7 on line 2 -> end of "ab"
    assert_eq!(line_up(s, 1), 0);
    assert_eq!(line_down(s, 1), 4);
    assert_eq!(line_down(s, 10), 16); // col 7 -> end of "c"
    assert_eq!(line_down(s, 16), 16);
    assert_eq!(home(s, 10), 3);
    assert_eq!(end(s, 4), 14);
}

#[track_caller]
fn check_wrap(s: &str, width: usize, cursor: usize, rows: &[&str], at: (usize, usize)) {
    let (got, got_at) = wrap(s, width, cursor);
    assert_eq!(got, rows, "{s:?} in {width}");
    assert_eq!(got_at, at, "cursor {cursor} of {s:?} in {width}");
}

#[test]
fn text_wraps_with_the_cursor() {
    check_wrap("", 5, 0, &[""], (0, 0));
    check_wrap("abc", 5, 3, &["abc"], (0, 3));
    check_wrap("abcde", 5, 5, &["abcde", ""], (1, 0));
    check_wrap("abcdefg", 5, 6, &["abcde", "fg"], (1, 1));
    check_wrap("abcdefg", 5, 5, &["abcde", "fg"], (1, 0));
    check_wrap("ab\ncd", 5, 2, &["ab", "cd"], (0, 2));
    check_wrap("ab\ncd", 5, 3, &["ab", "cd"], (1, 0));
    check_wrap("ab\n", 5, 3, &["ab", ""], (1, 0));
}

/// Wide characters take two columns: the cursor after one is two columns on, and a wide
/// character that does not fit at the end of a row starts the next.
#[test]
fn wide_characters_take_two_columns() {
    check_wrap("日本", 5, 2, &["日本"], (0, 4));
    check_wrap("日本語", 5, 3, &["日本", "語"], (1, 2));
    check_wrap("a日本", 4, 1, &["a日", "本"], (0, 1));
    check_wrap("a日本", 4, 3, &["a日", "本"], (1, 2));
    assert_eq!(width("a日本"), 5);
    assert_eq!(width_before("a日本", 2), 3);
}
