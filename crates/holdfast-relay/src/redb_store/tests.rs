use super::*;

#[test]
fn reasons_are_cut_to_the_message_limit_at_a_character_boundary() {
    let check = |text: &str, max: usize, want: &str| {
        let mut text = text.to_owned();
        truncate(&mut text, max);
        assert_eq!(text, want);
    };
    check("abc", 3, "abc");
    check("abcd", 3, "abc");
    check("aé", 2, "a");
    check("", 0, "");
    let long = "x".repeat(MESSAGE_BYTES_MAX + 1);
    let Outcome::Rejected { reason, .. } = rejected(RejectCode::Malformed, long, true) else {
        unreachable!("rejected builds a rejection");
    };
    assert_eq!(reason.len(), MESSAGE_BYTES_MAX);
}

#[test]
fn short_hashes_have_the_configured_length() {
    assert_eq!(short(&[0xab; 32]), "ab".repeat(REASON_HASH_CHARS / 2));
}

#[test]
fn an_entry_without_changes_is_malformed() {
    let entry = PushEntry {
        event_id: EventId::from_bytes([1; 16]),
        space: SpaceId::new("s").unwrap(),
        record: holdfast_protocol::RecordId::from_bytes([2; 16]),
        changes: Vec::new(),
    };
    let checked = check(entry);
    assert!(checked.parsed.is_empty());
    assert_eq!(
        checked.malformed.as_deref(),
        Some("the entry carries no changes")
    );
}
