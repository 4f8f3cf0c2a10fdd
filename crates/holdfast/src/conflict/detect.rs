//! What is a conflict, read from a record's document: the candidates of a versioned field,
//! delete/edit conflicts on [`STATE_FIELD`], and the flags a write stores.
//!
//! Equal concurrent values settle by themselves; only different ones are a conflict.
//!
//! A delete is concurrent with an edit when some head of the document does not descend from
//! the delete's change: the deleting device never saw that edit. That is a delete/edit
//! conflict on [`STATE_FIELD`], identical on every replica because it depends only on the
//! document. The record stays hidden (no silent resurrection) and the edit stays in the
//! document (no silent loss) until the app restores it or confirms the delete.

use automerge::{ChangeHash, ObjId as ExId, ScalarValue, ROOT};

use super::Candidate;
use crate::doc::{device_of, Doc, FieldValue, View, DELETED, LIVE, STATE_FIELD};
use crate::schema::{Field, FieldKind, Schema};
use crate::value::Value;
use crate::DeviceId;

/// A versioned field's value: missing, settled, or a conflict with its candidates.
pub(crate) fn versioned<D: Doc>(
    view: &View<'_, D>,
    name: &str,
    field: &Field,
    me: DeviceId,
) -> FieldValue {
    let ty = field.scalar_type().expect("validated");
    let raw = raw_candidates(view, name, |s| Value::from_automerge(ty, s));
    match raw.len() {
        0 => FieldValue::Missing,
        _ if all_equal(&raw) => FieldValue::Value(raw.into_iter().next().expect("non-empty").0),
        _ => FieldValue::Conflict(describe(view, raw, me)),
    }
}

/// Whether a versioned field holds concurrent different values (cheaper than reading
/// the candidates: no authors, no times).
pub(crate) fn conflicted<D: Doc>(view: &View<'_, D>, name: &str, field: &Field) -> bool {
    let ty = field.scalar_type().expect("validated");
    !all_equal(&raw_candidates(view, name, |s| {
        Value::from_automerge(ty, s)
    }))
}

/// Whether a delete is concurrent with an edit (see the module docs).
pub(crate) fn state_conflicted<D: Doc>(view: &View<'_, D>) -> bool {
    !unseen_edits(view).is_empty()
}

/// The sides of a delete/edit conflict: each delete, and each edit or restore made
/// without seeing it, as `"deleted"` and `"live"` candidates. Empty without a conflict.
pub(crate) fn state_candidates<D: Doc>(view: &View<'_, D>, me: DeviceId) -> Vec<Candidate> {
    let unseen = unseen_edits(view);
    if unseen.is_empty() {
        return Vec::new();
    }
    let deletes = raw_candidates(view, STATE_FIELD, state_value)
        .into_iter()
        .filter(|(v, _)| v.as_str() == Some(DELETED));
    let mut out = describe(view, deletes.collect(), me);
    for h in unseen {
        let Some(change) = view.doc.get_change_by_hash(&h) else {
            continue;
        };
        let device = device_of(change.actor_id());
        out.push(Candidate {
            value: Value::String(LIVE.to_owned()),
            device,
            at_ms: change.timestamp(),
            mine: device == Some(me),
        });
    }
    out
}

/// The open conflicts of a record of `collection` and their candidates: what a write
/// starts from, to tell what it settled.
pub(crate) fn open<D: Doc>(
    schema: &Schema,
    view: &View<'_, D>,
    collection: &str,
    me: DeviceId,
) -> Vec<(String, Vec<Candidate>)> {
    let mut out: Vec<(String, Vec<Candidate>)> = schema
        .collections
        .get(collection)
        .into_iter()
        .flat_map(|c| &c.fields)
        .filter(|(_, f)| f.kind == FieldKind::Versioned)
        .filter(|(name, f)| conflicted(view, name, f))
        .filter_map(|(name, f)| match versioned(view, name, f, me) {
            FieldValue::Conflict(c) => Some((name.clone(), c)),
            _ => None,
        })
        .collect();
    let state = state_candidates(view, me);
    if !state.is_empty() {
        out.push((STATE_FIELD.to_owned(), state));
    }
    out
}

