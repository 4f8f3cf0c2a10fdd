//! The store API: records, fields, queries, subscriptions, schema versions, group commit.

use std::ops::Bound;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use holdfast::{
    Error, Field, FieldValue, Notification, Origin, Query, ReadOnlyReason, ScalarType, Schema,
    SchemaError, Store, StoreConfig, Value,
};

use crate::util::{notes_with_priority, open, open_with, schema, space};

#[test]
fn create_read_update_all_field_kinds() {
    let s = open();
    let team = space("team");
    let id = s
        .write(|tx| {
            let id = tx.create("note", &team)?;
            tx.set(id, "title", "Groceries")?;
            tx.splice_text(id, "body", 0, 0, "milk")?;
            tx.splice_text(id, "body", 4, 0, ", eggs")?;
            tx.list_push(id, "tags", "home")?;
            tx.list_insert(id, "tags", 0, "food")?;
            tx.set(id, "status", "draft")?;
            tx.increment(id, "views", 3)?;
            tx.increment(id, "views", -1)?;
            Ok(id)
        })
        .unwrap();
    let note = s.get(id).unwrap();
    assert_eq!(note.collection, "note");
    assert_eq!(note.space, team);
    assert_eq!(note.get("title").unwrap(), Some(&Value::from("Groceries")));
    assert_eq!(note.text("body").unwrap(), "milk, eggs");
    assert_eq!(
        note.list("tags").unwrap(),
        &[Value::from("food"), Value::from("home")]
    );
    assert_eq!(note.get("status").unwrap(), Some(&Value::from("draft")));
    assert_eq!(note.counter("views").unwrap(), 2);
    assert_eq!(note.get("priority").unwrap(), None);
    // Positions count characters, not bytes.
    s.write(|tx| tx.splice_text(id, "body", 0, 4, "café"))
        .unwrap();
    s.write(|tx| tx.splice_text(id, "body", 4, 0, "!")).unwrap();
    assert_eq!(
        s.field(id, "body").unwrap(),
        FieldValue::Text("café!, eggs".into())
    );
    s.write(|tx| tx.list_delete(id, "tags", 0)).unwrap();
    assert_eq!(
        s.get(id).unwrap().list("tags").unwrap(),
        &[Value::from("home")]
    );

    let s = s.reopen();
    let note = s.get(id).unwrap();
    assert_eq!(note.text("body").unwrap(), "café!, eggs");
    assert_eq!(note.counter("views").unwrap(), 2);
}

#[test]
fn typed_errors_for_misuse() {
    let s = open();
    let id = s.write(|tx| tx.create("note", &space("t"))).unwrap();
    let err = |r: holdfast::Result<()>| r.unwrap_err();
    assert!(matches!(
        err(s.write(|tx| tx.create("nope", &space("t")).map(drop))),
        Error::Schema(SchemaError::UnknownCollection(_))
    ));
    assert!(matches!(
        err(s.write(|tx| tx.set(id, "nope", 1))),
        Error::Schema(SchemaError::UnknownField { .. })
    ));
    assert!(matches!(
        err(s.write(|tx| tx.set(id, "title", 5))),
        Error::Schema(SchemaError::WrongType {
            expected: ScalarType::String,
            got: ScalarType::I64,
            ..
        })
    ));
    assert!(matches!(
        err(s.write(|tx| tx.splice_text(id, "title", 0, 0, "x"))),
        Error::Schema(SchemaError::WrongKind { .. })
    ));
    assert!(matches!(
        err(s.write(|tx| tx.splice_text(id, "body", 1, 0, "x"))),
        Error::OutOfBounds {
            index: 1,
            len: 0,
            ..
        }
    ));
    assert!(matches!(
        err(s.write(|tx| tx.list_insert(id, "tags", 0, 3))),
        Error::Schema(SchemaError::WrongType { .. })
    ));
    let missing = holdfast::RecordId::new_v7();
    assert!(matches!(s.get(missing), Err(Error::NotFound(m)) if m == missing));
    // Calling the store from inside a write closure is refused, not a deadlock.
    let inner = s.store.clone();
    assert!(matches!(
        err(s.write(|_| inner.get(id).map(drop))),
        Error::Reentrant
    ));
}

