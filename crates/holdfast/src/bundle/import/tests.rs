//! Every kind of refusal an import can give, each from a bundle of hand-made Automerge
//! changes, with its words for people.

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, Change, ROOT};

use crate::bundle::{encode, BundleBody, BundleRecord};
use crate::error::{BundleError, Error};
use crate::{DeviceId, RecordId, RefusalKind, Schema, SpaceId, Store, StoreConfig};
use crate::{Field, ScalarType};

/// The changes of a fresh document of `actor` after setting `fields` at its root, one
/// change per field.
fn changes(actor: &[u8], fields: &[(&str, &str)]) -> Vec<Change> {
    let mut doc = AutoCommit::new().with_actor(ActorId::from(actor));
    for (key, value) in fields {
        doc.put(ROOT, *key, *value).unwrap();
        doc.commit();
    }
    doc.get_changes(&[])
}

/// A record's creation as the store writes it: collection and space.
fn created(actor: &[u8], collection: &str, space: &str) -> Vec<Change> {
    changes(actor, &[("_collection", collection), ("_space", space)])
}

/// Imports one record with `changes` into a store of notes: the import is refused whole,
/// with one refusal of `kind` whose words contain `words`.
fn check(changes: Vec<Change>, kind: RefusalKind, words: &str) {
    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::new(1).collection("note", [("title", Field::lww(ScalarType::String))]);
    let store = Store::open(dir.path().join("s.redb"), StoreConfig::new(schema)).unwrap();
    let record = RecordId::new_v7();
    let bundle = encode(&BundleBody {
        source: DeviceId::random(),
        created_ms: 0,
        mark: 1,
        records: vec![BundleRecord {
            id: record,
            space: SpaceId::new("team").unwrap(),
            changes: changes.iter().map(|c| c.raw_bytes().to_vec()).collect(),
        }],
    });
    let refused = match store.import_changes(&bundle) {
        Err(Error::Bundle(BundleError::Refused(e))) => e.refused,
        other => panic!("{kind:?}: expected a refusal, got {other:?}"),
    };
    assert_eq!(refused.len(), 1, "{refused:?}");
    let r = &refused[0];
    assert_eq!((r.record, &r.kind), (record, &kind), "{r:?}");
    assert!(r.reason.contains(words), "{kind:?}: {}", r.reason);
    assert!(store.get(record).is_err(), "nothing of it was applied");
}

#[test]
fn each_kind_of_refusal_is_told_apart_and_in_words() {
    // The title change alone: it builds on the creation, which the bundle lacks.
    let mut chain = AutoCommit::new().with_actor(ActorId::from(b"a2".as_slice()));
    chain.put(ROOT, "_collection", "note").unwrap();
    chain.put(ROOT, "_space", "team").unwrap();
    chain.commit();
    chain.put(ROOT, "title", "x").unwrap();
    chain.commit();
    let orphan: Vec<Change> = chain.get_changes(&[]).into_iter().skip(1).collect();
    check(orphan, RefusalKind::MissingDependencies, "earlier changes");

    // Two different changes claiming one author and sequence number.
    let mut twins = created(b"a3", "note", "team");
    twins.extend(changes(b"a3", &[("_collection", "task")]));
    check(twins, RefusalKind::InvalidChanges, "could not be applied");

    check(
        changes(b"a4", &[("title", "x")]),
        RefusalKind::NotCreated,
        "creation is missing",
    );
    check(
        created(b"a5", "note", "not a space!"),
        RefusalKind::InvalidSpace {
            space: "not a space!".into(),
        },
        "invalid space name \"not a space!\"",
    );
    check(
        created(b"a6", "task", "team"),
        RefusalKind::UnknownCollection {
            collection: "task".into(),
        },
        "does not know the collection \"task\"",
    );
}
