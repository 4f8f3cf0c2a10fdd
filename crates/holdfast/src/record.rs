//! [`Record`]: an owned, serde-friendly snapshot of a record with typed accessors; and the
//! reads that need less than a whole record (a container's length, a record's heads).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::doc::{Doc, FieldValue, View};
use crate::error::{Error, Result, SchemaError};
use crate::schema::FieldKind;
use crate::store::Inner;
use crate::tables::RecordMeta;
use crate::value::Value;
use crate::{RecordId, SpaceId};

/// A record as read: every declared field, conflicts included.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The record's id.
    pub id: RecordId,
    /// Its collection.
    pub collection: String,
    /// Its space.
    pub space: SpaceId,
    /// When it was created on the device that created it, if known (ms since the epoch).
    pub created_ms: i64,
    /// When this device last wrote or received a change to it (ms since the epoch).
    pub updated_ms: i64,
    /// Every declared field by name.
    pub fields: BTreeMap<String, FieldValue>,
}

impl Record {
    pub(crate) fn read<D: Doc>(
        inner: &Inner,
        id: RecordId,
        meta: &RecordMeta,
        view: &View<'_, D>,
    ) -> Record {
        let fields = inner
            .schema
            .collections
            .get(&meta.collection)
            .map(|c| {
                c.fields
                    .iter()
                    .map(|(name, f)| (name.clone(), view.field(name, f, inner.device)))
                    .collect()
            })
            .unwrap_or_default();
        Record {
            id,
            collection: meta.collection.clone(),
            space: meta.space.clone(),
            created_ms: meta.created_ms,
            updated_ms: meta.updated_ms,
            fields,
        }
    }

    /// A field's value.
    pub fn field(&self, name: &str) -> Result<&FieldValue> {
        self.fields.get(name).ok_or_else(|| {
            SchemaError::UnknownField {
                collection: self.collection.clone(),
                field: name.to_owned(),
            }
            .into()
        })
    }

    /// A scalar field's value (`None` when unset). A conflicted versioned field is an
    /// error: read it with [`Record::field`] to see the candidates.
    pub fn get(&self, name: &str) -> Result<Option<&Value>> {
        match self.field(name)? {
            FieldValue::Value(v) => Ok(Some(v)),
            FieldValue::Missing => Ok(None),
            FieldValue::Conflict(_) => Err(Error::Conflicted {
                record: self.id,
                field: name.to_owned(),
            }),
            _ => Err(self.wrong(name, "get")),
        }
    }

    /// A `Text` field's content.
    pub fn text(&self, name: &str) -> Result<&str> {
        match self.field(name)? {
            FieldValue::Text(t) => Ok(t),
            FieldValue::Missing => Ok(""),
            _ => Err(self.wrong(name, "text")),
        }
    }

    /// A `Counter` field's total.
    pub fn counter(&self, name: &str) -> Result<i64> {
        match self.field(name)? {
            FieldValue::Counter(c) => Ok(*c),
            FieldValue::Missing => Ok(0),
            _ => Err(self.wrong(name, "counter")),
        }
    }

    /// A `List` field's elements.
    pub fn list(&self, name: &str) -> Result<&[Value]> {
        match self.field(name)? {
            FieldValue::List(items) => Ok(items),
            FieldValue::Missing => Ok(&[]),
            _ => Err(self.wrong(name, "list")),
        }
    }

    /// Whether any field is in conflict.
    pub fn has_conflicts(&self) -> bool {
        self.fields
            .values()
            .any(|v| matches!(v, FieldValue::Conflict(_)))
    }

    fn wrong(&self, name: &str, operation: &'static str) -> Error {
        SchemaError::WrongKind {
            field: name.to_owned(),
            kind: "another",
            operation,
        }
        .into()
    }
}

impl crate::Store {
    /// The length of a `Text` field in characters (Unicode scalar values, the positions
    /// [`Tx::splice_text`](crate::Tx::splice_text) counts), 0 when never written. Reads
    /// the field's length from the document (the cached one when loaded) without building
    /// its text or reading any other field; like [`Store::field`](crate::Store::field),
    /// which reads one field without the others.
    pub fn text_len(&self, id: RecordId, field: &str) -> Result<usize> {
        self.container_len(id, field, FieldKind::Text, "text_len")
    }

    /// The number of elements of a `List` field, 0 when never written, read the way
    /// [`Store::text_len`](crate::Store::text_len) reads a text's length: no element is converted.
    pub fn list_len(&self, id: RecordId, field: &str) -> Result<usize> {
        self.container_len(id, field, FieldKind::List, "list_len")
    }

    fn container_len(
        &self,
        id: RecordId,
        field: &str,
        kind: FieldKind,
        operation: &'static str,
    ) -> Result<usize> {
        self.inner.read(id, |view, meta| {
            if view.deleted() {
                return Err(Error::Deleted(id));
            }
            let def = self.inner.schema.field(&meta.collection, field)?;
            if def.kind != kind {
                return Err(SchemaError::WrongKind {
                    field: field.to_owned(),
                    kind: def.kind.name(),
                    operation,
                }
                .into());
            }
            Ok(view.container(field).map_or(0, |obj| view.length(&obj)))
        })
    }

    /// The heads of record `id` as durable on this device, sorted: the hashes of the
    /// latest changes it holds. Two devices hold the same changes of a record exactly
    /// when its heads are equal. Reads the record's metadata row (no document).
    pub fn heads(&self, id: RecordId) -> Result<Vec<[u8; 32]>> {
        self.inner.reading(|txn| {
            let records = txn.open_table(crate::tables::RECORDS)?;
            let key = (crate::tables::rid(id), crate::tables::SLOT_META);
            let row = records.get(key)?.ok_or(Error::NotFound(id))?;
            let meta: RecordMeta =
                crate::tables::decode_row(crate::tables::RECORD_ROW_V1, row.value(), "record")?;
            let mut heads = meta.heads;
            heads.sort_unstable();
            Ok(heads)
        })
    }
}
