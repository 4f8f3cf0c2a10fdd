//! Reading less than a whole record: one field, a text's or a list's length. Each agrees
//! with the whole record's read, and fails the way a read of that record or field does.
//! Reading a deleted record: its last fields, and an edit concurrent with the delete.

use holdfast::{Error, FieldValue, RecordId, SchemaError, Store, Value, STATE_FIELD};

use crate::util::{open, space, sync_both, sync_one_way};

/// A note with a multi-byte body, three tags, a title, a conflict-free status.
fn note(store: &Store) -> RecordId {
    store
        .write(|tx| {
            let id = tx.create("note", &space("t"))?;
            tx.splice_text(id, "body", 0, 0, "héllo wörld 🌍")?;
            for (i, tag) in ["a", "b", "c"].into_iter().enumerate() {
                tx.list_insert(id, "tags", i, tag)?;
            }
            tx.set(id, "title", "Plan")?;
            Ok(id)
        })
        .unwrap()
}

/// The lengths and the one-field reads of `id` against its whole record.
fn check(store: &Store, id: RecordId) {
    let record = store.get(id).unwrap();
    let text = record.text("body").unwrap();
    assert_eq!(store.text_len(id, "body").unwrap(), text.chars().count());
    assert_eq!(
        store.list_len(id, "tags").unwrap(),
        record.list("tags").unwrap().len()
    );
    for (name, value) in &record.fields {
        assert_eq!(&store.field(id, name).unwrap(), value, "{name}");
    }
    assert_eq!(
        store.get_deleted(id).unwrap(),
        record,
        "a live record reads alike"
    );
}

#[test]
fn lengths_and_single_fields_agree_with_the_whole_record() {
    let s = open();
    let id = note(&s);
    assert_eq!(s.text_len(id, "body").unwrap(), 13);
    assert_eq!(s.list_len(id, "tags").unwrap(), 3);
    assert_eq!(
        s.field(id, "title").unwrap(),
        FieldValue::Value(Value::String("Plan".into()))
    );
    check(&s, id);

    // After edits, and from a store that has not loaded the document yet.
    s.update(id, |tx| {
        tx.splice_text(id, "body", 0, 6, "")?;
        tx.list_delete(id, "tags", 0)
    })
    .unwrap();
    assert_eq!(s.text_len(id, "body").unwrap(), 7);
    check(&s, id);
    let s = s.reopen();
    assert_eq!(s.text_len(id, "body").unwrap(), 7);
    assert_eq!(s.list_len(id, "tags").unwrap(), 2);
    check(&s, id);
}

#[test]
fn unwritten_containers_have_length_zero() {
    let s = open();
    let id = s.write(|tx| tx.create("note", &space("t"))).unwrap();
    assert_eq!(s.text_len(id, "body").unwrap(), 0);
    assert_eq!(s.list_len(id, "tags").unwrap(), 0);
    assert_eq!(
        s.field(id, "body").unwrap(),
        FieldValue::Text(String::new())
    );
}

#[test]
fn a_length_read_fails_like_a_read_of_that_field() {
    let s = open();
    let id = note(&s);
    assert!(matches!(
        s.text_len(id, "title"),
        Err(Error::Schema(SchemaError::WrongKind { ref field, kind: "lww", operation: "text_len" })) if field == "title"
    ));
    assert!(matches!(
        s.list_len(id, "body"),
        Err(Error::Schema(SchemaError::WrongKind { kind: "text", .. }))
    ));
    assert!(matches!(
        s.text_len(id, "nope"),
        Err(Error::Schema(SchemaError::UnknownField { .. }))
    ));
    let unknown = RecordId::from_bytes([7; 16]);
    assert!(matches!(
        s.text_len(unknown, "body"),
        Err(Error::NotFound(_))
    ));
    s.write(|tx| tx.delete(id)).unwrap();
    assert!(matches!(s.text_len(id, "body"), Err(Error::Deleted(_))));
    assert!(matches!(s.field(id, "title"), Err(Error::Deleted(_))));
}

#[test]
fn a_deleted_record_reads_with_its_last_fields() {
    let s = open();
    let id = note(&s);
    let before = s.get(id).unwrap();
    s.write(|tx| tx.delete(id)).unwrap();
    assert!(matches!(s.get(id), Err(Error::Deleted(_))));
    let deleted = s.get_deleted(id).unwrap();
    assert_eq!(deleted.fields, before.fields);
    assert_eq!(deleted.text("body").unwrap(), "héllo wörld 🌍");
    assert_eq!(deleted.list("tags").unwrap().len(), 3);

    // From the file, with no document loaded.
    let s = s.reopen();
    assert_eq!(s.get_deleted(id).unwrap().fields, before.fields);
    // Restored, it reads as `get` does.
    s.write(|tx| tx.restore(id)).unwrap();
    assert_eq!(s.get_deleted(id).unwrap(), s.get(id).unwrap());

    let unknown = RecordId::from_bytes([7; 16]);
    assert!(matches!(s.get_deleted(unknown), Err(Error::NotFound(u)) if u == unknown));
}

#[test]
fn an_edit_concurrent_with_a_delete_is_read_through_the_deleted_record() {
    let (a, b) = (open(), open());
    let id = note(&a);
    sync_one_way(&a, &b);
    a.write(|tx| tx.delete(id)).unwrap();
    b.write(|tx| {
        tx.splice_text(id, "body", 0, 0, "Important: ")?;
        tx.set(id, "title", "Plan B")
    })
    .unwrap();
    sync_both(&a, &b);
    for s in [&a, &b] {
        // Still hidden, in conflict: the edit is what the user would restore.
        assert!(matches!(s.get(id), Err(Error::Deleted(_))));
        assert_eq!(s.conflicts().unwrap()[0].field, STATE_FIELD);
        let r = s.get_deleted(id).unwrap();
        assert_eq!(r.text("body").unwrap(), "Important: héllo wörld 🌍");
        assert_eq!(
            r.get("title").unwrap(),
            Some(&Value::String("Plan B".into()))
        );
    }
}
