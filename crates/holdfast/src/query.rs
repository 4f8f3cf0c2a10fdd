//! Queries: records of a collection, of a space, or by an indexed field's value or range,
//! in pages. Every query is a range scan of the index table.

use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SchemaError};
use crate::index;
use crate::tables;
use crate::value::Value;
use crate::{RecordId, SpaceId, Store};

/// Where the next page starts: the last index key of the previous page.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PageToken(Vec<u8>);

/// One page of query results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// Record ids in index order (for listings, creation order).
    pub ids: Vec<RecordId>,
    /// Pass to the same query for the next page; `None` on the last page.
    pub next: Option<PageToken>,
}

/// What to list.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Query<'a> {
    /// Every live record of a collection, by id (creation) order.
    Collection(&'a str),
    /// Every live record of a collection in one space.
    Space(&'a SpaceId, &'a str),
    /// Records whose indexed `field` equals `value` (any candidate, for a conflicted field).
    Equals {
        /// The collection.
        collection: &'a str,
        /// An indexed field.
        field: &'a str,
        /// The value.
        value: Value,
    },
    /// Records whose indexed `field` lies in the range, in value order.
    Range {
        /// The collection.
        collection: &'a str,
        /// An indexed field.
        field: &'a str,
        /// Lower bound.
        from: Bound<Value>,
        /// Upper bound.
        to: Bound<Value>,
    },
}

impl Store {
    /// Runs `query`, returning at most `limit` ids after `after`.
    pub fn query(
        &self,
        query: &Query<'_>,
        limit: usize,
        after: Option<&PageToken>,
    ) -> Result<Page> {
        let (start, end) = self.bounds(query)?;
        let start = match after {
            Some(PageToken(last)) => {
                let mut k = last.clone();
                k.push(0);
                k.max(start)
            }
            None => start,
        };
        self.inner.reading(|txn| {
            let table = txn.open_table(tables::INDEX)?;
            let mut ids = Vec::new();
            let mut last = None;
            let mut more = false;
            if start < end {
                for item in table.range::<&[u8]>(start.as_slice()..end.as_slice())? {
                    let (k, _) = item?;
                    if ids.len() == limit {
                        more = true;
                        break;
                    }
                    ids.push(index::record_of(k.value()));
                    last = Some(k.value().to_vec());
                }
            }
            Ok(Page {
                ids,
                next: if more { last.map(PageToken) } else { None },
            })
        })
    }

    /// Every live record of a collection (all pages).
    pub fn all(&self, collection: &str) -> Result<Vec<RecordId>> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self.query(&Query::Collection(collection), 1000, after.as_ref())?;
            out.extend(page.ids);
            match page.next {
                Some(t) => after = Some(t),
                None => return Ok(out),
            }
        }
    }

    fn bounds(&self, query: &Query<'_>) -> Result<(Vec<u8>, Vec<u8>)> {
        let schema = &self.inner.schema;
        Ok(match query {
            Query::Collection(c) => {
                schema.get(c)?;
                let p = index::collection_key(c, None);
                (p.clone(), index::prefix_end(&p))
            }
            Query::Space(s, c) => {
                schema.get(c)?;
                let p = index::space_key(s, c, None);
                (p.clone(), index::prefix_end(&p))
            }
            Query::Equals {
                collection,
                field,
                value,
            } => {
                self.indexed(collection, field, value)?;
                let p = index::field_key(collection, field, value, None);
                (p.clone(), index::prefix_end(&p))
            }
            Query::Range {
                collection,
                field,
                from,
                to,
            } => {
                let ty = schema.field(collection, field)?.scalar_type();
                let mut typed = index::field_prefix(collection, field);
                typed.push(ty.map_or(0, |t| t as u8));
                let start = match from {
                    Bound::Included(v) => {
                        self.indexed(collection, field, v)?;
                        index::field_key(collection, field, v, None)
                    }
                    Bound::Excluded(v) => {
                        self.indexed(collection, field, v)?;
                        index::prefix_end(&index::field_key(collection, field, v, None))
                    }
                    Bound::Unbounded => typed.clone(),
                };
                let end = match to {
                    Bound::Included(v) => {
                        self.indexed(collection, field, v)?;
                        index::prefix_end(&index::field_key(collection, field, v, None))
                    }
                    Bound::Excluded(v) => {
                        self.indexed(collection, field, v)?;
                        index::field_key(collection, field, v, None)
                    }
                    Bound::Unbounded => index::prefix_end(&typed),
                };
                (start, end)
            }
        })
    }

    fn indexed(&self, collection: &str, field: &str, value: &Value) -> Result<()> {
        let def = self.inner.schema.field(collection, field)?;
        if !def.indexed {
            return Err(SchemaError::NotIndexed {
                collection: collection.into(),
                field: field.into(),
            }
            .into());
        }
        let expected = def.scalar_type().expect("indexed fields are scalars");
        if value.scalar_type() != expected {
            return Err(SchemaError::WrongType {
                field: field.into(),
                expected,
                got: value.scalar_type(),
            }
            .into());
        }
        Ok(())
    }
}
