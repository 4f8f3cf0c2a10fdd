//! Settling a conflict: the value a [`Resolution`] picks among the candidates, and the
//! app's [`Resolver`](super::Resolver)s run on conflicts as changes arrive.

use std::collections::HashMap;

use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT};

use super::{detect, Candidate, Resolution, Resolver, Settlement};
use crate::doc::{Doc, FieldValue, View};
use crate::schema::Field;
use crate::schema::{FieldKind, Schema};
use crate::subscribe::Origin;
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
/// writing what they pick as one change of this device at `now`; returns the fields they
/// settled with the candidates they chose from.
pub(crate) fn run_resolvers(
    schema: &Schema,
    resolvers: &HashMap<(String, String), Resolver>,
    me: DeviceId,
    collection: &str,
    doc: &mut Automerge,
    now: i64,
) -> Vec<(String, Vec<Candidate>)> {
    let Some(fields) = schema.collections.get(collection) else {
        return Vec::new();
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
                    settled.push((name.clone(), v, candidates));
                }
            }
        }
    }
    if settled.is_empty() {
        return Vec::new();
    }
    let options = automerge::transaction::CommitOptions::default().with_time(now);
    let mut tx = doc.transaction();
    for (name, v, _) in &settled {
        tx.put(ROOT, name.as_str(), v.to_automerge())
            .expect("root put");
    }
    tx.commit_with(options);
    settled.into_iter().map(|(name, _, c)| (name, c)).collect()
}

/// How a write settled the conflict on `name` between `before` (its candidates when the
/// write began), told from what the field now holds (`by_resolver`: this device's resolver
/// wrote it while applying changes). Changes from elsewhere settle it there, unless they
/// only made the values equal; a local write kept a candidate or wrote a new value. (The
/// author of the value cannot tell: Automerge may keep a candidate's own operation when the
/// value chosen is the one already winning.)
pub(crate) fn how<D: Doc>(
    origin: Origin,
    before: &[Candidate],
    by_resolver: bool,
    view: &View<'_, D>,
    name: &str,
    field: Option<&Field>,
) -> Settlement {
    let (value, count) = detect::settled(view, name, field);
    if by_resolver {
        return Settlement::Resolver;
    }
    if origin != Origin::Local {
        return if count > 1 {
            Settlement::Converged
        } else {
            Settlement::Elsewhere
        };
    }
    let held_by = |mine: bool| {
        before
            .iter()
            .any(|c| c.mine == mine && Some(&c.value) == value.as_ref())
    };
    if held_by(true) {
        Settlement::KeptMine
    } else if held_by(false) {
        Settlement::UsedTheirs
    } else {
        Settlement::NewValue
    }
}
