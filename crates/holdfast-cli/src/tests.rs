//! Unit tests: the schema file and values from the command line.

use holdfast::{Field, FieldKind, ScalarType, Schema, Value};

use crate::{parse_edits, parse_schema, parse_value, Edit};

const NOTES: &str = r#"version = 1
[collections.note.fields]
title  = { kind = "lww", type = "string" }
body   = { kind = "text" }
tags   = { kind = "list" }
status = { kind = "versioned", type = "string", indexed = true }
"#;

#[test]
fn the_issue_schema_parses() {
    let expected = Schema::new(1).collection(
        "note",
        [
            ("title", Field::lww(ScalarType::String)),
            ("body", Field::text()),
            ("tags", Field::list(ScalarType::String)),
            ("status", Field::versioned(ScalarType::String).indexed()),
        ],
    );
    let parsed = parse_schema(NOTES, "s.toml").unwrap();
    assert_eq!(parsed.version, 1);
    // A list without a type holds strings either way.
    assert_eq!(
        parsed.collections["note"].fields["tags"].kind,
        FieldKind::List
    );
    assert_eq!(
        parsed.collections["note"].fields["tags"].scalar_type(),
        Some(ScalarType::String)
    );
    let mut parsed = parsed;
    parsed
        .collections
        .get_mut("note")
        .unwrap()
        .fields
        .insert("tags".into(), Field::list(ScalarType::String));
    assert_eq!(parsed, expected);
}

#[test]
fn every_kind_and_type() {
    let text = r#"version = 3
[collections.item.fields]
a = { kind = "lww", type = "string" }
b = { kind = "lww", type = "i64" }
c = { kind = "versioned", type = "f64" }
d = { kind = "lww", type = "bool" }
e = { kind = "lww", type = "bytes" }
f = { kind = "lww", type = "timestamp", indexed = true }
g = { kind = "lww", type = "ref" }
h = { kind = "counter" }
i = { kind = "list", type = "i64" }
"#;
    let s = parse_schema(text, "s.toml").unwrap();
    let f = &s.collections["item"].fields;
    let types: Vec<_> = "abcdefg"
        .chars()
        .map(|c| f[&c.to_string()].ty.unwrap())
        .collect();
    use ScalarType::*;
    assert_eq!(types, [String, I64, F64, Bool, Bytes, Timestamp, RecordRef]);
    assert!(f["f"].indexed);
    assert_eq!(f["h"], Field::counter());
    assert_eq!(f["i"], Field::list(I64));
    assert_eq!(s.version, 3);
}

/// The message for a schema file, which must name `line` and contain `words`.
fn check_error(text: &str, line: usize, words: &str) {
    let e = parse_schema(text, "s.toml").unwrap_err();
    assert_eq!(e.line, Some(line), "{e}");
    let message = e.to_string();
    assert!(
        message.starts_with(&format!("s.toml line {line}: ")),
        "{message}"
    );
    assert!(message.contains(words), "{message:?} lacks {words:?}");
}

#[test]
fn mistakes_are_reported_at_their_line() {
    let head =
        "version = 1\n[collections.note.fields]\ntitle = { kind = \"lww\", type = \"string\" }\n";
    let with = |line: &str| format!("{head}{line}\n");
    check_error(
        &with("x = { kind = \"lw\", type = \"string\" }"),
        4,
        "unknown kind \"lw\"; use one of lww, versioned, text, list, counter",
    );
    check_error(
        &with("x = { kind = \"lww\", type = \"str\" }"),
        4,
        "unknown type \"str\"; use one of string, i64, f64, bool, bytes, timestamp, ref",
    );
    check_error(
        &with("x = { kind = \"versioned\" }"),
        4,
        "note.x: a versioned field needs a type",
    );
    check_error(
        &with("x = { kind = \"text\", type = \"string\" }"),
        4,
        "a text field takes no type",
    );
    check_error(
        &with("x = { kind = \"list\", indexed = true }"),
        4,
        "only lww and versioned fields can be indexed",
    );
    check_error(&with("x = { kind = \"text\", indexd = true }"), 4, "indexd");
    check_error(&with("_x = { kind = \"text\" }"), 4, "_x");
    check_error(&with("x = { kind = \"text\""), 4, "");
    check_error("version = 0\n", 1, "version starts at 1");
    check_error("version = 1\n[collections._c.fields]\n", 2, "_c");
}

