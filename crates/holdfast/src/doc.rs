//! How a record lives in its Automerge document: reserved keys, field reads (optionally at
//! the committed heads), conflict candidates, and the index keys a record state implies.
//!
//! Layout of the root map: `_collection` and `_space` (written once, at creation), `_state`
//! (written only by delete and restore: `"live"`, or `"deleted:"` and a random suffix so
//! that confirming a delete is a new value), then one key per field.
//!
//! A delete is concurrent with an edit when some head of the document does not descend from
//! the delete's change: the deleting device never saw that edit. That is a delete/edit
//! conflict on [`STATE_FIELD`], identical on every replica because it depends only on the
//! document. The record stays hidden (no silent resurrection) and the edit stays in the
//! document (no silent loss) until the app restores it or confirms the delete.

use std::collections::BTreeSet;

use automerge::{
    ActorId, Automerge, ChangeHash, ObjId as ExId, ObjType, ReadDoc, ScalarValue, ROOT,
};
use serde::{Deserialize, Serialize};

use crate::schema::{Collection, Field, FieldKind};
use crate::value::Value;
use crate::{DeviceId, SpaceId};

pub(crate) const COLLECTION_KEY: &str = "_collection";
pub(crate) const SPACE_KEY: &str = "_space";
/// The reserved field under which a delete/edit conflict is reported and resolved.
pub const STATE_FIELD: &str = "_state";
pub(crate) const LIVE: &str = "live";
pub(crate) const DELETED: &str = "deleted";

/// The value of one field as read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FieldValue {
    /// A `Text` field's content.
    Text(String),
    /// A `List` field's elements.
    List(Vec<Value>),
    /// A `Counter` field's total.
    Counter(i64),
    /// An `Lww` value, or a settled `Versioned` value.
    Value(Value),
    /// A `Versioned` field with concurrent different values, waiting for the app.
    Conflict(Vec<Candidate>),
    /// Never written.
    Missing,
}

/// One of the concurrent values of a conflicted field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The value this device wrote.
    pub value: Value,
    /// The device that wrote it (`None` for a writer outside Holdfast).
    pub device: Option<DeviceId>,
    /// When, by that device's clock (ms since the epoch): shown to people, never used to
    /// pick a winner.
    pub at_ms: i64,
    /// Whether this device wrote it.
    pub mine: bool,
}

/// A document, or a transaction on one, that can also name the change behind an operation.
pub(crate) trait Doc: ReadDoc {
    fn change_of(&self, op: &ExId) -> Option<ChangeHash>;

    /// The current heads.
    fn heads(&self) -> Vec<ChangeHash>;

    /// Whether change `a` is `b` or one of `b`'s ancestors.
    fn precedes(&self, a: &ChangeHash, b: &ChangeHash) -> bool {
        // Walk back from `b`; only used for deleted records.
        let mut stack = vec![*b];
        let mut seen = std::collections::HashSet::new();
        while let Some(h) = stack.pop() {
            if h == *a {
                return true;
            }
            if seen.insert(h) {
                if let Some(c) = self.get_change_by_hash(&h) {
                    stack.extend(c.deps().iter().copied());
                }
            }
        }
        false
    }
}

impl Doc for Automerge {
    fn change_of(&self, op: &ExId) -> Option<ChangeHash> {
        self.hash_for_opid(op)
    }

    fn heads(&self) -> Vec<ChangeHash> {
        self.get_heads()
    }

    fn precedes(&self, a: &ChangeHash, b: &ChangeHash) -> bool {
        // The changes someone holding only `b` lacks are exactly the non-ancestors of `b`.
        a == b || !self.get_changes_meta(&[*b]).iter().any(|c| c.hash == *a)
    }
}

impl Doc for automerge::transaction::OwnedTransaction {
    fn change_of(&self, op: &ExId) -> Option<ChangeHash> {
        self.hash_for_opid(op)
    }

    fn heads(&self) -> Vec<ChangeHash> {
        self.get_heads()
    }
}

/// A document read as of `heads` (or its latest state when `None`).
pub(crate) struct View<'a, D: Doc> {
    pub doc: &'a D,
    pub heads: Option<&'a [ChangeHash]>,
}

impl<'a, D: Doc> View<'a, D> {
    pub fn latest(doc: &'a D) -> Self {
        View { doc, heads: None }
    }

    fn get_all(&self, obj: &ExId, key: &str) -> Vec<(automerge::Value<'a>, ExId)> {
        let r = match self.heads {
            Some(h) => self.doc.get_all_at(obj, key, h),
            None => self.doc.get_all(obj, key),
        };
        r.unwrap_or_default()
    }

