//! Opening a store with the schema kept in its own file, for tools that do not have the
//! app's code (the `holdfast` command-line tool).

use std::path::Path;

use redb::{Database, ReadableDatabase};

use crate::damage::{self, Guarded};
use crate::error::{Error, Result};
use crate::schema::Schema;
use crate::store::{Store, StoreConfig};
use crate::tables;

impl Store {
    /// The schema stored in the store file at `path`; `None` if the file has none (it was
    /// never opened as a store). The file must exist and not be open in another process.
    pub fn stored_schema(path: impl AsRef<Path>) -> Result<Option<Schema>> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(Error::NotAStore(path.display().to_string()));
        }
        damage::contained(|| {
            let db = Guarded::new(Database::open(path)?);
            let txn = Guarded::new(db.begin_read()?);
            let meta = match txn.open_table(tables::META) {
                Ok(meta) => meta,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let row = meta.get(tables::META_SCHEMA)?;
            row.map(|row| tables::decode_row(1, row.value(), "schema"))
                .transpose()
        })
    }

    /// Opens the store at `path` with the schema it keeps, so that any store can be
    /// inspected and operated without the app that wrote it. A file that holds no store
    /// is refused with [`Error::NotAStore`], and nothing is created.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref();
        let schema = Store::stored_schema(path)?
            .ok_or_else(|| Error::NotAStore(path.display().to_string()))?;
        Store::open(path, StoreConfig::new(schema))
    }
}
