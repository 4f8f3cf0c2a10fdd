//! Two stores merging through bundles: text, lists, counters, LWW, versioned conflicts,
//! delete vs edit, and clock skew.

use holdfast::{FieldValue, Resolution, Store, StoreConfig, Value, STATE_FIELD};

use crate::util::{
    open, open_skewed, open_with, schema, space, sync_both, sync_one_way, TestStore,
};

/// A shared note on two devices, both starting from the same synced state.
fn pair(a: TestStore, b: TestStore) -> (TestStore, TestStore, holdfast::RecordId) {
    let id = a
        .write(|tx| {
            let id = tx.create("note", &space("team"))?;
            tx.set(id, "title", "Plan")?;
            tx.splice_text(id, "body", 0, 0, "Hello world")?;
            tx.set(id, "status", "draft")?;
            Ok(id)
        })
        .unwrap();
    sync_one_way(&a, &b);
    (a, b, id)
}

fn snapshot(s: &Store, id: holdfast::RecordId) -> Vec<(String, FieldValue)> {
    let r = s.get(id).unwrap();
    r.fields
        .into_iter()
        .map(|(k, v)| {
            // Candidate times depend on each device's clock; compare values and authors.
            let v = match v {
                FieldValue::Conflict(mut c) => {
                    c.iter_mut().for_each(|c| {
                        c.at_ms = 0;
                        c.mine = false;
                    });
                    c.sort_by_key(|x| x.value.to_string());
                    FieldValue::Conflict(c)
                }
                v => v,
            };
            (k, v)
        })
        .collect()
}

#[test]
fn concurrent_text_edits_interleave_and_converge() {
    let (a, b, id) = pair(open(), open());
    a.write(|tx| tx.splice_text(id, "body", 5, 0, " brave"))
        .unwrap();
    b.write(|tx| tx.splice_text(id, "body", 11, 0, "!"))
        .unwrap();
    b.write(|tx| tx.splice_text(id, "body", 0, 0, ">> "))
        .unwrap();
    sync_both(&a, &b);
    let text = a.get(id).unwrap().text("body").unwrap().to_owned();
    assert_eq!(text, ">> Hello brave world!");
    assert_eq!(b.get(id).unwrap().text("body").unwrap(), text);
}

#[test]
fn lists_and_counters_merge() {
    let (a, b, id) = pair(open(), open());
    a.write(|tx| {
        tx.list_push(id, "tags", "a")?;
        tx.increment(id, "views", 2)
    })
    .unwrap();
    b.write(|tx| {
        tx.list_push(id, "tags", "b")?;
        tx.increment(id, "views", 5)
    })
    .unwrap();
    sync_both(&a, &b);
    let (ra, rb) = (a.get(id).unwrap(), b.get(id).unwrap());
    assert_eq!(ra.counter("views").unwrap(), 7);
    assert_eq!(ra.list("tags").unwrap(), rb.list("tags").unwrap());
    let mut tags: Vec<_> = ra.list("tags").unwrap().to_vec();
    tags.sort_by_key(|v| v.to_string());
    assert_eq!(tags, vec![Value::from("a"), Value::from("b")]);
}

#[test]
fn lww_picks_the_same_winner_on_both_sides() {
    let (a, b, id) = pair(open(), open());
    a.write(|tx| tx.set(id, "title", "A's title")).unwrap();
    b.write(|tx| tx.set(id, "title", "B's title")).unwrap();
    sync_both(&a, &b);
    let ta = a.get(id).unwrap().get("title").unwrap().cloned();
    assert_eq!(ta, b.get(id).unwrap().get("title").unwrap().cloned());
    assert!(ta == Some("A's title".into()) || ta == Some("B's title".into()));
    assert!(
        a.conflicts().unwrap().is_empty(),
        "lww fields never conflict"
    );
}

