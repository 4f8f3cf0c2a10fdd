//! Settling a conflict: the value a [`Resolution`] picks among the candidates, and the
//! app's [`Resolver`](super::Resolver)s run on conflicts as changes arrive.

use std::collections::HashMap;

use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT};

use super::{Candidate, Resolution, Resolver};
use crate::doc::{FieldValue, View};
use crate::schema::{FieldKind, Schema};
use crate::value::Value;
use crate::DeviceId;

/// The value `resolution` settles a conflict between `candidates` with, or why it cannot.
pub(crate) fn choose(
    candidates: &[Candidate],
    resolution: Resolution,
) -> Result<Value, &'static str> {
    if candidates.len() < 2 || candidates.iter().all(|c| c.value == candidates[0].value) {
        return Err("there is no conflict to resolve");
    }
    let pick = |mine: bool| -> Option<Value> {
        candidates
            .iter()
            .filter(|c| c.mine == mine)
            .max_by_key(|c| c.at_ms)
            .map(|c| c.value.clone())
    };
    match resolution {
        Resolution::KeepMine => pick(true).ok_or("none of the versions was made on this device"),
        Resolution::UseTheirs => pick(false).ok_or("every version was made on this device"),
        Resolution::Value(v) => Ok(v),
    }
}

/// Runs the configured resolvers on the conflicted fields of a record of `collection`,
/// writing what they pick as one change of this device at `now`; returns how many fields
/// they settled.
pub(crate) fn run_resolvers(
    schema: &Schema,
    resolvers: &HashMap<(String, String), Resolver>,
    me: DeviceId,
    collection: &str,
    doc: &mut Automerge,
    now: i64,
) -> usize {
    let Some(fields) = schema.collections.get(collection) else {
        return 0;
    };
    let mut settled = Vec::new();
    for (name, field) in fields
        .fields
        .iter()
        .filter(|(_, f)| f.kind == FieldKind::Versioned)
    {
        let Some(resolver) = resolvers.get(&(collection.to_owned(), name.clone())) else {
            continue;
        };
        if let FieldValue::Conflict(candidates) = View::latest(&*doc).field(name, field, me) {
            if let Some(v) = resolver(&candidates) {
                if Some(v.scalar_type()) == field.scalar_type() {
                    settled.push((name.clone(), v));
                }
            }
        }
    }
    if settled.is_empty() {
        return 0;
    }
    let options = automerge::transaction::CommitOptions::default().with_time(now);
    let mut tx = doc.transaction();
    for (name, v) in &settled {
        tx.put(ROOT, name.as_str(), v.to_automerge())
            .expect("root put");
    }
    tx.commit_with(options);
    settled.len()
}
