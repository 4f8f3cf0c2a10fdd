//! How a record lives in its Automerge document: reserved keys, field reads (optionally at
//! the committed heads), and the index keys a record state implies. What a conflict is,
//! and its candidates, is `conflict::detect`'s.
//!
//! Layout of the root map: `_collection` and `_space` (written once, at creation), `_state`
//! (written only by delete and restore: `"live"`, or `"deleted:"` and a random suffix so
//! that confirming a delete is a new value), then one key per field.

use std::collections::BTreeSet;

use automerge::{
    ActorId, Automerge, ChangeHash, ObjId as ExId, ObjType, ReadDoc, ScalarValue, ROOT,
};
use serde::{Deserialize, Serialize};

use crate::conflict::{detect, Candidate};
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
    pub(crate) fn latest(doc: &'a D) -> Self {
        View { doc, heads: None }
    }

    pub(crate) fn get_all(&self, obj: &ExId, key: &str) -> Vec<(automerge::Value<'a>, ExId)> {
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

    pub(crate) fn root_str(&self, key: &str) -> Option<String> {
        match self.get(&ROOT, key)? {
            (automerge::Value::Scalar(s), _) => match s.as_ref() {
                ScalarValue::Str(s) => Some(s.to_string()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the record exists in this view (its `_collection` was written).
    pub(crate) fn exists(&self) -> bool {
        self.get(&ROOT, COLLECTION_KEY).is_some()
    }

    /// Deleted, or in a delete/edit conflict (which must not resurrect it silently).
    pub(crate) fn deleted(&self) -> bool {
        self.get_all(&ROOT, STATE_FIELD)
            .iter()
            .any(|(v, _)| is_deleted_value(v))
    }

    /// The object id of a Text or List field's container.
    pub(crate) fn container(&self, field: &str) -> Option<ExId> {
        match self.get(&ROOT, field)? {
            (automerge::Value::Object(_), id) => Some(id),
            _ => None,
        }
    }

    pub(crate) fn text(&self, obj: &ExId) -> String {
        let r = match self.heads {
            Some(h) => self.doc.text_at(obj, h),
            None => self.doc.text(obj),
        };
        r.unwrap_or_default()
    }

    pub(crate) fn length(&self, obj: &ExId) -> usize {
        match self.heads {
            Some(h) => self.doc.length_at(obj, h),
            None => self.doc.length(obj),
        }
    }

    pub(crate) fn list(&self, obj: &ExId, field: &Field) -> Vec<Value> {
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
    pub(crate) fn field(&self, name: &str, field: &Field, me: DeviceId) -> FieldValue {
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
            FieldKind::Versioned => detect::versioned(self, name, field, me),
        }
    }

    /// The index keys this state of record implies (none when deleted).
    pub(crate) fn index_keys(
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
