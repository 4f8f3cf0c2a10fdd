//! The invariants a quiet system must hold, checked against the relay's log (read back
//! through `LogStore::pull`), the documents rebuilt from it here, and the model of what
//! local writes promised, never against a component's view of itself:
//!
//! 1. Every change in a space's log is there exactly once, and every record's changes
//!    rebuild a document with no missing dependency.
//! 2. Every outbox entry a device ever wrote (a local write that returned `Ok`, or a
//!    resolver's write while applying) has each of its changes in its space's log, once.
//!    Every record created is on the relay.
//! 3. Every device: an empty outbox, nothing failed; each space's cursor at the end of
//!    the relay's log in its epoch; the same records as the relay, each with the same
//!    heads as the document rebuilt from the log (so it holds exactly the same changes).
//! 4. Every device reads every record alike: deletion state, every field, every
//!    versioned field's conflict candidates (and `_state`'s), the conflicts table.
//! 5. Against the model: each counter is the sum of the acknowledged increments, each
//!    scalar value (or conflict candidate) is one that an acknowledged write wrote.
//! 6. Every device's file passes `Store::check`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use automerge::{Automerge, Change};
use holdfast::{Candidate, Cursor, FieldValue, RecordId, SpaceId, Store, Value, STATE_FIELD};
use holdfast_relay::{LogStore, PullResult};

use crate::ops::{counter_field, versioned_fields};
use crate::sim::Sim;

type Hash = [u8; 32];

/// What the relay's log holds of one space.
struct SpaceLog {
    last_seq: u64,
    /// How many times each change appears.
    counts: HashMap<Hash, u32>,
    /// Each record's heads, from its changes.
    heads: BTreeMap<RecordId, Vec<Hash>>,
}

/// Checks every invariant; the first broken one is the error.
pub fn check(sim: &mut Sim) -> Result<(), String> {
    let relay = sim.relay().log();
    let epoch = relay.epoch();
    let mut logs = BTreeMap::new();
    for space in sim.spaces() {
        logs.insert(space.clone(), read_log(relay, space)?);
    }
    for p in &sim.model.promises {
        let log = &logs[&p.space];
        for hash in &p.hashes {
            let n = log.counts.get(hash).copied().unwrap_or(0);
            if n != 1 {
                return Err(format!(
                    "device {}'s outbox entry {} (event {}, record {}) has change {} in the relay's log {n} times",
                    p.device,
                    p.seq,
                    p.event_id,
                    p.record,
                    hex(hash)
                ));
            }
        }
    }
    for r in &sim.model.records {
        if !logs[&r.space].heads.contains_key(&r.id) {
            return Err(format!(
                "record {} created in {} is not on the relay",
                r.id, r.space
            ));
        }
    }
    let mut first: Option<(usize, BTreeMap<RecordId, String>)> = None;
    for device in sim.devices() {
        let i = device.index;
        let store = device
            .store
            .as_ref()
            .ok_or_else(|| format!("device {i} is down"))?;
        check_device(store, &logs, epoch).map_err(|e| format!("device {i}: {e}"))?;
        let raw = views_raw(store, &logs).map_err(|e| format!("device {i}: {e}"))?;
        check_model(sim, &raw).map_err(|e| format!("device {i}: {e}"))?;
        let views = render(store, raw).map_err(|e| format!("device {i}: {e}"))?;
        match &first {
            None => first = Some((i, views)),
            Some((j, theirs)) => {
                for (id, view) in &views {
                    if theirs.get(id) != Some(view) {
                        return Err(format!(
                            "devices {j} and {i} read record {id} differently:\n  {j}: {}\n  {i}: {view}",
                            theirs.get(id).map_or("(missing)", |s| s.as_str())
                        ));
                    }
                }
            }
        }
    }
    check_files(sim)
}

