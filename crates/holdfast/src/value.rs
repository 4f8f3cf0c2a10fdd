//! Scalar values: the typed values a field holds, their Automerge form and their index encoding.

use automerge::ScalarValue;
use serde::{Deserialize, Serialize};

use crate::RecordId;

/// The type of a scalar field or of a list's elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ScalarType {
    /// UTF-8 text that is replaced as a whole (use a `Text` field for collaborative text).
    String,
    /// A signed 64-bit integer.
    I64,
    /// A 64-bit float.
    F64,
    /// `true` or `false`.
    Bool,
    /// Opaque bytes.
    Bytes,
    /// Milliseconds since the Unix epoch.
    Timestamp,
    /// The id of another record.
    RecordRef,
}

/// A scalar value of one of the [`ScalarType`]s.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Value {
    /// See [`ScalarType::String`].
    String(String),
    /// See [`ScalarType::I64`].
    I64(i64),
    /// See [`ScalarType::F64`].
    F64(f64),
    /// See [`ScalarType::Bool`].
    Bool(bool),
    /// See [`ScalarType::Bytes`].
    Bytes(Vec<u8>),
    /// See [`ScalarType::Timestamp`].
    Timestamp(i64),
    /// See [`ScalarType::RecordRef`].
    RecordRef(RecordId),
}

impl Value {
    /// The type of this value.
    pub fn scalar_type(&self) -> ScalarType {
        match self {
            Value::String(_) => ScalarType::String,
            Value::I64(_) => ScalarType::I64,
            Value::F64(_) => ScalarType::F64,
            Value::Bool(_) => ScalarType::Bool,
            Value::Bytes(_) => ScalarType::Bytes,
            Value::Timestamp(_) => ScalarType::Timestamp,
            Value::RecordRef(_) => ScalarType::RecordRef,
        }
    }

    /// The string, if this is a [`Value::String`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is a [`Value::I64`].
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::I64(v) => Some(*v),
            _ => None,
        }
    }

    /// Parses `text` as a value of type `ty` (the form a command line or a config file uses).
    pub fn parse(ty: ScalarType, text: &str) -> Option<Value> {
        Some(match ty {
            ScalarType::String => Value::String(text.to_owned()),
            ScalarType::I64 => Value::I64(text.parse().ok()?),
            ScalarType::F64 => Value::F64(text.parse().ok()?),
            ScalarType::Bool => Value::Bool(text.parse().ok()?),
            ScalarType::Bytes => Value::Bytes(text.as_bytes().to_vec()),
            ScalarType::Timestamp => Value::Timestamp(text.parse().ok()?),
            ScalarType::RecordRef => Value::RecordRef(text.parse().ok()?),
        })
    }

    pub(crate) fn to_automerge(&self) -> ScalarValue {
        match self {
            Value::String(s) => ScalarValue::Str(s.as_str().into()),
            Value::I64(v) => ScalarValue::Int(*v),
            Value::F64(v) => ScalarValue::F64(*v),
            Value::Bool(v) => ScalarValue::Boolean(*v),
            Value::Bytes(v) => ScalarValue::Bytes(v.clone()),
            Value::Timestamp(v) => ScalarValue::Timestamp(*v),
            Value::RecordRef(id) => ScalarValue::Bytes(id.as_bytes().to_vec()),
        }
    }

    /// Reads an Automerge scalar as a value of type `ty`; `None` if it has another type
    /// (written by another schema).
    pub(crate) fn from_automerge(ty: ScalarType, v: &ScalarValue) -> Option<Value> {
        Some(match (ty, v) {
            (ScalarType::String, ScalarValue::Str(s)) => Value::String(s.to_string()),
            (ScalarType::I64, ScalarValue::Int(v)) => Value::I64(*v),
            (ScalarType::I64, ScalarValue::Uint(v)) => Value::I64(i64::try_from(*v).ok()?),
            (ScalarType::F64, ScalarValue::F64(v)) => Value::F64(*v),
            (ScalarType::Bool, ScalarValue::Boolean(v)) => Value::Bool(*v),
            (ScalarType::Bytes, ScalarValue::Bytes(v)) => Value::Bytes(v.clone()),
            (ScalarType::Timestamp, ScalarValue::Timestamp(v)) => Value::Timestamp(*v),
            (ScalarType::RecordRef, ScalarValue::Bytes(v)) => {
                Value::RecordRef(RecordId::from_bytes(v.as_slice().try_into().ok()?))
            }
            _ => return None,
        })
    }

    /// Encodes the value so that byte order equals value order within one type, and no
    /// encoding is a prefix of another (index keys append the record id after it).
    pub(crate) fn index_encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::String(s) => escaped(s.as_bytes(), out),
            Value::Bytes(b) => escaped(b, out),
            Value::I64(v) | Value::Timestamp(v) => {
                out.extend_from_slice(&((*v as u64) ^ (1 << 63)).to_be_bytes())
            }
            Value::F64(v) => {
                let bits = v.to_bits();
                let ordered = if bits >> 63 == 1 {
                    !bits
                } else {
                    bits | (1 << 63)
                };
                out.extend_from_slice(&ordered.to_be_bytes());
            }
            Value::Bool(v) => out.push(u8::from(*v)),
            Value::RecordRef(id) => out.extend_from_slice(id.as_bytes()),
        }
    }
}

/// 0x00 becomes 0x00 0xFF; the end is 0x00 0x01, which sorts below any continuation.
fn escaped(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F64(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<RecordId> for Value {
    fn from(v: RecordId) -> Self {
        Value::RecordRef(v)
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::String(s) => f.write_str(s),
            Value::I64(v) | Value::Timestamp(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::RecordRef(id) => write!(f, "{id}"),
        }
    }
}
