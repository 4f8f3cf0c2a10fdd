//! Times small durable writes in a store at a given directory (a scratch profiling aid).
use std::time::Instant;
fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "/tmp".into());
    let dir = tempfile::tempdir_in(dir).unwrap();
    let store = holdfast_benches::open(&dir.path().join("p.redb"));
    let ids: Vec<_> = (0..100)
        .map(|_| holdfast_benches::create_note(&store))
        .collect();
    let n = 3000;
    let start = Instant::now();
    for i in 0..n {
        holdfast_benches::small_edit(&store, ids[i as usize % ids.len()], i);
    }
    println!(
        "{:.0} us/write",
        start.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