#[test]
fn failed_closure_writes_nothing() {
    let s = open();
    let id = s.write(|tx| tx.create("note", &space("t"))).unwrap();
    s.write(|tx| tx.set(id, "title", "kept")).unwrap();
    let pending = s.sync_summary().unwrap().pending;
    let r: holdfast::Result<()> = s.write(|tx| {
        tx.set(id, "title", "discarded")?;
        tx.create("note", &space("t"))?;
        tx.set(id, "title", 42) // wrong type: the whole write is void
    });
    assert!(r.is_err());
    assert_eq!(
        s.get(id).unwrap().get("title").unwrap(),
        Some(&"kept".into())
    );
    assert_eq!(s.all("note").unwrap(), vec![id]);
    assert_eq!(s.sync_summary().unwrap().pending, pending);
    // And the document is still writable afterwards.
    s.write(|tx| tx.set(id, "title", "later")).unwrap();
    let s = s.reopen();
    assert_eq!(
        s.get(id).unwrap().get("title").unwrap(),
        Some(&"later".into())
    );
}

#[test]
fn a_panicking_closure_leaves_the_store_usable_and_unchanged() {
    let s = open();
    let id = s.write(|tx| tx.create("note", &space("t"))).unwrap();
    s.update(id, |tx| tx.set(id, "title", "kept")).unwrap();
    let store = s.store.clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _: holdfast::Result<()> = store.update(id, |tx| {
            tx.set(id, "title", "half done")?;
            panic!("app bug inside an update");
        });
    }));
    assert!(r.is_err());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _: holdfast::Result<()> = store.write(|tx| {
            tx.set(id, "title", "half done too")?;
            tx.create("note", &space("t"))?;
            panic!("app bug inside a write");
        });
    }));
    assert!(r.is_err());
    // Nothing of either write is visible, and both paths still work.
    assert_eq!(
        s.get(id).unwrap().get("title").unwrap(),
        Some(&"kept".into())
    );
    assert_eq!(s.all("note").unwrap(), vec![id]);
    s.update(id, |tx| tx.set(id, "title", "after")).unwrap();
    s.write(|tx| tx.set(id, "priority", 1)).unwrap();
    drop(store);
    let s = s.reopen();
    assert_eq!(
        s.get(id).unwrap().get("title").unwrap(),
        Some(&"after".into())
    );
    assert_eq!(s.sync_summary().unwrap().pending, 4);
}

#[test]
fn one_write_changes_several_records_atomically() {
    let s = open();
    let t = space("shop");
    let (a, b) = s
        .write(|tx| {
            let a = tx.create("item", &t)?;
            let b = tx.create("item", &t)?;
            tx.increment(a, "on_hand", 10)?;
            tx.increment(b, "on_hand", 5)?;
            Ok((a, b))
        })
        .unwrap();
    // Move 3 units from a to b in one write.
    s.write(|tx| {
        tx.increment(a, "on_hand", -3)?;
        tx.increment(b, "on_hand", 3)
    })
    .unwrap();
    assert_eq!(s.get(a).unwrap().counter("on_hand").unwrap(), 7);
    assert_eq!(s.get(b).unwrap().counter("on_hand").unwrap(), 8);
    // One outbox entry per record per write.
    assert_eq!(s.sync_summary().unwrap().pending, 4);
}

