//! Durable local writes versus raw redb `Immediate` commits of comparable bytes, in one run.
//!
//! - `raw_redb/commit`: one redb transaction carrying as many bytes as a store write puts on
//!   disk (its change twice — chunk and outbox — plus ~300 bytes of metadata rows).
//! - `bare_automerge_edit`: the same edit on in-memory Automerge documents, no store, no
//!   I/O: the floor under any store that keeps records as Automerge documents.
//! - `store/single_writer`: one thread, one durable write at a time, to 100 notes in turn.
//! - `store/8_writers`: eight threads writing to their own notes (100 in all); reported per
//!   write, so the single-writer time divided by this is the group-commit speed-up.
//!
//! A write is a title change plus ten typed characters. Notes are edited in turn rather than
//! one note forever: Automerge keeps every overwritten value, so one note edited 50,000
//! times measures Automerge's history growth, not the store's durability path.
//!
//! Run: `cargo bench -p holdfast-benches --bench writes`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use holdfast_benches::{
    create_note, open, small_edit, small_edit_change_bytes, timed_writers, BareAutomerge, RawRedb,
};

/// Notes the writes rotate over.
const NOTES: usize = 100;

fn writes(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let change_bytes = small_edit_change_bytes(dir.path());
    let payload = (2 * change_bytes + 300) as usize;
    eprintln!(
        "one store write carries {change_bytes} change bytes; raw redb commits {payload} bytes"
    );

    let mut group = c.benchmark_group("durable_write");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(10));

    let mut raw = RawRedb::open(&dir.path().join("raw.redb"), payload);
    group.bench_function("raw_redb_commit", |b| b.iter(|| raw.commit_one()));

    let mut bare = BareAutomerge::new(NOTES);
    let mut m = 0;
    group.bench_function("bare_automerge_edit", |b| {
        b.iter(|| {
            m += 1;
            bare.edit(m)
        })
    });

    let store = open(&dir.path().join("single.redb"));
    let ids: Vec<_> = (0..NOTES).map(|_| create_note(&store)).collect();
    let mut n = 0;
    group.bench_function("store_single_writer", |b| {
        b.iter(|| {
            n += 1;
            small_edit(&store, ids[n as usize % NOTES], n)
        })
    });

    let writers = 8;
    let store = open(&dir.path().join("multi.redb"));
    let ids: Vec<_> = (0..NOTES).map(|_| create_note(&store)).collect();
    group.bench_function("store_8_writers", |b| {
        b.iter_custom(|iters| {
            let per_thread = iters.div_ceil(writers as u64);
            // Writer w owns notes w, w + 8, w + 16, ...
            let elapsed = timed_writers(&store, &ids, writers, per_thread);
            // Per write: elapsed over all writes made.
            elapsed.mul_f64(iters as f64 / (per_thread * writers as u64) as f64)
        })
    });
    group.finish();
}

criterion_group!(benches, writes);
criterion_main!(benches);
