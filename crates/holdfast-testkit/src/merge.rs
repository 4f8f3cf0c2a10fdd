//! The `merge_convergence` target: several real stores edit one record concurrently and
//! exchange change bundles in an arbitrary order, with duplicates; every read is checked
//! against a causal model of who knew which write, built here without Automerge.
//!
//! # The model
//!
//! Every write the target makes is one **event** (one Automerge change). An event's *past*
//! is the set of events its replica knew when it wrote it; a replica's knowledge is a set of
//! events, closed under the past. From that alone:
//!
//! - a counter reads the sum of the increments known;
//! - a list holds, as a set, the elements inserted minus those deleted (every element is
//!   unique, so a delete names one insert);
//! - a scalar's surviving writes are the known writes in no other known write's past: a
//!   `Versioned` field is `Missing` without one, their value when they agree and a conflict
//!   of exactly their values otherwise; an `Lww` field reads one of their values;
//! - text and list order are predicted while their edits form one causal chain (each edit
//!   made knowing every earlier one): then the edits replay in order on a plain `String`
//!   or `Vec`;
//! - an export since a mark carries what the replica learned since that mark, and an
//!   import is accepted whole exactly when every new change's past is in the replica's
//!   knowledge or in the bundle.
//!
//! Writes of a scalar never repeat a value the writer currently sees, and every text
//! splice changes something, so every write is exactly one change (Automerge skips or
//! rewrites a put of a value already there).

use std::cell::RefCell;
use std::collections::BTreeMap;

use arbitrary::{Result, Unstructured};
use holdfast::{
    Candidate, DeviceId, ExportMark, Field, FieldValue, Record, RecordId, Resolution, ScalarType,
    Schema, SpaceId, Store, StoreConfig, Value,
};

const COLLECTION: &str = "card";
const TITLE: &str = "title";
const BODY: &str = "body";
const TAGS: &str = "tags";
const LIKES: &str = "likes";
const STATUS: &str = "status";

/// Most replicas per input.
const REPLICAS_MAX: usize = 5;
/// Most steps (writes and exchanges) per input: the cost of an input is about one durable
/// redb write per step.
const STEPS_MAX: usize = 32;
/// Bundles kept for replaying later (out of order, duplicated).
const POOL_MAX: usize = 6;

/// A set of events (the model has at most 64: the create and one per step).
type Events = u64;

fn bit(e: usize) -> Events {
    1 << e
}

/// What one event did.
#[derive(Clone, Debug)]
enum Op {
    Create,
    Title(String),
    Status(String),
    /// Inserted `text` at `pos` after deleting `delete` characters.
    Splice {
        pos: usize,
        delete: usize,
        text: String,
    },
    Increment(i64),
    ListInsert {
        index: usize,
        value: i64,
    },
    /// Deleted the element at `index`, which held `value`.
    ListDelete {
        index: usize,
        value: i64,
    },
}

#[derive(Clone, Debug)]
struct Event {
    replica: usize,
    past: Events,
    op: Op,
}

/// An order of edits known to be causal, with the state after each.
#[derive(Debug)]
struct Chain<T> {
    /// Each edit of the chain and the content after it.
    steps: Vec<(usize, T)>,
    /// Whether an edit was made without knowing the whole chain (later edits are not in it).
    broken: bool,
}

impl<T: Clone + Default> Chain<T> {
    fn new() -> Self {
        Self {
            steps: Vec::new(),
            broken: false,
        }
    }

    fn events(&self) -> Events {
        self.steps.iter().fold(0, |acc, (e, _)| acc | bit(*e))
    }

    /// The content a replica knowing `known` sees, if predictable: when every edit of this
    /// kind it knows is in the chain (they are then a prefix of it).
    fn predict(&self, known: Events, all_edits: Events) -> Option<T> {
        let known_edits = known & all_edits;
        if known_edits & !self.events() != 0 {
            return None;
        }
        Some(
            self.steps
                .iter()
                .rev()
                .find(|(e, _)| known & bit(*e) != 0)
                .map(|(_, t)| t.clone())
                .unwrap_or_default(),
        )
    }

    /// Records an edit by a writer that knew `past`; `apply` makes the new content from the
    /// chain's last.
    fn extend(&mut self, event: usize, past: Events, apply: impl FnOnce(&mut T)) {
        if self.broken || past & self.events() != self.events() {
            self.broken = true;
            return;
        }
        let mut next = self
            .steps
            .last()
            .map(|(_, t)| t.clone())
            .unwrap_or_default();
        apply(&mut next);
        self.steps.push((event, next));
    }
}