#[test]
fn queries_by_collection_space_value_and_range_with_paging() {
    let s = open();
    let (red, blue) = (space("red"), space("blue"));
    let mut ids = Vec::new();
    for i in 0..25i64 {
        let sp = if i % 2 == 0 { &red } else { &blue };
        let id = s
            .write(|tx| {
                let id = tx.create("note", sp)?;
                tx.set(id, "priority", i)?;
                tx.set(id, "status", if i < 10 { "draft" } else { "review" })?;
                Ok(id)
            })
            .unwrap();
        ids.push(id);
    }
    s.write(|tx| tx.create("item", &red).map(drop)).unwrap();

    // Collection listing pages in creation order.
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .query(&Query::Collection("note"), 7, after.as_ref())
            .unwrap();
        assert!(page.ids.len() <= 7);
        all.extend(page.ids);
        match page.next {
            Some(t) => after = Some(t),
            None => break,
        }
    }
    assert_eq!(all, ids);

    let reds = s.query(&Query::Space(&red, "note"), 100, None).unwrap().ids;
    assert_eq!(reds, ids.iter().step_by(2).copied().collect::<Vec<_>>());

    let eq = |v: &str| Query::Equals {
        collection: "note",
        field: "status",
        value: v.into(),
    };
    assert_eq!(s.query(&eq("draft"), 100, None).unwrap().ids.len(), 10);
    assert_eq!(s.query(&eq("review"), 100, None).unwrap().ids.len(), 15);
    assert_eq!(s.query(&eq("published"), 100, None).unwrap().ids.len(), 0);

    let range = |from, to| Query::Range {
        collection: "note",
        field: "priority",
        from,
        to,
    };
    let r = s
        .query(
            &range(Bound::Included(5.into()), Bound::Excluded(9.into())),
            100,
            None,
        )
        .unwrap();
    assert_eq!(r.ids, ids[5..9].to_vec());
    let r = s
        .query(
            &range(Bound::Excluded(20.into()), Bound::Unbounded),
            100,
            None,
        )
        .unwrap();
    assert_eq!(r.ids, ids[21..].to_vec());
    let r = s
        .query(
            &range(Bound::Unbounded, Bound::Included((-1).into())),
            100,
            None,
        )
        .unwrap();
    assert!(r.ids.is_empty());

    // The index follows updates, in the same transaction.
    s.write(|tx| tx.set(ids[0], "status", "published")).unwrap();
    assert_eq!(
        s.query(&eq("published"), 100, None).unwrap().ids,
        vec![ids[0]]
    );
    assert_eq!(s.query(&eq("draft"), 100, None).unwrap().ids.len(), 9);

    // Querying an unindexed field or with a wrong type is a typed error.
    let unindexed = Query::Equals {
        collection: "note",
        field: "title",
        value: "x".into(),
    };
    assert!(matches!(
        s.query(&unindexed, 1, None),
        Err(Error::Schema(SchemaError::NotIndexed { .. }))
    ));
    let wrong = Query::Equals {
        collection: "note",
        field: "priority",
        value: "x".into(),
    };
    assert!(matches!(
        s.query(&wrong, 1, None),
        Err(Error::Schema(SchemaError::WrongType { .. }))
    ));
}

#[test]
fn delete_hides_from_reads_and_queries_and_restore_brings_back() {
    let s = open();
    let id = s
        .write(|tx| {
            let id = tx.create("note", &space("t"))?;
            tx.set(id, "status", "draft")?;
            Ok(id)
        })
        .unwrap();
    s.write(|tx| tx.delete(id)).unwrap();
    assert!(matches!(s.get(id), Err(Error::Deleted(d)) if d == id));
    assert!(s.is_deleted(id).unwrap());
    assert!(s.all("note").unwrap().is_empty());
    let draft = Query::Equals {
        collection: "note",
        field: "status",
        value: "draft".into(),
    };
    assert!(s.query(&draft, 10, None).unwrap().ids.is_empty());
    assert!(matches!(
        s.write(|tx| tx.set(id, "title", "x")),
        Err(Error::Deleted(_))
    ));

    s.write(|tx| tx.restore(id)).unwrap();
    assert_eq!(
        s.get(id).unwrap().get("status").unwrap(),
        Some(&"draft".into())
    );
    assert_eq!(s.query(&draft, 10, None).unwrap().ids, vec![id]);
}

#[test]
fn subscriptions_report_durable_local_and_imported_changes() {
    let a = open();
    let b = open();
    let sub = b.subscribe();
    let id = b.write(|tx| tx.create("note", &space("t"))).unwrap();
    match sub.recv_timeout(Duration::from_secs(5)) {
        Some(Notification::Changed(events)) => {
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].record, id);
            assert_eq!(events[0].origin, Origin::Local);
            assert_eq!(events[0].collection, "note");
        }
        other => panic!("expected a change, got {other:?}"),
    }
    let remote = a.write(|tx| tx.create("note", &space("t"))).unwrap();
    crate::util::sync_one_way(&a, &b);
    match sub.recv_timeout(Duration::from_secs(5)) {
        Some(Notification::Changed(events)) => {
            assert_eq!(
                events
                    .iter()
                    .map(|e| (e.record, e.origin))
                    .collect::<Vec<_>>(),
                vec![(remote, Origin::Import)]
            );
        }
        other => panic!("expected an import, got {other:?}"),
    }
    assert_eq!(sub.try_recv(), None);
}

