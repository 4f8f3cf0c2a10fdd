//! Two devices edit the same note offline: the text merges, the versioned status becomes
//! a conflict on both, resolving it on one settles both; a clock days ahead changes none
//! of it.

use std::collections::BTreeSet;
use std::time::Instant;

use holdfast::{FieldValue, Resolution, Store, Value};

use super::harness::{config, sync_once, Relay};
use crate::util::{open_skewed, space, TestStore};

/// What both devices ended with, for comparing runs.
#[derive(Debug, PartialEq)]
struct Outcome {
    body: String,
    candidates: BTreeSet<String>,
    settled: String,
}

fn status_candidates(store: &Store, id: holdfast::RecordId) -> BTreeSet<String> {
    match store.field(id, "status").unwrap() {
        FieldValue::Conflict(candidates) => candidates
            .into_iter()
            .map(|c| match c.value {
                Value::String(s) => s,
                other => panic!("{other:?}"),
            })
            .collect(),
        other => panic!("status is not in conflict: {other:?}"),
    }
}

fn scenario(a: TestStore, b: TestStore) -> Outcome {
    let relay = Relay::start();
    let token = relay.token(&["team:write"]);
    let cfg = || config(&relay.url(), &token, &["team"]);
    let id = a
        .write(|tx| {
            let id = tx.create("note", &space("team"))?;
            tx.set(id, "title", "Plan")?;
            tx.splice_text(id, "body", 0, 0, "Ship on Friday")?;
            tx.set(id, "status", "draft")?;
            Ok(id)
        })
        .unwrap();
    sync_once(&a, cfg());
    sync_once(&b, cfg());
    assert_eq!(b.get(id).unwrap().text("body").unwrap(), "Ship on Friday");

    // Offline on both.
    a.update(id, |tx| {
        tx.set(id, "title", "Plan A")?;
        tx.splice_text(id, "body", 0, 0, "Alpha: ")?;
        tx.set(id, "status", "review")
    })
    .unwrap();
    b.update(id, |tx| {
        tx.set(id, "title", "Plan B")?;
        tx.splice_text(id, "body", 14, 0, " at noon")?;
        tx.set(id, "status", "done")
    })
    .unwrap();

    sync_once(&a, cfg());
    sync_once(&b, cfg());
    sync_once(&a, cfg());
    let (ra, rb) = (a.get(id).unwrap(), b.get(id).unwrap());
    assert_eq!(ra.text("body").unwrap(), rb.text("body").unwrap());
    assert_eq!(
        ra.get("title").unwrap(),
        rb.get("title").unwrap(),
        "one title wins on both"
    );
    let candidates = status_candidates(&a, id);
    assert_eq!(candidates, status_candidates(&b, id));
    for store in [&a, &b] {
        let open: Vec<_> = store
            .conflicts()
            .unwrap()
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(open, vec!["status".to_owned()]);
    }

    a.resolve(id, "status", Resolution::Value(Value::from("shipped")))
        .unwrap();
    sync_once(&a, cfg());
    sync_once(&b, cfg());
    for store in [&a, &b] {
        assert_eq!(
            store.field(id, "status").unwrap(),
            FieldValue::Value(Value::from("shipped"))
        );
        assert!(store.conflicts().unwrap().is_empty());
        assert_eq!(store.sync_summary().unwrap().pending, 0);
    }
    assert!(b.conflict_counts().unwrap().resolved >= 1);
    Outcome {
        body: ra.text("body").unwrap().to_owned(),
        candidates,
        settled: "shipped".into(),
    }
}

#[test]
fn offline_edits_of_one_note_merge_text_and_surface_the_status_conflict() {
    let started = Instant::now();
    let outcome = scenario(crate::util::open(), crate::util::open());
    assert_eq!(outcome.body, "Alpha: Ship on Friday at noon");
    assert_eq!(
        outcome.candidates,
        ["done", "review"].map(String::from).into_iter().collect()
    );
    eprintln!("conflict: {:?}", started.elapsed());
}

#[test]
fn a_clock_days_ahead_changes_no_outcome() {
    let started = Instant::now();
    let days = 3 * 24 * 3600 * 1000;
    let plain = scenario(crate::util::open(), crate::util::open());
    let skewed = scenario(open_skewed(days), open_skewed(-days));
    assert_eq!(skewed, plain);
    eprintln!("clock skew: {:?}", started.elapsed());
}
