//! The schema file `holdfast init` reads: TOML, parsed with serde into a
//! [`holdfast::Schema`], with every mistake reported at its line.
//!
//! ```toml
//! version = 1
//! [collections.note.fields]
//! title  = { kind = "lww", type = "string" }
//! body   = { kind = "text" }
//! tags   = { kind = "list" }                 # a list of strings unless `type` says otherwise
//! status = { kind = "versioned", type = "string", indexed = true }
//! ```

use std::collections::BTreeMap;

use holdfast::{Field, FieldKind, ScalarType, Schema};
use serde::Deserialize;
use toml::Spanned;

/// Field kinds as written in the file.
pub const KINDS: [(&str, FieldKind); 5] = [
    ("lww", FieldKind::Lww),
    ("versioned", FieldKind::Versioned),
    ("text", FieldKind::Text),
    ("list", FieldKind::List),
    ("counter", FieldKind::Counter),
];

/// Scalar types as written in the file (and in JSON output).
pub const TYPES: [(&str, ScalarType); 7] = [
    ("string", ScalarType::String),
    ("i64", ScalarType::I64),
    ("f64", ScalarType::F64),
    ("bool", ScalarType::Bool),
    ("bytes", ScalarType::Bytes),
    ("timestamp", ScalarType::Timestamp),
    ("ref", ScalarType::RecordRef),
];

/// A mistake in a schema file, at a line when it has one.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct SchemaFileError {
    /// The file's name as given.
    pub file: String,
    /// The line (from 1) the mistake is on.
    pub line: Option<usize>,
    /// What is wrong, in words.
    pub message: String,
}

/// Reads a schema from `text`, the contents of the file named `file` (for messages).
pub fn parse_schema(text: &str, file: &str) -> Result<Schema, SchemaFileError> {
    let error = |span: Option<std::ops::Range<usize>>, message: String| SchemaFileError {
        file: file.to_owned(),
        line: span.map(|s| line_of(text, s.start)),
        message,
    };
    let parsed: SchemaToml =
        toml::from_str(text).map_err(|e| error(e.span(), e.message().trim().to_owned()))?;
    let version_span = parsed.version.span();
    let mut schema = Schema::new(*parsed.version.get_ref());
    if let Err(e) = Schema::new(schema.version).validate() {
        return Err(error(Some(version_span), e.to_string()));
    }
    for (cname, collection) in parsed.collections {
        let cspan = cname.span();
        let cname = cname.into_inner();
        // Each name and field is validated alone, so the library's rules report its line.
        if let Err(e) = Schema::new(1).collection(&cname, []).validate() {
            return Err(error(Some(cspan), e.to_string()));
        }
        let mut fields = Vec::new();
        for (fname, field) in collection.fields {
            let span = fname.span();
            let fname = fname.into_inner();
            let at =
                |message: String| error(Some(span.clone()), format!("{cname}.{fname}: {message}"));
            let field = field.into_inner().to_field().map_err(at)?;
            let alone = Schema::new(1).collection(&cname, [(fname.as_str(), field.clone())]);
            if let Err(e) = alone.validate() {
                return Err(error(Some(span), e.to_string()));
            }
            fields.push((fname, field));
        }
        schema = schema.collection(&cname, fields.iter().map(|(n, f)| (n.as_str(), f.clone())));
    }
    schema.validate().map_err(|e| error(None, e.to_string()))?;
    Ok(schema)
}

/// The name a kind has in the file.
pub fn kind_name(kind: FieldKind) -> &'static str {
    KINDS
        .iter()
        .find(|(_, k)| *k == kind)
        .map_or("unknown", |(n, _)| n)
}

/// The name a scalar type has in the file.
pub fn type_name(ty: ScalarType) -> &'static str {
    TYPES
        .iter()
        .find(|(_, t)| *t == ty)
        .map_or("unknown", |(n, _)| n)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaToml {
    version: Spanned<u32>,
    #[serde(default)]
    collections: BTreeMap<Spanned<String>, CollectionToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CollectionToml {
    #[serde(default)]
    fields: BTreeMap<Spanned<String>, Spanned<FieldToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldToml {
    kind: String,
    #[serde(rename = "type")]
    ty: Option<String>,
    #[serde(default)]
    indexed: bool,
}

impl FieldToml {
    fn to_field(&self) -> Result<Field, String> {
        let names = |list: &[&str]| list.join(", ");
        let kind = KINDS
            .iter()
            .find(|(n, _)| *n == self.kind)
            .map(|(_, k)| *k)
            .ok_or_else(|| {
                let kinds: Vec<_> = KINDS.iter().map(|(n, _)| *n).collect();
                format!("unknown kind {:?}; use one of {}", self.kind, names(&kinds))
            })?;
        let ty = match &self.ty {
            None => None,
            Some(ty) => Some(
                TYPES
                    .iter()
                    .find(|(n, _)| n == ty)
                    .map(|(_, t)| *t)
                    .ok_or_else(|| {
                        let types: Vec<_> = TYPES.iter().map(|(n, _)| *n).collect();
                        format!("unknown type {ty:?}; use one of {}", names(&types))
                    })?,
            ),
        };
        let scalar = matches!(kind, FieldKind::Lww | FieldKind::Versioned);
        if scalar && ty.is_none() {
            return Err(format!(
                "a {} field needs a type, like type = \"string\"",
                self.kind
            ));
        }
        if matches!(kind, FieldKind::Text | FieldKind::Counter) && ty.is_some() {
            return Err(format!("a {} field takes no type", self.kind));
        }
        if self.indexed && !scalar {
            return Err("only lww and versioned fields can be indexed".into());
        }
        Ok(Field {
            kind,
            ty,
            indexed: self.indexed,
        })
    }
}

/// The line (from 1) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