/// Reads a space's whole log through `pull`.
fn read_log(relay: &holdfast_relay::RedbLogStore, space: &SpaceId) -> Result<SpaceLog, String> {
    let mut counts: HashMap<Hash, u32> = HashMap::new();
    let mut changes: BTreeMap<RecordId, Vec<Change>> = BTreeMap::new();
    let mut cursor = None;
    let mut last_seq = 0;
    loop {
        let page = relay
            .pull(space, cursor, u64::MAX)
            .map_err(|e| format!("pulling {space}: {e}"))?;
        let PullResult::Changes {
            entries,
            next_cursor,
            more,
        } = page
        else {
            return Err(format!("pulling {space} from the start asks for a repair"));
        };
        for entry in entries {
            if entry.seq != last_seq + 1 {
                return Err(format!(
                    "{space}'s log jumps from {last_seq} to {}",
                    entry.seq
                ));
            }
            last_seq = entry.seq;
            for bytes in &entry.changes {
                let change = Change::try_from(bytes.as_slice())
                    .map_err(|e| format!("a change in {space}'s log does not parse: {e}"))?;
                *counts.entry(change.hash().0).or_default() += 1;
                changes.entry(entry.record).or_default().push(change);
            }
        }
        cursor = Some(next_cursor);
        if !more {
            break;
        }
    }
    for (hash, n) in &counts {
        if *n > 1 {
            return Err(format!(
                "change {} is in {space}'s log {n} times",
                hex(hash)
            ));
        }
    }
    let mut heads = BTreeMap::new();
    for (record, changes) in changes {
        let mut doc = Automerge::new();
        doc.apply_changes(changes)
            .map_err(|e| format!("record {record}'s logged changes do not apply: {e}"))?;
        let missing = automerge::ReadDoc::get_missing_deps(&doc, &[]);
        if !missing.is_empty() {
            return Err(format!(
                "record {record}'s log lacks {} changes it depends on",
                missing.len()
            ));
        }
        heads.insert(record, sorted(doc.get_heads().iter().map(|h| h.0)));
    }
    Ok(SpaceLog {
        last_seq,
        counts,
        heads,
    })
}

fn check_device(
    store: &Store,
    logs: &BTreeMap<SpaceId, SpaceLog>,
    epoch: u64,
) -> Result<(), String> {
    let left = store.outbox().list(None, 10).map_err(|e| e.to_string())?;
    if let Some(entry) = left.first() {
        return Err(format!(
            "outbox entry {} (record {}) is still there: {:?}",
            entry.seq, entry.record, entry.state
        ));
    }
    let summary = store.sync_summary().map_err(|e| e.to_string())?;
    if summary.pending != 0 || summary.failed != 0 {
        return Err(format!("sync summary is not clean: {summary:?}"));
    }
    for (space, log) in logs {
        let cursor = store.inbox().cursor(space).map_err(|e| e.to_string())?;
        let expected = Cursor {
            epoch,
            seq: log.last_seq,
        };
        if cursor != Some(expected) {
            return Err(format!(
                "cursor of {space} is {cursor:?}, the log ends at {expected:?}"
            ));
        }
        let held: BTreeSet<RecordId> = store
            .records_in_space(space)
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
        let relay: BTreeSet<RecordId> = log.heads.keys().copied().collect();
        if held != relay {
            return Err(format!(
                "holds records {:?} of {space} the relay does not, and lacks {:?}",
                held.difference(&relay).collect::<Vec<_>>(),
                relay.difference(&held).collect::<Vec<_>>()
            ));
        }
        for (id, heads) in &log.heads {
            let mine = heads_of(store, *id)?;
            if &mine != heads {
                return Err(format!(
                    "record {id} has heads {:?}, its log rebuilds {:?}",
                    mine.iter().map(hex).collect::<Vec<_>>(),
                    heads.iter().map(hex).collect::<Vec<_>>()
                ));
            }
        }
    }
    Ok(())
}

/// A record's heads on a device.
fn heads_of(store: &Store, id: RecordId) -> Result<Vec<Hash>, String> {
    store.heads(id).map_err(|e| format!("record {id}: {e}"))
}

/// What a device reads of one record.
struct View {
    deleted: bool,
    /// Every field, when not deleted.
    fields: BTreeMap<String, FieldValue>,
    /// Candidates of each versioned field and of `_state`, deleted or not.
    candidates: BTreeMap<String, Vec<Candidate>>,
    collection: &'static str,
}

