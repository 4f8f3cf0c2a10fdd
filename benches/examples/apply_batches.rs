//! What a receiving device pays to apply live typing, by how many changes it applies at
//! once: the `automerge-paper` trace's first EDITS edits (default 100,000) committed every
//! 100 edits on one document, then applied to a second document in batches of 1, 4, 16
//! and 64 changes. Automerge 0.12 applies a batch in time linear in the document's size
//! (automerge#1042), so batching divides the cost.
//!
//! `cargo run --release -p holdfast-benches --example apply_batches -- [EDITS]`
use automerge::{transaction::Transactable, Automerge, ObjType, ROOT};
use holdfast_benches::compare::trace::{self, Edit};
use std::time::Instant;
fn main() {
    let edits: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |s| s.parse().unwrap());
    let t = trace::load(&trace::default_path())
        .unwrap()
        .truncated(edits);
    let mut doc = Automerge::new();
    let text = doc
        .transact(|tx| tx.put_object(ROOT, "body", ObjType::Text))
        .unwrap()
        .result;
    let mut changes = vec![];
    for chunk in t.edits.chunks(100) {
        let mut tx = doc.transaction();
        for Edit(p, d, i) in chunk {
            tx.splice_text(&text, *p, *d as isize, i).unwrap();
        }
        tx.commit();
        changes.push(doc.get_last_local_change().unwrap().clone());
    }
    let first = doc.get_changes(&[])[0].clone();
    for batch in [1usize, 4, 16, 64] {
        let mut other = Automerge::new();
        other.apply_changes([first.clone()]).unwrap();
        let s = Instant::now();
        for c in changes.chunks(batch) {
            other.apply_changes(c.to_vec()).unwrap();
        }
        println!("batch {batch}: {:.2} s", s.elapsed().as_secs_f64());
    }
}