struct Model {
    events: Vec<Event>,
    known: Vec<Events>,
    devices: Vec<DeviceId>,
    text: Chain<String>,
    list: Chain<Vec<i64>>,
}

impl Model {
    fn events_where(&self, f: impl Fn(&Op) -> bool) -> Events {
        self.events
            .iter()
            .enumerate()
            .filter(|(_, e)| f(&e.op))
            .fold(0, |acc, (i, _)| acc | bit(i))
    }

    /// The known writes of a scalar in no other known write's past, as (value, writer).
    fn surviving(&self, known: Events, field: &str) -> Vec<(String, usize)> {
        let writes = self.events_where(|op| match op {
            Op::Title(_) => field == TITLE,
            Op::Status(_) => field == STATUS,
            _ => false,
        }) & known;
        let superseded = (0..self.events.len())
            .filter(|&e| writes & bit(e) != 0)
            .fold(0, |acc, e| acc | self.events[e].past);
        let mut out: Vec<(String, usize)> = (0..self.events.len())
            .filter(|&e| writes & bit(e) != 0 && superseded & bit(e) == 0)
            .map(|e| match &self.events[e].op {
                Op::Title(v) | Op::Status(v) => (v.clone(), self.events[e].replica),
                _ => unreachable!("a scalar write"),
            })
            .collect();
        out.sort();
        out
    }

    fn counter(&self, known: Events) -> i64 {
        self.events
            .iter()
            .enumerate()
            .filter(|(i, _)| known & bit(*i) != 0)
            .map(|(_, e)| match e.op {
                Op::Increment(by) => by,
                _ => 0,
            })
            .sum()
    }

    /// The list's elements as a sorted set: inserted and not deleted.
    fn list_set(&self, known: Events) -> Vec<i64> {
        let mut inserted = Vec::new();
        let mut deleted = Vec::new();
        for (i, e) in self.events.iter().enumerate() {
            if known & bit(i) == 0 {
                continue;
            }
            match e.op {
                Op::ListInsert { value, .. } => inserted.push(value),
                Op::ListDelete { value, .. } => deleted.push(value),
                _ => {}
            }
        }
        inserted.retain(|v| !deleted.contains(v));
        inserted.sort();
        inserted
    }

    /// Every character inserted into the text, counted.
    fn inserted_chars(&self) -> BTreeMap<char, usize> {
        let mut out = BTreeMap::new();
        for e in &self.events {
            if let Op::Splice { text, .. } = &e.op {
                for c in text.chars() {
                    *out.entry(c).or_default() += 1;
                }
            }
        }
        out
    }

