//! The store: opening a file, the schema check and migration at open, reads, and the write
//! entry point (the group commit lives in `commit.rs`, the write API in `txn.rs`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use automerge::{ActorId, Automerge, LoadOptions, TextEncoding};
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction,
};

use crate::cache::{DocCache, Entry};
use crate::commit::Pending;
use crate::conflict::{Candidate, Resolver};
use crate::damage::{self, Guarded};
use crate::doc::{self, FieldValue, View};
use crate::error::{Error, ReadOnlyReason, Result, SchemaError};
use crate::limits::DOC_CACHE_BYTES_DEFAULT;
use crate::record::Record;
use crate::schema::Schema;
use crate::subscribe::Subscribers;
use crate::tables::{self, RecordMeta};
use crate::txn::Tx;
use crate::value::Value;
use crate::{DeviceId, RecordId};

/// A clock in milliseconds since the Unix epoch. Times are shown to people and never decide
/// a merge, so a skewed clock changes no outcome.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// How to open a store.
#[derive(Clone)]
pub struct StoreConfig {
    pub(crate) schema: Schema,
    pub(crate) cache_bytes: usize,
    pub(crate) clock: Clock,
    pub(crate) resolvers: HashMap<(String, String), Resolver>,
    pub(crate) outbox_window: usize,
}

impl StoreConfig {
    /// A configuration for the app's `schema`.
    pub fn new(schema: Schema) -> StoreConfig {
        StoreConfig {
            schema,
            cache_bytes: DOC_CACHE_BYTES_DEFAULT,
            clock: Arc::new(system_ms),
            resolvers: HashMap::new(),
            outbox_window: crate::limits::OUTBOX_INDEX_WINDOW_ENTRIES,
        }
    }

    /// Outbox entries the in-memory outbox index keeps whole (at least 1): tests shrink it
    /// so the window refills all the time. Not for apps (`internals` only).
    #[cfg_attr(feature = "internals", visibility::make(pub))]
    #[cfg_attr(not(feature = "internals"), allow(dead_code))] // tests and the fuzz model
    pub(crate) fn outbox_window(mut self, entries: usize) -> Self {
        self.outbox_window = entries.max(1);
        self
    }

    /// The memory budget for loaded documents.
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// The clock used for timestamps (tests skew it).
    pub fn clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// A function that settles conflicts of `collection.field` as they arrive from other
    /// devices; returning `None` leaves the conflict for the user.
    pub fn resolver(
        mut self,
        collection: &str,
        field: &str,
        resolver: impl Fn(&[Candidate]) -> Option<Value> + Send + Sync + 'static,
    ) -> Self {
        self.resolvers.insert(
            (collection.to_owned(), field.to_owned()),
            Arc::new(resolver),
        );
        self
    }
}

fn system_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Memory use of an open store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Documents loaded in the cache.
    pub cached_documents: usize,
    /// Their approximate size (stored bytes), against the configured budget.
    pub cached_bytes: usize,
    /// Staged writes waiting for a group commit.
    pub queued_writes: usize,
}

/// A local-first document store in one redb file. Cheap to clone; all clones share the file.
///
/// Every method is synchronous and may block on disk I/O: call it from a thread that may
/// block (a UI thread's short writes are fine; async code should use a blocking pool).
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub db: Guarded<Database>,
    /// The schema in effect: the app's, or the newer one in the file when read-only.
    pub schema: Schema,
    pub device: DeviceId,
    /// This incarnation's Automerge actor.
    pub actor: ActorId,
    pub read_only: Option<ReadOnlyReason>,
    pub config: StoreConfig,
    pub state: Mutex<State>,
    /// Signalled when a record is checked back in (see [`State::out`]).
    pub returned: Condvar,
    /// Shared by single-record writes, which stage in parallel on checked-out records;
    /// exclusive for writes that may touch any record, so no checkout exists while they run.
    pub staging: RwLock<()>,
    /// Held by the writer that commits a group (see `commit.rs`).
    pub leader: Mutex<()>,
    pub subscribers: Subscribers,
    /// Every outbox entry's record and state, for sync states without disk reads.
    pub outbox: Mutex<crate::outbox::OutboxIndex>,
    /// Called when entries become due in the outbox (the sync worker's wake-up).
    pub outbox_watchers: crate::subscribe::Watchers,
}

