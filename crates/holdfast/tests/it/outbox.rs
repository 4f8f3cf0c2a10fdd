//! The outbox and sync states, driven the way the sync worker will drive them.

use holdfast::SyncState;

use crate::util::{notes_with_priority, open, space};

#[test]
fn entries_flow_from_queued_to_synced() {
    let s = open();
    let ids = notes_with_priority(&s, 5);
    assert!(ids
        .iter()
        .all(|id| s.sync_state(*id).unwrap() == SyncState::Queued));
    let summary = s.sync_summary().unwrap();
    assert_eq!(
        (summary.pending, summary.failed, summary.last_synced_ms),
        (5, 0, None)
    );

    let listed = s.outbox().list(None, 100).unwrap();
    assert_eq!(
        listed.iter().map(|e| e.record).collect::<Vec<_>>(),
        ids,
        "outbox is in write order"
    );
    assert!(listed.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(listed
        .iter()
        .all(|e| e.change_hashes.len() == 1 && e.bytes > 0));

    let batch = s.outbox().take_batch(3, u64::MAX).unwrap();
    assert_eq!(batch.len(), 3);
    assert!(batch
        .iter()
        .all(|p| p.entry.attempts == 1 && !p.changes.is_empty()));
    assert_eq!(s.sync_state(ids[0]).unwrap(), SyncState::Syncing);
    assert_eq!(s.sync_summary().unwrap().sending, 3);
    // The change bytes are real Automerge changes with the listed hashes.
    let change = automerge::Change::try_from(batch[0].changes[0].as_slice()).unwrap();
    assert_eq!(change.hash().0, batch[0].entry.change_hashes[0]);

    let acks: Vec<_> = batch
        .iter()
        .enumerate()
        .map(|(i, p)| (p.entry.seq, i as u64 + 1))
        .collect();
    s.outbox().mark_acked(&acks).unwrap();
    assert_eq!(s.sync_state(ids[0]).unwrap(), SyncState::Synced);
    assert_eq!(s.sync_state(ids[3]).unwrap(), SyncState::Queued);
    let summary = s.sync_summary().unwrap();
    assert_eq!(summary.pending, 2);
    assert!(summary.last_synced_ms.is_some());

    // The next batch starts where the last one ended.
    let rest = s.outbox().take_batch(10, u64::MAX).unwrap();
    assert_eq!(
        rest.iter().map(|p| p.entry.record).collect::<Vec<_>>(),
        ids[3..].to_vec()
    );
}

#[test]
fn batches_respect_the_byte_bound_but_always_make_progress() {
    let s = open();
    let id = s.write(|tx| tx.create("note", &space("t"))).unwrap();
    s.write(|tx| tx.splice_text(id, "body", 0, 0, &"x".repeat(10_000)))
        .unwrap();
    let batch = s.outbox().take_batch(100, 10).unwrap();
    assert_eq!(batch.len(), 1, "one oversized entry still goes out alone");
    let next = s.outbox().take_batch(100, 10).unwrap();
    assert_eq!(next.len(), 1);
    assert!(next[0].entry.bytes > 10);
}

#[test]
fn failures_retry_or_wait_for_the_user() {
    let s = open();
    let a = s.write(|tx| tx.create("note", &space("t"))).unwrap();
    let b = s.write(|tx| tx.create("note", &space("locked"))).unwrap();
    let batch = s.outbox().take_batch(10, u64::MAX).unwrap();
    s.outbox()
        .mark_failed(
            batch[0].entry.seq,
            "Sync server unavailable, retrying in 30 s",
            false,
        )
        .unwrap();
    s.outbox()
        .mark_failed(
            batch[1].entry.seq,
            "You no longer have write access to locked",
            true,
        )
        .unwrap();
    assert_eq!(
        s.sync_state(b).unwrap(),
        SyncState::Failed {
            reason: "You no longer have write access to locked".into(),
            permanent: true
        }
    );
    let summary = s.sync_summary().unwrap();
    assert_eq!((summary.failed, summary.failed_permanent), (2, 1));

    // Retryable failures go out again; permanent ones wait.
    let again = s.outbox().take_batch(10, u64::MAX).unwrap();
    assert_eq!(
        again.iter().map(|p| p.entry.record).collect::<Vec<_>>(),
        vec![a]
    );
    assert_eq!(again[0].entry.attempts, 2);
    assert!(s.outbox().take_batch(10, u64::MAX).unwrap().is_empty());

    // "Retry now" puts the permanent one back.
    assert_eq!(s.outbox().retry_failed().unwrap(), 1);
    let retried = s.outbox().take_batch(10, u64::MAX).unwrap();
    assert_eq!(
        retried.iter().map(|p| p.entry.record).collect::<Vec<_>>(),
        vec![b]
    );

    // Discarding stops sending but keeps the data.
    let seq = retried[0].entry.seq;
    assert_eq!(s.outbox().discard(seq).unwrap(), [seq]);
    assert_eq!(s.sync_state(b).unwrap(), SyncState::Synced);
    assert!(s.exists(b).unwrap());
}

#[test]
fn sending_entries_are_requeued_after_a_restart_or_disconnect() {
    let s = open();
    for _ in 0..3 {
        s.write(|tx| tx.create("note", &space("t")).map(drop))
            .unwrap();
    }
    let batch = s.outbox().take_batch(2, u64::MAX).unwrap();
    assert_eq!(batch.len(), 2);
    assert_eq!(s.outbox().requeue_sending().unwrap(), 2);
    assert_eq!(s.sync_summary().unwrap().sending, 0);

    s.outbox().take_batch(2, u64::MAX).unwrap();
    let s = s.reopen();
    let summary = s.sync_summary().unwrap();
    assert_eq!((summary.pending, summary.sending), (3, 0));
    let all = s.outbox().take_batch(10, u64::MAX).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].entry.attempts, 3, "attempts survive the restart");
}

#[test]
fn a_large_outbox_drains_in_order_exactly_once_across_a_disconnect() {
    let s = open();
    for _ in 0..40 {
        s.write(|tx| {
            for _ in 0..50 {
                tx.create("note", &space("t"))?;
            }
            Ok(())
        })
        .unwrap();
    }
    let total = s.sync_summary().unwrap().pending;
    assert_eq!(total, 2000);
    let mut acked = Vec::new();
    let mut round = 0;
    loop {
        let batch = s.outbox().take_batch(64, u64::MAX).unwrap();
        if batch.is_empty() {
            break;
        }
        round += 1;
        if round == 7 {
            // The connection drops with this batch in flight: it goes back to the queue.
            assert_eq!(s.outbox().requeue_sending().unwrap(), batch.len());
            continue;
        }
        let seqs: Vec<(u64, u64)> = batch.iter().map(|p| (p.entry.seq, 0)).collect();
        s.outbox().mark_acked(&seqs).unwrap();
        acked.extend(seqs.into_iter().map(|(seq, _)| seq));
    }
    assert_eq!(acked.len(), 2000);
    assert!(
        acked.windows(2).all(|w| w[0] < w[1]),
        "sent in outbox order, each once"
    );
    let summary = s.sync_summary().unwrap();
    assert_eq!((summary.pending, summary.failed), (0, 0));
    assert!(s.outbox().list(None, 10).unwrap().is_empty());
}
