//! Bundles as an app uses them: the export mark read without exporting, exports since a
//! mark, and every outcome of an import (all applied, partial, refused whole, several
//! bundles out of order in one durable step).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use holdfast::{
    BundleError, Error, Export, ExportMark, ImportRefused, RecordId, Store, StoreConfig,
};

use crate::util::{open, open_counting, schema, space, Syncs};

/// A note created in space "t" with `text` as its body, in one write.
fn note(store: &Store, text: &str) -> RecordId {
    store
        .write(|tx| {
            let id = tx.create("note", &space("t"))?;
            tx.splice_text(id, "body", 0, 0, text)?;
            Ok(id)
        })
        .unwrap()
}

fn append(store: &Store, id: RecordId, text: &str) {
    let len = body(store, id).chars().count();
    store
        .update(id, |tx| tx.splice_text(id, "body", len, 0, text))
        .unwrap();
}

fn body(store: &Store, id: RecordId) -> String {
    store.get(id).unwrap().text("body").unwrap().to_owned()
}

fn export_since(store: &Store, mark: Option<&Export>) -> Export {
    store.export_changes(mark.map(|e| e.mark), None).unwrap()
}

/// The changes of `id` in `store`'s outbox, in the order it will send them.
fn outbox_hashes(store: &Store, id: RecordId) -> Vec<[u8; 32]> {
    let entries = store.outbox().list(None, 1000).unwrap();
    entries
        .into_iter()
        .filter(|e| e.record == id)
        .flat_map(|e| e.change_hashes)
        .collect()
}

/// The refusal of an import that applied nothing.
fn refused(result: holdfast::Result<holdfast::ImportSummary>) -> ImportRefused {
    match result {
        Err(Error::Bundle(BundleError::Refused(e))) => e,
        other => panic!("expected the import to be refused, got {other:?}"),
    }
}

#[test]
fn the_export_mark_is_the_last_change_recorded_by_writes_and_imports() {
    let a = open();
    assert_eq!(a.export_mark().unwrap(), ExportMark(0));
    assert_eq!(export_since(&a, None).mark, ExportMark(0));

    let first = note(&a, "one");
    assert_eq!(a.export_mark().unwrap(), ExportMark(1));
    a.write(|tx| {
        tx.splice_text(first, "body", 3, 0, "!")?;
        tx.create("note", &space("t")).map(|_| ())
    })
    .unwrap();
    // One change log entry per record a write changed.
    assert_eq!(a.export_mark().unwrap(), ExportMark(3));
    let everything = export_since(&a, None);
    assert_eq!(everything.mark, a.export_mark().unwrap());

    // An import records each record it changed (after b's own write: 1 + 2); a second
    // import of it records nothing.
    let b = open();
    note(&b, "b's own");
    b.import_changes(&everything.bytes)
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(b.export_mark().unwrap(), ExportMark(3));
    b.import_changes(&everything.bytes)
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(b.export_mark().unwrap(), ExportMark(3));
    assert_eq!(export_since(&b, None).mark, ExportMark(3));

    // Marks are kept in the file.
    let a = a.reopen();
    assert_eq!(a.export_mark().unwrap(), ExportMark(3));
}

#[test]
fn an_export_since_a_mark_holds_exactly_the_later_changes() {
    let a = open();
    let kept = note(&a, "kept");
    let edited = note(&a, "edited");
    let b = open();
    b.import_changes(&export_since(&a, None).bytes)
        .unwrap()
        .complete()
        .unwrap();
    // Read after the import, without exporting: what b has seen of a.
    let mark = b.export_mark().unwrap();

    append(&a, edited, " later");
    let created = note(&a, "created later");
    b.import_changes(&export_since(&a, None).bytes)
        .unwrap()
        .complete()
        .unwrap();
    append(&b, edited, " on b");

    let delta = b.export_changes(Some(mark), None).unwrap();
    assert_eq!((delta.records, delta.changes), (2, 3), "{delta:?}");
    let c = open();
    let summary = c.import_changes(&delta.bytes).unwrap();
    // The later changes of `edited` need its creation, which the delta leaves out.
    assert_eq!(summary.records_changed, 1);
    assert_eq!(summary.refused.len(), 1);
    assert_eq!(summary.refused[0].record, edited);
    assert!(c.exists(created).unwrap() && !c.exists(kept).unwrap());
    assert_eq!(body(&c, created), "created later");

    // Since mark 0 is everything, as without a mark; since the latest mark, nothing.
    let all = export_since(&b, None);
    let since_zero = b.export_changes(Some(ExportMark(0)), None).unwrap();
    assert_eq!(
        (since_zero.records, since_zero.changes),
        (all.records, all.changes)
    );
    let later = b
        .export_changes(Some(b.export_mark().unwrap()), None)
        .unwrap();
    assert_eq!((later.records, later.changes), (0, 0));
}