/// A settled field as it now reads: its value (`"deleted"` or `"live"` for
/// [`STATE_FIELD`]), and how many equal values it holds.
pub(crate) fn settled<D: Doc>(
    view: &View<'_, D>,
    name: &str,
    field: Option<&Field>,
) -> (Option<Value>, usize) {
    let Some(field) = field else {
        let state = if view.deleted() { DELETED } else { LIVE };
        return (Some(Value::String(state.to_owned())), 1);
    };
    let ty = field.scalar_type().expect("validated");
    let raw = raw_candidates(view, name, |s| Value::from_automerge(ty, s));
    let count = raw.len();
    (raw.into_iter().next().map(|(v, _)| v), count)
}

/// Every versioned field of a record of `collection`, and its `_state`, with whether it
/// is in conflict: what the conflicts table is to hold after a write.
pub(crate) fn flags<D: Doc>(
    schema: &Schema,
    view: &View<'_, D>,
    collection: &str,
) -> Vec<(String, bool)> {
    let mut flags: Vec<(String, bool)> = schema
        .collections
        .get(collection)
        .into_iter()
        .flat_map(|c| &c.fields)
        .filter(|(_, f)| f.kind == FieldKind::Versioned)
        .map(|(name, f)| (name.clone(), conflicted(view, name, f)))
        .collect();
    flags.push((STATE_FIELD.to_owned(), state_conflicted(view)));
    flags
}

/// The changes that make a delete/edit conflict: restores concurrent with a delete, and
/// heads that descend from no delete. Empty when the record is not deleted.
fn unseen_edits<D: Doc>(view: &View<'_, D>) -> Vec<ChangeHash> {
    let states = raw_candidates(view, STATE_FIELD, state_value);
    let deletes: Vec<ChangeHash> = states
        .iter()
        .filter(|(v, _)| v.as_str() == Some(DELETED))
        .filter_map(|(_, op)| view.doc.change_of(op))
        .collect();
    if deletes.is_empty() {
        return Vec::new();
    }
    let restores = states
        .iter()
        .filter(|(v, _)| v.as_str() == Some(LIVE))
        .filter_map(|(_, op)| view.doc.change_of(op));
    let heads = view
        .heads
        .map_or_else(|| view.doc.heads(), <[ChangeHash]>::to_vec);
    let unseen_heads = heads
        .into_iter()
        .filter(|h| !deletes.iter().any(|d| view.doc.precedes(d, h)));
    let mut out: Vec<ChangeHash> = restores.chain(unseen_heads).collect();
    out.sort();
    out.dedup();
    out
}

/// The concurrent values at `key` with the operations that wrote them.
fn raw_candidates<D: Doc>(
    view: &View<'_, D>,
    key: &str,
    convert: impl Fn(&ScalarValue) -> Option<Value>,
) -> Vec<(Value, ExId)> {
    view.get_all(&ROOT, key)
        .into_iter()
        .filter_map(|(v, op)| match v {
            automerge::Value::Scalar(s) => Some((convert(&s)?, op)),
            automerge::Value::Object(_) => None,
        })
        .collect()
}

/// Adds each candidate's author and time (looked up from the change that wrote it).
fn describe<D: Doc>(view: &View<'_, D>, raw: Vec<(Value, ExId)>, me: DeviceId) -> Vec<Candidate> {
    raw.into_iter()
        .map(|(value, op)| {
            let device = match &op {
                ExId::Id(_, actor, _) => device_of(actor),
                ExId::Root => None,
            };
            let at_ms = view
                .doc
                .change_of(&op)
                .and_then(|h| view.doc.get_change_by_hash(&h))
                .map_or(0, |c| c.timestamp());
            Candidate {
                value,
                device,
                at_ms,
                mine: device == Some(me),
            }
        })
        .collect()
}

fn all_equal(raw: &[(Value, ExId)]) -> bool {
    raw.iter().all(|(v, _)| *v == raw[0].0)
}

/// A `_state` value as `"deleted"` or `"live"`.
fn state_value(s: &ScalarValue) -> Option<Value> {
    let deleted = matches!(s, ScalarValue::Str(s) if s.starts_with(DELETED));
    Some(Value::String(
        if deleted { DELETED } else { LIVE }.to_owned(),
    ))
}
