//! `init` reads the schema from TOML; the store keeps it, so every later command knows
//! the fields without the file.

use serde_json::json;

use crate::util::{holdfast, Device};

#[test]
fn init_creates_a_store_with_the_toml_schema() {
    let device = Device::new();
    let status = device.run(&["status", "--json"]).json();
    assert_eq!(status["schema_version"], 1);
    assert_eq!(status["records"], 0);
    assert_eq!(status["collections"], json!({"item": 0, "note": 0}));
    assert_eq!(status["spaces"], json!([]));
    assert_eq!(status["outbox"]["pending"], 0);
    assert_eq!(
        status["conflicts"],
        json!({"open": 0, "detected": 0, "resolved": 0})
    );
    assert_eq!(status["last_synced_ms"], json!(null));
    let device_id = status["device"].as_str().unwrap();
    assert_eq!(device_id.len(), 36, "a UUID: {device_id}");

    // The schema file is no longer needed: the kinds and types come from the store.
    std::fs::remove_file(device.dir.path().join("schema.toml")).unwrap();
    let id = device.put("note", &[]);
    let record = device.show(&id);
    let kinds: Vec<(&str, &str, Option<&str>)> = record["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, f)| {
            (
                name.as_str(),
                f["kind"].as_str().unwrap(),
                f["type"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("blob", "lww", Some("bytes")),
            ("body", "text", None),
            ("count", "lww", Some("i64")),
            ("done", "lww", Some("bool")),
            ("due", "lww", Some("timestamp")),
            ("link", "lww", Some("ref")),
            ("price", "versioned", Some("f64")),
            ("scores", "list", Some("i64")),
            ("status", "versioned", Some("string")),
            ("tags", "list", Some("string")),
            ("title", "lww", Some("string")),
            ("views", "counter", None),
        ]
    );
}

#[test]
fn schema_mistakes_are_reported_with_their_line_and_create_nothing() {
    let check = |line4: &str, words: &str| {
        let dir = tempfile::tempdir().unwrap();
        let schema = format!(
            "version = 1\n[collections.note.fields]\ntitle = {{ kind = \"lww\", type = \"string\" }}\n{line4}\n"
        );
        std::fs::write(dir.path().join("s.toml"), schema).unwrap();
        let run = holdfast(
            dir.path(),
            &["init", "--db", "x.redb", "--schema", "s.toml"],
        );
        let message = run.fails();
        assert!(message.starts_with("s.toml line 4: "), "{message}");
        assert!(message.contains(words), "{message:?} lacks {words:?}");
        assert!(!dir.path().join("x.redb").exists());
    };
    check(
        "body = { kind = \"txt\" }",
        "unknown kind \"txt\"; use one of lww, versioned, text, list, counter",
    );
    check(
        "n = { kind = \"lww\", type = \"int\" }",
        "unknown type \"int\"; use one of string, i64, f64, bool, bytes, timestamp, ref",
    );
    check("n = { kind = \"lww\" }", "note.n: a lww field needs a type");
    check(
        "n = { kind = \"counter\", indexed = true }",
        "only lww and versioned",
    );
}

#[test]
fn init_refuses_an_existing_file_and_a_missing_schema() {
    let device = Device::new();
    let message = device.run(&["init", "--schema", "schema.toml"]).fails();
    assert!(message.contains("already exists"), "{message}");
    let dir = tempfile::tempdir().unwrap();
    let message = holdfast(
        dir.path(),
        &["init", "--db", "x.redb", "--schema", "nope.toml"],
    )
    .fails();
    assert!(
        message.starts_with("could not read nope.toml: "),
        "{message}"
    );
}

#[test]
fn init_creates_a_store_only_its_owner_can_read() {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.toml"), crate::util::SCHEMA).unwrap();
    let umask_022 = |command: &str| {
        let status = Command::new("sh")
            .args(["-c", &format!("umask 022 && {command}")])
            .arg(env!("CARGO_BIN_EXE_holdfast"))
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "{command}");
    };
    let mode = |name: &str| {
        let metadata = std::fs::metadata(dir.path().join(name)).unwrap();
        metadata.permissions().mode() & 0o777
    };
    // Under this umask a file made the ordinary way is readable by everyone; a store is not.
    umask_022("touch plain");
    assert_eq!(mode("plain"), 0o644);
    umask_022("exec \"$0\" init --schema schema.toml --db store.redb >/dev/null");
    assert_eq!(mode("store.redb"), 0o600);

    // An existing file keeps the mode its owner gave it.
    std::fs::set_permissions(
        dir.path().join("store.redb"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    umask_022("exec \"$0\" status --db store.redb >/dev/null");
    assert_eq!(mode("store.redb"), 0o640);
}