#[test]
fn concurrent_versioned_writes_conflict_identically_and_one_resolution_settles_both() {
    let (a, b, id) = pair(open(), open());
    a.write(|tx| tx.set(id, "status", "review")).unwrap();
    b.write(|tx| tx.set(id, "status", "published")).unwrap();
    sync_both(&a, &b);

    for s in [&a, &b] {
        let conflicts = s.conflicts().unwrap();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(
            (conflicts[0].record, conflicts[0].field.as_str()),
            (id, "status")
        );
        assert!(
            matches!(
                s.get(id).unwrap().get("status"),
                Err(holdfast::Error::Conflicted { .. })
            ),
            "no silent winner"
        );
        assert_eq!(s.conflict_counts().unwrap().detected, 1);
    }
    assert_eq!(snapshot(&a, id), snapshot(&b, id));
    let cands = a.candidates(id, "status").unwrap();
    assert_eq!(cands.len(), 2);
    let mine: Vec<_> = cands.iter().filter(|c| c.mine).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].value, "review".into());
    assert_eq!(mine[0].device, Some(a.device_id()));
    let theirs = cands.iter().find(|c| !c.mine).unwrap();
    assert_eq!(theirs.device, Some(b.device_id()));

    // Keep mine on B: "published" wins everywhere once synced.
    b.resolve(id, "status", Resolution::KeepMine).unwrap();
    assert_eq!(
        b.get(id).unwrap().get("status").unwrap(),
        Some(&"published".into())
    );
    sync_both(&a, &b);
    for s in [&a, &b] {
        assert!(s.conflicts().unwrap().is_empty());
        assert_eq!(
            s.get(id).unwrap().get("status").unwrap(),
            Some(&"published".into())
        );
    }
    assert_eq!(b.conflict_counts().unwrap().resolved, 1);
    assert_eq!(a.conflict_counts().unwrap().resolved, 1);
}

#[test]
fn use_theirs_and_new_value_resolutions() {
    let (a, b, id) = pair(open(), open());
    a.write(|tx| tx.set(id, "status", "review")).unwrap();
    b.write(|tx| tx.set(id, "status", "published")).unwrap();
    sync_both(&a, &b);
    a.resolve(id, "status", Resolution::UseTheirs).unwrap();
    assert_eq!(
        a.get(id).unwrap().get("status").unwrap(),
        Some(&"published".into())
    );
    // Resolving what is not in conflict is a typed error.
    assert!(matches!(
        a.resolve(id, "status", Resolution::KeepMine),
        Err(holdfast::Error::Resolve { .. })
    ));

    let (c, d, id) = pair(open(), open());
    c.write(|tx| tx.set(id, "status", "review")).unwrap();
    d.write(|tx| tx.set(id, "status", "published")).unwrap();
    sync_both(&c, &d);
    d.resolve(id, "status", Resolution::Value("draft".into()))
        .unwrap();
    sync_both(&c, &d);
    assert_eq!(
        c.get(id).unwrap().get("status").unwrap(),
        Some(&"draft".into())
    );
}

#[test]
fn equal_concurrent_values_settle_by_themselves() {
    let (a, b, id) = pair(open(), open());
    a.write(|tx| tx.set(id, "status", "review")).unwrap();
    b.write(|tx| tx.set(id, "status", "review")).unwrap();
    sync_both(&a, &b);
    assert!(a.conflicts().unwrap().is_empty());
    assert_eq!(
        a.get(id).unwrap().get("status").unwrap(),
        Some(&"review".into())
    );
}

