//! The commands that write: `init`, `put`, `set`, `text`, `delete` and `resolve`.

use std::io::Write;
use std::path::Path;

use holdfast::{
    FieldKind, RecordId, Resolution, ScalarType, Store, StoreConfig, Tx, Value, STATE_FIELD,
};

use super::read::unknown_collection;
use super::{count, path_text, say};
use crate::cli::{InitArgs, PutArgs, ResolveArgs, SetArgs, TextArgs};
use crate::error::{Error, Result};
use crate::input::{field_of, parse_edits, parse_value, Edit};
use crate::schema_file::{kind_name, parse_schema};

/// `init`.
pub fn init(db: &Path, args: &InitArgs, out: &mut dyn Write) -> Result<()> {
    if db.exists() {
        return Err(Error::input(format!(
            "{} already exists; `holdfast init` creates a new store \
             (see what this one holds with `holdfast status --db {}`)",
            db.display(),
            db.display()
        )));
    }
    let text = std::fs::read_to_string(&args.schema).map_err(|e| Error::read(&args.schema, e))?;
    let schema = parse_schema(&text, &path_text(&args.schema))?;
    let collections: Vec<String> = schema.collections.keys().cloned().collect();
    let store = Store::open(db, StoreConfig::new(schema))?;
    say!(
        out,
        "Created {}: device {}, schema version {}, collections: {}",
        db.display(),
        store.device_id(),
        store.schema().version,
        if collections.is_empty() {
            "none".to_owned()
        } else {
            collections.join(", ")
        }
    )
}

/// `put`: prints the new record's id, alone on its line.
pub fn put(store: &Store, args: &PutArgs, out: &mut dyn Write) -> Result<()> {
    let collection = store
        .schema()
        .collections
        .get(&args.collection)
        .ok_or_else(|| unknown_collection(store, &args.collection))?;
    let edits = parse_edits(&args.collection, collection, &args.values)?;
    let id = store.write(|tx| {
        let id = tx.create(&args.collection, &args.space)?;
        apply(tx, id, &edits)?;
        Ok(id)
    })?;
    say!(out, "{id}")
}

/// `set`.
pub fn set(store: &Store, args: &SetArgs, out: &mut dyn Write) -> Result<()> {
    let id = args.record;
    let record = store.get(id)?;
    let collection = store.schema().get(&record.collection)?;
    let edits = parse_edits(&record.collection, collection, &args.values)?;
    store.update(id, |tx| apply(tx, id, &edits))?;
    say!(
        out,
        "Saved {} of record {id}.",
        count(edits.len() as u64, "field")
    )
}

/// Applies `edits` to record `id` within a write. Text and lists change only where the new
/// content differs, so concurrent edits elsewhere in them survive the merge.
fn apply(tx: &mut Tx<'_>, id: RecordId, edits: &[Edit]) -> holdfast::Result<()> {
    for edit in edits {
        match edit {
            Edit::Scalar(field, value) => tx.set(id, field, value.clone())?,
            Edit::Text(field, new) => {
                let old: Vec<char> = tx.get(id)?.text(field)?.chars().collect();
                let new: Vec<char> = new.chars().collect();
                let (start, old_end, new_end) = differing(&old, &new);
                if old_end > start || new_end > start {
                    let insert: String = new[start..new_end].iter().collect();
                    tx.splice_text(id, field, start, old_end - start, &insert)?;
                }
            }
            Edit::List(field, new) => {
                let old = tx.get(id)?.list(field)?.to_vec();
                let (start, old_end, new_end) = differing(&old, new);
                for i in (start..old_end).rev() {
                    tx.list_delete(id, field, i)?;
                }
                for (i, value) in new[start..new_end].iter().enumerate() {
                    tx.list_insert(id, field, start + i, value.clone())?;
                }
            }
            Edit::CounterAdd(field, by) => tx.increment(id, field, *by)?,
            Edit::CounterTo(field, total) => {
                let now = tx.get(id)?.counter(field)?;
                let by = total.saturating_sub(now);
                if by != 0 {
                    tx.increment(id, field, by)?;
                }
            }
        }
    }
    Ok(())
}