#[test]
fn a_subscriber_that_falls_behind_is_told_it_lagged() {
    let s = open();
    let sub = s.subscribe();
    let id = s.write(|tx| tx.create("note", &space("t"))).unwrap();
    for i in 0..holdfast::SUBSCRIPTION_BACKLOG_MAX as i64 + 5 {
        s.write(|tx| tx.set(id, "priority", i)).unwrap();
    }
    assert_eq!(sub.try_recv(), Some(Notification::Lagged));
    s.write(|tx| tx.set(id, "priority", -1)).unwrap();
    assert!(matches!(sub.try_recv(), Some(Notification::Changed(_))));
}

#[test]
fn concurrent_writers_share_commits_and_lose_nothing() {
    let s = open();
    let threads = 8;
    let per_thread = 40;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = s.store.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                (0..per_thread)
                    .map(|i| {
                        store
                            .write(|tx| {
                                let id = tx.create("note", &space("t"))?;
                                tx.set(id, "priority", (t * 1000 + i) as i64)?;
                                Ok(id)
                            })
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    ids.sort();
    let s = s.reopen();
    assert_eq!(s.all("note").unwrap(), ids);
    assert_eq!(
        s.sync_summary().unwrap().pending,
        (threads * per_thread) as u64
    );
    let entries = s.outbox().list(None, usize::MAX).unwrap();
    assert_eq!(entries.len(), threads * per_thread);
    let (path, _dir) = s.close();
    assert!(Store::check(&path).unwrap().is_ok());
}

#[test]
fn concurrent_writers_to_one_record_all_land() {
    let s = open();
    let id = s.write(|tx| tx.create("item", &space("t"))).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let store = s.store.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    store.write(|tx| tx.increment(id, "on_hand", 1)).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(s.get(id).unwrap().counter("on_hand").unwrap(), 200);
    let s = s.reopen();
    assert_eq!(s.get(id).unwrap().counter("on_hand").unwrap(), 200);
}

#[test]
fn single_record_updates_run_in_parallel_with_writes_and_reads_and_lose_nothing() {
    let s = open();
    let shared = s.write(|tx| tx.create("item", &space("t"))).unwrap();
    let own: Vec<_> = (0..6)
        .map(|_| s.write(|tx| tx.create("note", &space("t"))).unwrap())
        .collect();
    let rounds = 40;
    let mut handles = Vec::new();
    // Six writers on their own notes, each also bumping the shared counter.
    for &id in &own {
        let store = s.store.clone();
        handles.push(std::thread::spawn(move || {
            for i in 0..rounds {
                store
                    .update(id, |tx| tx.splice_text(id, "body", i, 0, "x"))
                    .unwrap();
                store
                    .update(shared, |tx| tx.increment(shared, "on_hand", 1))
                    .unwrap();
            }
        }));
    }
    // A writer creating records and touching two at once (exclusive writes).
    let store = s.store.clone();
    let first = own[0];
    handles.push(std::thread::spawn(move || {
        for _ in 0..rounds {
            store
                .write(|tx| {
                    tx.create("note", &space("t"))?;
                    tx.increment(shared, "on_hand", 1)?;
                    tx.list_push(first, "tags", "w")
                })
                .unwrap();
        }
    }));
    // A reader that must only ever see durable, consistent states.
    let store = s.store.clone();
    handles.push(std::thread::spawn(move || {
        let mut last = 0;
        for _ in 0..200 {
            let n = store.get(shared).unwrap().counter("on_hand").unwrap();
            assert!(
                n >= last,
                "a reader saw the counter go back: {last} then {n}"
            );
            last = n;
        }
    }));
    for h in handles {
        h.join().unwrap();
    }
    let expected_shared = (own.len() * rounds + rounds) as i64;
    let check = |s: &holdfast::Store| {
        assert_eq!(
            s.get(shared).unwrap().counter("on_hand").unwrap(),
            expected_shared
        );
        for &id in &own {
            assert_eq!(s.get(id).unwrap().text("body").unwrap(), "x".repeat(rounds));
        }
        assert_eq!(s.get(first).unwrap().list("tags").unwrap().len(), rounds);
        assert_eq!(s.all("note").unwrap().len(), own.len() + rounds);
    };
    check(&s);
    let s = s.reopen();
    check(&s);
    let (path, _dir) = s.close();
    assert!(Store::check(&path).unwrap().is_ok());
}

#[test]
fn a_single_record_update_refuses_other_records() {
    let s = open();
    let a = s.write(|tx| tx.create("note", &space("t"))).unwrap();
    let b = s.write(|tx| tx.create("note", &space("t"))).unwrap();
    let r = s.update(a, |tx| {
        tx.set(a, "title", "changed")?;
        tx.set(b, "title", "not allowed")
    });
    assert!(matches!(r, Err(Error::OutOfScope { record: Some(r), only }) if r == b && only == a));
    let r = s.update(a, |tx| tx.create("note", &space("t")).map(drop));
    assert!(matches!(r, Err(Error::OutOfScope { record: None, .. })));
    // Neither refused write left anything behind, and the record is usable.
    assert_eq!(s.get(a).unwrap().get("title").unwrap(), None);
    s.update(a, |tx| tx.set(a, "title", "ok")).unwrap();
    assert_eq!(s.get(a).unwrap().get("title").unwrap(), Some(&"ok".into()));
    let missing = holdfast::RecordId::new_v7();
    assert!(matches!(s.update(missing, |_| Ok(())), Err(Error::NotFound(m)) if m == missing));
}

#[test]
fn a_tiny_cache_still_serves_every_record() {
    let s = open_with(StoreConfig::new(schema()).cache_bytes(1));
    let ids: Vec<_> = (0..50)
        .map(|i| {
            s.write(|tx| {
                let id = tx.create("note", &space("t"))?;
                tx.splice_text(id, "body", 0, 0, &format!("note {i}"))?;
                Ok(id)
            })
            .unwrap()
        })
        .collect();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            s.get(*id).unwrap().text("body").unwrap(),
            format!("note {i}")
        );
    }
}

