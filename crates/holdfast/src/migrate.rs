//! Schema migration at open: runs inside the open transaction, so a crash leaves either the
//! old schema and data or the new ones.
//!
//! What changes between versions is derived from the two schemas: fields that became
//! indexed are back-filled, fields that stopped being indexed lose their entries. Field
//! containers for new collaborative fields are created on first write.

use redb::WriteTransaction;

use crate::doc::View;
use crate::error::Result;
use crate::index;
use crate::schema::Schema;
use crate::tables;

pub(crate) fn migrate(txn: &WriteTransaction, old: &Schema, new: &Schema) -> Result<()> {
    tracing::info!(from = old.version, to = new.version, "migrating schema");
    let mut drop_prefixes = Vec::new();
    let mut add = Vec::new();
    for (cname, collection) in &new.collections {
        for (fname, field) in &collection.fields {
            let was = old.collections.get(cname).and_then(|c| c.fields.get(fname));
            if field.indexed
                && !was.is_some_and(|w| w.indexed && w.kind == field.kind && w.ty == field.ty)
            {
                drop_prefixes.push(index::field_prefix(cname, fname));
                add.push((cname.clone(), fname.clone()));
            }
        }
    }
    for (cname, collection) in &old.collections {
        for (fname, _) in collection.fields.iter().filter(|(_, f)| f.indexed) {
            let now = new.collections.get(cname).and_then(|c| c.fields.get(fname));
            if !now.is_some_and(|n| n.indexed) {
                drop_prefixes.push(index::field_prefix(cname, fname));
            }
        }
    }
    {
        let mut idx = txn.open_table(tables::INDEX)?;
        for p in &drop_prefixes {
            let end = index::prefix_end(p);
            idx.retain_in::<&[u8], _>(p.as_slice()..end.as_slice(), |_, _| false)?;
        }
    }
    if add.is_empty() {
        return Ok(());
    }
    let ids = crate::store::record_ids(&txn.open_table(tables::RECORDS)?)?;
    let actor = automerge::ActorId::random();
    let mut keys = std::collections::BTreeSet::new();
    for id in ids {
        let Some(entry) = crate::store::load_entry_in_write(txn, id, &actor)? else {
            continue;
        };
        let meta = &entry.meta;
        if !add.iter().any(|(c, _)| *c == meta.collection) {
            continue;
        }
        let Some(collection) = new.collections.get(&meta.collection) else {
            continue;
        };
        let view = View::latest(&entry.doc);
        keys.extend(view.index_keys(id, &meta.collection, &meta.space, collection));
    }
    crate::commit::index_rows(txn, &keys)
}