#[test]
fn a_resolver_settles_conflicts_as_they_arrive() {
    let max_price = StoreConfig::new(schema()).resolver("item", "price", |cands| {
        cands
            .iter()
            .filter_map(|c| match c.value {
                Value::F64(p) => Some(p),
                _ => None,
            })
            .reduce(f64::max)
            .map(Value::F64)
    });
    let a = open();
    let b = open_with(max_price);
    let id = a
        .write(|tx| {
            let id = tx.create("item", &space("shop"))?;
            tx.set(id, "price", 1.0)?;
            Ok(id)
        })
        .unwrap();
    sync_one_way(&a, &b);
    a.write(|tx| tx.set(id, "price", 2.5)).unwrap();
    b.write(|tx| tx.set(id, "price", 3.0)).unwrap();
    let summary = b
        .import_changes(&a.export_changes(None, None).unwrap().bytes)
        .unwrap();
    assert_eq!(summary.auto_resolved, 1);
    assert_eq!(
        b.get(id).unwrap().get("price").unwrap(),
        Some(&Value::F64(3.0))
    );
    // The resolution is an ordinary change: it reaches A and settles it there too.
    sync_one_way(&b, &a);
    assert_eq!(
        a.get(id).unwrap().get("price").unwrap(),
        Some(&Value::F64(3.0))
    );
    assert!(a.conflicts().unwrap().is_empty());
}

#[test]
fn delete_concurrent_with_edit_is_a_conflict_not_a_silent_outcome() {
    let (a, b, id) = pair(open(), open());
    a.write(|tx| tx.delete(id)).unwrap();
    b.write(|tx| tx.splice_text(id, "body", 0, 0, "Important: "))
        .unwrap();
    sync_both(&a, &b);
    for s in [&a, &b] {
        // Hidden on both (no silent resurrection) but listed as a conflict.
        assert!(s.is_deleted(id).unwrap());
        let conflicts = s.conflicts().unwrap();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].field, STATE_FIELD);
    }
    // The edit is not lost: restoring brings it back.
    a.write(|tx| tx.restore(id)).unwrap();
    sync_both(&a, &b);
    for s in [&a, &b] {
        assert!(s.conflicts().unwrap().is_empty());
        assert_eq!(
            s.get(id).unwrap().text("body").unwrap(),
            "Important: Hello world"
        );
    }
}

#[test]
fn confirming_a_delete_settles_the_conflict_everywhere() {
    let (a, b, id) = pair(open(), open());
    a.write(|tx| tx.delete(id)).unwrap();
    b.write(|tx| tx.set(id, "title", "edited meanwhile"))
        .unwrap();
    sync_both(&a, &b);
    let cands = b.candidates(id, STATE_FIELD).unwrap();
    assert_eq!(cands.len(), 2, "{cands:?}");
    let theirs = cands.iter().find(|c| !c.mine).unwrap();
    assert_eq!(
        (theirs.value.as_str(), theirs.device),
        (Some("deleted"), Some(a.device_id()))
    );
    let mine = cands.iter().find(|c| c.mine).unwrap();
    assert_eq!(mine.value.as_str(), Some("live"));
    // B accepts the deletion ("use theirs"): the record stays deleted, the conflict is gone
    // on both sides once synced, and the edit is still in the document's history.
    b.resolve(id, STATE_FIELD, Resolution::UseTheirs).unwrap();
    sync_both(&a, &b);
    for s in [&a, &b] {
        assert!(s.is_deleted(id).unwrap());
        assert!(s.conflicts().unwrap().is_empty());
    }
    // A delete that saw every edit is no conflict; deleting again on A was not needed.
    assert_eq!(
        a.conflict_counts().unwrap(),
        holdfast::ConflictCounts {
            detected: 1,
            resolved: 1
        }
    );
}

#[test]
fn deletion_syncs_and_sequential_restore_wins() {
    let (a, b, id) = pair(open(), open());
    a.write(|tx| tx.delete(id)).unwrap();
    sync_both(&a, &b);
    assert!(b.is_deleted(id).unwrap());
    assert!(b.conflicts().unwrap().is_empty());
    b.write(|tx| tx.restore(id)).unwrap();
    sync_both(&a, &b);
    assert!(!a.is_deleted(id).unwrap());
}

