//! Times small durable writes in a store at a given directory, with a given number of
//! writer threads (a profiling aid): `write_profile DIR [WRITERS]`.
use std::time::Instant;
fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "/tmp".into());
    let writers: usize = std::env::args()
        .nth(2)
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    let dir = tempfile::tempdir_in(dir).unwrap();
    let store = holdfast_benches::open(&dir.path().join("p.redb"));
    let ids: Vec<_> = (0..100)
        .map(|_| holdfast_benches::create_note(&store))
        .collect();
    let n = 3000 / writers;
    let start = Instant::now();
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let mine: Vec<_> = ids.iter().skip(w).step_by(writers).copied().collect();
            std::thread::spawn(move || {
                for i in 0..n {
                    holdfast_benches::small_edit(&store, mine[i % mine.len()], i as u64);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total = n * writers;
    println!(
        "{writers} writers: {:.0} us/write",
        start.elapsed().as_secs_f64() * 1e6 / total as f64
    );
}
