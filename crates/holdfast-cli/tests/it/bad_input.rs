//! Mistakes get a plain message and exit code 1, and change nothing.

use crate::util::{holdfast, Device};

#[test]
fn unknown_collection() {
    let device = Device::new();
    let message = device
        .run(&["put", "nope", "--space", "team", "title=x"])
        .fails();
    assert_eq!(
        message,
        "this store has no collection \"nope\" (its collections: item, note)"
    );
    let message = device.run(&["records", "nope"]).fails();
    assert!(
        message.starts_with("this store has no collection \"nope\""),
        "{message}"
    );
}

#[test]
fn bad_values_for_typed_fields() {
    let device = Device::new();
    let check = |assignment: &str, expected: &str| {
        let message = device
            .run(&["put", "note", "--space", "team", assignment])
            .fails();
        assert_eq!(message, expected);
    };
    check(
        "count=ten",
        "field \"count\" holds whole numbers (i64); \"ten\" is not one",
    );
    check(
        "done=yes",
        "field \"done\" holds true or false; \"yes\" is not one",
    );
    check(
        "due=tomorrow",
        "field \"due\" holds timestamps: milliseconds since 1970, or a time like \
         2024-05-01T12:00:00Z; \"tomorrow\" is not one",
    );
    check(
        "blob=xyz",
        "field \"blob\" holds bytes, written in hex like 0a1b2c; \"xyz\" is not one",
    );
    check(
        "scores=1,two",
        "field \"scores\" holds whole numbers (i64); \"two\" is not one",
    );
    check(
        "views=lots",
        "counter \"views\" takes a whole number: N to reach N, +N or -N to add; \"lots\" is not one",
    );
    check(
        "colour=red",
        "collection \"note\" has no field \"colour\" (its fields: blob, body, count, done, \
         due, link, price, scores, status, tags, title, views)",
    );
    check(
        "title",
        "\"title\" is not field=value (for example title=Plan)",
    );
    let records = device.run(&["records", "--json"]).json();
    assert_eq!(
        records["records"].as_array().unwrap().len(),
        0,
        "nothing was written"
    );
}

#[test]
fn a_missing_store() {
    let dir = tempfile::tempdir().unwrap();
    for command in [
        &["status"][..],
        &["records"],
        &["outbox"],
        &["conflicts"],
        &["check"],
        &["compact"],
        &["put", "note", "--space", "team"],
        &["import", "x.bundle"],
    ] {
        let mut args = command.to_vec();
        args.extend(["--db", "missing.redb"]);
        let message = holdfast(dir.path(), &args).fails();
        assert_eq!(
            message,
            "missing.redb is not a Holdfast store (create one with the app, or `holdfast init`)",
            "{command:?}"
        );
        assert!(!dir.path().join("missing.redb").exists(), "nothing created");
    }
    let message = holdfast(dir.path(), &["status"]).fails();
    assert_eq!(
        message,
        "no store given: pass --db PATH (or set HOLDFAST_DB)"
    );
    std::fs::write(dir.path().join("junk.redb"), "not a store").unwrap();
    let message = holdfast(dir.path(), &["status", "--db", "junk.redb"]).fails();
    assert!(
        message.starts_with("could not open junk.redb: "),
        "{message}"
    );
}

#[test]
fn misuse_of_records_and_fields() {
    let device = Device::new();
    let id = device.put("note", &["title=Plan"]);
    let missing = "0190c3d2-8a4e-7b1c-9f00-1a2b3c4d5e6f";
    assert_eq!(
        device.run(&["show", missing]).fails(),
        format!("record {missing} not found")
    );
    assert_eq!(
        device
            .run(&["text", &id, "title", "--insert", "0", "x"])
            .fails(),
        "field \"title\" is a lww field; `holdfast text` edits text fields (use `holdfast set`)"
    );
    assert_eq!(
        device
            .run(&["text", &id, "body", "--delete", "3", "1"])
            .fails(),
        "position 4 is past the end (0) of field \"body\""
    );
    assert_eq!(
        device
            .run(&["resolve", &id, "status", "--keep-mine"])
            .fails(),
        format!("cannot resolve \"status\" of record {id}: there is no conflict to resolve")
    );
    assert_eq!(
        device
            .run(&["resolve", &id, "title", "--value", "x"])
            .fails(),
        "field \"title\" is a lww field; only versioned fields have conflicts to resolve"
    );
    let message = device.run(&["import", "nope.bundle"]).fails();
    assert!(
        message.starts_with("could not read nope.bundle: "),
        "{message}"
    );
    std::fs::write(device.dir.path().join("junk.bundle"), "junk").unwrap();
    assert_eq!(
        device.run(&["import", "junk.bundle"]).fails(),
        "this file is not a Holdfast change bundle"
    );
    assert_eq!(
        device.run(&["records", "--after", "zz"]).fails(),
        "that --after token was not printed by `holdfast records`"
    );
    // Command-line mistakes are clap's: its own message and exit code 2.
    let run = device.run(&["show", "not-an-id"]);
    assert_eq!(run.stdout(), "");
    assert!(
        run.stderr().starts_with("error: invalid value 'not-an-id'"),
        "{}",
        run.stderr()
    );
    let run = device.run(&["resolve", &id, "status", "--keep-mine", "--use-theirs"]);
    assert!(
        run.stderr().contains("cannot be used with"),
        "{}",
        run.stderr()
    );
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    let dir = tempfile::tempdir().unwrap();
    let subcommands = [
        "init",
        "status",
        "records",
        "show",
        "outbox",
        "conflicts",
        "resolve",
        "put",
        "set",
        "text",
        "delete",
        "export",
        "import",
        "sync",
        "check",
        "compact",
    ];
    for sub in subcommands {
        let help = holdfast(dir.path(), &[sub, "--help"]).ok();
        assert!(help.contains("Example"), "{sub} --help:\n{help}");
        assert!(
            help.contains(&format!("holdfast {sub} ")),
            "{sub} --help:\n{help}"
        );
        assert!(help.contains("--db <PATH>"), "{sub} --help:\n{help}");
    }
    let help = holdfast(dir.path(), &["--help"]).ok();
    for sub in subcommands {
        assert!(help.contains(&format!("  {sub} ")), "{sub} in:\n{help}");
    }
}