#[test]
fn importing_the_same_bundle_twice_changes_nothing() {
    let (a, b, id) = pair(open(), open());
    a.write(|tx| tx.splice_text(id, "body", 0, 0, "x")).unwrap();
    let bundle = a.export_changes(None, None).unwrap();
    let first = b.import_changes(&bundle.bytes).unwrap();
    assert_eq!(first.records_changed, 1);
    let pending = b.sync_summary().unwrap().pending;
    let second = b.import_changes(&bundle.bytes).unwrap();
    assert_eq!(second.records_changed, 0);
    assert_eq!(second.changes_applied, 0);
    assert_eq!(b.sync_summary().unwrap().pending, pending);
    assert_eq!(b.get(id).unwrap().text("body").unwrap(), "xHello world");
}

#[test]
fn incremental_export_carries_only_what_changed_since_the_mark() {
    let (a, b, id) = pair(open(), open());
    let first = a.export_changes(None, None).unwrap();
    let other = a.write(|tx| tx.create("note", &space("team"))).unwrap();
    a.write(|tx| tx.splice_text(id, "body", 0, 0, "new "))
        .unwrap();
    let delta = a.export_changes(Some(first.mark), None).unwrap();
    assert_eq!(delta.records, 2);
    assert_eq!(delta.changes, 2);
    assert!(delta.bytes.len() < first.bytes.len() + 400);
    b.import_changes(&delta.bytes).unwrap().complete().unwrap();
    assert_eq!(b.get(id).unwrap().text("body").unwrap(), "new Hello world");
    assert!(b.exists(other).unwrap());
    // Nothing new since the last mark: an empty bundle.
    assert_eq!(a.export_changes(Some(delta.mark), None).unwrap().records, 0);
    // Filtered by space.
    let elsewhere = a.write(|tx| tx.create("note", &space("private"))).unwrap();
    let team_only = a.export_changes(None, Some(&space("team"))).unwrap();
    b.import_changes(&team_only.bytes)
        .unwrap()
        .complete()
        .unwrap();
    assert!(!b.exists(elsewhere).unwrap());
}

#[test]
fn imported_changes_enter_the_outbox_so_they_reach_the_relay() {
    let a = open();
    let b = open();
    a.write(|tx| tx.create("note", &space("t")).map(drop))
        .unwrap();
    assert_eq!(b.sync_summary().unwrap().pending, 0);
    sync_one_way(&a, &b);
    assert_eq!(b.sync_summary().unwrap().pending, 1);
}

/// The same scenario on two devices with correct clocks and with clocks ±3 days off.
fn scenario(a: TestStore, b: TestStore) -> Vec<(String, FieldValue)> {
    let (a, b, id) = pair(a, b);
    a.write(|tx| {
        tx.set(id, "title", "From A")?;
        tx.set(id, "status", "review")?;
        tx.splice_text(id, "body", 0, 0, "A: ")
    })
    .unwrap();
    // B's title is written after three other operations, so its operation counter is
    // higher than A's: it wins by Automerge's order whatever the clocks say.
    b.write(|tx| {
        tx.splice_text(id, "body", 11, 0, " :B")?;
        tx.set(id, "title", "From B")?;
        tx.set(id, "status", "published")
    })
    .unwrap();
    sync_both(&a, &b);
    assert_eq!(snapshot(&a, id), snapshot(&b, id));
    snapshot(&a, id)
}

#[test]
fn clock_skew_of_three_days_changes_no_outcome() {
    let three_days = 3 * 24 * 3600 * 1000;
    let baseline = scenario(open_skewed(0), open_skewed(0));
    let ahead = scenario(open_skewed(0), open_skewed(three_days));
    let behind = scenario(open_skewed(-three_days), open_skewed(0));
    for run in [&baseline, &ahead, &behind] {
        let title = &run.iter().find(|(k, _)| k == "title").unwrap().1;
        assert_eq!(title, &FieldValue::Value("From B".into()));
        let body = &run.iter().find(|(k, _)| k == "body").unwrap().1;
        assert_eq!(body, &FieldValue::Text("A: Hello world :B".into()));
        let status = &run.iter().find(|(k, _)| k == "status").unwrap().1;
        assert!(
            matches!(status, FieldValue::Conflict(c) if c.len() == 2),
            "{status:?}"
        );
    }
}
