//! Values from the command line: `field=value` assignments read by the field's declared
//! kind and type, and the edits they become.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use holdfast::{Collection, Field, FieldKind, RecordId, ScalarType, Value};

use crate::error::{Error, Result};
use crate::schema_file::kind_name;

/// One field's new content, checked against the schema.
#[derive(Clone, Debug, PartialEq)]
pub enum Edit {
    /// An `lww` or `versioned` field's value.
    Scalar(String, Value),
    /// A text field's whole content.
    Text(String, String),
    /// A list field's whole content.
    List(String, Vec<Value>),
    /// A counter: add to it.
    CounterAdd(String, i64),
    /// A counter: bring it to this total (by adding the difference).
    CounterTo(String, i64),
}

impl Edit {
    /// The field edited.
    pub fn field(&self) -> &str {
        match self {
            Edit::Scalar(f, _)
            | Edit::Text(f, _)
            | Edit::List(f, _)
            | Edit::CounterAdd(f, _)
            | Edit::CounterTo(f, _) => f,
        }
    }
}

/// Reads `field=value` assignments for a record of `collection` (named `cname`).
pub fn parse_edits(
    cname: &str,
    collection: &Collection,
    assignments: &[String],
) -> Result<Vec<Edit>> {
    let mut edits: Vec<Edit> = Vec::new();
    for assignment in assignments {
        let Some((name, text)) = assignment.split_once('=') else {
            return Err(Error::input(format!(
                "{assignment:?} is not field=value (for example title=Plan)"
            )));
        };
        let field = field_of(cname, collection, name)?;
        if edits.iter().any(|e| e.field() == name) {
            return Err(Error::input(format!("field {name:?} is given twice")));
        }
        edits.push(parse_edit(name, field, text)?);
    }
    Ok(edits)
}

/// The declared field `name` of `collection`, or a message naming the fields there are.
pub fn field_of<'c>(cname: &str, collection: &'c Collection, name: &str) -> Result<&'c Field> {
    collection.fields.get(name).ok_or_else(|| {
        let known: Vec<&str> = collection.fields.keys().map(String::as_str).collect();
        Error::input(format!(
            "collection {cname:?} has no field {name:?} (its fields: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ))
    })
}

fn parse_edit(name: &str, field: &Field, text: &str) -> Result<Edit> {
    let name = name.to_owned();
    Ok(match field.kind {
        FieldKind::Text => Edit::Text(name, text.to_owned()),
        FieldKind::List => {
            let ty = field.scalar_type().unwrap_or(ScalarType::String);
            let items = list_items(&name, text)?
                .iter()
                .map(|item| parse_value(&name, ty, item))
                .collect::<Result<_>>()?;
            Edit::List(name, items)
        }
        FieldKind::Counter => {
            let bad = || {
                Error::input(format!(
                    "counter {name:?} takes a whole number: N to reach N, +N or -N to add; \
                     {text:?} is not one"
                ))
            };
            let (add, number) = match text.strip_prefix('+') {
                Some(number) => (true, number),
                None => (text.starts_with('-'), text),
            };
            let number = number.parse().map_err(|_| bad())?;
            if add {
                Edit::CounterAdd(name, number)
            } else {
                Edit::CounterTo(name, number)
            }
        }
        _ => {
            let ty = field.scalar_type().ok_or_else(|| {
                let kind = kind_name(field.kind);
                Error::input(format!(
                    "field {name:?} is a {kind} field, which this tool cannot write"
                ))
            })?;
            let value = parse_value(&name, ty, text)?;
            Edit::Scalar(name, value)
        }
    })
}

/// A list's items: a JSON array (`["a,b", "c"]`), or comma-separated (`a, b`); empty for
/// an empty string.
fn list_items(field: &str, text: &str) -> Result<Vec<String>> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        let items: Vec<serde_json::Value> = serde_json::from_str(trimmed).map_err(|e| {
            Error::input(format!(
                "list {field:?}: {text:?} is not a JSON array of values: {e}"
            ))
        })?;
        return items
            .into_iter()
            .map(|item| match item {
                serde_json::Value::String(s) => Ok(s),
                serde_json::Value::Number(n) => Ok(n.to_string()),
                serde_json::Value::Bool(b) => Ok(b.to_string()),
                other => Err(Error::input(format!(
                    "list {field:?}: {other} is not a value a list holds"
                ))),
            })
            .collect();
    }
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    Ok(text.split(',').map(|s| s.trim().to_owned()).collect())
}

/// Reads `text` as a value of type `ty` for field `field` (named in the message when it
/// does not fit).
pub fn parse_value(field: &str, ty: ScalarType, text: &str) -> Result<Value> {
    let parsed = match ty {
        ScalarType::String => Some(Value::String(text.to_owned())),
        ScalarType::I64 => text.trim().parse().ok().map(Value::I64),
        ScalarType::F64 => text.trim().parse().ok().map(Value::F64),
        ScalarType::Bool => match text.trim() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        ScalarType::Bytes => hex_decode(text.trim()).map(Value::Bytes),
        ScalarType::Timestamp => timestamp_ms(text.trim()).map(Value::Timestamp),
        ScalarType::RecordRef => text.trim().parse::<RecordId>().ok().map(Value::RecordRef),
        _ => None,
    };
    parsed.ok_or_else(|| {
        Error::input(format!(
            "field {field:?} holds {}; {text:?} is not one",
            type_words(ty)
        ))
    })
}

/// A type in words, for messages: "whole numbers (i64)".
pub fn type_words(ty: ScalarType) -> &'static str {
    match ty {
        ScalarType::String => "strings",
        ScalarType::I64 => "whole numbers (i64)",
        ScalarType::F64 => "numbers (f64)",
        ScalarType::Bool => "true or false",
        ScalarType::Bytes => "bytes, written in hex like 0a1b2c",
        ScalarType::Timestamp => {
            "timestamps: milliseconds since 1970, or a time like 2024-05-01T12:00:00Z"
        }
        ScalarType::RecordRef => "record ids like 0190c3d2-8a4e-7b1c-9f00-1a2b3c4d5e6f",
        _ => "values of a type this tool does not know",
    }
}

/// Milliseconds since the Unix epoch, from a number of them or an RFC 3339 time.
fn timestamp_ms(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let time = humantime::parse_rfc3339_weak(text).ok()?;
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).ok(),
        Err(before) => i64::try_from(before.duration().as_millis())
            .ok()
            .map(|ms| -ms),
    }
}

/// An RFC 3339 time (UTC, milliseconds) for a timestamp, when it is after 1970.
pub fn rfc3339_ms(ms: i64) -> String {
    match u64::try_from(ms) {
        Ok(ms) => {
            let time: SystemTime = UNIX_EPOCH + Duration::from_millis(ms);
            humantime::format_rfc3339_millis(time).to_string()
        }
        Err(_) => format!("{ms} ms before 1970"),
    }
}

/// Bytes from hex (either case); `None` if `text` is not hex.
pub(crate) fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Lower-case hex of `bytes`.
pub fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