#[test]
fn values_are_read_by_type() {
    let ok = |ty, text: &str| parse_value("f", ty, text).unwrap();
    assert_eq!(
        ok(ScalarType::String, " a b "),
        Value::String(" a b ".into())
    );
    assert_eq!(ok(ScalarType::I64, "-42"), Value::I64(-42));
    assert_eq!(ok(ScalarType::F64, "2.5"), Value::F64(2.5));
    assert_eq!(ok(ScalarType::Bool, "true"), Value::Bool(true));
    assert_eq!(ok(ScalarType::Bytes, "0aFF"), Value::Bytes(vec![10, 255]));
    assert_eq!(ok(ScalarType::Timestamp, "1000"), Value::Timestamp(1000));
    assert_eq!(
        ok(ScalarType::Timestamp, "1970-01-01T00:00:02Z"),
        Value::Timestamp(2000)
    );
    let id = holdfast::RecordId::new_v7();
    assert_eq!(
        ok(ScalarType::RecordRef, &id.to_string()),
        Value::RecordRef(id)
    );
    let bad = |ty, text: &str| parse_value("qty", ty, text).unwrap_err().to_string();
    assert_eq!(
        bad(ScalarType::I64, "ten"),
        "field \"qty\" holds whole numbers (i64); \"ten\" is not one"
    );
    assert!(bad(ScalarType::Bool, "yes").contains("true or false"));
    assert!(bad(ScalarType::Bytes, "abc").contains("hex"));
    assert!(bad(ScalarType::Timestamp, "soon").contains("2024-05-01T12:00:00Z"));
    assert!(bad(ScalarType::RecordRef, "x").contains("record ids"));
}

#[test]
fn assignments_become_edits() {
    let schema = parse_schema(
        "version = 1\n[collections.n.fields]\ntitle = { kind = \"lww\", type = \"string\" }\n\
         body = { kind = \"text\" }\ntags = { kind = \"list\" }\nids = { kind = \"list\", type = \"i64\" }\n\
         views = { kind = \"counter\" }\n",
        "s.toml",
    )
    .unwrap();
    let c = &schema.collections["n"];
    let edits = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse_edits("n", c, &args)
    };
    let s = |t: &str| Value::String(t.into());
    assert_eq!(
        edits(&["title=a=b", "body=", "tags=x, y", "ids=[1, 2]", "views=+3"]).unwrap(),
        [
            Edit::Scalar("title".into(), s("a=b")),
            Edit::Text("body".into(), "".into()),
            Edit::List("tags".into(), vec![s("x"), s("y")]),
            Edit::List("ids".into(), vec![Value::I64(1), Value::I64(2)]),
            Edit::CounterAdd("views".into(), 3),
        ]
    );
    assert_eq!(
        edits(&["tags=[\"a,b\", \"c\"]", "views=-2"]).unwrap(),
        [
            Edit::List("tags".into(), vec![s("a,b"), s("c")]),
            Edit::CounterAdd("views".into(), -2),
        ]
    );
    assert_eq!(
        edits(&["tags=", "views=7"]).unwrap()[..],
        [
            Edit::List("tags".into(), vec![]),
            Edit::CounterTo("views".into(), 7),
        ]
    );
    let err = |args: &[&str]| edits(args).unwrap_err().to_string();
    assert_eq!(
        err(&["nope=1"]),
        "collection \"n\" has no field \"nope\" (its fields: body, ids, tags, title, views)"
    );
    assert!(err(&["title"]).contains("is not field=value"));
    assert!(err(&["title=a", "title=b"]).contains("given twice"));
    assert!(err(&["ids=1,x"]).contains("whole numbers"));
    assert!(err(&["views=many"]).contains("counter"));
}
