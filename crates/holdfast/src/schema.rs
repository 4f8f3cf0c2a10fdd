//! The schema: collections (record types) and their declared fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::SchemaError;
use crate::limits::NAME_BYTES_MAX;
use crate::value::ScalarType;

/// How a field stores its value and how concurrent writes to it combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FieldKind {
    /// Collaborative text: concurrent edits interleave character by character.
    Text,
    /// A list of scalars: concurrent inserts and deletes merge element by element.
    List,
    /// A counter: concurrent increments add up.
    Counter,
    /// A scalar where one of several concurrent writes wins, chosen by Automerge's
    /// deterministic operation order, never by a wall clock. For low-stakes values.
    Lww,
    /// A scalar where concurrent writes of different values become a conflict that the app
    /// resolves explicitly. For business values (status, price, quantity).
    Versioned,
}

impl FieldKind {
    /// The kind's name, as in a TOML schema.
    pub(crate) fn name(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::List => "list",
            FieldKind::Counter => "counter",
            FieldKind::Lww => "lww",
            FieldKind::Versioned => "versioned",
        }
    }
}

/// A declared field of a collection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// How the field stores and merges values.
    pub kind: FieldKind,
    /// The scalar type: required for `Lww` and `Versioned`, the element type of a `List`
    /// (string when absent), absent for `Text` and `Counter`.
    #[serde(rename = "type", default)]
    pub ty: Option<ScalarType>,
    /// Whether an index is kept so queries by this field's value are range scans.
    #[serde(default)]
    pub indexed: bool,
}

impl Field {
    /// A collaborative text field.
    pub fn text() -> Field {
        Field {
            kind: FieldKind::Text,
            ty: None,
            indexed: false,
        }
    }

    /// A list whose elements are scalars of type `element`.
    pub fn list(element: ScalarType) -> Field {
        Field {
            kind: FieldKind::List,
            ty: Some(element),
            indexed: false,
        }
    }

    /// A counter field.
    pub fn counter() -> Field {
        Field {
            kind: FieldKind::Counter,
            ty: None,
            indexed: false,
        }
    }

    /// A last-writer-wins scalar (the winner is chosen by operation order, not time).
    pub fn lww(ty: ScalarType) -> Field {
        Field {
            kind: FieldKind::Lww,
            ty: Some(ty),
            indexed: false,
        }
    }

    /// A versioned scalar: concurrent different writes become a conflict.
    pub fn versioned(ty: ScalarType) -> Field {
        Field {
            kind: FieldKind::Versioned,
            ty: Some(ty),
            indexed: false,
        }
    }

    /// Marks the field as indexed (scalar fields only).
    pub fn indexed(mut self) -> Field {
        self.indexed = true;
        self
    }

    /// The scalar type of the value (or of list elements).
    pub fn scalar_type(&self) -> Option<ScalarType> {
        match self.kind {
            FieldKind::List => Some(self.ty.unwrap_or(ScalarType::String)),
            FieldKind::Lww | FieldKind::Versioned => self.ty,
            FieldKind::Text | FieldKind::Counter => None,
        }
    }
}

/// A named record type and its fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collection {
    /// The fields by name.
    pub fields: BTreeMap<String, Field>,
}

/// The app's schema. Its `version` grows with every change; a store remembers the version
/// that last wrote it and refuses to write with an older one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// The schema version, starting at 1.
    pub version: u32,
    /// The collections by name.
    pub collections: BTreeMap<String, Collection>,
}

impl Schema {
    /// An empty schema at `version`; add collections with [`Schema::collection`].
    pub fn new(version: u32) -> Schema {
        Schema {
            version,
            collections: BTreeMap::new(),
        }
    }

    /// Adds a collection with its fields.
    pub fn collection<'a>(
        mut self,
        name: &str,
        fields: impl IntoIterator<Item = (&'a str, Field)>,
    ) -> Schema {
        let fields = fields.into_iter().map(|(n, f)| (n.to_owned(), f)).collect();
        self.collections
            .insert(name.to_owned(), Collection { fields });
        self
    }

    /// Checks names, types and index flags.
    pub fn validate(&self) -> Result<(), SchemaError> {
        if self.version == 0 {
            return Err(SchemaError::Invalid("schema version starts at 1".into()));
        }
        for (cname, collection) in &self.collections {
            check_name(cname)?;
            for (fname, field) in &collection.fields {
                check_name(fname)?;
                let scalar = matches!(field.kind, FieldKind::Lww | FieldKind::Versioned);
                if scalar && field.ty.is_none() {
                    return Err(SchemaError::Invalid(format!(
                        "field {cname}.{fname} needs a type"
                    )));
                }
                if matches!(field.kind, FieldKind::Text | FieldKind::Counter) && field.ty.is_some()
                {
                    return Err(SchemaError::Invalid(format!(
                        "field {cname}.{fname} takes no type"
                    )));
                }
                if field.indexed && !scalar {
                    return Err(SchemaError::Invalid(format!(
                        "field {cname}.{fname}: only lww and versioned fields can be indexed"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The collection named `name`.
    pub fn get(&self, name: &str) -> Result<&Collection, SchemaError> {
        self.collections
            .get(name)
            .ok_or_else(|| SchemaError::UnknownCollection(name.to_owned()))
    }

    /// The field `field` of collection `collection`.
    pub fn field(&self, collection: &str, field: &str) -> Result<&Field, SchemaError> {
        self.get(collection)?
            .fields
            .get(field)
            .ok_or_else(|| SchemaError::UnknownField {
                collection: collection.to_owned(),
                field: field.to_owned(),
            })
    }
}

fn check_name(name: &str) -> Result<(), SchemaError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_BYTES_MAX
        && !name.starts_with('_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SchemaError::Invalid(format!(
            "name {name:?}: use 1 to {NAME_BYTES_MAX} letters, digits, '_' or '-', not starting with '_'"
        )))
    }
}