    /// Checks what replica `r` reads against what it knows.
    fn check(&self, r: usize, record: &Record, when: &str) {
        let known = self.known[r];
        let field = |name: &str| {
            record
                .fields
                .get(name)
                .unwrap_or_else(|| panic!("{when}: replica {r} has no field {name}"))
        };
        let ctx = || format!("{when}: replica {r} knowing events {known:#b}");

        // Counter: the sum of the increments known.
        let counter = match field(LIKES) {
            FieldValue::Counter(c) => *c,
            FieldValue::Missing => 0,
            other => panic!("{}: counter reads {other:?}", ctx()),
        };
        assert_eq!(
            counter,
            self.counter(known),
            "{}: the counter is not the sum of the increments",
            ctx()
        );

        // List: as a set, inserted minus deleted; in order while its edits form a chain.
        let items: Vec<i64> = match field(TAGS) {
            FieldValue::List(items) => items
                .iter()
                .map(|v| v.as_i64().expect("an i64 element"))
                .collect(),
            FieldValue::Missing => Vec::new(),
            other => panic!("{}: list reads {other:?}", ctx()),
        };
        let mut set = items.clone();
        set.sort();
        assert_eq!(
            set,
            self.list_set(known),
            "{}: the list {items:?} does not hold the elements inserted and not deleted",
            ctx()
        );
        let list_edits =
            self.events_where(|op| matches!(op, Op::ListInsert { .. } | Op::ListDelete { .. }));
        if let Some(expected) = self.list.predict(known, list_edits) {
            assert_eq!(
                items,
                expected,
                "{}: the list differs from its edits replayed in order",
                ctx()
            );
        }

        // Text: its edits replayed in order while they form a chain.
        let text = match field(BODY) {
            FieldValue::Text(t) => t.clone(),
            FieldValue::Missing => String::new(),
            other => panic!("{}: text reads {other:?}", ctx()),
        };
        let text_edits = self.events_where(|op| matches!(op, Op::Splice { .. }));
        if let Some(expected) = self.text.predict(known, text_edits) {
            assert_eq!(
                text,
                expected,
                "{}: the text differs from its edits replayed in order",
                ctx()
            );
        }
        let inserted = self.inserted_chars();
        let mut seen: BTreeMap<char, usize> = BTreeMap::new();
        for c in text.chars() {
            *seen.entry(c).or_default() += 1;
        }
        for (c, n) in seen {
            assert!(
                n <= inserted.get(&c).copied().unwrap_or(0),
                "{}: the text {text:?} holds {n} {c:?} but fewer were ever inserted",
                ctx()
            );
        }

        // Versioned: the surviving writes' value, or a conflict of exactly their values.
        let surviving = self.surviving(known, STATUS);
        match field(STATUS) {
            FieldValue::Missing => assert!(
                surviving.is_empty(),
                "{}: status is missing but {surviving:?} survive",
                ctx()
            ),
            FieldValue::Value(v) => {
                let v = v.as_str().expect("a string status");
                assert!(
                    !surviving.is_empty() && surviving.iter().all(|(s, _)| s == v),
                    "{}: status reads {v:?} but the surviving writes are {surviving:?}",
                    ctx()
                );
            }
            FieldValue::Conflict(candidates) => {
                let mut got: Vec<(String, Option<DeviceId>)> = candidates
                    .iter()
                    .map(|c| (c.value.as_str().expect("a string").to_owned(), c.device))
                    .collect();
                got.sort();
                let mut want: Vec<(String, Option<DeviceId>)> = surviving
                    .iter()
                    .map(|(v, w)| (v.clone(), Some(self.devices[*w])))
                    .collect();
                want.sort();
                assert!(
                    want.iter().any(|(v, _)| *v != want[0].0),
                    "{}: status is a conflict {candidates:?} but the surviving writes {surviving:?} agree",
                    ctx()
                );
                assert_eq!(
                    got,
                    want,
                    "{}: the conflict's candidates are not the surviving writes",
                    ctx()
                );
                for c in candidates {
                    assert_eq!(
                        c.mine,
                        c.device == Some(self.devices[r]),
                        "{}: candidate {c:?} says wrongly whether it is mine",
                        ctx()
                    );
                }
            }
            other => panic!("{}: status reads {other:?}", ctx()),
        }

        // Lww: one of the surviving writes' values.
        let surviving = self.surviving(known, TITLE);
        match field(TITLE) {
            FieldValue::Missing => assert!(
                surviving.is_empty(),
                "{}: title is missing but {surviving:?} survive",
                ctx()
            ),
            FieldValue::Value(v) => {
                let v = v.as_str().expect("a string title");
                assert!(
                    surviving.iter().any(|(s, _)| s == v),
                    "{}: title reads {v:?}, none of the surviving writes {surviving:?}",
                    ctx()
                );
            }
            other => panic!("{}: title reads {other:?}", ctx()),
        }
    }
}

/// One exported bundle and the events the model says it carries.
struct Bundle {
    bytes: Vec<u8>,
    events: Events,
}

struct Replica {
    store: Store,
    /// Marks of this replica's exports, with what it knew at each.
    marks: Vec<(ExportMark, Events)>,
}

fn schema() -> Schema {
    Schema::new(1).collection(
        COLLECTION,
        [
            (TITLE, Field::lww(ScalarType::String)),
            (BODY, Field::text()),
            (TAGS, Field::list(ScalarType::I64)),
            (LIKES, Field::counter()),
            (STATUS, Field::versioned(ScalarType::String)),
        ],
    )
}

thread_local! {
    /// One temporary directory per thread, reused by every input (each input's files are
    /// removed when it ends).
    static DIR: RefCell<Option<(tempfile::TempDir, u64)>> = const { RefCell::new(None) };
}

