//! The write transaction handed to [`Store::write`](crate::Store::write) closures.

use automerge::transaction::{CommitOptions, OwnedTransaction, Transactable};
use automerge::{ObjType, ReadDoc, ScalarValue, ROOT};

use crate::cache::Entry;
use std::sync::Arc;

use crate::commit::{Before, Changed, Pending, Staged};
use crate::conflict::{detect, settle, Candidate, Resolution};
use crate::doc::{self, FieldValue, View, DELETED, LIVE, STATE_FIELD};
use crate::error::{CommitError, Error, Result, SchemaError};
use crate::record::Record;
use crate::schema::{Field, FieldKind};
use crate::store::{Inner, State};
use crate::subscribe::Origin;
use crate::tables::RecordMeta;
use crate::value::Value;
use crate::{RecordId, SpaceId};

/// A write in progress: every change made through it becomes durable together when the
/// closure returns `Ok`, or is discarded when it returns `Err`.
pub struct Tx<'s> {
    inner: &'s Inner,
    scope: Scope<'s>,
    now_ms: i64,
    touched: Vec<Touched>,
}

/// Which records a write may touch.
enum Scope<'s> {
    /// Any, holding the state lock (and the exclusive staging lock) throughout.
    Any(&'s mut State),
    /// One record, checked out of the cache; no lock held while the closure runs.
    One(RecordId),
}

struct Touched {
    id: RecordId,
    txn: Option<OwnedTransaction>,
    meta: RecordMeta,
    committed_heads: Vec<automerge::ChangeHash>,
    dirty: u32,
    before: Before,
    /// Whether the record is deleted as this write has left it.
    deleted: bool,
}

impl Touched {
    fn txn(&mut self) -> &mut OwnedTransaction {
        self.txn.as_mut().expect("open until finish")
    }

    fn view(&self) -> View<'_, OwnedTransaction> {
        View::latest(self.txn.as_ref().expect("open until finish"))
    }

    /// Records the index keys as they are before this write first changes something they
    /// depend on (an indexed field, or whether the record is deleted).
    fn index_may_change(&mut self, inner: &Inner) {
        if self.before.index.is_none() {
            let txn = self.txn.as_ref().expect("open until finish");
            self.before.index = Some(crate::commit::index_keys(inner, self.id, txn, &self.meta));
        }
    }
}

impl<'s> Tx<'s> {
    pub(crate) fn new(inner: &'s Inner, st: &'s mut State, now_ms: i64) -> Self {
        Tx {
            inner,
            scope: Scope::Any(st),
            now_ms,
            touched: Vec::new(),
        }
    }

    /// A write confined to `id`, already checked out as `entry`.
    pub(crate) fn single(inner: &'s Inner, id: RecordId, entry: Entry, now_ms: i64) -> Self {
        let mut tx = Tx {
            inner,
            scope: Scope::One(id),
            now_ms,
            touched: Vec::new(),
        };
        tx.push_touched(id, entry);
        tx
    }

    /// Creates a record of `collection` in `space` with a new UUID v7 id. Its collaborative
    /// fields start empty, counters at zero, scalars unset.
    pub fn create(&mut self, collection: &str, space: &SpaceId) -> Result<RecordId> {
        if let Scope::One(only) = self.scope {
            return Err(Error::OutOfScope { record: None, only });
        }
        let def = self.inner.schema.get(collection)?;
        let id = RecordId::new_v7();
        let mut txn = self
            .inner
            .new_doc()
            .into_transaction(None, None)
            .expect("no patch log");
        txn.put(ROOT, doc::COLLECTION_KEY, collection)?;
        txn.put(ROOT, doc::SPACE_KEY, space.as_str())?;
        for (name, field) in &def.fields {
            init_field(&mut txn, name, field)?;
        }
        let meta = RecordMeta {
            collection: collection.to_owned(),
            space: space.clone(),
            heads: Vec::new(),
            chunks: 0,
            snapshot_bytes: 0,
            tail_bytes: 0,
            created_ms: self.now_ms,
            updated_ms: self.now_ms,
        };
        self.touched.push(Touched {
            id,
            txn: Some(txn),
            meta,
            committed_heads: Vec::new(),
            dirty: 0,
            before: Before {
                heads: Vec::new(),
                index: Some(Default::default()),
                conflicts: Vec::new(),
                resolved: Vec::new(),
            },
            deleted: false,
        });
        Ok(id)
    }

