//! The app: a schema with every field kind, and random user operations on it. Each
//! operation reads the device's current state (lengths, conflicts) to stay valid, picks
//! records by their place in creation order, and tells the model what it promised once
//! the write returned `Ok`.

use holdfast::{
    Error, Field, FieldValue, Resolution, ScalarType, Schema, SpaceId, Store, Tx, Value,
    STATE_FIELD,
};

use crate::model::{Model, SimRecord};
use crate::rng::Rng;

/// The spaces every device syncs.
pub const SPACES: [&str; 2] = ["alpha", "beta"];

/// The app's schema: every field kind, indexed and not.
pub fn schema() -> Schema {
    Schema::new(1)
        .collection(
            "note",
            [
                ("title", Field::lww(ScalarType::String)),
                ("body", Field::text()),
                ("tags", Field::list(ScalarType::String)),
                ("status", Field::versioned(ScalarType::String).indexed()),
                ("views", Field::counter()),
            ],
        )
        .collection(
            "item",
            [
                ("name", Field::lww(ScalarType::String).indexed()),
                ("price", Field::versioned(ScalarType::F64)),
                ("qty", Field::versioned(ScalarType::I64).indexed()),
                ("on_hand", Field::counter()),
            ],
        )
}

/// The versioned fields of a collection.
pub fn versioned_fields(collection: &str) -> &'static [&'static str] {
    match collection {
        "note" => &["status"],
        _ => &["price", "qty"],
    }
}

/// The counter field of a collection.
pub fn counter_field(collection: &str) -> &'static str {
    match collection {
        "note" => "views",
        _ => "on_hand",
    }
}

const WORDS: [&str; 8] = [
    "milk", "eggs", "plan", "draft", "héllo", "日本", "zebra", "",
];

/// A value for a scalar field: few of them, so that concurrent writes of equal values
/// (which settle by themselves) happen as well as different ones.
fn value_for(field: &str, rng: &mut Rng) -> Value {
    match field {
        "status" => Value::from(*rng.pick(&["draft", "review", "done"])),
        "price" => Value::from(*rng.pick(&[1.0, 2.5, 10.0])),
        "qty" => Value::from(rng.range(0, 4) as i64),
        _ => Value::from(*rng.pick(&WORDS)),
    }
}

/// What one operation did.
pub enum Outcome {
    /// The write returned `Ok`.
    Done(String),
    /// The store refused it as it should (a deleted record, nothing to resolve).
    Refused(String),
}

