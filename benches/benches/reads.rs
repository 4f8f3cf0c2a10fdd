//! Reading one field of a large record against reading the whole record, in one run.
//!
//! The record has 200 string fields (100 characters each) and a text field of 1 MB; its
//! document is in the store's cache, as it is for a record an app is showing.
//!
//! - `get_whole_record`: `Store::get`, every field converted (the 1 MB text included).
//! - `text_len_via_get`: the text's length the only way there was before `text_len`:
//!   `get`, then count the characters of the text.
//! - `field_one_scalar`: `Store::field` of one string field.
//! - `text_len`: `Store::text_len` of the 1 MB text, read from the document.
//! - `list_len`: `Store::list_len` of a 200-element list, for comparison with `text_len`.
//!
//! Run: `cargo bench -p holdfast-benches --bench reads`

use criterion::{criterion_group, criterion_main, Criterion};
use holdfast::{Field, RecordId, ScalarType, Schema, SpaceId, Store, StoreConfig};

/// Scalar fields of the record.
const FIELDS: usize = 200;
/// Characters of its text field.
const TEXT_CHARS: usize = 1 << 20;

fn name(i: usize) -> String {
    format!("f{i:03}")
}

fn schema() -> Schema {
    let mut fields: Vec<(String, Field)> = (0..FIELDS)
        .map(|i| (name(i), Field::lww(ScalarType::String)))
        .collect();
    fields.push(("body".into(), Field::text()));
    fields.push(("tags".into(), Field::list(ScalarType::String)));
    Schema::new(1).collection("wide", fields.iter().map(|(n, f)| (n.as_str(), f.clone())))
}

/// The record, written in a few durable writes.
fn large_record(store: &Store) -> RecordId {
    let space = SpaceId::new("bench").expect("valid space");
    let id = store
        .write(|tx| {
            let id = tx.create("wide", &space)?;
            for i in 0..FIELDS {
                tx.set(id, &name(i), format!("{i:0>100}"))?;
            }
            Ok(id)
        })
        .expect("create");
    let chunk = "lorem ipsum ".repeat(TEXT_CHARS / 12 / 16);
    let chunk_chars = chunk.chars().count();
    for k in 0..16 {
        store
            .update(id, |tx| {
                tx.splice_text(id, "body", k * chunk_chars, 0, &chunk)
            })
            .expect("text");
    }
    store
        .update(id, |tx| {
            for i in 0..200 {
                tx.list_insert(id, "tags", i, format!("tag {i}"))?;
            }
            Ok(())
        })
        .expect("list");
    id
}

fn reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Store::open(dir.path().join("reads.redb"), StoreConfig::new(schema())).expect("open store");
    let id = large_record(&store);
    let text_len = store.text_len(id, "body").expect("text_len");
    eprintln!("record: {FIELDS} string fields, a text of {text_len} characters, 200 tags");

    let mut group = c.benchmark_group("read_large_record");
    group.bench_function("get_whole_record", |b| {
        b.iter(|| store.get(id).expect("get"))
    });
    group.bench_function("text_len_via_get", |b| {
        b.iter(|| {
            let record = store.get(id).expect("get");
            record.text("body").expect("text").chars().count()
        })
    });
    group.bench_function("field_one_scalar", |b| {
        b.iter(|| store.field(id, "f100").expect("field"))
    });
    group.bench_function("text_len", |b| {
        b.iter(|| store.text_len(id, "body").expect("text_len"))
    });
    group.bench_function("list_len", |b| {
        b.iter(|| store.list_len(id, "tags").expect("list_len"))
    });
    group.finish();
}

criterion_group!(benches, reads);
criterion_main!(benches);