    /// Sets an `Lww` or `Versioned` field. On a conflicted versioned field this is a
    /// resolution: the new value supersedes every candidate.
    pub fn set(&mut self, id: RecordId, field: &str, value: impl Into<Value>) -> Result<()> {
        let value = value.into();
        let inner = self.inner;
        let (t, def) = self.live(id, field)?;
        expect_kind(field, &def, &[FieldKind::Lww, FieldKind::Versioned], "set")?;
        check_type(field, &def, &value)?;
        if def.indexed {
            t.index_may_change(inner);
        }
        t.txn().put(ROOT, field, value.to_automerge())?;
        Ok(())
    }

    /// Replaces `delete` characters at `pos` of a `Text` field with `text`. Positions count
    /// Unicode scalar values.
    pub fn splice_text(
        &mut self,
        id: RecordId,
        field: &str,
        pos: usize,
        delete: usize,
        text: &str,
    ) -> Result<()> {
        let (t, def) = self.live(id, field)?;
        expect_kind(field, &def, &[FieldKind::Text], "splice_text")?;
        let obj = container(t, field, ObjType::Text)?;
        let len = t.txn().length(&obj);
        if pos > len || delete > len - pos {
            return Err(Error::OutOfBounds {
                field: field.to_owned(),
                index: pos + delete,
                len,
            });
        }
        t.txn().splice_text(&obj, pos, delete as isize, text)?;
        Ok(())
    }

    /// Adds `by` (which may be negative) to a `Counter` field.
    pub fn increment(&mut self, id: RecordId, field: &str, by: i64) -> Result<()> {
        let (t, def) = self.live(id, field)?;
        expect_kind(field, &def, &[FieldKind::Counter], "increment")?;
        if t.txn().get(ROOT, field)?.is_none() {
            t.txn().put(ROOT, field, ScalarValue::counter(0))?;
        }
        t.txn().increment(ROOT, field, by)?;
        Ok(())
    }

    /// Inserts `value` at `index` of a `List` field (`index == len` appends).
    pub fn list_insert(
        &mut self,
        id: RecordId,
        field: &str,
        index: usize,
        value: impl Into<Value>,
    ) -> Result<()> {
        let value = value.into();
        let (t, def) = self.live(id, field)?;
        expect_kind(field, &def, &[FieldKind::List], "list_insert")?;
        check_type(field, &def, &value)?;
        let obj = container(t, field, ObjType::List)?;
        let len = t.txn().length(&obj);
        if index > len {
            return Err(Error::OutOfBounds {
                field: field.to_owned(),
                index,
                len,
            });
        }
        t.txn().insert(&obj, index, value.to_automerge())?;
        Ok(())
    }

    /// Appends `value` to a `List` field.
    pub fn list_push(&mut self, id: RecordId, field: &str, value: impl Into<Value>) -> Result<()> {
        let len = match self.record_field(id, field)? {
            FieldValue::List(items) => items.len(),
            _ => 0,
        };
        self.list_insert(id, field, len, value)
    }

    /// Removes the element at `index` of a `List` field.
    pub fn list_delete(&mut self, id: RecordId, field: &str, index: usize) -> Result<()> {
        let (t, def) = self.live(id, field)?;
        expect_kind(field, &def, &[FieldKind::List], "list_delete")?;
        let obj = container(t, field, ObjType::List)?;
        let len = t.txn().length(&obj);
        if index >= len {
            return Err(Error::OutOfBounds {
                field: field.to_owned(),
                index,
                len,
            });
        }
        t.txn().delete(&obj, index)?;
        Ok(())
    }

    /// Deletes a record: it is hidden from reads and queries until restored. The deletion
    /// syncs like any change; an edit made concurrently elsewhere turns it into a conflict on
    /// [`STATE_FIELD`] rather than silently winning or losing.
    pub fn delete(&mut self, id: RecordId) -> Result<()> {
        let inner = self.inner;
        let t = self.touch(id)?;
        // Deleting again settles a delete/edit conflict in favour of the delete.
        if !t.deleted || detect::state_conflicted(&t.view()) {
            t.index_may_change(inner);
            t.txn().put(ROOT, STATE_FIELD, doc::deleted_marker())?;
            t.deleted = true;
        }
        Ok(())
    }

    /// Undoes a delete (also settles a delete/edit conflict in favour of the edit).
    pub fn restore(&mut self, id: RecordId) -> Result<()> {
        let inner = self.inner;
        let t = self.touch(id)?;
        if t.deleted {
            t.index_may_change(inner);
            t.txn().put(ROOT, STATE_FIELD, LIVE)?;
            t.deleted = false;
        }
        Ok(())
    }