#[test]
fn an_import_that_applies_everything_is_complete() {
    let a = open();
    let ids = [note(&a, "x"), note(&a, "y")];
    let b = open();
    let summary = b.import_changes(&export_since(&a, None).bytes).unwrap();
    assert!(summary.is_complete());
    assert_eq!((summary.records_accepted, summary.records_changed), (2, 2));
    assert_eq!(summary.changes_applied, 2);
    assert_eq!(body(&b, ids[1]), "y");
    // Again: nothing new, nothing refused, still complete.
    let again = b.import_changes(&export_since(&a, None).bytes).unwrap();
    again.complete().unwrap();
    assert_eq!((again.records_accepted, again.records_changed), (2, 0));
}

#[test]
fn a_partial_import_lists_its_refusals_and_complete_makes_them_an_error() {
    let a = open();
    let early = note(&a, "early");
    let first = export_since(&a, None);
    append(&a, early, " and later");
    let whole = note(&a, "whole");
    let delta = export_since(&a, Some(&first));

    let b = open();
    let summary = b.import_changes(&delta.bytes).unwrap();
    assert!(!summary.is_complete());
    assert_eq!((summary.records_accepted, summary.records_changed), (1, 1));
    assert_eq!(summary.refused.len(), 1);
    assert_eq!(summary.refused[0].record, early);
    assert!(
        summary.refused[0].reason.contains("earlier changes"),
        "{summary:?}"
    );
    assert_eq!(body(&b, whole), "whole");
    assert!(!b.exists(early).unwrap());

    // The same bundle again gives the same verdict; `complete` turns it into an error that
    // `?` carries as a bundle error.
    let again = b.import_changes(&delta.bytes).unwrap();
    assert_eq!(again.refused, summary.refused);
    let err = again.complete().unwrap_err();
    assert_eq!(err.records_accepted, 1);
    let as_store_error = || -> holdfast::Result<()> {
        b.import_changes(&delta.bytes)?.complete()?;
        Ok(())
    };
    let message = match as_store_error() {
        Err(Error::Bundle(BundleError::Refused(e))) => e.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(
        message.starts_with("1 record imported, but refused record "),
        "{message}"
    );
}

#[test]
fn an_import_that_applies_nothing_is_an_error_with_the_reasons() {
    let a = open();
    let ids = [note(&a, "one"), note(&a, "two")];
    let first = export_since(&a, None);
    for id in ids {
        append(&a, id, " more");
    }
    let delta = export_since(&a, Some(&first));

    let b = open();
    let e = refused(b.import_changes(&delta.bytes));
    assert_eq!(e.records_accepted, 0);
    let mut records: Vec<_> = e.refused.iter().map(|r| r.record).collect();
    records.sort();
    let mut expected = ids.to_vec();
    expected.sort();
    assert_eq!(records, expected);
    let message = e.to_string();
    assert!(
        message.starts_with("nothing was imported: record "),
        "{message}"
    );
    assert!(message.ends_with(" (and 1 more refused)"), "{message}");
    // Nothing was written: no record, no change recorded.
    assert!(b.all("note").unwrap().is_empty());
    assert_eq!(b.export_mark().unwrap(), ExportMark(0));
    // The same with `?`, and with the stepped import.
    let with_question_mark = || -> holdfast::Result<()> {
        let _ = b.import_changes(&delta.bytes)?;
        Ok(())
    };
    assert!(matches!(
        with_question_mark(),
        Err(Error::Bundle(BundleError::Refused(_)))
    ));
    refused(b.import_changes_with_progress(&delta.bytes, |_, _| {}));
}

#[test]
fn several_bundles_apply_in_one_call_whatever_their_order() {
    let a = open();
    let id = note(&a, "one");
    let e1 = export_since(&a, None);
    append(&a, id, " two");
    let other = note(&a, "other");
    let e2 = export_since(&a, Some(&e1));
    append(&a, id, " three");
    let e3 = export_since(&a, Some(&e2));

    let b = open();
    let summary = b
        .import_many([&e3.bytes, &e1.bytes, &e2.bytes, &e3.bytes])
        .unwrap();
    assert!(summary.is_complete(), "{summary:?}");
    assert_eq!((summary.records_changed, summary.changes_applied), (2, 4));
    assert_eq!(body(&b, id), "one two three");
    assert_eq!(body(&b, other), "other");
    // The outbox carries them on in causal order, as `a` made them, whatever the order given.
    assert_eq!(outbox_hashes(&b, id), outbox_hashes(&a, id));
    // Written in an order the store loads again.
    let b = b.reopen();
    assert_eq!(body(&b, id), "one two three");
    assert_eq!(b.heads(id).unwrap(), a.heads(id).unwrap());

    // Without the middle bundle the record cannot apply: refused, and nothing applied.
    let c = open();
    let e = refused(c.import_many([e3.bytes.as_slice(), e1.bytes.as_slice()]));
    assert_eq!(e.refused.len(), 1);
    assert_eq!(e.refused[0].record, id);
    assert!(!c.exists(id).unwrap());
}

#[test]
fn a_damaged_bundle_among_several_refuses_them_all() {
    let a = open();
    let id = note(&a, "one");
    let good = export_since(&a, None).bytes;
    let b = open();
    let result = b.import_many([good.as_slice(), b"not a bundle"]);
    assert!(matches!(
        result,
        Err(Error::Bundle(BundleError::NotABundle))
    ));
    assert!(!b.exists(id).unwrap());
    // No bundle at all imports nothing, and is no error.
    let none: [&[u8]; 0] = [];
    assert_eq!(b.import_many(none).unwrap().records_accepted, 0);
}

/// A store on a file whose fsyncs are counted (kept alive by the returned directory).
fn counting_store() -> (Store, Arc<Syncs>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (store, syncs) = open_counting(&dir.path().join("s.redb"), StoreConfig::new(schema()));
    (store, syncs, dir)
}

/// The fsyncs `f` costs.
fn syncs_of(syncs: &Syncs, f: impl FnOnce()) -> u64 {
    let before = syncs.count.load(Ordering::SeqCst);
    f();
    syncs.count.load(Ordering::SeqCst) - before
}

#[test]
fn several_bundles_cost_one_durable_commit() {
    let a = open();
    let bundles: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let before = a.export_mark().unwrap();
            note(&a, &format!("note {i}"));
            a.export_changes(Some(before), None).unwrap().bytes
        })
        .collect();

    let (one, syncs, _dir) = counting_store();
    let per_commit = syncs_of(&syncs, || {
        one.import_changes(&bundles[0]).unwrap().complete().unwrap();
    });
    assert!(per_commit > 0);
    let separately = syncs_of(&syncs, || {
        for b in &bundles[1..] {
            one.import_changes(b).unwrap().complete().unwrap();
        }
    });
    assert_eq!(separately, 2 * per_commit);

    let (many, syncs, _dir2) = counting_store();
    let together = syncs_of(&syncs, || {
        let summary = many.import_many(&bundles).unwrap();
        assert_eq!(summary.records_changed, 3);
    });
    assert_eq!(together, per_commit);
    assert_eq!(many.all("note").unwrap().len(), 3);
}