#[test]
fn opening_a_store_loads_no_document_and_reads_load_only_what_they_need() {
    let s = open();
    let ids = notes_with_priority(&s, 300);
    let s = s.reopen();
    assert_eq!(s.stats().unwrap().cached_documents, 0);
    // Queries are index scans: still nothing loaded.
    assert_eq!(s.all("note").unwrap().len(), 300);
    let q = Query::Equals {
        collection: "note",
        field: "priority",
        value: 7.into(),
    };
    assert_eq!(s.query(&q, 10, None).unwrap().ids, vec![ids[7]]);
    assert_eq!(s.stats().unwrap().cached_documents, 0);
    s.get(ids[7]).unwrap();
    assert_eq!(s.stats().unwrap().cached_documents, 1);
}

#[test]
fn same_schema_version_with_a_different_definition_is_refused() {
    let s = open();
    let (path, _dir) = s.close();
    let changed = Schema::new(1).collection("note", [("title", Field::text())]);
    assert!(matches!(
        Store::open(&path, StoreConfig::new(changed)),
        Err(Error::Schema(SchemaError::Mismatch { version: 1 }))
    ));
}

#[test]
fn newer_schema_in_the_file_opens_read_only_with_a_clear_error() {
    let s = open();
    let id = s
        .write(|tx| {
            let id = tx.create("note", &space("t"))?;
            tx.set(id, "title", "hello")?;
            Ok(id)
        })
        .unwrap();
    let (path, _dir) = s.close();
    let mut newer = schema();
    newer.version = 2;
    newer
        .collections
        .get_mut("note")
        .unwrap()
        .fields
        .insert("due".into(), Field::lww(ScalarType::Timestamp));
    drop(Store::open(&path, StoreConfig::new(newer)).unwrap());

    let old = Store::open(&path, StoreConfig::new(schema())).unwrap();
    assert_eq!(
        old.read_only(),
        Some(&ReadOnlyReason::NewerSchema { stored: 2, app: 1 })
    );
    assert_eq!(
        old.get(id).unwrap().get("title").unwrap(),
        Some(&"hello".into())
    );
    let err = old.write(|tx| tx.set(id, "title", "x")).unwrap_err();
    assert!(matches!(
        err,
        Error::ReadOnly(ReadOnlyReason::NewerSchema { stored: 2, app: 1 })
    ));
    assert!(
        err.to_string().contains("newer version of the app"),
        "{err}"
    );
}