    /// Settles a conflicted `Versioned` field, or a delete/edit conflict ([`STATE_FIELD`]).
    /// The chosen value is written as a new change that supersedes every candidate, so it
    /// settles the conflict on every device it syncs to. Which value `resolution` picks is
    /// `conflict::settle`'s.
    pub fn resolve(&mut self, id: RecordId, field: &str, resolution: Resolution) -> Result<()> {
        let inner = self.inner;
        let me = inner.device;
        let reject = |reason| Error::Resolve {
            record: id,
            field: field.to_owned(),
            reason,
        };
        let t = self.touch(id)?;
        let candidates = if field == STATE_FIELD {
            detect::state_candidates(&t.view(), me)
        } else {
            let def = inner.schema.field(&t.meta.collection, field)?.clone();
            expect_kind(field, &def, &[FieldKind::Versioned], "resolve")?;
            match t.view().field(field, &def, me) {
                FieldValue::Conflict(c) => c,
                _ => Vec::new(),
            }
        };
        let value = settle::choose(&candidates, resolution).map_err(reject)?;
        let t = self.touch(id)?;
        t.index_may_change(inner);
        if field == STATE_FIELD {
            t.deleted = value.as_str() == Some(DELETED);
            match value.as_str() {
                Some(s) if s == LIVE => t.txn().put(ROOT, STATE_FIELD, LIVE)?,
                Some(s) if s == DELETED => t.txn().put(ROOT, STATE_FIELD, doc::deleted_marker())?,
                _ => return Err(reject("the record state is either \"live\" or \"deleted\"")),
            }
        } else {
            let def = inner.schema.field(&t.meta.collection, field)?.clone();
            check_type(field, &def, &value)?;
            t.txn().put(ROOT, field, value.to_automerge())?;
        }
        Ok(())
    }

    /// Reads a record as this write has left it so far.
    pub fn get(&mut self, id: RecordId) -> Result<Record> {
        let inner = self.inner;
        let t = self.touch(id)?;
        if t.deleted {
            return Err(Error::Deleted(id));
        }
        Ok(Record::read(inner, id, &t.meta, &t.view()))
    }

    /// The candidates of a conflicted versioned field, as this write sees them.
    pub fn candidates(&mut self, id: RecordId, field: &str) -> Result<Vec<Candidate>> {
        Ok(match self.record_field(id, field)? {
            FieldValue::Conflict(c) => c,
            _ => Vec::new(),
        })
    }

    fn record_field(&mut self, id: RecordId, field: &str) -> Result<FieldValue> {
        let me = self.inner.device;
        let (t, def) = self.live(id, field)?;
        Ok(t.view().field(field, &def, me))
    }

    /// The touched record and the field's definition; errors if the record is deleted.
    fn live(&mut self, id: RecordId, field: &str) -> Result<(&mut Touched, Field)> {
        let inner = self.inner;
        let t = self.touch(id)?;
        let def = inner.schema.field(&t.meta.collection, field)?.clone();
        if t.deleted {
            return Err(Error::Deleted(id));
        }
        Ok((t, def))
    }

    fn touch(&mut self, id: RecordId) -> Result<&mut Touched> {
        if let Some(i) = self.touched.iter().position(|t| t.id == id) {
            return Ok(&mut self.touched[i]);
        }
        let entry = match &mut self.scope {
            Scope::Any(st) => self.inner.take(st, id)?.ok_or(Error::NotFound(id))?,
            Scope::One(only) => {
                return Err(Error::OutOfScope {
                    record: Some(id),
                    only: *only,
                })
            }
        };
        Ok(self.push_touched(id, entry))
    }

    fn push_touched(&mut self, id: RecordId, entry: Entry) -> &mut Touched {
        let Entry {
            doc,
            meta,
            committed_heads,
            dirty,
        } = entry;
        let before = Before {
            heads: doc.get_heads(),
            index: None,
            conflicts: crate::commit::open_conflicts(self.inner, &doc, &meta),
            resolved: Vec::new(),
        };
        let deleted = View::latest(&doc).deleted();
        let txn = doc.into_transaction(None, None).expect("no patch log");
        self.touched.push(Touched {
            id,
            txn: Some(txn),
            meta,
            committed_heads,
            dirty,
            before,
            deleted,
        });
        self.touched.last_mut().expect("just pushed")
    }

    /// Discards every change and puts the documents back as they were.
    pub(crate) fn rollback(mut self) {
        self.rollback_all();
    }