/// What writers share while staging.
pub(crate) struct State {
    pub cache: DocCache,
    /// Staged writes in staging order, waiting for a leader to commit them.
    pub queue: Vec<Arc<Pending>>,
    /// Records checked out of the cache by single-record writes, with what happened to them
    /// meanwhile. Readers and writers of such a record wait for it to come back.
    pub out: HashMap<RecordId, Out>,
    /// The next sequence of the log (outbox and journal share it).
    pub log_next: u64,
}

/// What happened to a checked-out record while it was out.
#[derive(Default)]
pub(crate) struct Out {
    /// Its staged writes that became durable, and the heads they left.
    pub committed: u32,
    pub heads: Option<Vec<automerge::ChangeHash>>,
    /// A group holding one of its staged writes failed (with this error): the document is
    /// not what is on disk, so it must not come back.
    pub failed: Option<Arc<Error>>,
}

thread_local! {
    static IN_WRITE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` marked as inside a write closure, so store calls from it fail instead of
/// deadlocking.
pub(crate) fn in_write<T>(f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            IN_WRITE.with(|w| w.set(false));
        }
    }
    IN_WRITE.with(|w| w.set(true));
    let _reset = Reset;
    f()
}

impl Store {
    /// Creates or opens the store at `path`. On first open a [`DeviceId`] is created, and a
    /// new file is readable and writable by its owner only (mode 0600 on Unix; an existing
    /// file keeps its mode). The schema is checked against the one stored: an older stored
    /// schema is migrated (in one transaction), a newer one opens the store read-only (see
    /// [`Store::read_only`]).
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<Store> {
        config.schema.validate()?;
        let path = path.as_ref();
        create_private(path)?;
        damage::contained(|| Store::open_db(Database::builder().create(path)?, config))
    }

    /// Opens a store on any redb storage backend: an in-memory one, or one that injects I/O
    /// failures to test what an app does when the disk fails.
    pub fn open_with_backend(
        backend: impl redb::StorageBackend,
        config: StoreConfig,
    ) -> Result<Store> {
        config.schema.validate()?;
        damage::contained(|| {
            Store::open_db(Database::builder().create_with_backend(backend)?, config)
        })
    }

    fn open_db(db: Database, config: StoreConfig) -> Result<Store> {
        let db = Guarded::new(db);
        let txn = Guarded::new(tables::begin_durable(&db)?);
        tables::create_all(&txn)?;
        let (device, schema, read_only) = open_meta(&txn, &config.schema)?;
        let outbox = crate::outbox::open_index(&txn, read_only.is_none(), config.outbox_window)?;
        let log = txn.open_table(tables::LOG)?;
        let log_next = tables::log_last(&log, tables::LOG_OUTBOX)?
            .max(tables::log_last(&log, tables::LOG_JOURNAL)?)
            + 1;
        drop(log);
        txn.into_inner().commit()?;
        let inner = Arc::new(Inner {
            db,
            schema,
            device,
            actor: doc::actor_for(device),
            read_only,
            state: Mutex::new(State {
                cache: DocCache::new(config.cache_bytes),
                queue: Vec::new(),
                out: HashMap::new(),
                log_next,
            }),
            config,
            returned: Condvar::new(),
            staging: RwLock::new(()),
            leader: Mutex::new(()),
            subscribers: Subscribers::default(),
            outbox: Mutex::new(outbox),
            outbox_watchers: crate::subscribe::Watchers::default(),
        });
        let store = Store { inner };
        if let Some(reason) = &store.inner.read_only {
            tracing::warn!(%reason, "store opened read-only");
        }
        Ok(store)
    }

    /// This device's id, created when the store file was first opened.
    pub fn device_id(&self) -> DeviceId {
        self.inner.device
    }

    /// The schema in effect.
    pub fn schema(&self) -> &Schema {
        &self.inner.schema
    }

    /// Why writes are refused, if they are.
    pub fn read_only(&self) -> Option<&ReadOnlyReason> {
        self.inner.read_only.as_ref()
    }

    /// Runs `f` as one atomic, durable write: when `write` returns `Ok`, every change made
    /// through the [`Tx`] and its outbox entries are on disk. If `f` returns an error nothing
    /// is written. Concurrent writers share one commit.
    pub fn write<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        self.inner.writable()?;
        self.inner.check_reentrant()?;
        let now = self.inner.now();
        let (out, pending) = {
            // Held until the write is queued, not while it waits for its fsync.
            let _exclusive = self
                .inner
                .staging
                .write()
                .unwrap_or_else(|e| e.into_inner());
            let mut st = self.inner.lock_state()?;
            let mut tx = Tx::new(&self.inner, &mut st, now);
            let out = match in_write(|| f(&mut tx)) {
                Ok(out) => out,
                Err(e) => {
                    tx.rollback();
                    return Err(e);
                }
            };
            let staged = tx.finish();
            if staged.is_empty() {
                return Ok(out);
            }
            (out, self.inner.enqueue(&mut st, staged))
        };
        self.inner.wait_durable(pending)?;
        Ok(out)
    }

    /// Like [`Store::write`] for a write that changes one existing record: the [`Tx`] refuses
    /// other records. Such writes to different records are prepared in parallel (on other
    /// cores while a commit is in flight); use this for the common single-record edit.
    pub fn update<T>(&self, id: RecordId, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        self.inner.writable()?;
        self.inner.check_reentrant()?;
        let now = self.inner.now();
        let (out, pending) = {
            // Held until the write is queued, not while it waits for its fsync.
            let _shared = self.inner.staging.read().unwrap_or_else(|e| e.into_inner());
            let entry = self.inner.check_out(id)?;
            let mut tx = Tx::single(&self.inner, id, entry, now);
            let out = match in_write(|| f(&mut tx)) {
                Ok(out) => out,
                Err(e) => {
                    tx.rollback();
                    return Err(e);
                }
            };
            (out, tx.finish_single()?)
        };
        if let Some(pending) = pending {
            self.inner.wait_durable(pending)?;
        }
        Ok(out)
    }

    /// Reads a record. Deleted records (and records whose deletion conflicts with an edit)
    /// are `Err(Deleted)`; [`Store::get_deleted`] reads them.
    pub fn get(&self, id: RecordId) -> Result<Record> {
        self.inner.read(id, |view, meta| {
            if view.deleted() {
                return Err(Error::Deleted(id));
            }
            Ok(Record::read(&self.inner, id, meta, &view))
        })
    }

    /// Reads a record whether or not it is deleted: a deleted record reads with the fields
    /// it had when deleted, and with every edit merged since, such as an edit made on
    /// another device concurrently with the delete (a delete/edit conflict). For trash and
    /// restore screens and for conflict screens, which show what the user is about to
    /// restore or lose; ordinary reads use [`Store::get`], which hides deleted records.
    ///
    /// Like [`Store::get`], it reads the record as of its durable heads, from the cached
    /// document when loaded. A live record reads as with [`Store::get`], so a screen opened
    /// on a deleted record still reads it if it is restored meanwhile (a sync, another
    /// device's choice); [`Store::is_deleted`] tells which it is. An unknown id is
    /// `Err(NotFound)`.
    pub fn get_deleted(&self, id: RecordId) -> Result<Record> {
        self.inner.read(id, |view, meta| {
            Ok(Record::read(&self.inner, id, meta, &view))
        })
    }

    /// Reads one field of a record without materializing the others.
    pub fn field(&self, id: RecordId, field: &str) -> Result<FieldValue> {
        self.inner.read(id, |view, meta| {
            if view.deleted() {
                return Err(Error::Deleted(id));
            }
            let def = self.inner.schema.field(&meta.collection, field)?;
            Ok(view.field(field, def, self.inner.device))
        })
    }

    /// What the store holds in memory now.
    pub fn stats(&self) -> Result<StoreStats> {
        let st = self.inner.lock_state()?;
        let (cached_documents, cached_bytes) = st.cache.usage();
        Ok(StoreStats {
            cached_documents,
            cached_bytes,
            queued_writes: st.queue.len(),
        })
    }

    /// Whether the record exists, deleted or not.
    pub fn exists(&self, id: RecordId) -> Result<bool> {
        match self.inner.read(id, |_, _| Ok(())) {
            Ok(()) => Ok(true),
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the record is deleted (or its deletion conflicts with an edit).
    pub fn is_deleted(&self, id: RecordId) -> Result<bool> {
        self.inner.read(id, |view, _| Ok(view.deleted()))
    }

    /// Every record of `space` this device holds, of every collection, deleted ones
    /// included, in id order. Reads each record's metadata row (no document): meant for
    /// rare whole-space work such as a repair, not for listings (use [`Store::query`]).
    pub fn records_in_space(&self, space: &crate::SpaceId) -> Result<Vec<RecordId>> {
        self.inner.reading(|txn| {
            let records = txn.open_table(tables::RECORDS)?;
            let mut out = Vec::new();
            for id in record_ids(&records)? {
                let Some(row) = records.get((tables::rid(id), tables::SLOT_META))? else {
                    continue;
                };
                let meta: RecordMeta =
                    tables::decode_row(tables::RECORD_ROW_V1, row.value(), "record")?;
                if &meta.space == space {
                    out.push(id);
                }
            }
            Ok(out)
        })
    }
}

/// Creates an empty file at `path`, if there is none, that only its owner may read and
/// write: a store holds the user's data, and redb would create it with the umask's mode
/// (0644 under the usual 022).
fn create_private(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(redb::Error::Io(e).into()),
    }
}

impl Inner {
    pub(crate) fn now(&self) -> i64 {
        (self.config.clock)()
    }

    pub(crate) fn writable(&self) -> Result<()> {
        match &self.read_only {
            Some(reason) => Err(Error::ReadOnly(reason.clone())),
            None => Ok(()),
        }
    }

    /// Locks the staging state; a panic in another writer leaves it consistent (a `Tx`
    /// rolls back on drop), so poisoning is ignored.
    pub(crate) fn lock_state(&self) -> Result<MutexGuard<'_, State>> {
        self.check_reentrant()?;
        Ok(self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Store calls from inside a write closure would deadlock; they fail instead.
    pub(crate) fn check_reentrant(&self) -> Result<()> {
        if IN_WRITE.with(|w| w.get()) {
            return Err(Error::Reentrant);
        }
        Ok(())
    }

    /// Waits until `id` is not checked out by a single-record write.
    pub(crate) fn wait_returned<'a>(
        &self,
        st: MutexGuard<'a, State>,
        id: RecordId,
    ) -> MutexGuard<'a, State> {
        self.returned
            .wait_while(st, |s| s.out.contains_key(&id))
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `id` out of the cache for a single-record write (see [`State::out`]).
    pub(crate) fn check_out(&self, id: RecordId) -> Result<Entry> {
        let st = self.lock_state()?;
        let mut st = self.wait_returned(st, id);
        let entry = self.take(&mut st, id)?.ok_or(Error::NotFound(id))?;
        st.out.insert(id, Out::default());
        Ok(entry)
    }

    /// Puts a checked-out record back, with the commits that landed meanwhile; a record
    /// whose staged write failed meanwhile is dropped instead (it reloads from disk).
    /// Returns whether it came back.
    pub(crate) fn check_in(&self, st: &mut State, id: RecordId, mut entry: Entry) -> bool {
        let out = st.out.remove(&id).unwrap_or_default();
        self.returned.notify_all();
        if out.failed.is_some() {
            return false;
        }
        entry.dirty -= out.committed;
        if let Some(heads) = out.heads {
            entry.committed_heads = heads;
        }
        st.cache.insert(id, entry);
        true
    }

    /// Runs `f` on the durable state of record `id`.
    pub(crate) fn read<T>(
        &self,
        id: RecordId,
        f: impl FnOnce(View<'_, Automerge>, &RecordMeta) -> Result<T>,
    ) -> Result<T> {
        let st = self.lock_state()?;
        let mut st = self.wait_returned(st, id);
        let entry = self.cached(&mut st, id)?;
        if entry.committed_heads.is_empty() {
            // Created by a write that is not durable yet.
            return Err(Error::NotFound(id));
        }
        let heads = (entry.dirty > 0).then_some(entry.committed_heads.as_slice());
        f(
            View {
                doc: &entry.doc,
                heads,
            },
            &entry.meta,
        )
    }

    /// The cache entry of `id`, loading it from disk when absent.
    pub(crate) fn cached<'s>(&self, st: &'s mut State, id: RecordId) -> Result<&'s Entry> {
        if st.cache.get(&id).is_none() {
            let entry = self.load(id)?.ok_or(Error::NotFound(id))?;
            st.cache.insert(id, entry);
        }
        Ok(st.cache.get(&id).expect("just inserted"))
    }

    /// Takes `id` out of the cache (loading it if needed) to modify it.
    pub(crate) fn take(&self, st: &mut State, id: RecordId) -> Result<Option<Entry>> {
        match st.cache.take(&id) {
            Some(e) => Ok(Some(e)),
            None => self.load(id),
        }
    }

    fn load(&self, id: RecordId) -> Result<Option<Entry>> {
        self.reading(|txn| load_entry(txn, id, &self.actor))
    }

    /// Runs `f` in a read transaction: the one way the store reads its file, so that a
    /// panic of the storage engine on a damaged page is [`Error::Corrupt`] (see `damage`).
    pub(crate) fn reading<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        damage::contained(|| f(&Guarded::new(self.db.begin_read()?)))
    }

    /// Runs `f` in a write transaction with `durability`, committed if `f` returns `Ok`,
    /// under the same guard as [`Inner::reading`]. Not for the app's write closures: see
    /// [`damage::contained`].
    pub(crate) fn writing<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&WriteTransaction) -> Result<T>,
    ) -> Result<T> {
        damage::contained(|| {
            let mut txn = Guarded::new(self.db.begin_write()?);
            txn.set_durability(durability)?;
            let out = f(&txn)?;
            txn.into_inner().commit()?;
            Ok(out)
        })
    }

    pub(crate) fn new_doc(&self) -> Automerge {
        let mut doc = Automerge::new_with_encoding(TextEncoding::UnicodeCodePoint);
        doc.set_actor(self.actor.clone());
        doc
    }
}

pub(crate) fn load_entry(
    txn: &ReadTransaction,
    id: RecordId,
    actor: &ActorId,
) -> Result<Option<Entry>> {
    load_from(&txn.open_table(tables::RECORDS)?, id, actor)
}

/// [`load_entry`] within a write transaction (migrations).
pub(crate) fn load_entry_in_write(
    txn: &WriteTransaction,
    id: RecordId,
    actor: &ActorId,
) -> Result<Option<Entry>> {
    load_from(&txn.open_table(tables::RECORDS)?, id, actor)
}

/// Every record id, from the metadata slots of the records table.
pub(crate) fn record_ids(
    records: &impl ReadableTable<(u128, u32), &'static [u8]>,
) -> Result<Vec<RecordId>> {
    let mut ids = Vec::new();
    let mut next = Some((0u128, 0u32));
    while let Some(start) = next {
        let Some(item) = records.range(start..)?.next() else {
            break;
        };
        let key = item?.0.value().0;
        if key < start.0 {
            // A damaged page sent the scan back: without this it would never end.
            return Err(Error::Corrupt(
                "the records table is out of order".to_owned(),
            ));
        }
        ids.push(RecordId::from_bytes(key.to_be_bytes()));
        next = key.checked_add(1).map(|k| (k, 0));
    }
    Ok(ids)
}

fn load_from(
    records: &impl ReadableTable<(u128, u32), &'static [u8]>,
    id: RecordId,
    actor: &ActorId,
) -> Result<Option<Entry>> {
    let key = tables::rid(id);
    let mut meta: Option<RecordMeta> = None;
    let mut snapshot = Vec::new();
    let mut tail = Vec::new();
    for item in records.range((key, 0)..=(key, u32::MAX))? {
        let (k, value) = item?;
        match k.value().1 {
            tables::SLOT_META => {
                meta = Some(tables::decode_row(
                    tables::RECORD_ROW_V1,
                    value.value(),
                    "record",
                )?);
            }
            tables::SLOT_SNAPSHOT => snapshot = value.value().to_vec(),
            _ => tail.extend_from_slice(value.value()),
        }
    }
    let Some(meta) = meta else {
        return Ok(None);
    };
    let mut doc = document(id, &snapshot, &tail)?;
    doc.set_actor(actor.clone());
    let committed_heads = doc.get_heads();
    if tables::heads_to_bytes(&committed_heads) != meta.heads {
        return Err(Error::Corrupt(format!(
            "record {id}: document heads differ from its metadata"
        )));
    }
    Ok(Some(Entry {
        doc,
        meta,
        committed_heads,
        dirty: 0,
    }))
}

/// A record's document from its stored snapshot (empty: none) and the incremental chunks
/// after it.
///
/// Automerge 0.12 (through hexane 1.0.0-alpha.5) panics instead of failing on some damaged
/// documents, after allocating tens of megabytes (`hexane` lib.rs:354 unwraps an
/// `InvalidNumber`; the input is `fuzz/artifacts/stored_record_decode/automerge-load-panics`,
/// the report for upstream `docs/upstream/automerge-load-panics.md`). Here, the one place
/// stored documents are loaded, the chunks are checked first
/// (`holdfast_protocol::chunks`: damage never reaches Automerge's parser), and loading runs
/// under `catch_unwind` for bytes forged to pass that check: a panic is `Corrupt`.
pub(crate) fn document(id: RecordId, snapshot: &[u8], tail: &[u8]) -> Result<Automerge> {
    std::panic::catch_unwind(|| load_document(id, snapshot, tail)).unwrap_or_else(|_| {
        Err(Error::Corrupt(format!(
            "record {id}: the document does not load (the parser failed)"
        )))
    })
}

fn load_document(id: RecordId, snapshot: &[u8], tail: &[u8]) -> Result<Automerge> {
    // Damaged bytes are refused before Automerge parses them (see `chunks`).
    use holdfast_protocol::chunks::{check_chunks, CHUNK_CHANGE, CHUNK_DOCUMENT};
    let corrupt = |what: &str, e: String| Error::Corrupt(format!("record {id}: {what}: {e}"));
    check_chunks(snapshot, &[CHUNK_DOCUMENT, CHUNK_CHANGE]).map_err(|e| corrupt("snapshot", e))?;
    check_chunks(tail, &[CHUNK_CHANGE]).map_err(|e| corrupt("changes", e))?;
    let mut doc = if snapshot.is_empty() {
        Automerge::new_with_encoding(TextEncoding::UnicodeCodePoint)
    } else {
        let options = LoadOptions::new().text_encoding(TextEncoding::UnicodeCodePoint);
        Automerge::load_with_options(snapshot, options)
            .map_err(|e| Error::Corrupt(format!("record {id}: {e}")))?
    };
    if !tail.is_empty() {
        doc.load_incremental(tail)
            .map_err(|e| Error::Corrupt(format!("record {id}: {e}")))?;
    }
    Ok(doc)
}

/// Reads or creates the device id, checks the format and the schema; migrates an older
/// stored schema within `txn`.
fn open_meta(
    txn: &WriteTransaction,
    app: &Schema,
) -> Result<(DeviceId, Schema, Option<ReadOnlyReason>)> {
    let mut meta = txn.open_table(tables::META)?;
    let format = match meta.get(tables::META_FORMAT)? {
        Some(v) => u32::from_le_bytes(
            v.value()
                .try_into()
                .map_err(|_| Error::Corrupt("format row".into()))?,
        ),
        None => tables::FORMAT_VERSION,
    };
    if format > tables::FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            found: format,
            supported: tables::FORMAT_VERSION,
        });
    }
    meta.insert(
        tables::META_FORMAT,
        tables::FORMAT_VERSION.to_le_bytes().as_slice(),
    )?;
    let device = match meta.get(tables::META_DEVICE)? {
        Some(v) => DeviceId::from_bytes(
            v.value()
                .try_into()
                .map_err(|_| Error::Corrupt("device id row".into()))?,
        ),
        None => DeviceId::random(),
    };
    meta.insert(tables::META_DEVICE, device.as_bytes().as_slice())?;
    let stored: Option<Schema> = match meta.get(tables::META_SCHEMA)? {
        Some(v) => Some(tables::decode_row(1, v.value(), "schema")?),
        None => None,
    };
    drop(meta);
    match stored {
        Some(s) if s.version > app.version => {
            let reason = ReadOnlyReason::NewerSchema {
                stored: s.version,
                app: app.version,
            };
            Ok((device, s, Some(reason)))
        }
        Some(s) if s.version == app.version => {
            if &s != app {
                return Err(SchemaError::Mismatch { version: s.version }.into());
            }
            Ok((device, s, None))
        }
        old => {
            if let Some(old) = &old {
                crate::migrate::migrate(txn, old, app)?;
            }
            let mut meta = txn.open_table(tables::META)?;
            meta.insert(tables::META_SCHEMA, tables::encode_row(1, app).as_slice())?;
            Ok((device, app.clone(), None))
        }
    }
}