/// Fresh paths for `n` stores.
fn fresh_paths(n: usize) -> Vec<std::path::PathBuf> {
    DIR.with(|dir| {
        let mut dir = dir.borrow_mut();
        let (d, serial) =
            dir.get_or_insert_with(|| (tempfile::tempdir().expect("a temporary directory"), 0));
        *serial += 1;
        (0..n)
            .map(|i| d.path().join(format!("{serial}-{i}.redb")))
            .collect()
    })
}

/// Removes the files even when the target panics.
struct Cleanup(Vec<std::path::PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// 2 to 5 replicas of one record, random writes on every field kind and exchanges of
/// bundles (full or incremental, in any order, duplicated, replayed late), then a full
/// exchange; every replica is checked against the model before each of its writes and
/// after the full exchange, where all must also read identical records.
pub fn merge_convergence(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let n = u.int_in_range(2..=REPLICAS_MAX).unwrap_or(2);
    let paths = fresh_paths(n);
    let _cleanup = Cleanup(paths.clone());
    // Declared after the cleanup so that the stores close before their files go.
    let mut replicas: Vec<Replica> = paths
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let clock_ms = 1_700_000_000_000 + 1_000 * i as i64;
            let config = StoreConfig::new(schema()).clock(move || clock_ms);
            Replica {
                store: Store::open(path, config).expect("the store opens"),
                marks: Vec::new(),
            }
        })
        .collect();
    let space = SpaceId::new("shared").expect("a valid space");
    let id = replicas[0]
        .store
        .write(|tx| tx.create(COLLECTION, &space))
        .expect("the record is created");
    let mut model = Model {
        events: vec![Event {
            replica: 0,
            past: 0,
            op: Op::Create,
        }],
        known: vec![bit(0); n],
        devices: replicas.iter().map(|r| r.store.device_id()).collect(),
        text: Chain::new(),
        list: Chain::new(),
    };
    let created = replicas[0]
        .store
        .export_changes(None, None)
        .expect("the creation exports");
    for r in &replicas[1..] {
        let summary = r
            .store
            .import_changes(&created.bytes)
            .expect("the creation imports");
        assert!(
            summary.refused.is_empty(),
            "the creation was refused: {summary:?}"
        );
    }

    let mut pool: Vec<Bundle> = Vec::new();
    for _ in 0..STEPS_MAX {
        if step_once(&mut u, &mut replicas, &mut model, &mut pool, id).is_err() {
            break;
        }
    }

    // Full exchange, twice over.
    for _ in 0..2 {
        for i in 0..n {
            let export = replicas[i]
                .store
                .export_changes(None, None)
                .expect("a full export");
            let bundle = Bundle {
                bytes: export.bytes,
                events: model.known[i],
            };
            for j in (0..n).filter(|&j| j != i) {
                deliver(&replicas, &mut model, &bundle, j, id, "the full exchange");
            }
        }
    }
    let all = (0..model.events.len()).fold(0, |acc, e| acc | bit(e));
    let records: Vec<Record> = replicas
        .iter()
        .enumerate()
        .map(|(r, rep)| {
            assert_eq!(
                model.known[r], all,
                "the model says replica {r} missed events after the full exchange"
            );
            let record = rep.store.get(id).expect("the record reads");
            model.check(r, &record, "after the full exchange");
            record
        })
        .collect();
    let normalised: Vec<BTreeMap<String, FieldValue>> = records
        .iter()
        .map(|rec| {
            let mut fields = rec.fields.clone();
            for v in fields.values_mut() {
                if let FieldValue::Conflict(cs) = v {
                    for c in cs.iter_mut() {
                        *c = Candidate {
                            mine: false,
                            ..c.clone()
                        };
                    }
                }
            }
            fields
        })
        .collect();
    for (r, fields) in normalised.iter().enumerate().skip(1) {
        assert_eq!(
            fields, &normalised[0],
            "after the full exchange replica {r} reads differently from replica 0 ({n} replicas, {} events: {:?})",
            model.events.len(),
            model.events
        );
    }
    let conflicted = matches!(normalised[0].get(STATUS), Some(FieldValue::Conflict(_)));
    for (r, rep) in replicas.iter().enumerate() {
        let listed = rep
            .store
            .conflicts()
            .expect("conflicts list")
            .iter()
            .any(|c| c.record == id && c.field == STATUS);
        assert_eq!(
            listed, conflicted,
            "replica {r}'s conflict table disagrees with its record (conflicted: {conflicted})"
        );
    }
}

