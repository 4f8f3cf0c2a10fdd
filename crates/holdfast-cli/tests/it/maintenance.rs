//! `check` and `compact` on real files.

use serde_json::json;

use crate::util::{field, Device};

#[test]
fn check_passes_on_a_used_store_and_after_compaction() {
    let device = Device::new();
    let id = device.put("note", &["title=Plan", "body=x"]);
    for i in 0..30 {
        device
            .run(&["text", &id, "body", "--insert", &i.to_string(), "y"])
            .ok();
    }
    let before = device.show(&id);
    let report = device.run(&["check", "--json"]).json();
    assert_eq!(
        report,
        json!({"ok": true, "file_ok": true, "records": 1, "outbox_entries": 31, "problems": []})
    );
    let text = device.run(&["check"]).ok();
    assert!(text.starts_with("The store is sound"), "{text}");

    let compacted = device.run(&["compact", "--json"]).json();
    assert_eq!(compacted["records_rewritten"], 1);
    assert!(compacted["bytes_before"].as_u64().unwrap() > 0);
    assert!(compacted["bytes_after"].as_u64().unwrap() > 0);
    assert_eq!(device.run(&["check", "--json"]).json()["ok"], true);
    assert_eq!(device.show(&id), before);
    assert_eq!(
        field(&device.show(&id), "body"),
        &json!("y".repeat(30) + "x")
    );
    let again = device.run(&["compact", "--json"]).json();
    assert_eq!(again["records_rewritten"], 0);
    // Still a working store.
    device.run(&["set", &id, "title=After"]).ok();
    assert_eq!(device.run(&["check", "--json"]).json()["records"], 1);
}

#[test]
fn check_reports_damage_and_fails() {
    let device = Device::new();
    let marker = b"MARKER-0123456789";
    device.put(
        "note",
        &[&format!("title={}", std::str::from_utf8(marker).unwrap())],
    );
    // Damage every copy of the record's bytes (its document and its outbox entry).
    let mut bytes = std::fs::read(&device.db).unwrap();
    let at: Vec<usize> = bytes
        .windows(marker.len())
        .enumerate()
        .filter(|(_, w)| w == marker)
        .map(|(i, _)| i)
        .collect();
    assert!(!at.is_empty(), "the value is stored as written");
    for i in at {
        bytes[i + 3] ^= 0x5A;
    }
    std::fs::write(&device.db, bytes).unwrap();
    let message = device.run(&["check"]).fails();
    assert!(
        message.contains("damaged") || message.contains("problem"),
        "{message}"
    );
}

#[test]
fn a_file_damaged_throughout_is_reported_without_a_crash() {
    let device = Device::new();
    for i in 0..5 {
        device.put("note", &[&format!("body={}", "text ".repeat(200 + i))]);
    }
    let mut bytes = std::fs::read(&device.db).unwrap();
    let len = bytes.len();
    for b in &mut bytes[len / 4..len * 3 / 4] {
        *b ^= 0x5A;
    }
    std::fs::write(&device.db, bytes).unwrap();
    // The storage engine may refuse the file or stop inside it; either way, words.
    let message = device.run(&["check"]).fails();
    assert!(message.contains("damaged"), "{message}");
    device.run(&["records"]).fails();
}
