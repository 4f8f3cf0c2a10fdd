//! Concurrent pushers: group commit, durable acks, no gaps or duplicates.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::*;

#[test]
fn concurrent_pushers_all_get_durable_acks_and_the_log_has_no_gaps() {
    let mut rng = Rng(seed());
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let spaces = [space("one"), space("two")];
    const THREADS: usize = 6;
    const PUSHES: usize = 15;
    let plans: Vec<Vec<(usize, usize)>> = (0..THREADS)
        .map(|_| {
            (0..PUSHES)
                .map(|_| (rng.below(2) as usize, 1 + rng.below(4) as usize))
                .collect()
        })
        .collect();
    let threads: Vec<_> = plans
        .into_iter()
        .map(|plan| {
            let store = store.clone();
            let spaces = spaces.clone();
            std::thread::spawn(move || {
                let mut docs = [Doc::new(), Doc::new()];
                let mut acked = Vec::new();
                for (which, n) in plan {
                    let doc = &mut docs[which];
                    let batch: Vec<_> = (0..n)
                        .map(|_| entry(&spaces[which], doc.record, vec![doc.change()]))
                        .collect();
                    // Pushed twice: the repeat must be answered with the same seqs.
                    let first = push(store.as_ref(), batch.clone());
                    let again = push(store.as_ref(), batch.clone());
                    for (a, b) in first.iter().zip(&again) {
                        match (a, b) {
                            (Outcome::Stored { seq }, Outcome::Duplicate { seq: s }) => {
                                assert_eq!(seq, s);
                                acked.push((which, *seq, batch[0].event_id));
                            }
                            other => panic!("unexpected outcomes {other:?}"),
                        }
                    }
                }
                acked
            })
        })
        .collect();
    let acked: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let calls = (THREADS * PUSHES * 2) as u64;
    let commits = store.group_commits();
    eprintln!("{calls} store calls in {commits} group commits");
    assert!(commits >= 1 && commits <= calls);
    // Every ack is on disk after a restart, and each space's log is 1..=n exactly.
    let store = Arc::try_unwrap(store).unwrap();
    drop(store);
    let store = open(dir.path());
    for (i, s) in spaces.iter().enumerate() {
        let log = pull_all(&store, s);
        let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=log.len() as u64).collect::<Vec<_>>(), "no gaps");
        let acked_here: BTreeSet<u64> = acked
            .iter()
            .filter(|(w, _, _)| *w == i)
            .map(|(_, seq, _)| *seq)
            .collect();
        assert_eq!(acked_here.len(), log.len(), "every entry acked once");
        let ids: BTreeSet<_> = log.iter().map(|e| e.event_id).collect();
        assert_eq!(ids.len(), log.len(), "no event stored twice");
    }
    let total: usize = spaces.iter().map(|s| pull_all(&store, s).len()).sum();
    assert_eq!(total, acked.len());
}

#[test]
fn the_same_batch_from_two_threads_at_once_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let s = space("notes");
    let mut doc = Doc::new();
    let batch: Vec<_> = (0..4)
        .map(|_| entry(&s, doc.record, vec![doc.change()]))
        .collect();
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (store, batch, barrier) = (store.clone(), batch.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                push(store.as_ref(), batch)
            })
        })
        .collect();
    let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(store.last_seq(&s).unwrap(), 4);
    let firsts = answers
        .iter()
        .filter(|a| a.iter().all(|o| matches!(o, Outcome::Stored { .. })))
        .count();
    assert_eq!(
        firsts, 1,
        "exactly one pusher stored the batch: {answers:?}"
    );
    for a in &answers {
        let seqs: Vec<u64> = a
            .iter()
            .map(|o| match o {
                Outcome::Stored { seq } | Outcome::Duplicate { seq } => *seq,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
    }
}