/// One random step: a write on a random replica, or an exchange.
fn step_once(
    u: &mut Unstructured<'_>,
    replicas: &mut [Replica],
    model: &mut Model,
    pool: &mut Vec<Bundle>,
    id: RecordId,
) -> Result<()> {
    let n = replicas.len();
    let kind = u.int_in_range(0..=9u8)?;
    if kind >= 7 {
        return exchange(u, replicas, model, pool, id, kind);
    }
    let r = u.int_in_range(0..=n - 1)?;
    let store = &replicas[r].store;
    let record = store.get(id).expect("the record reads");
    model.check(r, &record, "before a write");
    let past = model.known[r];
    let event = model.events.len();
    let op = match kind {
        0 | 1 => {
            let (field, palette) = if kind == 0 {
                (TITLE, ["red", "green", "blue"])
            } else {
                (STATUS, ["open", "done", "held"])
            };
            let mut value = (*u.choose(&palette)?).to_owned();
            let visible = model.surviving(past, field);
            if visible.iter().any(|(v, _)| *v == value) {
                // A put of a value already there is skipped or rewritten by Automerge.
                value = format!("{value}-{event}");
            }
            let conflicted = visible.iter().any(|(v, _)| *v != visible[0].0);
            if field == STATUS && conflicted && u.arbitrary::<bool>()? {
                store
                    .resolve(id, field, Resolution::Value(Value::from(value.as_str())))
                    .expect("a conflict resolves");
            } else {
                store
                    .update(id, |tx| tx.set(id, field, value.as_str()))
                    .expect("a set");
            }
            if field == TITLE {
                Op::Title(value)
            } else {
                Op::Status(value)
            }
        }
        2 => {
            let len = match record.fields.get(BODY) {
                Some(FieldValue::Text(t)) => t.chars().count(),
                _ => 0,
            };
            let pos = u.int_in_range(0..=len)?;
            let delete = u.int_in_range(0..=(len - pos).min(3))?;
            let mut text: String = (0..u.int_in_range(0..=3usize)?)
                .map(|_| u.choose(&['a', 'b', 'é', 'z']).copied())
                .collect::<Result<_>>()?;
            if delete == 0 && text.is_empty() {
                text.push('x');
            }
            store
                .update(id, |tx| tx.splice_text(id, BODY, pos, delete, &text))
                .expect("a splice");
            Op::Splice { pos, delete, text }
        }
        3 => {
            let by = *u.choose(&[-3i64, -1, 1, 2, 5])?;
            store
                .update(id, |tx| tx.increment(id, LIKES, by))
                .expect("an increment");
            Op::Increment(by)
        }
        _ => {
            let items: Vec<i64> = match record.fields.get(TAGS) {
                Some(FieldValue::List(items)) => items.iter().filter_map(Value::as_i64).collect(),
                _ => Vec::new(),
            };
            if items.is_empty() || kind != 6 {
                let index = u.int_in_range(0..=items.len())?;
                let value = event as i64;
                if kind == 5 && index == items.len() {
                    store
                        .update(id, |tx| tx.list_push(id, TAGS, value))
                        .expect("a push");
                } else {
                    store
                        .update(id, |tx| tx.list_insert(id, TAGS, index, value))
                        .expect("an insert");
                }
                Op::ListInsert { index, value }
            } else {
                let index = u.int_in_range(0..=items.len() - 1)?;
                store
                    .update(id, |tx| tx.list_delete(id, TAGS, index))
                    .expect("a delete");
                Op::ListDelete {
                    index,
                    value: items[index],
                }
            }
        }
    };
    match &op {
        Op::Splice { pos, delete, text } => model.text.extend(event, past, |s| {
            let start = s.char_indices().nth(*pos).map_or(s.len(), |(b, _)| b);
            let end = s[start..]
                .char_indices()
                .nth(*delete)
                .map_or(s.len(), |(b, _)| start + b);
            s.replace_range(start..end, text);
        }),
        Op::ListInsert { index, value } => {
            model.list.extend(event, past, |l| l.insert(*index, *value))
        }
        Op::ListDelete { index, .. } => model.list.extend(event, past, |l| {
            l.remove(*index);
        }),
        _ => {}
    }
    trace(|| format!("event {event}: replica {r} knowing {past:#b}: {op:?}"));
    model.events.push(Event {
        replica: r,
        past,
        op,
    });
    model.known[r] |= bit(event);
    Ok(())
}

