//! The `store_ops` target: random store operations on a [`SimDisk`] that fails after a
//! chosen number of operations, crashes and loses power; after every reopen the store holds
//! exactly the writes it acknowledged, checked against a plain in-memory model.
//!
//! # The model
//!
//! The model is what the store acknowledged: records (title, body, tags, likes, deleted)
//! and outbox entries (their record and whether they failed). A write that returned `Ok`
//! is in the model; a write that returned an error is not, with one exception: the
//! operation during which the disk failed may have reached the disk whole before the error
//! (the failed operation may be the last sync), so until the next reopen the model also
//! keeps the state that operation would have made, and the reopened store must read as one
//! of the two. Never as a mix: a write is atomic. Operations after the failure cannot reach
//! the disk at all.
//!
//! Every write changes something (new titles, non-empty splices, non-zero increments), so
//! every acknowledged write is exactly one outbox entry.

use std::cell::Cell;
use std::collections::BTreeMap;

use arbitrary::{Result, Unstructured};
use holdfast::{
    Error, Field, RecordId, ScalarType, Schema, SpaceId, Store, StoreConfig, SyncState, Value,
};

use crate::disk::SimDisk;

const COLLECTION: &str = "note";
const TITLE: &str = "title";
const BODY: &str = "body";
const TAGS: &str = "tags";
const LIKES: &str = "likes";

/// Most operations per input.
const STEPS_MAX: usize = 48;
/// Most disk operations before an injected failure.
const FAIL_AFTER_MAX: u64 = 60;

fn schema() -> Schema {
    Schema::new(1).collection(
        COLLECTION,
        [
            (TITLE, Field::lww(ScalarType::String)),
            (BODY, Field::text()),
            (TAGS, Field::list(ScalarType::String)),
            (LIKES, Field::counter()),
        ],
    )
}

fn space() -> SpaceId {
    SpaceId::new("ops").expect("a valid space")
}

/// A record as the model expects it and as it is read back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Note {
    title: Option<String>,
    body: String,
    tags: Vec<String>,
    likes: i64,
    deleted: bool,
}

impl Note {
    /// What can be read of the note: nothing but its deletion once deleted (its fields
    /// come back with a restore).
    fn visible(&self) -> Note {
        if self.deleted {
            Note {
                title: None,
                body: String::new(),
                tags: Vec::new(),
                likes: 0,
                deleted: true,
            }
        } else {
            self.clone()
        }
    }
}

/// An outbox entry's durable state.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    /// Queued (or being sent: that does not outlive a reopen).
    Queued,
    Failed {
        reason: String,
        permanent: bool,
    },
    /// A retryable failure taken again for sending: `Queued` after a reopen, or still
    /// `Failed` after a power loss (taking a batch is not a durable commit).
    Retaken {
        reason: String,
    },
    /// Read back only: listed as failed, blocked behind an earlier entry of its record
    /// that failed for good (whatever its own row holds).
    Blocked,
}