fn views_raw(
    store: &Store,
    logs: &BTreeMap<SpaceId, SpaceLog>,
) -> Result<BTreeMap<RecordId, View>, String> {
    let mut out = BTreeMap::new();
    for log in logs.values() {
        for id in log.heads.keys() {
            let deleted = store.is_deleted(*id).map_err(|e| format!("{id}: {e}"))?;
            let (fields, collection) = if deleted {
                (BTreeMap::new(), "")
            } else {
                let record = store.get(*id).map_err(|e| format!("reading {id}: {e}"))?;
                let collection = if record.collection == "note" {
                    "note"
                } else {
                    "item"
                };
                (record.fields, collection)
            };
            let mut candidates = BTreeMap::new();
            let names: Vec<&str> = match collection {
                "" => vec!["status", "price", "qty"],
                c => versioned_fields(c).to_vec(),
            };
            for field in names.into_iter().chain([STATE_FIELD]) {
                match store.candidates(*id, field) {
                    Ok(c) => {
                        candidates.insert(field.to_owned(), c);
                    }
                    // A deleted record's collection is not known here: skip fields it
                    // does not have.
                    Err(holdfast::Error::Schema(_)) if deleted => {}
                    Err(e) => return Err(format!("candidates of {id}.{field}: {e}")),
                }
            }
            out.insert(
                *id,
                View {
                    deleted,
                    fields,
                    candidates,
                    collection,
                },
            );
        }
    }
    Ok(out)
}

/// Each record as a string every device must agree on: what is this device's own
/// (`Candidate::mine`, times of local reads) is left out.
fn render(
    store: &Store,
    raw: BTreeMap<RecordId, View>,
) -> Result<BTreeMap<RecordId, String>, String> {
    let conflicts: BTreeSet<(RecordId, String)> = store
        .conflicts()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|c| (c.record, c.field))
        .collect();
    let mut out = BTreeMap::new();
    for (id, view) in raw {
        let mut text = format!("deleted={} ", view.deleted);
        for (name, value) in &view.fields {
            let value = match value {
                FieldValue::Conflict(c) => format!("Conflict({})", normalize(c)),
                other => format!("{other:?}"),
            };
            text.push_str(&format!("{name}={value} "));
        }
        for (name, c) in &view.candidates {
            if !c.is_empty() {
                text.push_str(&format!("candidates({name})={} ", normalize(c)));
            }
            let listed = conflicts.contains(&(id, name.clone()));
            if listed == c.is_empty() {
                return Err(format!(
                    "record {id}.{name}: the conflicts table says {listed}, the candidates {c:?}"
                ));
            }
        }
        out.insert(id, text);
    }
    Ok(out)
}

/// Candidates without `mine`, in a fixed order.
fn normalize(candidates: &[Candidate]) -> String {
    let mut shown: Vec<String> = candidates
        .iter()
        .map(|c| format!("{:?}@{:?}/{}", c.value, c.device, c.at_ms))
        .collect();
    shown.sort();
    shown.join(",")
}

fn check_model(sim: &Sim, views: &BTreeMap<RecordId, View>) -> Result<(), String> {
    for (id, view) in views {
        if view.deleted {
            continue;
        }
        let counter = counter_field(view.collection);
        let expected = sim
            .model
            .counters
            .get(&(*id, counter))
            .copied()
            .unwrap_or(0);
        match view.fields.get(counter) {
            Some(FieldValue::Counter(n)) if *n == expected => {}
            Some(FieldValue::Missing) | None if expected == 0 => {}
            other => {
                return Err(format!(
                    "record {id}.{counter} reads {other:?}, acknowledged increments add up to {expected}"
                ))
            }
        }
        for (name, value) in &view.fields {
            let Some(field) = ["title", "status", "name", "price", "qty"]
                .into_iter()
                .find(|f| f == name)
            else {
                continue;
            };
            let written: &[Value] = sim
                .model
                .values
                .get(&(*id, field))
                .map_or(&[], |v| v.as_slice());
            let ok = match value {
                FieldValue::Value(v) => written.contains(v),
                FieldValue::Conflict(c) => c.iter().all(|c| written.contains(&c.value)),
                FieldValue::Missing => written.is_empty(),
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "record {id}.{name} reads {value:?}, acknowledged writes wrote {written:?}"
                ));
            }
        }
    }
    Ok(())
}

/// Closes every store and runs `Store::check` on its file.
fn check_files(sim: &mut Sim) -> Result<(), String> {
    for device in sim.devices_mut() {
        device.crash();
        let report = Store::check(&device.path)
            .map_err(|e| format!("device {}: check: {e}", device.index))?;
        if !report.is_ok() {
            return Err(format!("device {}: check: {report:?}", device.index));
        }
    }
    Ok(())
}

fn sorted(hashes: impl Iterator<Item = Hash>) -> Vec<Hash> {
    let mut v: Vec<Hash> = hashes.collect();
    v.sort();
    v
}

fn hex(hash: &Hash) -> String {
    hash[..6].iter().map(|b| format!("{b:02x}")).collect()
}