    fn rollback_all(&mut self) {
        for mut t in std::mem::take(&mut self.touched) {
            let (doc, _) = t.txn.take().expect("open until finish").rollback();
            let entry = Entry {
                doc,
                meta: t.meta,
                committed_heads: t.committed_heads,
                dirty: t.dirty,
            };
            match &mut self.scope {
                // A record created by this write has no heads and is simply dropped.
                Scope::Any(st) if !t.before.heads.is_empty() => st.cache.insert(t.id, entry),
                Scope::Any(_) => {}
                Scope::One(_) => {
                    let mut st = crate::lock::lock(&self.inner.state);
                    self.inner.check_in(&mut st, t.id, entry);
                }
            }
        }
    }

    /// Commits the Automerge transactions and stages the rows to write (any-record scope).
    pub(crate) fn finish(mut self) -> Staged {
        let mut staged = Staged::default();
        for t in std::mem::take(&mut self.touched) {
            let Some(changed) = commit_touched(t, self.now_ms) else {
                continue;
            };
            let Scope::Any(st) = &mut self.scope else {
                unreachable!("finish_single")
            };
            self.inner
                .stage_record(st, &mut staged, changed, Origin::Local, self.now_ms);
        }
        staged
    }

    /// Commits a single-record write: its rows are prepared without any lock, then it takes
    /// its place in the queue and the record is checked back in. `None` if nothing changed.
    pub(crate) fn finish_single(mut self) -> Result<Option<Arc<Pending>>> {
        let t = self
            .touched
            .pop()
            .expect("a single-record write holds its record");
        let id = t.id;
        let changed = commit_touched(t, self.now_ms).expect("an existing record");
        let prepared = self
            .inner
            .prepare_record(changed, Origin::Local, self.now_ms);
        let mut st = crate::lock::lock(&self.inner.state);
        let changed = prepared.changed();
        let failed = st.out.get(&id).and_then(|o| o.failed.clone());
        if let Some(cause) = failed.filter(|_| changed) {
            self.inner.check_in(&mut st, id, prepared.entry);
            return Err(Error::CommitFailed(CommitError::Earlier(cause)));
        }
        let mut staged = Staged::default();
        let entry = self.inner.install(&mut st, &mut staged, prepared);
        let staged = changed.then_some(staged);
        self.inner.check_in(&mut st, id, entry);
        Ok(staged.map(|s| self.inner.enqueue(&mut st, s)))
    }
}

/// Commits a touched record's Automerge transaction; `None` for a record this write
/// created and then left without changes.
fn commit_touched(mut t: Touched, now_ms: i64) -> Option<Changed> {
    let txn = t.txn.take().expect("open until finish");
    let changed = txn.pending_ops() > 0;
    let doc = if changed {
        txn.commit_with(CommitOptions::default().with_time(now_ms))
            .0
    } else {
        txn.rollback().0
    };
    if !changed && t.before.heads.is_empty() {
        return None;
    }
    let entry = Entry {
        doc,
        meta: t.meta,
        committed_heads: t.committed_heads,
        dirty: t.dirty,
    };
    Some(Changed {
        id: t.id,
        entry,
        before: t.before,
        new_changes: None,
    })
}

impl Drop for Tx<'_> {
    /// A closure that panicked leaves the cache as it found it.
    fn drop(&mut self) {
        self.rollback_all();
    }
}

pub(crate) fn init_field(txn: &mut OwnedTransaction, name: &str, field: &Field) -> Result<()> {
    if let Some(ty) = doc::container_type(field.kind) {
        txn.put_object(ROOT, name, ty)?;
    } else if field.kind == FieldKind::Counter {
        txn.put(ROOT, name, ScalarValue::counter(0))?;
    }
    Ok(())
}

/// The container of a Text or List field, created if a later schema added the field.
fn container(t: &mut Touched, field: &str, ty: ObjType) -> Result<automerge::ObjId> {
    match t.view().container(field) {
        Some(obj) => Ok(obj),
        None => Ok(t.txn().put_object(ROOT, field, ty)?),
    }
}

fn expect_kind(
    name: &str,
    def: &Field,
    kinds: &[FieldKind],
    operation: &'static str,
) -> Result<()> {
    if kinds.contains(&def.kind) {
        Ok(())
    } else {
        Err(SchemaError::WrongKind {
            field: name.to_owned(),
            kind: def.kind.name(),
            operation,
        }
        .into())
    }
}

fn check_type(name: &str, def: &Field, value: &Value) -> Result<()> {
    let expected = def.scalar_type().expect("scalar or list field");
    if value.scalar_type() == expected {
        Ok(())
    } else {
        Err(SchemaError::WrongType {
            field: name.to_owned(),
            expected,
            got: value.scalar_type(),
        }
        .into())
    }
}
