//! Unit tests of internals: index key order, schema validation, bundle framing.

use crate::value::Value;
use crate::{index, Field, RecordId, ScalarType, Schema, SpaceId};

fn enc(v: &Value) -> Vec<u8> {
    index::field_key("c", "f", v, None)
}

#[test]
fn index_encoding_preserves_order_within_a_type() {
    let ints = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
    for w in ints.windows(2) {
        assert!(enc(&Value::I64(w[0])) < enc(&Value::I64(w[1])), "{w:?}");
    }
    let floats = [f64::NEG_INFINITY, -2.5, -0.0, 0.0, 1e-9, 3.0, f64::INFINITY];
    for w in floats.windows(2) {
        assert!(enc(&Value::F64(w[0])) <= enc(&Value::F64(w[1])), "{w:?}");
    }
    let strings = ["", "\0", "\0\0", "a", "a\0", "a\0b", "ab", "b"];
    for w in strings.windows(2) {
        assert!(enc(&w[0].into()) < enc(&w[1].into()), "{w:?}");
    }
}

#[test]
fn index_keys_of_one_value_are_not_prefixes_of_another() {
    // "a" must not be a prefix of "ab", or a range for "a" would include "ab".
    let a = enc(&"a".into());
    let ab = enc(&"ab".into());
    assert!(!ab.starts_with(&a));
    let id = RecordId::new_v7();
    let key = index::field_key("c", "f", &"a".into(), Some(id));
    assert_eq!(index::record_of(&key), id);
    assert!(key < index::prefix_end(&a));
}

#[test]
fn space_and_collection_prefixes_are_disjoint() {
    let s1 = SpaceId::new("team").unwrap();
    let s2 = SpaceId::new("team2").unwrap();
    let k1 = index::space_key(&s1, "note", Some(RecordId::new_v7()));
    assert!(!k1.starts_with(&index::space_prefix(&s2)));
    assert!(k1.starts_with(&index::space_prefix(&s1)));
}

#[test]
fn schema_validation() {
    let check = |fields: Vec<(&str, Field)>| Schema::new(1).collection("note", fields).validate();
    assert!(check(vec![("title", Field::lww(ScalarType::String))]).is_ok());
    assert!(
        check(vec![("_hidden", Field::text())]).is_err(),
        "reserved prefix"
    );
    assert!(check(vec![("", Field::text())]).is_err(), "empty name");
    assert!(check(vec![(&"x".repeat(crate::NAME_BYTES_MAX), Field::text())]).is_ok());
    assert!(check(vec![(
        &"x".repeat(crate::NAME_BYTES_MAX + 1),
        Field::text()
    )])
    .is_err());
    assert!(
        check(vec![("body", Field::text().indexed())]).is_err(),
        "text cannot be indexed"
    );
    let untyped = Field {
        kind: crate::FieldKind::Versioned,
        ty: None,
        indexed: false,
    };
    assert!(
        check(vec![("status", untyped)]).is_err(),
        "versioned needs a type"
    );
    assert!(Schema::new(0).validate().is_err());
}

#[test]
fn value_parse_round_trips_display() {
    for v in [
        Value::I64(-3),
        Value::F64(2.5),
        Value::Bool(true),
        "x y".into(),
    ] {
        assert_eq!(Value::parse(v.scalar_type(), &v.to_string()), Some(v));
    }
    assert_eq!(Value::parse(ScalarType::I64, "nope"), None);
}

#[test]
fn chunks_are_compacted_into_the_snapshot_and_reload_identically() {
    use redb::ReadableDatabase;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    let schema = Schema::new(1).collection("note", [("body", Field::text())]);
    let store = crate::Store::open(&path, crate::StoreConfig::new(schema.clone())).unwrap();
    let id = store
        .write(|tx| tx.create("note", &SpaceId::new("t").unwrap()))
        .unwrap();
    let writes = 600;
    let mut expected = String::new();
    for i in 0..writes {
        let line = format!("line {i:04} of a note that keeps growing\n");
        let at = expected.chars().count();
        store
            .update(id, |tx| tx.splice_text(id, "body", at, 0, &line))
            .unwrap();
        expected.push_str(&line);
    }
    let rows = |db: &redb::Database| {
        let txn = db.begin_read().unwrap();
        let records = txn.open_table(crate::tables::RECORDS).unwrap();
        let key = crate::tables::rid(id);
        records.range((key, 0)..=(key, u32::MAX)).unwrap().count()
    };
    let chunk_rows = rows(&store.inner.db);
    // Metadata + snapshot + chunks since the last compaction: far fewer than one per write,
    // and the incremental bytes never outgrow the snapshot by more than one write.
    assert!(
        chunk_rows < writes / 4,
        "{chunk_rows} rows for {writes} writes"
    );
    drop(store);
    let store = crate::Store::open(&path, crate::StoreConfig::new(schema)).unwrap();
    assert_eq!(store.get(id).unwrap().text("body").unwrap(), expected);
    drop(store);
    assert!(crate::Store::check(&path).unwrap().is_ok());
}