impl Entry {
    /// Whether `seen` can be read back for an entry the model has in this state.
    fn admits(&self, seen: &Entry) -> bool {
        match (self, seen) {
            (
                Entry::Retaken { reason },
                Entry::Failed {
                    reason: r,
                    permanent,
                },
            ) => r == reason && !permanent,
            (Entry::Retaken { .. }, Entry::Queued) => true,
            _ => self == seen,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    notes: BTreeMap<RecordId, Note>,
    /// Outbox entries in order: their seq once known (the failed operation's is not).
    outbox: Vec<(Option<u64>, RecordId, Entry)>,
}

/// What the store holds, read back.
#[derive(Debug)]
struct Seen {
    notes: BTreeMap<RecordId, Note>,
    outbox: Vec<(u64, RecordId, Entry)>,
}

impl Model {
    /// This model with the seqs `seen` gives its entries, if `seen` is exactly this model.
    fn matched(&self, seen: &Seen) -> Option<Model> {
        let visible: BTreeMap<_, _> = self
            .notes
            .iter()
            .map(|(id, n)| (*id, n.visible()))
            .collect();
        if visible != seen.notes || self.outbox.len() != seen.outbox.len() {
            return None;
        }
        let mut out = self.clone();
        let mut stopped = std::collections::HashSet::new();
        for ((seq, record, entry), (seen_seq, seen_record, seen_entry)) in
            out.outbox.iter_mut().zip(&seen.outbox)
        {
            // An entry behind one of its record that failed for good is listed blocked;
            // the model keeps what its row holds.
            let blocked = stopped.contains(record);
            if let Entry::Failed {
                permanent: true, ..
            } = entry
            {
                stopped.insert(*record);
            }
            if seq.is_some_and(|s| s != *seen_seq)
                || record != seen_record
                || (blocked != (*seen_entry == Entry::Blocked))
                || (!blocked && !entry.admits(seen_entry))
            {
                return None;
            }
            *seq = Some(*seen_seq);
            if !blocked {
                *entry = seen_entry.clone();
            }
        }
        Some(out)
    }

    fn push_entry(&mut self, record: RecordId) {
        self.outbox.push((None, record, Entry::Queued));
    }
}

/// One of the target's operations on the store.
#[derive(Debug)]
enum Op {
    Create {
        title: String,
        body: String,
    },
    Title(RecordId, String),
    Splice(RecordId, usize, usize, String),
    Tag(RecordId, usize, String),
    Untag(RecordId, usize),
    Like(RecordId, i64),
    Delete(RecordId),
    Restore(RecordId),
    /// Take a batch of `take` entries and acknowledge the first `ack` of them.
    Ack {
        take: usize,
        ack: usize,
    },
    /// Mark the first queued entry failed.
    Fail {
        permanent: bool,
    },
    RetryFailed,
    RequeueSending,
}

struct Run {
    disk: SimDisk,
    store: Option<Store>,
    model: Model,
    /// The model as it would be had the operation that failed the disk taken effect.
    maybe: Option<Model>,
    /// Distinct values for titles and tags.
    serial: u64,
    reopens: usize,
    /// Counts for the trace: acknowledged writes, failed writes, failed writes found on
    /// disk after the restart, power losses.
    acked: usize,
    failed: usize,
    adopted: usize,
    power_losses: usize,
}

/// Random writes to every field kind, outbox transitions, disk failures after a chosen
/// number of operations, process crashes and power losses; after each reopen, and at the
/// end, the store must hold exactly what it acknowledged.
pub fn store_ops(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let disk = SimDisk::new();
    let store = open(&disk).expect("a store opens on a fresh disk");
    let mut run = Run {
        disk,
        store: Some(store),
        model: Model::default(),
        maybe: None,
        serial: 0,
        reopens: 0,
        acked: 0,
        failed: 0,
        adopted: 0,
        power_losses: 0,
    };
    for _ in 0..STEPS_MAX {
        if u.is_empty() || run.step(&mut u).is_err() {
            break;
        }
    }
    // The end: the process dies and the store is read back once more.
    run.restart(|disk| disk.crash());
    crate::merge::trace(|| {
        format!(
            "store_ops: {} operations acknowledged, {} failed ({} found on disk after the \
             restart), {} restarts ({} power losses)",
            run.acked, run.failed, run.adopted, run.reopens, run.power_losses
        )
    });
}

fn open(disk: &SimDisk) -> holdfast::Result<Store> {
    // An outbox index window of two entries: its refills, and the counts past it, are hit
    // by nearly every operation.
    let config = StoreConfig::new(schema()).outbox_window(2);
    Store::open_with_backend(disk.backend(), config)
}

impl Run {
    fn step(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        match u.int_in_range(0..=15u8)? {
            0..=9 => {
                let op = self.pick(u)?;
                self.apply(op);
            }
            10 | 11 => {
                let op = match u.int_in_range(0..=3u8)? {
                    0 | 1 => Op::Ack {
                        take: u.int_in_range(1..=4)?,
                        ack: u.int_in_range(0..=4)?,
                    },
                    2 => Op::Fail {
                        permanent: u.arbitrary()?,
                    },
                    _ if u.arbitrary()? => Op::RetryFailed,
                    _ => Op::RequeueSending,
                };
                self.apply(op);
            }
            12 | 13 => self.disk.fail_after(u.int_in_range(0..=FAIL_AFTER_MAX)?),
            14 => self.restart(|disk| disk.crash()),
            _ => {
                let mut seed = u.arbitrary::<u64>()?;
                self.power_losses += 1;
                self.restart(move |disk| disk.power_loss(|| splitmix(&mut seed) & 1 == 1));
            }
        }
        Ok(())
    }

    /// A random write on a random record the model knows.
    fn pick(&mut self, u: &mut Unstructured<'_>) -> Result<Op> {
        self.serial += 1;
        let serial = self.serial;
        let ids: Vec<RecordId> = self.model.notes.keys().copied().collect();
        if ids.is_empty() || u.ratio(1, 6)? {
            return Ok(Op::Create {
                title: format!("t{serial}"),
                body: text(u)?,
            });
        }
        let id = *u.choose(&ids)?;
        let note = &self.model.notes[&id];
        if note.deleted {
            return Ok(Op::Restore(id));
        }
        Ok(match u.int_in_range(0..=6u8)? {
            0 => Op::Title(id, format!("t{serial}")),
            1 => {
                let len = note.body.len();
                let pos = u.int_in_range(0..=len)?;
                let delete = u.int_in_range(0..=(len - pos).min(4))?;
                Op::Splice(id, pos, delete, text(u)?)
            }
            2 => Op::Tag(
                id,
                u.int_in_range(0..=note.tags.len())?,
                format!("g{serial}"),
            ),
            3 if !note.tags.is_empty() => Op::Untag(id, u.int_in_range(0..=note.tags.len() - 1)?),
            4 => Op::Like(id, *u.choose(&[-2, -1, 1, 3])?),
            5 if u.ratio(1, 3)? => Op::Delete(id),
            _ => Op::Like(id, 1),
        })
    }

    fn apply(&mut self, op: Op) {
        if self.store.is_none() {
            // The app restarts after its store failed to open.
            self.restart(|disk| disk.crash());
        }
        let Some(store) = &self.store else {
            return;
        };
        let was_failed = self.disk.stats().failed;
        let mut after = self.model.clone();
        let result = do_op(store, &op, &mut after);
        match result {
            Ok(()) if self.disk.stats().failed => {
                // Only an operation with nothing to write succeeds on a failed disk.
                assert_eq!(after, self.model, "{op:?} succeeded on a failed disk");
            }
            Ok(()) => {
                self.model = after;
                self.acked += 1;
            }
            Err(e) => {
                // The disk's own error, also behind a failed commit: never damage or a bug.
                let cause = match &e {
                    Error::CommitFailed(c) => c.cause(),
                    e => e,
                };
                assert!(
                    matches!(cause, Error::Storage(_)),
                    "{op:?} failed with an error that is not the disk's: {e}"
                );
                assert!(
                    self.disk.stats().failed,
                    "{op:?} failed on a working disk: {e}"
                );
                self.failed += 1;
                if !was_failed {
                    self.maybe = Some(after);
                }
            }
        }
    }

    /// Drops the store as a killed process would (no clean-shutdown write), lets `event`
    /// happen to the disk, reopens and checks.
    fn restart(&mut self, event: impl FnOnce(&SimDisk)) {
        self.disk.fail_now();
        self.store = None;
        event(&self.disk);
        self.reopens += 1;
        let store = open(&self.disk).unwrap_or_else(|e| {
            panic!(
                "the store does not reopen on a working disk after restart {}: {e}",
                self.reopens
            )
        });
        let seen = read_back(&store);
        let maybe = self.maybe.take();
        self.model =
            match (
                self.model.matched(&seen),
                maybe.as_ref().and_then(|m| m.matched(&seen)),
            ) {
                (Some(model), _) => model,
                (None, Some(model)) => {
                    self.adopted += 1;
                    model
                }
                (None, None) => panic!(
                "after restart {}, the store holds what it did not acknowledge or lost what it \
                 did\nexpected:\n{}or, with the failed operation:\n{}read:\n{}",
                self.reopens,
                show(&self.model.notes, self.model.outbox.iter().map(|(s, r, e)| (*s, r, e))),
                maybe.as_ref().map_or("(none)\n".into(), |m| show(
                    &m.notes,
                    m.outbox.iter().map(|(s, r, e)| (*s, r, e))
                )),
                show(&seen.notes, seen.outbox.iter().map(|(s, r, e)| (Some(*s), r, e))),
            ),
            };
        // A clean close, the file's integrity, and the store again.
        drop(store);
        let report = Store::check_backend(self.disk.backend()).expect("the check runs");
        assert!(report.is_ok(), "restart {}: {report:?}", self.reopens);
        self.store = Some(open(&self.disk).expect("a checked store reopens"));
    }
}

/// Runs `op` on the store, and on `model` as the store should have it if it succeeds.
fn do_op(store: &Store, op: &Op, model: &mut Model) -> holdfast::Result<()> {
    let before = last_seq(model);
    match op {
        Op::Create { title, body } => {
            // The id is kept as soon as the closure makes it: if the commit fails, the
            // record may still have reached the disk.
            let made = Cell::new(None);
            let result = store.write(|tx| {
                let id = tx.create(COLLECTION, &space())?;
                made.set(Some(id));
                tx.set(id, TITLE, title.as_str())?;
                tx.splice_text(id, BODY, 0, 0, body)?;
                Ok(())
            });
            if let Some(id) = made.get() {
                model_create(model, id, title, body);
            }
            result?;
        }
        Op::Ack { take, ack } => {
            let outbox = store.outbox();
            let batch = outbox.take_batch(*take, u64::MAX)?;
            for p in &batch {
                let taken = model.outbox.iter_mut().find(|e| e.0 == Some(p.entry.seq));
                let Some((_, _, entry)) = taken else {
                    panic!("a batch took entry {} the model does not know", p.entry.seq);
                };
                *entry = match entry {
                    Entry::Failed { reason, permanent } => {
                        assert!(
                            !*permanent,
                            "a batch took permanently failed entry {}",
                            p.entry.seq
                        );
                        Entry::Retaken {
                            reason: reason.clone(),
                        }
                    }
                    Entry::Retaken { reason } => Entry::Retaken {
                        reason: reason.clone(),
                    },
                    Entry::Queued => Entry::Queued,
                    Entry::Blocked => unreachable!("the model keeps rows, never Blocked"),
                };
            }
            let acked: Vec<(u64, u64)> = batch
                .iter()
                .take(*ack)
                .map(|p| (p.entry.seq, p.entry.seq))
                .collect();
            model
                .outbox
                .retain(|(seq, ..)| !acked.iter().any(|a| Some(a.0) == *seq));
            return outbox.mark_acked(&acked);
        }
        Op::Fail { permanent } => {
            let outbox = store.outbox();
            let first = outbox
                .list(None, 64)?
                .into_iter()
                .find(|e| matches!(e.state, SyncState::Queued | SyncState::Syncing));
            let Some(first) = first else {
                return Ok(());
            };
            let reason = format!("refused {}", first.seq);
            for (seq, _, entry) in &mut model.outbox {
                if *seq == Some(first.seq) {
                    *entry = Entry::Failed {
                        reason: reason.clone(),
                        permanent: *permanent,
                    };
                }
            }
            return outbox.mark_failed(first.seq, &reason, *permanent);
        }
        Op::RetryFailed => {
            for (_, _, entry) in &mut model.outbox {
                *entry = Entry::Queued;
            }
            return store.outbox().retry_failed().map(drop);
        }
        Op::RequeueSending => return store.outbox().requeue_sending().map(drop),
        _ => {
            let result = store.update(record_of(op), |tx| write_one(tx, op));
            do_model(op, model);
            result?;
        }
    }
    fill_seq(store, model, before)
}

fn model_create(model: &mut Model, id: RecordId, title: &str, body: &str) {
    model.notes.insert(
        id,
        Note {
            title: Some(title.to_owned()),
            body: body.to_owned(),
            tags: Vec::new(),
            likes: 0,
            deleted: false,
        },
    );
    model.push_entry(id);
}

fn record_of(op: &Op) -> RecordId {
    match op {
        Op::Title(id, _)
        | Op::Splice(id, ..)
        | Op::Tag(id, ..)
        | Op::Untag(id, _)
        | Op::Like(id, _)
        | Op::Delete(id)
        | Op::Restore(id) => *id,
        _ => unreachable!("not a single-record write: {op:?}"),
    }
}

fn write_one(tx: &mut holdfast::Tx<'_>, op: &Op) -> holdfast::Result<()> {
    match op {
        Op::Title(id, t) => tx.set(*id, TITLE, t.as_str()),
        Op::Splice(id, pos, delete, text) => tx.splice_text(*id, BODY, *pos, *delete, text),
        Op::Tag(id, at, tag) => tx.list_insert(*id, TAGS, *at, tag.as_str()),
        Op::Untag(id, at) => tx.list_delete(*id, TAGS, *at),
        Op::Like(id, by) => tx.increment(*id, LIKES, *by),
        Op::Delete(id) => tx.delete(*id),
        Op::Restore(id) => tx.restore(*id),
        _ => unreachable!("not a single-record write: {op:?}"),
    }
}

/// What a single-record write does to the model.
fn do_model(op: &Op, model: &mut Model) {
    let Some(note) = model.notes.get_mut(&record_of(op)) else {
        return;
    };
    match op {
        Op::Title(_, t) => note.title = Some(t.clone()),
        Op::Splice(_, pos, delete, text) => {
            note.body.replace_range(*pos..*pos + *delete, text);
        }
        Op::Tag(_, at, tag) => note.tags.insert(*at, tag.clone()),
        Op::Untag(_, at) => {
            note.tags.remove(*at);
        }
        Op::Like(_, by) => note.likes += by,
        Op::Delete(_) => note.deleted = true,
        Op::Restore(_) => note.deleted = false,
        _ => return,
    }
    model.push_entry(record_of(op));
}

fn last_seq(model: &Model) -> Option<u64> {
    model.outbox.iter().filter_map(|(seq, ..)| *seq).max()
}

/// Gives the model's new entries (without a seq) the seqs the store listed after `before`.
fn fill_seq(store: &Store, model: &mut Model, before: Option<u64>) -> holdfast::Result<()> {
    let listed = store.outbox().list(before, 64)?;
    let unknown = model.outbox.iter_mut().filter(|(seq, ..)| seq.is_none());
    for ((seq, record, _), entry) in unknown.zip(listed.iter().filter(|e| {
        // Entries acknowledged earlier are gone; later ones follow in order.
        before.is_none_or(|b| e.seq > b)
    })) {
        assert_eq!(
            *record, entry.record,
            "outbox entry {} is for another record",
            entry.seq
        );
        *seq = Some(entry.seq);
    }
    Ok(())
}

/// Everything the store holds, as the model sees it.
fn read_back(store: &Store) -> Seen {
    let mut notes = BTreeMap::new();
    for id in store.records_in_space(&space()).expect("records list") {
        if store.is_deleted(id).expect("deletion reads") {
            let deleted = Note {
                deleted: true,
                ..Note::default()
            };
            notes.insert(id, deleted.visible());
            continue;
        }
        let record = store.get(id).expect("a record reads");
        let title = match record.get(TITLE).expect("title reads") {
            Some(Value::String(s)) => Some(s.clone()),
            None => None,
            other => panic!("title reads {other:?}"),
        };
        let tags = record
            .list(TAGS)
            .expect("tags read")
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => panic!("a tag reads {other:?}"),
            })
            .collect();
        notes.insert(
            id,
            Note {
                title,
                body: record.text(BODY).expect("body reads").to_owned(),
                tags,
                likes: record.counter(LIKES).expect("likes read"),
                deleted: false,
            },
        );
    }
    let outbox = store
        .outbox()
        .list(None, usize::MAX)
        .expect("the outbox lists")
        .into_iter()
        .map(|e| {
            let entry = match e.state {
                _ if e.blocked_by.is_some() => Entry::Blocked,
                SyncState::Failed { reason, permanent } => Entry::Failed { reason, permanent },
                SyncState::Queued => Entry::Queued,
                other => panic!("entry {} is {other:?} after a reopen", e.seq),
            };
            (e.seq, e.record, entry)
        })
        .collect();
    Seen { notes, outbox }
}

/// A short non-empty ASCII text.
fn text(u: &mut Unstructured<'_>) -> Result<String> {
    let len = u.int_in_range(1..=6)?;
    (0..len)
        .map(|_| Ok(char::from(b'a' + u.int_in_range(0..=25u8)?)))
        .collect()
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A model or what was read, one line per note and per outbox entry.
fn show<'a>(
    notes: &BTreeMap<RecordId, Note>,
    outbox: impl Iterator<Item = (Option<u64>, &'a RecordId, &'a Entry)>,
) -> String {
    let short = |id: &RecordId| id.to_string()[32..].to_owned();
    let mut out = String::new();
    for (id, n) in notes {
        let n = n.visible();
        out += &format!(
            "  note {}: title {:?} body {:?} tags {:?} likes {} deleted {}\n",
            short(id),
            n.title,
            n.body,
            n.tags,
            n.likes,
            n.deleted
        );
    }
    for (seq, record, entry) in outbox {
        out += &format!("  entry {seq:?}: {} {entry:?}\n", short(record));
    }
    out
}