#[test]
fn migration_backfills_a_newly_indexed_field() {
    let s = open();
    let ids: Vec<_> = (0..5)
        .map(|i| {
            s.write(|tx| {
                let id = tx.create("note", &space("t"))?;
                tx.set(id, "title", if i % 2 == 0 { "even" } else { "odd" })?;
                Ok(id)
            })
            .unwrap()
        })
        .collect();
    let (path, _dir) = s.close();
    let mut v2 = schema();
    v2.version = 2;
    v2.collections
        .get_mut("note")
        .unwrap()
        .fields
        .get_mut("title")
        .unwrap()
        .indexed = true;
    // Also drop the index on priority.
    v2.collections
        .get_mut("note")
        .unwrap()
        .fields
        .get_mut("priority")
        .unwrap()
        .indexed = false;
    let s = Store::open(&path, StoreConfig::new(v2)).unwrap();
    let q = Query::Equals {
        collection: "note",
        field: "title",
        value: "even".into(),
    };
    assert_eq!(
        s.query(&q, 10, None).unwrap().ids,
        vec![ids[0], ids[2], ids[4]]
    );
    let p = Query::Equals {
        collection: "note",
        field: "priority",
        value: 1.into(),
    };
    assert!(matches!(
        s.query(&p, 10, None),
        Err(Error::Schema(SchemaError::NotIndexed { .. }))
    ));
}

#[test]
fn device_id_is_stable_and_copies_merge_without_actor_reuse() {
    let s = open();
    let device = s.device_id();
    let id = s.write(|tx| tx.create("note", &space("t"))).unwrap();
    s.write(|tx| tx.splice_text(id, "body", 0, 0, "base "))
        .unwrap();
    let (path, dir) = s.close();
    // A copied file (a restored backup, a cloned phone) has the same device id...
    let copy = dir.path().join("copy.redb");
    std::fs::copy(&path, &copy).unwrap();
    let a = crate::util::reopen(&path);
    let b = crate::util::reopen(&copy);
    assert_eq!(a.device_id(), device);
    assert_eq!(b.device_id(), device);
    // ...but each incarnation writes with its own actor, so their edits merge.
    a.write(|tx| tx.splice_text(id, "body", 5, 0, "from a"))
        .unwrap();
    b.write(|tx| tx.splice_text(id, "body", 5, 0, "from b"))
        .unwrap();
    crate::util::sync_both(&a, &b);
    let text_a = a.get(id).unwrap().text("body").unwrap().to_owned();
    assert_eq!(text_a, b.get(id).unwrap().text("body").unwrap());
    assert!(
        text_a.contains("from a") && text_a.contains("from b"),
        "{text_a}"
    );
}

#[test]
fn a_store_opens_with_the_schema_it_keeps() {
    let (path, _dir) = {
        let s = crate::util::open();
        s.write(|tx| {
            let id = tx.create("note", &crate::util::space("team"))?;
            tx.set(id, "title", "kept")
        })
        .unwrap();
        s.close()
    };
    assert_eq!(
        holdfast::Store::stored_schema(&path).unwrap(),
        Some(crate::util::schema())
    );
    let store = holdfast::Store::open_existing(&path).unwrap();
    assert_eq!(store.schema(), &crate::util::schema());
    assert_eq!(store.sync_summary().unwrap().pending, 1);
    drop(store);

    // Neither a missing file nor an empty database is taken for a store, and nothing is
    // created.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.redb");
    let result = holdfast::Store::open_existing(&missing);
    assert!(
        matches!(result, Err(holdfast::Error::NotAStore(_))),
        "{:?}",
        result.err()
    );
    assert!(!missing.exists());
    let empty = dir.path().join("empty.redb");
    drop(redb::Database::create(&empty).unwrap());
    let result = holdfast::Store::open_existing(&empty);
    assert!(
        matches!(result, Err(holdfast::Error::NotAStore(_))),
        "{:?}",
        result.err()
    );
}
