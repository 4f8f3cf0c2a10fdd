//! Importing in steps: progress is reported, the outcome equals a one-step import, and a
//! second import changes nothing.

use crate::{Field, ScalarType, Schema, SpaceId, Store, StoreConfig};

fn open(dir: &tempfile::TempDir, name: &str) -> Store {
    let schema = Schema::new(1).collection("note", [("title", Field::lww(ScalarType::String))]);
    Store::open(dir.path().join(name), StoreConfig::new(schema)).unwrap()
}

#[test]
fn steps_report_progress_and_import_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(&dir, "a.redb");
    let space = SpaceId::new("team").unwrap();
    let records = crate::limits::IMPORT_STEP_RECORDS * 2 + 10;
    a.write(|tx| {
        for i in 0..records {
            let id = tx.create("note", &space)?;
            tx.set(id, "title", format!("note {i}"))?;
        }
        Ok(())
    })
    .unwrap();
    let bundle = a.export_changes(None, None).unwrap();

    let b = open(&dir, "b.redb");
    let mut seen = Vec::new();
    let summary = b
        .import_changes_with_progress(&bundle.bytes, |done, total| seen.push((done, total)))
        .unwrap();
    let step = crate::limits::IMPORT_STEP_RECORDS;
    assert_eq!(
        seen,
        [
            (0, records),
            (step, records),
            (2 * step, records),
            (records, records)
        ]
    );
    assert_eq!(summary.records_changed, records);
    assert_eq!(summary.changes_applied, bundle.changes);
    assert!(summary.is_complete());
    assert_eq!(b.all("note").unwrap(), a.all("note").unwrap());

    let again = b
        .import_changes_with_progress(&bundle.bytes, |_, _| {})
        .unwrap();
    assert_eq!((again.records_changed, again.changes_applied), (0, 0));
}

#[test]
fn a_damaged_bundle_is_refused_before_any_step() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(&dir, "a.redb");
    let space = SpaceId::new("team").unwrap();
    a.write(|tx| tx.create("note", &space).map(|_| ())).unwrap();
    let mut bytes = a.export_changes(None, None).unwrap().bytes;
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    let b = open(&dir, "b.redb");
    let mut calls = 0;
    assert!(b
        .import_changes_with_progress(&bytes, |_, _| calls += 1)
        .is_err());
    assert_eq!(calls, 0);
    assert!(b.all("note").unwrap().is_empty());
}
