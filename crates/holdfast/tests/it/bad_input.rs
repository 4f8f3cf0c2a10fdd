//! Bad input: damaged bundles and files give typed errors and lose nothing.

use holdfast::{BundleError, Error, Store};

use crate::util::{open, reopen, space, Rng};

#[test]
fn damaged_bundles_are_refused_whole() {
    let a = open();
    let b = open();
    let id = a
        .write(|tx| {
            let id = tx.create("note", &space("t"))?;
            tx.splice_text(id, "body", 0, 0, "precious")?;
            Ok(id)
        })
        .unwrap();
    let kept = b.write(|tx| tx.create("note", &space("t"))).unwrap();
    let bundle = a.export_changes(None, None).unwrap().bytes;

    let bundle_err = |bytes: &[u8]| match b.import_changes(bytes) {
        Err(Error::Bundle(e)) => e,
        other => panic!("expected a bundle error, got {other:?}"),
    };
    assert!(matches!(
        bundle_err(b"not a bundle at all"),
        BundleError::NotABundle
    ));
    assert!(matches!(bundle_err(&[]), BundleError::NotABundle));
    let mut newer = bundle.clone();
    newer[8] = 99;
    assert!(matches!(
        bundle_err(&newer),
        BundleError::UnsupportedVersion(99)
    ));
    for cut in [11, bundle.len() / 2, bundle.len() - 1] {
        assert!(
            matches!(bundle_err(&bundle[..cut]), BundleError::Corrupt(_)),
            "cut at {cut}"
        );
    }

    let mut rng = Rng::from_env("damaged_bundles_are_refused_whole");
    for _ in 0..200 {
        let mut bad = bundle.clone();
        let i = 10 + rng.below(bad.len() as u64 - 10) as usize;
        bad[i] ^= 1 << rng.below(8);
        // Either refused with a typed error or (if the flip hit slack) imported intact.
        if let Ok(summary) = b.import_changes(&bad) {
            assert!(summary.refused.is_empty() || summary.records_changed == 0);
        }
    }
    // Nothing local was disturbed, and the good bundle still imports.
    assert!(b.exists(kept).unwrap());
    b.import_changes(&bundle).unwrap().complete().unwrap();
    assert_eq!(b.get(id).unwrap().text("body").unwrap(), "precious");
}

#[test]
fn a_bundle_that_skips_earlier_changes_is_reported_not_half_applied() {
    let a = open();
    let b = open();
    let id = a.write(|tx| tx.create("note", &space("t"))).unwrap();
    let first = a.export_changes(None, None).unwrap();
    a.write(|tx| tx.splice_text(id, "body", 0, 0, "later"))
        .unwrap();
    let delta = a.export_changes(Some(first.mark), None).unwrap();
    let refused = refused(b.import_changes(&delta.bytes));
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].record, id);
    assert!(!b.exists(id).unwrap());
    // Importing the earlier bundle, then the delta, completes it.
    b.import_changes(&first.bytes).unwrap().complete().unwrap();
    b.import_changes(&delta.bytes).unwrap().complete().unwrap();
    assert_eq!(b.get(id).unwrap().text("body").unwrap(), "later");
}

#[test]
fn a_refused_bundle_leaves_a_known_record_as_it_was() {
    // Found by the `merge_convergence` fuzz target: the refused changes stayed queued in the
    // cached document, so every later import of the record was refused too.
    let a = open();
    let b = open();
    let id = a
        .write(|tx| {
            let id = tx.create("note", &space("t"))?;
            tx.splice_text(id, "body", 0, 0, "one")
        })
        .map(|()| a.outbox().list(None, 1).unwrap()[0].record)
        .unwrap();
    let first = a.export_changes(None, None).unwrap();
    b.import_changes(&first.bytes).unwrap().complete().unwrap();
    a.write(|tx| tx.splice_text(id, "body", 3, 0, " two"))
        .unwrap();
    let second = a.export_changes(Some(first.mark), None).unwrap();
    a.write(|tx| tx.splice_text(id, "body", 7, 0, " three"))
        .unwrap();
    let third = a.export_changes(Some(second.mark), None).unwrap();

    assert_eq!(refused(b.import_changes(&third.bytes)).len(), 1);
    assert_eq!(b.get(id).unwrap().text("body").unwrap(), "one");
    // The missing change, then the refused bundle again: both apply.
    let summary = b.import_changes(&second.bytes).unwrap();
    assert!(summary.is_complete(), "{summary:?}");
    assert_eq!(b.get(id).unwrap().text("body").unwrap(), "one two");
    let summary = b.import_changes(&third.bytes).unwrap();
    assert!(summary.is_complete(), "{summary:?}");
    assert_eq!(b.get(id).unwrap().text("body").unwrap(), "one two three");
}

#[test]
fn a_truncated_or_garbage_store_file_is_a_typed_error() {
    let s = open();
    for i in 0..20 {
        s.write(|tx| {
            let id = tx.create("note", &space("t"))?;
            tx.set(id, "priority", i)
        })
        .unwrap();
    }
    let (path, _dir) = s.close();
    let bytes = std::fs::read(&path).unwrap();

    let truncated = path.with_file_name("truncated.redb");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let r = Store::open(
        &truncated,
        holdfast::StoreConfig::new(crate::util::schema()),
    );
    assert!(
        matches!(r, Err(Error::Storage(_)) | Err(Error::Corrupt(_))),
        "{:?}",
        r.err()
    );

    let garbage = path.with_file_name("garbage.redb");
    std::fs::write(&garbage, b"this is not a database file, just some words").unwrap();
    let r = Store::open(&garbage, holdfast::StoreConfig::new(crate::util::schema()));
    assert!(matches!(r, Err(Error::Storage(_))), "{:?}", r.err());

    // The original is untouched.
    let s = reopen(&path);
    assert_eq!(s.all("note").unwrap().len(), 20);
}

/// The refusals of an import that applied nothing.
fn refused(result: holdfast::Result<holdfast::ImportSummary>) -> Vec<holdfast::Refusal> {
    match result {
        Err(holdfast::Error::Bundle(BundleError::Refused(e))) => {
            assert_eq!(e.records_accepted, 0, "{e:?}");
            e.refused
        }
        other => panic!("expected the import to be refused, got {other:?}"),
    }
}