    fn get(&self, obj: &ExId, key: &str) -> Option<(automerge::Value<'a>, ExId)> {
        let r = match self.heads {
            Some(h) => self.doc.get_at(obj, key, h),
            None => self.doc.get(obj, key),
        };
        r.ok().flatten()
    }

    pub fn root_str(&self, key: &str) -> Option<String> {
        match self.get(&ROOT, key)? {
            (automerge::Value::Scalar(s), _) => match s.as_ref() {
                ScalarValue::Str(s) => Some(s.to_string()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the record exists in this view (its `_collection` was written).
    pub fn exists(&self) -> bool {
        self.get(&ROOT, COLLECTION_KEY).is_some()
    }

    /// Deleted, or in a delete/edit conflict (which must not resurrect it silently).
    pub fn deleted(&self) -> bool {
        self.get_all(&ROOT, STATE_FIELD)
            .iter()
            .any(|(v, _)| is_deleted_value(v))
    }

    /// The object id of a Text or List field's container.
    pub fn container(&self, field: &str) -> Option<ExId> {
        match self.get(&ROOT, field)? {
            (automerge::Value::Object(_), id) => Some(id),
            _ => None,
        }
    }

    pub fn text(&self, obj: &ExId) -> String {
        let r = match self.heads {
            Some(h) => self.doc.text_at(obj, h),
            None => self.doc.text(obj),
        };
        r.unwrap_or_default()
    }

    pub fn length(&self, obj: &ExId) -> usize {
        match self.heads {
            Some(h) => self.doc.length_at(obj, h),
            None => self.doc.length(obj),
        }
    }

    pub fn list(&self, obj: &ExId, field: &Field) -> Vec<Value> {
        let ty = field.scalar_type().expect("list has an element type");
        let len = self.length(obj);
        (0..len)
            .filter_map(|i| {
                let r = match self.heads {
                    Some(h) => self.doc.get_at(obj, i, h),
                    None => self.doc.get(obj, i),
                };
                match r.ok().flatten()? {
                    (automerge::Value::Scalar(s), _) => Value::from_automerge(ty, &s),
                    _ => None,
                }
            })
            .collect()
    }

    /// Reads one declared field.
    pub fn field(&self, name: &str, field: &Field, me: DeviceId) -> FieldValue {
        match field.kind {
            FieldKind::Text => match self.container(name) {
                Some(obj) => FieldValue::Text(self.text(&obj)),
                None => FieldValue::Missing,
            },
            FieldKind::List => match self.container(name) {
                Some(obj) => FieldValue::List(self.list(&obj, field)),
                None => FieldValue::Missing,
            },
            FieldKind::Counter => match self.get(&ROOT, name) {
                Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
                    ScalarValue::Counter(c) => FieldValue::Counter(i64::from(c)),
                    _ => FieldValue::Missing,
                },
                _ => FieldValue::Missing,
            },
            FieldKind::Lww => {
                let ty = field.scalar_type().expect("validated");
                match self.get(&ROOT, name) {
                    Some((automerge::Value::Scalar(s), _)) => {
                        Value::from_automerge(ty, &s).map_or(FieldValue::Missing, FieldValue::Value)
                    }
                    _ => FieldValue::Missing,
                }
            }
            FieldKind::Versioned => {
                let ty = field.scalar_type().expect("validated");
                let raw = self.raw_candidates(name, |s| Value::from_automerge(ty, s));
                match raw.len() {
                    0 => FieldValue::Missing,
                    _ if all_equal(&raw) => {
                        FieldValue::Value(raw.into_iter().next().expect("non-empty").0)
                    }
                    _ => FieldValue::Conflict(self.describe(raw, me)),
                }
            }
        }
    }

    /// Whether a versioned field holds concurrent different values (cheaper than reading
    /// the candidates: no authors, no times).
    pub fn conflicted(&self, name: &str, field: &Field) -> bool {
        let ty = field.scalar_type().expect("validated");
        !all_equal(&self.raw_candidates(name, |s| Value::from_automerge(ty, s)))
    }

    /// Whether a delete is concurrent with an edit (see the module docs).
    pub fn state_conflicted(&self) -> bool {
        !self.unseen_edits().is_empty()
    }

    /// The changes that make a delete/edit conflict: restores concurrent with a delete, and
    /// heads that descend from no delete. Empty when the record is not deleted.
    fn unseen_edits(&self) -> Vec<ChangeHash> {
        let states = self.raw_candidates(STATE_FIELD, state_value);
        let deletes: Vec<ChangeHash> = states
            .iter()
            .filter(|(v, _)| v.as_str() == Some(DELETED))
            .filter_map(|(_, op)| self.doc.change_of(op))
            .collect();
        if deletes.is_empty() {
            return Vec::new();
        }
        let restores = states
            .iter()
            .filter(|(v, _)| v.as_str() == Some(LIVE))
            .filter_map(|(_, op)| self.doc.change_of(op));
        let heads = self
            .heads
            .map_or_else(|| self.doc.heads(), <[ChangeHash]>::to_vec);
        let unseen_heads = heads
            .into_iter()
            .filter(|h| !deletes.iter().any(|d| self.doc.precedes(d, h)));
        let mut out: Vec<ChangeHash> = restores.chain(unseen_heads).collect();
        out.sort();
        out.dedup();
        out
    }

    /// The concurrent values at `key` with the operations that wrote them.
    fn raw_candidates(
        &self,
        key: &str,
        convert: impl Fn(&ScalarValue) -> Option<Value>,
    ) -> Vec<(Value, ExId)> {
        self.get_all(&ROOT, key)
            .into_iter()
            .filter_map(|(v, op)| match v {
                automerge::Value::Scalar(s) => Some((convert(&s)?, op)),
                automerge::Value::Object(_) => None,
            })
            .collect()
    }

    /// Adds each candidate's author and time (looked up from the change that wrote it).
    fn describe(&self, raw: Vec<(Value, ExId)>, me: DeviceId) -> Vec<Candidate> {
        raw.into_iter()
            .map(|(value, op)| {
                let device = match &op {
                    ExId::Id(_, actor, _) => device_of(actor),
                    ExId::Root => None,
                };
                let at_ms = self
                    .doc
                    .change_of(&op)
                    .and_then(|h| self.doc.get_change_by_hash(&h))
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

    /// The sides of a delete/edit conflict: each delete, and each edit or restore made
    /// without seeing it, as `"deleted"` and `"live"` candidates. Empty without a conflict.
    pub fn state_candidates(&self, me: DeviceId) -> Vec<Candidate> {
        let unseen = self.unseen_edits();
        if unseen.is_empty() {
            return Vec::new();
        }
        let deletes = self
            .raw_candidates(STATE_FIELD, state_value)
            .into_iter()
            .filter(|(v, _)| v.as_str() == Some(DELETED));
        let mut out = self.describe(deletes.collect(), me);
        for h in unseen {
            let Some(change) = self.doc.get_change_by_hash(&h) else {
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

    /// The index keys this state of record implies (none when deleted).
    pub fn index_keys(
        &self,
        id: crate::RecordId,
        collection_name: &str,
        space: &SpaceId,
        collection: &Collection,
    ) -> BTreeSet<Vec<u8>> {
        let mut keys = BTreeSet::new();
        if self.deleted() {
            return keys;
        }
        keys.insert(crate::index::collection_key(collection_name, Some(id)));
        keys.insert(crate::index::space_key(space, collection_name, Some(id)));
        for (name, field) in collection.fields.iter().filter(|(_, f)| f.indexed) {
            let ty = field.scalar_type().expect("validated");
            for (v, _) in self.get_all(&ROOT, name) {
                if let automerge::Value::Scalar(s) = v {
                    if let Some(value) = Value::from_automerge(ty, &s) {
                        keys.insert(crate::index::field_key(
                            collection_name,
                            name,
                            &value,
                            Some(id),
                        ));
                    }
                }
            }
        }
        keys
    }
}

/// Equal candidate values settle by themselves; only different ones are a conflict.
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

/// A fresh `_state` value meaning deleted: distinct from every earlier one, because
/// Automerge skips a put of the value already there and confirming a delete must supersede
/// the edits it conflicts with.
pub(crate) fn deleted_marker() -> ScalarValue {
    ScalarValue::Str(format!("{DELETED}:{}", uuid::Uuid::new_v4().simple()).into())
}

fn is_deleted_value(v: &automerge::Value<'_>) -> bool {
    matches!(v, automerge::Value::Scalar(s) if matches!(s.as_ref(), ScalarValue::Str(s) if s.starts_with(DELETED)))
}

/// Actor ids are the device id followed by 16 random bytes chosen at each open, so that two
/// incarnations of one store file (a backup restored, a file copied) never share an actor.
pub(crate) fn actor_for(device: DeviceId) -> ActorId {
    let mut bytes = device.as_bytes().to_vec();
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    ActorId::from(bytes)
}

pub(crate) fn device_of(actor: &ActorId) -> Option<DeviceId> {
    let bytes: [u8; 16] = actor.to_bytes().get(..16)?.try_into().ok()?;
    (actor.to_bytes().len() == 32).then(|| DeviceId::from_bytes(bytes))
}

/// The object type a field's container has.
pub(crate) fn container_type(kind: FieldKind) -> Option<ObjType> {
    match kind {
        FieldKind::Text => Some(ObjType::Text),
        FieldKind::List => Some(ObjType::List),
        _ => None,
    }
}