/// Effects on the model, applied only once the write returned `Ok`.
#[derive(Default)]
struct Promised {
    created: Vec<SimRecord>,
    increments: Vec<(holdfast::RecordId, &'static str, i64)>,
    values: Vec<(holdfast::RecordId, &'static str, Value)>,
}

/// Makes one random user operation on `store`.
pub fn random_op(store: &Store, model: &mut Model, rng: &mut Rng) -> Result<Outcome, String> {
    // The records this device holds, by their place in creation order.
    let mut held = Vec::new();
    for r in &model.records {
        if store.exists(r.id).map_err(|e| format!("exists: {e}"))? {
            held.push(r.clone());
        }
    }
    let mut promised = Promised::default();
    // A user who sees conflicts settles one now and then.
    let conflicted = !store
        .conflicts()
        .map_err(|e| format!("conflicts: {e}"))?
        .is_empty();
    let kind = if held.is_empty() {
        0
    } else if conflicted && rng.chance(300) {
        4
    } else {
        rng.below(12)
    };
    let result = match kind {
        0 | 1 => {
            let (space, collection) = new_record(rng);
            let n = rng.range(0, 2);
            let mut other = None;
            if n > 0 && !held.is_empty() && rng.chance(300) {
                other = Some(held[rng.index(held.len())].clone());
            }
            let desc = format!("create {collection} in {space}");
            let r = store.write(|tx| {
                let id = tx.create(collection, &space)?;
                promised.created.push(SimRecord {
                    id,
                    space: space.clone(),
                    collection,
                });
                for _ in 0..n {
                    edit(tx, id, collection, "", rng, &mut promised)?;
                }
                if let Some(other) = &other {
                    edit(tx, other.id, other.collection, "", rng, &mut promised)?;
                }
                Ok(())
            });
            (desc, r)
        }
        2 => {
            let target = held[rng.index(held.len())].clone();
            let desc = format!("delete {}", target.id);
            (desc, store.write(|tx| tx.delete(target.id)))
        }
        3 => {
            let target = held[rng.index(held.len())].clone();
            let desc = format!("restore {}", target.id);
            (desc, store.write(|tx| tx.restore(target.id)))
        }
        4 => return resolve(store, model, &held, rng),
        _ => {
            let target = held[rng.index(held.len())].clone();
            let text = current(store, &target)?;
            let single = rng.chance(500);
            let desc = format!(
                "edit {} ({})",
                target.id,
                if single { "update" } else { "write" }
            );
            let mut run =
                |tx: &mut Tx<'_>| edit(tx, target.id, target.collection, &text, rng, &mut promised);
            let r = if single {
                store.update(target.id, |tx| run(tx))
            } else {
                store.write(|tx| run(tx))
            };
            (desc, r)
        }
    };
    finish(model, promised, result)
}

/// Records the promises of a write that returned `Ok`; tells an expected refusal from a
/// failure.
fn finish(
    model: &mut Model,
    promised: Promised,
    (desc, result): (String, holdfast::Result<()>),
) -> Result<Outcome, String> {
    match result {
        Ok(()) => {
            model.records.extend(promised.created);
            for (id, field, by) in promised.increments {
                *model.counters.entry((id, field)).or_default() += by;
            }
            for (id, field, value) in promised.values {
                model.values.entry((id, field)).or_default().push(value);
            }
            Ok(Outcome::Done(desc))
        }
        Err(e @ (Error::Deleted(_) | Error::Resolve { .. })) => {
            Ok(Outcome::Refused(format!("{desc}: {e}")))
        }
        Err(e) => Err(format!("{desc} failed: {e}")),
    }
}

fn new_record(rng: &mut Rng) -> (SpaceId, &'static str) {
    let space = SpaceId::new(*rng.pick(&SPACES)).expect("a valid space id");
    let collection = *rng.pick(&["note", "item"]);
    (space, collection)
}

/// The record's text body as this device reads it ("" for items or deleted records).
fn current(store: &Store, target: &SimRecord) -> Result<String, String> {
    if target.collection != "note" {
        return Ok(String::new());
    }
    match store.field(target.id, "body") {
        Ok(FieldValue::Text(text)) => Ok(text),
        Ok(_) | Err(Error::Deleted(_)) => Ok(String::new()),
        Err(e) => Err(format!("reading {}: {e}", target.id)),
    }
}

/// One random edit of one field of record `id`. `text` is the record's body as last read
/// (a write may splice it once; positions are in characters).
fn edit(
    tx: &mut Tx<'_>,
    id: holdfast::RecordId,
    collection: &'static str,
    text: &str,
    rng: &mut Rng,
    promised: &mut Promised,
) -> holdfast::Result<()> {
    match (collection, rng.below(5)) {
        ("note", 0) => {
            let len = text.chars().count() as u64;
            let pos = rng.range(0, len);
            let delete = rng.range(0, (len - pos).min(3));
            let insert: String = (0..rng.range(0, 4))
                .map(|_| *rng.pick(&['a', 'b', 'é', '日', ' ']))
                .collect();
            tx.splice_text(id, "body", pos as usize, delete as usize, &insert)
        }
        ("note", 1) => {
            let len = match tx.get(id)?.field("tags")? {
                FieldValue::List(items) => items.len() as u64,
                _ => 0,
            };
            if len > 0 && rng.chance(400) {
                tx.list_delete(id, "tags", rng.below(len) as usize)
            } else {
                let value = value_for("tags", rng);
                tx.list_insert(id, "tags", rng.range(0, len) as usize, value)
            }
        }
        ("note", 2) => {
            let value = value_for("title", rng);
            promised.values.push((id, "title", value.clone()));
            tx.set(id, "title", value)
        }
        (_, 3) => {
            let field = counter_field(collection);
            let by = rng.range(0, 10) as i64 - 4;
            promised.increments.push((id, field, by));
            tx.increment(id, field, by)
        }
        ("item", 0) => {
            let value = value_for("name", rng);
            promised.values.push((id, "name", value.clone()));
            tx.set(id, "name", value)
        }
        _ => {
            let field = *rng.pick(versioned_fields(collection));
            let value = value_for(field, rng);
            promised.values.push((id, field, value.clone()));
            tx.set(id, field, value)
        }
    }
}

/// Settles one of the device's open conflicts: keep mine, use theirs, or a new value.
fn resolve(
    store: &Store,
    model: &mut Model,
    held: &[SimRecord],
    rng: &mut Rng,
) -> Result<Outcome, String> {
    let conflicts = store.conflicts().map_err(|e| format!("conflicts: {e}"))?;
    // In creation order, not by id: the choice must not depend on random ids.
    let mut open: Vec<(usize, String)> = conflicts
        .into_iter()
        .filter_map(|c| model.place(c.record).map(|place| (place, c.field)))
        .filter(|(place, _)| held.iter().any(|r| r.id == model.records[*place].id))
        .collect();
    open.sort();
    if open.is_empty() {
        return Ok(Outcome::Refused("resolve: no conflict here".into()));
    }
    let (place, field) = open[rng.index(open.len())].clone();
    let record = model.records[place].clone();
    let resolution = match rng.below(3) {
        0 => Resolution::KeepMine,
        1 => Resolution::UseTheirs,
        _ if field == STATE_FIELD => {
            Resolution::Value(Value::from(*rng.pick(&["live", "deleted"])))
        }
        _ => Resolution::Value(value_for(&field, rng)),
    };
    let mut promised = Promised::default();
    if field != STATE_FIELD {
        let field: &'static str = versioned_fields(record.collection)
            .iter()
            .find(|f| **f == field)
            .ok_or_else(|| format!("a conflict on an unknown field {field}"))?;
        if let Resolution::Value(v) = &resolution {
            promised.values.push((record.id, field, v.clone()));
        }
    }
    let desc = format!("resolve {field} of {} with {resolution:?}", record.id);
    let result = store.resolve(record.id, &field, resolution);
    finish(model, promised, (desc, result))
}