/// The part of `old` that `new` replaces: a common prefix and suffix are kept. Returns
/// `(start, old_end, new_end)`.
fn differing<T: PartialEq>(old: &[T], new: &[T]) -> (usize, usize, usize) {
    let start = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let suffix = old[start..]
        .iter()
        .rev()
        .zip(new[start..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    (start, old.len() - suffix, new.len() - suffix)
}

/// `text`.
pub fn text(store: &Store, args: &TextArgs, out: &mut dyn Write) -> Result<()> {
    let id = args.record;
    let record = store.get(id)?;
    let collection = store.schema().get(&record.collection)?;
    let field = field_of(&record.collection, collection, &args.field)?;
    if field.kind != FieldKind::Text {
        return Err(Error::input(format!(
            "field {:?} is a {} field; `holdfast text` edits text fields (use `holdfast set`)",
            args.field,
            kind_name(field.kind)
        )));
    }
    let name = args.field.as_str();
    let (pos, delete, insert) = match (&args.insert, &args.delete) {
        (Some(insert), _) => {
            let pos = insert[0].parse::<usize>().map_err(|_| {
                Error::input(format!(
                    "--insert takes a position (0 or more) and the text; {:?} is not a position",
                    insert[0]
                ))
            })?;
            (pos, 0, insert[1].as_str())
        }
        (None, Some(delete)) => (delete[0], delete[1], ""),
        (None, None) => unreachable!("clap requires one"),
    };
    store.update(id, |tx| tx.splice_text(id, name, pos, delete, insert))?;
    let len = store.get(id)?.text(name)?.chars().count();
    say!(
        out,
        "Saved: {name:?} of record {id} is now {}.",
        count(len as u64, "character")
    )
}

/// `delete`.
pub fn delete(store: &Store, id: RecordId, out: &mut dyn Write) -> Result<()> {
    store.write(|tx| tx.delete(id))?;
    say!(out, "Deleted record {id}.")
}

/// `resolve`.
pub fn resolve(store: &Store, args: &ResolveArgs, out: &mut dyn Write) -> Result<()> {
    let id = args.record;
    let field = args.field.as_str();
    let (resolution, done) = if args.keep_mine {
        (
            Resolution::KeepMine,
            "kept this device's version".to_owned(),
        )
    } else if args.use_theirs {
        (
            Resolution::UseTheirs,
            "took the other device's version".to_owned(),
        )
    } else {
        let text = args.value.as_deref().expect("clap requires one");
        let value = resolution_value(store, id, field, text)?;
        (Resolution::Value(value), format!("set it to {text:?}"))
    };
    store.resolve(id, field, resolution)?;
    say!(out, "Resolved {field:?} of record {id}: {done}.")
}

/// The value `text` for resolving `field`: read by the field's type, or `live` / `deleted`
/// for a delete/edit conflict.
fn resolution_value(store: &Store, id: RecordId, field: &str, text: &str) -> Result<Value> {
    if field == STATE_FIELD {
        return match text {
            "live" | "deleted" => Ok(Value::String(text.to_owned())),
            _ => Err(Error::input(format!(
                "{STATE_FIELD} is settled with --value live (restore the record) or \
                 --value deleted (confirm the delete), not {text:?}"
            ))),
        };
    }
    let record = store.get(id)?;
    let collection = store.schema().get(&record.collection)?;
    let def = field_of(&record.collection, collection, field)?;
    if def.kind != FieldKind::Versioned {
        return Err(Error::input(format!(
            "field {field:?} is a {} field; only versioned fields have conflicts to resolve",
            kind_name(def.kind)
        )));
    }
    parse_value(field, def.scalar_type().unwrap_or(ScalarType::String), text)
}
