//! Bundles from a script's point of view: the mark each export prints and `--since`, the
//! import of several files in one step and in any order, and an import that applies
//! nothing failing in plain words.

use serde_json::json;

use crate::util::{field, Device};

/// `export FILE --json [--since MARK]`: the summary.
fn export(device: &Device, name: &str, since: Option<u64>) -> serde_json::Value {
    let file = device.path(name);
    let mark = since.map(|m| m.to_string());
    let mut args = vec!["export", file.as_str(), "--json"];
    if let Some(mark) = &mark {
        args.extend(["--since", mark]);
    }
    device.run(&args).json()
}

fn mark(summary: &serde_json::Value) -> u64 {
    summary["mark"].as_u64().unwrap()
}

#[test]
fn an_export_since_the_printed_mark_carries_only_later_changes() {
    let a = Device::new();
    let first_note = a.put("note", &["title=first"]);
    let text = a.run(&["export", &a.path("first.bundle")]).ok();
    assert!(
        text.ends_with("\nMark 1: export --since 1 for the changes after these.\n"),
        "{text}"
    );
    let first = export(&a, "first.bundle", None);
    assert_eq!((first["records"].clone(), mark(&first)), (json!(1), 1));

    let second_note = a.put("note", &["title=second"]);
    a.run(&["set", &first_note, "title=first, edited"]).ok();
    let delta = export(&a, "delta.bundle", Some(mark(&first)));
    assert_eq!(delta["records"], 2);
    assert_eq!(delta["changes"], 2);
    assert_eq!(mark(&delta), 3);
    let nothing_new = export(&a, "empty.bundle", Some(mark(&delta)));
    assert_eq!(
        (nothing_new["records"].clone(), mark(&nothing_new)),
        (json!(0), 3)
    );
    assert_eq!(export(&a, "all.bundle", Some(0))["records"], 2);

    // The delta alone: the new note arrives; the edit needs the first bundle.
    let b = Device::new();
    let run = b.run(&["import", &a.path("delta.bundle"), "--json"]);
    assert_eq!(
        run.fails(),
        "1 record could not be imported; everything else was"
    );
    let partial: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(partial["records_changed"], 1);
    assert_eq!(partial["rejected"][0]["record"], first_note.as_str());
    assert_eq!(partial["mark"], 1);
    assert_eq!(field(&b.show(&second_note), "title"), "second");

    // With the first bundle the edit applies; the mark after the import is b's own.
    let done = b.import(&a.path("first.bundle"));
    assert_eq!(done["rejected"], json!([]));
    let done = b.import(&a.path("delta.bundle"));
    assert_eq!(
        (done["records_changed"].clone(), mark(&done)),
        (json!(1), 3)
    );
    assert_eq!(field(&b.show(&first_note), "title"), "first, edited");
}

#[test]
fn several_files_import_in_one_step_in_any_order() {
    let a = Device::new();
    let id = a.put("note", &["title=one"]);
    let e1 = export(&a, "1.bundle", None);
    a.run(&["set", &id, "title=two"]).ok();
    let e2 = export(&a, "2.bundle", Some(mark(&e1)));
    a.run(&["set", &id, "title=three"]).ok();
    export(&a, "3.bundle", Some(mark(&e2)));
    let files = ["3.bundle", "1.bundle", "2.bundle"].map(|f| a.path(f));

    let b = Device::new();
    let mut args = vec!["import", "--json"];
    args.extend(files.iter().map(String::as_str));
    let summary = b.run(&args).json();
    assert_eq!(
        summary,
        json!({"records_changed": 1, "changes_applied": 3, "auto_resolved": 0,
            "rejected": [], "mark": 1})
    );
    assert_eq!(field(&b.show(&id), "title"), "three");
    let mut args = vec!["import"];
    args.extend(files.iter().map(String::as_str));
    let text = b.run(&args).ok();
    assert_eq!(
        text,
        "Nothing new: every change in the 3 files was already here.\n"
    );
}

#[test]
fn an_import_that_applies_nothing_fails_in_plain_words() {
    let a = Device::new();
    let id = a.put("note", &["title=one"]);
    let first = export(&a, "1.bundle", None);
    a.run(&["set", &id, "title=two"]).ok();
    export(&a, "2.bundle", Some(mark(&first)));

    let b = Device::new();
    let run = b.run(&["import", &a.path("2.bundle"), "--json"]);
    let message = run.fails();
    assert!(
        message.starts_with(&format!(
            "nothing was imported: record {id}: it needs earlier changes"
        )),
        "{message}"
    );
    let shown: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(shown["records_changed"], 0);
    assert_eq!(shown["rejected"][0]["record"], id.as_str());
    assert_eq!(shown["mark"], 0);
    let listed = b.run(&["records", "--json"]).json();
    assert_eq!(listed["records"], json!([]));

    // A damaged file among several: none is imported, in plain words.
    std::fs::write(b.dir.path().join("junk.bundle"), "junk").unwrap();
    let message = b
        .run(&["import", &a.path("1.bundle"), "junk.bundle"])
        .fails();
    assert_eq!(
        message,
        "one of the 2 files could not be imported, so none was (import them one at a time to \
         find it): this file is not a Holdfast change bundle"
    );
    assert_eq!(b.run(&["records", "--json"]).json()["records"], json!([]));
}