/// An export from one replica imported by another (sometimes twice), or an old bundle
/// replayed.
fn exchange(
    u: &mut Unstructured<'_>,
    replicas: &mut [Replica],
    model: &mut Model,
    pool: &mut Vec<Bundle>,
    id: RecordId,
    kind: u8,
) -> Result<()> {
    let n = replicas.len();
    let j = u.int_in_range(0..=n - 1)?;
    if kind == 9 && !pool.is_empty() {
        let k = u.int_in_range(0..=pool.len() - 1)?;
        deliver(replicas, model, &pool[k], j, id, "a replayed bundle");
        return Ok(());
    }
    let i = u.int_in_range(0..=n - 1)?;
    let since = if replicas[i].marks.is_empty() || u.arbitrary::<bool>()? {
        None
    } else {
        let k = u.int_in_range(0..=replicas[i].marks.len() - 1)?;
        Some(replicas[i].marks[k])
    };
    let export = replicas[i]
        .store
        .export_changes(since.map(|(m, _)| m), None)
        .expect("an export");
    let now = model.known[i];
    trace(|| {
        format!(
            "replica {i} knowing {now:#b} exports since {:?}: {} changes",
            since, export.changes
        )
    });
    let bundle = Bundle {
        bytes: export.bytes,
        events: now & !since.map_or(0, |(_, known)| known),
    };
    replicas[i].marks.push((export.mark, now));
    let twice = u.ratio(1, 3)?;
    deliver(replicas, model, &bundle, j, id, "an exchange");
    if twice {
        deliver(replicas, model, &bundle, j, id, "a duplicate import");
    }
    if pool.len() >= POOL_MAX {
        pool.remove(0);
    }
    pool.push(bundle);
    Ok(())
}

/// Imports `bundle` into replica `j` and checks the import against the model: refused
/// exactly when a new change's past is neither known nor in the bundle, and otherwise
/// applying exactly the changes new to it.
fn deliver(
    replicas: &[Replica],
    model: &mut Model,
    bundle: &Bundle,
    j: usize,
    id: RecordId,
    when: &str,
) {
    let known = model.known[j];
    let new = bundle.events & !known;
    let complete = is_complete(model, bundle, j);
    let result = replicas[j].store.import_changes(&bundle.bytes);
    trace(|| {
        format!(
            "{when}: replica {j} knowing {known:#b} imports {:#b}: complete {complete}, {result:?}",
            bundle.events
        )
    });
    if complete {
        let summary =
            result.unwrap_or_else(|e| panic!("{when}: replica {j} could not import a bundle: {e}"));
        assert!(
            summary.refused.is_empty(),
            "{when}: replica {j} refused a bundle whose changes' past it has: {summary:?}"
        );
        assert_eq!(
            summary.changes_applied,
            new.count_ones() as usize,
            "{when}: replica {j} knowing {known:#b} applied a different number of changes than the bundle's new events {new:#b}"
        );
        model.known[j] |= bundle.events;
    } else {
        // The bundle holds this one record: refusing it refuses the whole import.
        let refused = match result {
            Err(holdfast::Error::Bundle(holdfast::BundleError::Refused(e))) => e.refused,
            other => panic!(
                "{when}: replica {j} knowing {known:#b} did not refuse a bundle of {:#b} that lacks earlier changes: {other:?}",
                bundle.events
            ),
        };
        assert!(
            refused.iter().any(|r| r.record == id),
            "{when}: {refused:?}"
        );
    }
}

/// Whether every change of `bundle` new to replica `j` has its past in what `j` knows or
/// in the bundle.
fn is_complete(model: &Model, bundle: &Bundle, j: usize) -> bool {
    let known = model.known[j];
    let new = bundle.events & !known;
    (0..model.events.len())
        .filter(|&e| new & bit(e) != 0)
        .all(|e| model.events[e].past & !(known | bundle.events) == 0)
}

/// Prints a line of the run when `HOLDFAST_FUZZ_TRACE` is set (to see what a failing input
/// did).
pub(crate) fn trace(line: impl FnOnce() -> String) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("HOLDFAST_FUZZ_TRACE").is_some()) {
        eprintln!("{}", line());
    }
}
