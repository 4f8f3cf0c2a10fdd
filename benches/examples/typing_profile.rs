//! Workload 3's writer alone, for profiling: the trace replayed into one note of a store
//! in DIR, a durable write per 100 edits, no sync.
//!
//! `cargo run --release -p holdfast-benches --example typing_profile -- DIR [EDITS]`
use std::time::Instant;

use holdfast::{SpaceId, Store, StoreConfig};
use holdfast_benches::compare::device::holdfast::schema;
use holdfast_benches::compare::trace::{self, Edit, EDITS_PER_COMMIT};

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).expect("DIR");
    let edits = std::env::args()
        .nth(2)
        .map_or(usize::MAX, |s| s.parse().unwrap());
    let trace = trace::load(&trace::default_path())?.truncated(edits);
    let store = Store::open(
        std::path::Path::new(&dir).join("typing.redb"),
        StoreConfig::new(schema()),
    )?;
    let space = SpaceId::new("compare")?;
    let id = store.write(|tx| tx.create("note", &space))?;
    let started = Instant::now();
    for chunk in trace.edits.chunks(EDITS_PER_COMMIT) {
        store.update(id, |tx| {
            for Edit(pos, del, ins) in chunk {
                tx.splice_text(id, "body", *pos, *del, ins)?;
            }
            Ok(())
        })?;
    }
    let store_s = started.elapsed().as_secs_f64();
    let (bare, _) = trace::bare_automerge(&trace)?;
    println!(
        "store {store_s:.2} s, bare Automerge {:.2} s",
        bare.as_secs_f64()
    );
    Ok(())
}
