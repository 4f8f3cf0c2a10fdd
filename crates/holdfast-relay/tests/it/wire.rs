//! The real binary over the wire, the ways devices really use it: retries, dependencies out
//! of order, partial rejections, deterministic pulls, tombstones, bootstrap pages, repair,
//! resync and a crash between push and pull.

use std::collections::{BTreeMap, BTreeSet};
use std::slice;

use automerge::sync::{self, SyncDoc};
use automerge::transaction::CommitOptions;
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, Automerge, Change, ChangeHash, ReadDoc, ROOT};
use holdfast_protocol::{
    BootstrapFrom, ChangeEntry, Cursor, Frame, Outcome, PushEntry, RecordId, RecordState,
    RejectCode, SpaceId,
};

use crate::harness::{within, Peer, Relay};
use crate::{duplicate, entry, seed, space, stored, Doc, Rng};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_retried_twenty_times_is_stored_once_and_every_repeat_is_acked_alike() {
    let relay = Relay::start(&[]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut device, epoch) = relay.device(&token, &[]).await;
    let mut doc = Doc::new();
    let batch: Vec<PushEntry> = (0..3)
        .map(|_| entry(&team, doc.record, vec![doc.change()]))
        .collect();

    let (first, _) = device.push(&batch).await;
    assert_eq!(first, [stored(1), stored(2), stored(3)]);
    let repeat = [duplicate(1), duplicate(2), duplicate(3)];
    let mut acks = Vec::new();
    for _ in 1..20 {
        let (outcomes, bytes) = device.push(&batch).await;
        assert_eq!(outcomes, repeat);
        acks.push(bytes);
    }
    // The device lost its connection each time the ack was on its way.
    for _ in 0..20 {
        let (mut fresh, fresh_epoch) = relay.device(&token, &[]).await;
        assert_eq!(fresh_epoch, epoch);
        let (outcomes, bytes) = fresh.push(&batch).await;
        assert_eq!(outcomes, repeat);
        acks.push(bytes);
    }
    assert_eq!(acks.len(), 39);
    assert!(
        acks.iter().all(|ack| *ack == acks[0]),
        "every repeat is answered with the same bytes"
    );

    let log = device.pull_all(&team, Cursor::start(epoch)).await;
    assert_eq!(log, change_entries(&batch, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_pushed_before_its_parent_waits_and_an_orphan_stays_retryable() {
    let relay = Relay::start(&[]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut device, epoch) = relay.device(&token, &[]).await;

    let mut doc = Doc::new();
    let parent = entry(&team, doc.record, vec![doc.change()]);
    let child = entry(&team, doc.record, vec![doc.change()]);
    let (outcomes, _) = device.push(&[child.clone(), parent.clone()]).await;
    assert_missing(&outcomes[0], &parent.changes[0]);
    assert_eq!(outcomes[1], stored(1));
    // The rejection was not remembered: the resend is decided again, and stored.
    assert_eq!(device.push(slice::from_ref(&child)).await.0, [stored(2)]);
    assert_eq!(device.push(slice::from_ref(&child)).await.0, [duplicate(2)]);

    // A change whose parent never reaches the relay is refused as retryable every time.
    let mut lost = Doc::new();
    let never_sent = lost.change();
    let orphan = entry(&team, lost.record, vec![lost.change()]);
    for _ in 0..3 {
        let (outcomes, _) = device.push(slice::from_ref(&orphan)).await;
        assert_missing(&outcomes[0], &never_sent);
    }

    let log = device.pull_all(&team, Cursor::start(epoch)).await;
    assert_eq!(log, change_entries(&[parent, child], 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_a_read_only_space_is_refused_alone_and_in_plain_words() {
    let relay = Relay::start(&[]).await;
    let (a, b) = (space("a"), space("b"));
    let token = relay.token(&["a:write", "b:read"]).await;
    let (mut device, epoch) = relay.device(&token, &[]).await;

    let (mut in_a, mut in_b) = (Doc::new(), Doc::new());
    let first = entry(&a, in_a.record, vec![in_a.change()]);
    let refused = entry(&b, in_b.record, vec![in_b.change()]);
    let second = entry(&a, in_a.record, vec![in_a.change()]);
    let (outcomes, _) = device.push(&[first.clone(), refused, second.clone()]).await;
    let forbidden = Outcome::Rejected {
        code: RejectCode::Forbidden { space: b.clone() },
        reason: "You no longer have write access to b".into(),
        permanent: true,
    };
    assert_eq!(outcomes, [stored(1), forbidden, stored(2)]);

    let log = device.pull_all(&a, Cursor::start(epoch)).await;
    assert_eq!(log, change_entries(&[first, second], 1));
    assert_eq!(device.pull_all(&b, Cursor::start(epoch)).await, []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_cursor_is_answered_with_the_same_bytes_on_every_connection() {
    let relay = Relay::start(&[]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut first, epoch) = relay.device(&token, &[]).await;
    let (mut second, _) = relay.device(&token, &[]).await;

    let mut docs = [Doc::new(), Doc::new(), Doc::new()];
    let mut pushed = Vec::new();
    for round in 0..4 {
        for doc in &mut docs {
            let change = if round == 2 {
                // Large and repetitive: the answers holding it are compressed.
                doc.change_with_bytes(vec![b'x'; 4096])
            } else {
                doc.change()
            };
            pushed.push(entry(&team, doc.record, vec![change]));
        }
    }
    let (outcomes, _) = first.push(&pushed).await;
    assert_eq!(outcomes, (1..=12).map(stored).collect::<Vec<_>>());

    let mut compressed = false;
    for seq in [0, 5, 11, 12] {
        for max_bytes in [1, 4096, 1 << 20] {
            let cursor = Cursor { epoch, seq };
            let (frame, bytes) = first.pull(&team, cursor, max_bytes).await;
            let Frame::Changes { entries, .. } = &frame else {
                panic!("expected changes, got {frame:?}")
            };
            assert_eq!(
                entries.first().map(|e| e.seq),
                (seq < 12).then_some(seq + 1)
            );
            assert_eq!(first.pull(&team, cursor, max_bytes).await.1, bytes);
            assert_eq!(second.pull(&team, cursor, max_bytes).await.1, bytes);
            compressed |= bytes[1] & 1 == 1;
        }
    }
    assert!(compressed, "some answers went through zstd");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_record_is_bootstrapped_with_its_tombstone() {
    let relay = Relay::start(&[]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut device, epoch) = relay.device(&token, &[]).await;
    let mut doc = Doc::new();
    let created = doc.change();
    doc.doc.put(ROOT, "_state", "deleted:x").unwrap();
    doc.doc.commit();
    let deleted = doc
        .doc
        .get_last_local_change()
        .unwrap()
        .raw_bytes()
        .to_vec();
    let entries = [
        entry(&team, doc.record, vec![created]),
        entry(&team, doc.record, vec![deleted]),
    ];
    assert_eq!(device.push(&entries).await.0, [stored(1), stored(2)]);

    let (mut fresh, _) = relay.device(&token, &[&team]).await;
    let (records, base, next) = bootstrap(&mut fresh, &team, None, 1 << 20).await;
    assert_eq!((base, next), (Cursor { epoch, seq: 2 }, None));
    let [state] = &records[..] else {
        panic!("expected one record, got {records:?}")
    };
    assert_eq!(state.record, doc.record);
    let loaded = load(state);
    let (value, _) = loaded.get(ROOT, "_state").unwrap().expect("a _state key");
    assert_eq!(value.as_str(), Some("deleted:x"));
    assert_eq!(sorted(loaded.get_heads()), sorted(doc.doc.get_heads()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_pages_hold_every_record_once_and_the_pull_from_base_the_rest() {
    let relay = Relay::start(&[]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut device, epoch) = relay.device(&token, &[]).await;

    let mut rng = Rng(seed());
    let mut docs: Vec<Doc> = (0..40).map(|_| Doc::new()).collect();
    let counts: Vec<u64> = docs.iter().map(|_| 1 + rng.below(4)).collect();
    let mut seq = 0;
    for round in 0..4 {
        let batch: Vec<PushEntry> = docs
            .iter_mut()
            .zip(&counts)
            .filter(|(_, &count)| count > round)
            .map(|(doc, _)| entry(&team, doc.record, vec![doc.change()]))
            .collect();
        let (outcomes, _) = device.push(&batch).await;
        let expected: Vec<Outcome> = (seq + 1..=seq + batch.len() as u64).map(stored).collect();
        assert_eq!(outcomes, expected);
        seq += batch.len() as u64;
    }

    let max_bytes = 1024;
    let (first, base, mut next) = bootstrap(&mut device, &team, None, max_bytes).await;
    assert_eq!(base, Cursor { epoch, seq });
    let mut pages = vec![first];

    // Pushed between pages: a change of the record that sorts last, and a new record.
    docs.sort_by_key(|doc| doc.record);
    let last = docs.last_mut().unwrap();
    assert!(pages[0].iter().all(|state| state.record != last.record));
    let mut created = Doc::new();
    let during = [
        entry(&team, last.record, vec![last.change()]),
        entry(&team, created.record, vec![created.change()]),
    ];
    let (outcomes, _) = device.push(&during).await;
    assert_eq!(outcomes, [stored(seq + 1), stored(seq + 2)]);
    docs.push(created);

    while let Some(after) = next {
        let from = BootstrapFrom { base, after };
        let (records, page_base, page_next) =
            bootstrap(&mut device, &team, Some(from), max_bytes).await;
        assert_eq!(page_base, base, "every page keeps the first page's base");
        assert!(records.iter().all(|state| state.record > after));
        pages.push(records);
        next = page_next;
    }
    eprintln!("{} records in {} pages", docs.len(), pages.len());
    assert!(pages.len() >= 3, "{} pages", pages.len());

    let mut states: BTreeMap<RecordId, Automerge> = BTreeMap::new();
    for state in pages.iter().flatten() {
        let fresh = states.insert(state.record, load(state)).is_none();
        assert!(fresh, "record {} sent twice", state.record);
    }
    // The record that sorts last and the new one were on pages read after the push.
    assert_eq!(states.len(), docs.len());
    for doc in &mut docs {
        let state = &states[&doc.record];
        assert_eq!(sorted(state.get_heads()), sorted(doc.doc.get_heads()));
    }

    let log = device.pull_all(&team, base).await;
    assert_eq!(log, change_entries(&during, seq + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_brings_the_relay_what_only_the_device_held_and_nothing_from_a_reader() {
    let relay = Relay::start(&[]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut device, epoch) = relay.device(&token, &[]).await;

    // The relay has the first two changes; the device made two more it never pushed.
    let mut doc = Fixed::new(1);
    let pushed: Vec<PushEntry> = ["a", "b"]
        .map(|key| entry(&team, doc.record, vec![doc.change(key)]))
        .into();
    assert_eq!(device.push(&pushed).await.0, [stored(1), stored(2)]);
    let local = ["c", "d"].map(|key| hash(&doc.change(key)));
    let (mut subscriber, _) = relay.device(&token, &[&team]).await;

    sync_with_relay(&mut device, &team, &mut doc).await;

    let log = device.pull_all(&team, Cursor::start(epoch)).await;
    assert_eq!(held(&log), doc.hashes());
    let live = within("the repaired changes live", async {
        let mut live = Vec::new();
        while held(&live).len() < local.len() {
            match subscriber
                .frame_where(|f| matches!(f, Frame::Changes { .. }))
                .await
            {
                Frame::Changes { entries, .. } => live.extend(entries),
                _ => unreachable!(),
            }
        }
        live
    })
    .await;
    assert_eq!(held(&live), BTreeSet::from(local));
    assert_eq!(live, log[2..]);

    // A reader's device made a change. The relay answers its sync message, which brings
    // that change (the device lacks another writer's change, so there is an answer),
    // but stores nothing of it.
    let reader_token = relay.token(&["team:read"]).await;
    let (mut reader, _) = relay.device(&reader_token, &[]).await;
    let mut theirs = doc.fork(2);
    let mine = theirs.change("reader");
    let other = doc.change("writer");
    let other_entry = entry(&team, doc.record, vec![other.clone()]);
    let seq = log.last().unwrap().seq + 1;
    assert_eq!(device.push(&[other_entry]).await.0, [stored(seq)]);
    let message = carrying_own_changes(&mut theirs.doc, &log);
    let brought: Vec<ChangeHash> = message.changes.iter().map(hash).collect();
    assert_eq!(brought, [hash(&mine)]);
    let reply = repair(&mut reader, &team, doc.record, message).await;
    let sent: Vec<ChangeHash> = reply.changes.iter().map(hash).collect();
    assert_eq!(sent, [hash(&other)]);

    let after = device.pull_all(&team, Cursor::start(epoch)).await;
    assert_eq!(
        after.len() as u64,
        seq,
        "nothing stored after the writer's change"
    );
    assert!(
        !held(&after).contains(&hash(&mine)),
        "a reader's change was stored"
    );

    // Once the reader lacks nothing the relay holds, the relay says it has nothing more
    // to say with an empty message, so the device need not wait for a silence.
    let from_writer = automerge::Change::from_bytes(other.clone()).unwrap();
    theirs.doc.apply_changes([from_writer]).unwrap();
    let message = theirs
        .doc
        .sync()
        .generate_sync_message(&mut sync::State::new());
    let frame = Frame::Repair {
        space: team.clone(),
        record: doc.record,
        message: message.unwrap().encode(),
    };
    reader.send(&frame).await;
    match reader
        .frame_where(|f| matches!(f, Frame::Repair { .. }))
        .await
    {
        Frame::Repair { message, .. } => assert!(message.is_empty(), "{message:?}"),
        _ => unreachable!(),
    }
}

/// A sync message tells which changes its sender holds with a Bloom filter, which has false
/// positives (about 1 in 100 per change). Here the filter of the two changes the relay
/// holds happens to match the device's third change and not its fourth, so the device
/// sends only the fourth. A peer with sync state queues it until it has asked for and got
/// the third, then applies both (4 rounds); the relay must converge too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_converges_when_a_bloom_filter_false_positive_hides_a_change() {
    let relay = Relay::start(&[]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut device, epoch) = relay.device(&token, &[]).await;
    let mut doc = Fixed::at(1, FALSE_POSITIVE_TIME);
    let held_by_relay = ["a", "b"].map(|key| hash(&doc.change(key)));
    let pushed: Vec<PushEntry> = doc
        .doc
        .get_changes(&[])
        .iter()
        .map(|c| entry(&team, doc.record, vec![c.raw_bytes().to_vec()]))
        .collect();
    assert_eq!(device.push(&pushed).await.0, [stored(1), stored(2)]);
    let [third, fourth] = ["c", "d"].map(|key| hash(&doc.change(key)));
    let bloom = sync::BloomFilter::from_hashes(held_by_relay.iter());
    assert!(
        bloom.contains_hash(&third) && !bloom.contains_hash(&fourth),
        "the case: the relay's filter matches the third change only"
    );

    sync_with_relay(&mut device, &team, &mut doc).await;
    let log = device.pull_all(&team, Cursor::start(epoch)).await;
    assert_eq!(held(&log), doc.hashes());
}

/// A time at which the third change of `Fixed::at(1, time)` is a false positive of a Bloom
/// filter of its first two, and the fourth is not: the first such time from 0.
const FALSE_POSITIVE_TIME: i64 = 71;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_the_relay_cannot_vouch_for_is_answered_with_resync_and_the_connection_stays() {
    let relay = Relay::start(&[]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut device, epoch) = relay.device(&token, &[]).await;
    let mut doc = Doc::new();
    let first = entry(&team, doc.record, vec![doc.change()]);
    assert_eq!(device.push(&[first]).await.0, [stored(1)]);

    let resync = Frame::Resync {
        space: team.clone(),
        epoch,
    };
    let other_epoch = Cursor {
        epoch: epoch.wrapping_add(1),
        seq: 1,
    };
    assert_eq!(device.pull(&team, other_epoch, 1 << 20).await.0, resync);
    let beyond_the_end = Cursor { epoch, seq: 2 };
    assert_eq!(device.pull(&team, beyond_the_end, 1 << 20).await.0, resync);

    let second = entry(&team, doc.record, vec![doc.change()]);
    assert_eq!(device.push(&[second]).await.0, [stored(2)]);
    assert_eq!(device.pull_all(&team, Cursor::start(epoch)).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_acked_before_a_kill_9_are_pulled_after_the_restart() {
    let relay = Relay::start(&[]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut device, epoch) = relay.device(&token, &[]).await;
    let (mut one, mut two) = (Doc::new(), Doc::new());
    let mut acked = Vec::new();
    for n in 1..=5 {
        let doc = if n % 2 == 0 { &mut one } else { &mut two };
        let pushed = entry(&team, doc.record, vec![doc.change()]);
        assert_eq!(device.push(slice::from_ref(&pushed)).await.0, [stored(n)]);
        acked.push(pushed);
    }

    let relay = relay.crash_and_restart(&[]).await;
    let (mut device, restarted_epoch) = relay.device(&token, &[]).await;
    assert_eq!(restarted_epoch, epoch);
    let log = device.pull_all(&team, Cursor::start(epoch)).await;
    assert_eq!(log, change_entries(&acked, 1));
    // The relay goes on where it stopped and still knows every event id.
    assert_eq!(device.push(&acked[2..3]).await.0, [duplicate(3)]);
    let next = entry(&team, one.record, vec![one.change()]);
    assert_eq!(device.push(&[next]).await.0, [stored(6)]);
}

/// The log entries `entries` become when stored in order from `seq`.
fn change_entries(entries: &[PushEntry], seq: u64) -> Vec<ChangeEntry> {
    entries
        .iter()
        .zip(seq..)
        .map(|(e, seq)| ChangeEntry {
            seq,
            record: e.record,
            event_id: e.event_id,
            changes: e.changes.clone(),
        })
        .collect()
}

/// Checks a retryable `MissingDependencies` rejection naming the missing change.
fn assert_missing(outcome: &Outcome, missing: &[u8]) {
    let Outcome::Rejected {
        code: RejectCode::MissingDependencies,
        reason,
        permanent: false,
    } = outcome
    else {
        panic!("expected a retryable MissingDependencies, got {outcome:?}")
    };
    let prefix = &hash(missing).to_string()[..12];
    assert!(reason.contains(prefix), "{reason:?} names {prefix}");
}

/// Sends `Bootstrap` and returns the `Snapshot`'s records, base and next.
async fn bootstrap(
    peer: &mut Peer,
    space: &SpaceId,
    from: Option<BootstrapFrom>,
    max_bytes: u64,
) -> (Vec<RecordState>, Cursor, Option<RecordId>) {
    let ask = Frame::Bootstrap {
        space: space.clone(),
        from,
        max_bytes,
    };
    peer.send(&ask).await;
    match peer
        .frame_where(|f| matches!(f, Frame::Snapshot { .. }))
        .await
    {
        Frame::Snapshot {
            space: got,
            records,
            base,
            next,
        } => {
            assert_eq!(&got, space);
            (records, base, next)
        }
        _ => unreachable!(),
    }
}

/// Runs the Automerge sync protocol for `doc` with the relay, the device keeping its own
/// state and sending its next message once the relay answered the last, until it has
/// nothing more to send; checks the relay then has the device's heads.
async fn sync_with_relay(peer: &mut Peer, space: &SpaceId, doc: &mut Fixed) {
    let mut state = sync::State::new();
    let mut rounds = 0;
    loop {
        let Some(message) = doc.doc.sync().generate_sync_message(&mut state) else {
            break;
        };
        rounds += 1;
        assert!(
            rounds <= SYNC_ROUNDS_MAX,
            "the sync does not converge: after {SYNC_ROUNDS_MAX} rounds the relay has heads \
             {:?}, the device {:?}",
            state.their_heads,
            doc.doc.get_heads()
        );
        let reply = repair(peer, space, doc.record, message).await;
        doc.doc
            .sync()
            .receive_sync_message(&mut state, reply)
            .unwrap();
    }
    assert_eq!(state.their_heads, Some(doc.doc.get_heads()));
}

/// Rounds a repair of a few changes takes at most: two peers with state converge in 4.
const SYNC_ROUNDS_MAX: usize = 8;

/// Sends one sync message of `record` and returns the relay's reply.
async fn repair(
    peer: &mut Peer,
    space: &SpaceId,
    record: RecordId,
    message: sync::Message,
) -> sync::Message {
    let frame = Frame::Repair {
        space: space.clone(),
        record,
        message: message.encode(),
    };
    peer.send(&frame).await;
    let reply = peer
        .frame_where(|f| matches!(f, Frame::Repair { record: r, .. } if *r == record))
        .await;
    let Frame::Repair { message, .. } = reply else {
        unreachable!()
    };
    sync::Message::decode(&message).expect("the relay's sync message decodes")
}

/// The sync message `doc` sends once it has learned what the relay held when `log` was
/// pulled: the one that brings the relay the changes only `doc` holds.
pub(crate) fn carrying_own_changes(doc: &mut AutoCommit, log: &[ChangeEntry]) -> sync::Message {
    let mut relay = Automerge::new();
    relay.apply_changes(changes_of(log)).unwrap();
    let (mut ours, mut theirs) = (sync::State::new(), sync::State::new());
    let first = doc.sync().generate_sync_message(&mut ours).unwrap();
    relay.receive_sync_message(&mut theirs, first).unwrap();
    let answer = relay.generate_sync_message(&mut theirs).unwrap();
    doc.sync().receive_sync_message(&mut ours, answer).unwrap();
    doc.sync().generate_sync_message(&mut ours).unwrap()
}

/// A record's document from a bootstrap state: its saved document, then its changes.
fn load(state: &RecordState) -> Automerge {
    let mut doc = if state.doc.is_empty() {
        Automerge::new()
    } else {
        Automerge::load(&state.doc).expect("a saved document")
    };
    let changes: Vec<Change> = state
        .changes
        .iter()
        .map(|c| Change::from_bytes(c.clone()).expect("a change"))
        .collect();
    doc.apply_changes(changes).unwrap();
    doc
}

fn changes_of(log: &[ChangeEntry]) -> Vec<Change> {
    log.iter()
        .flat_map(|e| &e.changes)
        .map(|c| Change::from_bytes(c.clone()).expect("a change"))
        .collect()
}

/// The hashes of every change in `log`.
fn held(log: &[ChangeEntry]) -> BTreeSet<ChangeHash> {
    changes_of(log).iter().map(Change::hash).collect()
}

fn hash(change: &[u8]) -> ChangeHash {
    Change::from_bytes(change.to_vec())
        .expect("a change")
        .hash()
}

fn sorted(mut heads: Vec<ChangeHash>) -> Vec<ChangeHash> {
    heads.sort();
    heads
}

/// A record's document whose changes are the same bytes on every run (a fixed record id,
/// actor and time), so the Bloom filters of a sync hold the same bits every run: a false
/// positive cannot make a test flaky.
struct Fixed {
    record: RecordId,
    doc: AutoCommit,
    puts: i64,
    /// The time of every change, in seconds since the Unix epoch.
    time: i64,
}

impl Fixed {
    fn new(id: u8) -> Self {
        Self::at(id, 0)
    }

    /// A record whose changes are all made at `time`.
    fn at(id: u8, time: i64) -> Self {
        let record = RecordId::from_bytes([id; 16]);
        let doc = AutoCommit::new().with_actor(ActorId::from(record.as_bytes().to_vec()));
        Self {
            record,
            doc,
            puts: 0,
            time,
        }
    }

    /// A copy of the document, as another device of actor `actor` holds it.
    fn fork(&mut self, actor: u8) -> Self {
        let doc = self.doc.fork().with_actor(ActorId::from(vec![actor; 16]));
        Self {
            record: self.record,
            doc,
            puts: self.puts,
            time: self.time,
        }
    }

    /// Makes one change setting `key`, and returns its bytes.
    fn change(&mut self, key: &str) -> Vec<u8> {
        self.puts += 1;
        self.doc.put(ROOT, key, self.puts).unwrap();
        self.doc
            .commit_with(CommitOptions::default().with_time(self.time));
        let change = self.doc.get_last_local_change().unwrap();
        change.raw_bytes().to_vec()
    }

    fn hashes(&mut self) -> BTreeSet<ChangeHash> {
        self.doc.get_changes(&[]).iter().map(|c| c.hash()).collect()
    }
}
