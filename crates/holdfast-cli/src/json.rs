//! The JSON the read commands print with `--json`. These shapes are a stable interface,
//! documented in `docs/cli.md`: fields are added, never renamed or removed.
//!
//! Values are plain JSON by type: strings, numbers (i64, f64, timestamps as milliseconds
//! since 1970), booleans, bytes as lower-case hex, record refs as id strings.

use std::collections::BTreeMap;

use holdfast::{Candidate, Field, FieldKind, FieldValue, RecordId, Store, SyncState, Value};
use serde::Serialize;

use crate::error::Result;
use crate::input::hex_encode;
use crate::schema_file::{kind_name, type_name};

/// A record (`show`, and each item of `records`).
#[derive(Clone, Debug, Serialize)]
pub struct RecordJson {
    /// The record id.
    pub id: RecordId,
    /// Its collection.
    pub collection: String,
    /// Its space.
    pub space: String,
    /// When it was created, ms since 1970.
    pub created_ms: i64,
    /// When this device last wrote or received a change to it.
    pub updated_ms: i64,
    /// Whether it is deleted (or its deletion conflicts with an edit made elsewhere).
    pub deleted: bool,
    /// Where its local changes stand.
    pub sync: SyncJson,
    /// Every declared field by name (a deleted record's too: what a restore brings back).
    pub fields: BTreeMap<String, FieldJson>,
    /// The versions of a delete/edit conflict (field `_state`), empty without one.
    pub state_candidates: Vec<CandidateJson>,
}

/// One field of a record.
#[derive(Clone, Debug, Serialize)]
pub struct FieldJson {
    /// lww, versioned, text, list or counter.
    pub kind: &'static str,
    /// The scalar type (of the elements, for a list); `null` for text and counter.
    #[serde(rename = "type")]
    pub ty: Option<&'static str>,
    /// The value: a scalar (`null` when unset or in conflict), the text, the list's
    /// elements, or the counter's total.
    pub value: serde_json::Value,
    /// Whether concurrent versions wait to be resolved.
    pub conflict: bool,
    /// Those versions (empty without a conflict).
    pub candidates: Vec<CandidateJson>,
}

/// One version of a conflicted field.
#[derive(Clone, Debug, Serialize)]
pub struct CandidateJson {
    /// The value.
    pub value: serde_json::Value,
    /// The device that wrote it (`null` if not known).
    pub device: Option<String>,
    /// When, by that device's clock (ms since 1970).
    pub at_ms: i64,
    /// Whether this device wrote it.
    pub mine: bool,
}

/// A sync state: `queued`, `syncing`, `synced` or `failed` (with why).
#[derive(Clone, Debug, Serialize)]
pub struct SyncJson {
    /// The state.
    pub state: &'static str,
    /// Why sending failed, in words (`null` unless failed).
    pub reason: Option<String>,
    /// Whether the failure waits for a person (`false` unless failed).
    pub permanent: bool,
}

impl From<&SyncState> for SyncJson {
    fn from(state: &SyncState) -> Self {
        let plain = |state| SyncJson {
            state,
            reason: None,
            permanent: false,
        };
        match state {
            SyncState::Queued => plain("queued"),
            SyncState::Syncing => plain("syncing"),
            SyncState::Synced => plain("synced"),
            SyncState::Failed { reason, permanent } => SyncJson {
                state: "failed",
                reason: Some(reason.clone()),
                permanent: *permanent,
            },
            _ => plain("unknown"),
        }
    }
}

/// `records`: one page of records.
#[derive(Clone, Debug, Serialize)]
pub struct PageJson {
    /// The records, in creation order per collection.
    pub records: Vec<RecordJson>,
    /// Pass to `--after` for the next page; `null` on the last one.
    pub next: Option<String>,
}

/// `status`.
#[derive(Clone, Debug, Serialize)]
pub struct StatusJson {
    /// The store file.
    pub db: String,
    /// This device's id.
    pub device: String,
    /// The schema version kept in the store.
    pub schema_version: u32,
    /// Live (not deleted) records in all.
    pub records: u64,
    /// Live records per collection.
    pub collections: BTreeMap<String, u64>,
    /// The spaces the store holds records of or has synced.
    pub spaces: Vec<String>,
    /// The outbox's totals.
    pub outbox: OutboxCountsJson,
    /// Conflicts now open, and counted since the store was created.
    pub conflicts: ConflictCountsJson,
    /// When the relay last acknowledged this device's changes (ms since 1970), if ever.
    pub last_synced_ms: Option<i64>,
}

/// The outbox's totals in `status`.
#[derive(Clone, Debug, Serialize)]
pub struct OutboxCountsJson {
    /// Changes waiting to be sent or being sent.
    pub pending: u64,
    /// Changes being sent.
    pub sending: u64,
    /// Changes whose sending failed.
    pub failed: u64,
    /// Failed changes that wait for a person.
    pub failed_permanent: u64,
    /// When the oldest pending change was made (ms since 1970).
    pub oldest_pending_ms: Option<i64>,
    /// Failed changes waiting behind an earlier change of their record that the relay
    /// refused for good (counted in `failed` and `failed_permanent` too).
    pub blocked: u64,
    /// Pending changes the relay's rate limit holds back for a moment (counted in
    /// `pending`; flow control, not a failure).
    pub held: u64,
    /// When the first held change goes out again (ms since 1970, this device's clock).
    pub retry_at_ms: Option<i64>,
}

/// Conflict counts in `status`.
#[derive(Clone, Debug, Serialize)]
pub struct ConflictCountsJson {
    /// Conflicted fields waiting now.
    pub open: u64,
    /// Conflicts detected since the store was created.
    pub detected: u64,
    /// Conflicts settled since the store was created.
    pub resolved: u64,
}

/// `outbox`.
#[derive(Clone, Debug, Serialize)]
pub struct OutboxJson {
    /// The entries, oldest first.
    pub entries: Vec<OutboxEntryJson>,
}

/// One outbox entry: one local commit to one record.
#[derive(Clone, Debug, Serialize)]
pub struct OutboxEntryJson {
    /// Its position; later entries have larger numbers.
    pub seq: u64,
    /// The idempotency key the relay deduplicates on.
    pub event_id: String,
    /// The record changed.
    pub record: RecordId,
    /// The record's space.
    pub space: String,
    /// How many Automerge changes it carries.
    pub changes: usize,
    /// Their size in bytes.
    pub bytes: u64,
    /// When it was made (ms since 1970, this device's clock).
    pub created_ms: i64,
    /// How many times it was handed to the sync worker.
    pub attempts: u32,
    /// `queued`, `syncing` or `failed`.
    pub state: &'static str,
    /// Why it failed, in words (`null` unless failed).
    pub reason: Option<String>,
    /// Whether the failure waits for a person.
    pub permanent: bool,
    /// The earlier entry of the same record, refused for good, that this one waits
    /// behind (`null` unless blocked): retrying either sends both, discarding that one
    /// discards this one too.
    pub blocked_by: Option<u64>,
    /// When the relay's rate limit lets this entry go out again (ms since 1970, this
    /// device's clock; `null` unless held). Only the process syncing knows it.
    pub retry_at_ms: Option<i64>,
}

/// `conflicts`.
#[derive(Clone, Debug, Serialize)]
pub struct ConflictsJson {
    /// The conflicted fields, in record order.
    pub conflicts: Vec<ConflictJson>,
}

/// One conflicted field.
#[derive(Clone, Debug, Serialize)]
pub struct ConflictJson {
    /// The record.
    pub record: RecordId,
    /// Its collection.
    pub collection: String,
    /// The field (`_state` for a delete/edit conflict).
    pub field: String,
    /// When this device detected it (ms since 1970).
    pub detected_ms: i64,
    /// The versions to choose from.
    pub candidates: Vec<CandidateJson>,
}

/// `export`.
#[derive(Clone, Debug, Serialize)]
pub struct ExportJson {
    /// The bundle file written.
    pub file: String,
    /// Records in it.
    pub records: usize,
    /// Changes in it.
    pub changes: usize,
    /// Its size in bytes.
    pub bytes: usize,
    /// Where it ended: pass to `export --since` for only what comes after.
    pub mark: u64,
}

/// `import`.
#[derive(Clone, Debug, Serialize)]
pub struct ImportJson {
    /// Records that changed.
    pub records_changed: usize,
    /// Changes new to this store (0 when the bundle was imported before).
    pub changes_applied: usize,
    /// Conflicts settled by a resolver while importing (none from this tool).
    pub auto_resolved: usize,
    /// Records whose changes could not be applied, with why.
    pub rejected: Vec<RejectedJson>,
    /// The store's export mark after the import (see `export --since`).
    pub mark: u64,
}

/// A record an import or sync could not apply.
#[derive(Clone, Debug, Serialize)]
pub struct RejectedJson {
    /// The record.
    pub record: RecordId,
    /// Why, for scripts: `missing_dependencies` (import the earlier bundle, then this one
    /// again), `unknown_collection` (made by a newer app version), `invalid_changes`,
    /// `not_created`, `invalid_space`, or `other`.
    pub kind: &'static str,
    /// Why, in words.
    pub reason: String,
}

/// `check`.
#[derive(Clone, Debug, Serialize)]
pub struct CheckJson {
    /// Whether nothing is wrong.
    pub ok: bool,
    /// Whether the file's own (redb) integrity check passed.
    pub file_ok: bool,
    /// Records whose document loaded and matched its metadata.
    pub records: u64,
    /// Outbox entries that decoded.
    pub outbox_entries: u64,
    /// Everything wrong, in words.
    pub problems: Vec<String>,
}

/// `compact`.
#[derive(Clone, Debug, Serialize)]
pub struct CompactJson {
    /// Records whose incremental changes were folded into one snapshot.
    pub records_rewritten: u64,
    /// The file's size before, in bytes.
    pub bytes_before: u64,
    /// The file's size after, in bytes.
    pub bytes_after: u64,
}

/// `sync`: what a run did.
#[derive(Clone, Debug, Serialize)]
pub struct SyncRunJson {
    /// `once` or `live`.
    pub mode: &'static str,
    /// Everything was sent and received when it ended.
    pub complete: bool,
    /// Local changes the relay stored (or already held).
    pub pushed: u64,
    /// Local changes the relay refused.
    pub rejected: u64,
    /// Log entries received from the relay.
    pub received: u64,
    /// Changes new to this device among them.
    pub changes_applied: u64,
    /// Records reconciled by a repair.
    pub records_repaired: u64,
    /// Local changes still waiting to be sent.
    pub pending: u64,
    /// Local changes whose sending failed.
    pub failed: u64,
    /// Why it is not complete, in words (`null` when complete).
    pub error: Option<String>,
    /// How long it ran, in milliseconds.
    pub elapsed_ms: u64,
}

/// Reads record `id` as JSON; a deleted record reads with the fields it holds (its last
/// ones, and an edit made elsewhere concurrently with the delete), so the user sees what
/// a restore would bring back.
pub fn record(store: &Store, id: RecordId) -> Result<RecordJson> {
    let sync = SyncJson::from(&store.sync_state(id)?);
    let state_candidates = candidates(&store.candidates(id, holdfast::STATE_FIELD)?);
    let deleted = store.is_deleted(id)?;
    let record = store.get_deleted(id)?;
    let collection = store.schema().get(&record.collection).ok();
    let fields = record
        .fields
        .iter()
        .filter_map(|(name, value)| {
            let def = collection?.fields.get(name)?;
            Some((name.clone(), field(def, value)))
        })
        .collect();
    Ok(RecordJson {
        id,
        collection: record.collection,
        space: record.space.into_string(),
        created_ms: record.created_ms,
        updated_ms: record.updated_ms,
        deleted,
        sync,
        fields,
        state_candidates,
    })
}

/// A field's JSON from its declaration and what was read.
pub fn field(def: &Field, read: &FieldValue) -> FieldJson {
    let (value, candidates) = match read {
        FieldValue::Text(t) => (t.clone().into(), Vec::new()),
        FieldValue::List(items) => (items.iter().map(value).collect(), Vec::new()),
        FieldValue::Counter(n) => ((*n).into(), Vec::new()),
        FieldValue::Value(v) => (value(v), Vec::new()),
        FieldValue::Conflict(c) => (serde_json::Value::Null, self::candidates(c)),
        // Missing, and any reading a newer library adds.
        _ => (empty(def.kind), Vec::new()),
    };
    FieldJson {
        kind: kind_name(def.kind),
        ty: match def.kind {
            FieldKind::Text | FieldKind::Counter => None,
            _ => def.scalar_type().map(type_name),
        },
        value,
        conflict: !candidates.is_empty(),
        candidates,
    }
}

/// What a never-written field reads as.
fn empty(kind: FieldKind) -> serde_json::Value {
    match kind {
        FieldKind::Text => "".into(),
        FieldKind::List => serde_json::Value::Array(Vec::new()),
        FieldKind::Counter => 0.into(),
        _ => serde_json::Value::Null,
    }
}

/// The versions of a conflict.
pub fn candidates(candidates: &[Candidate]) -> Vec<CandidateJson> {
    candidates
        .iter()
        .map(|c| CandidateJson {
            value: value(&c.value),
            device: c.device.map(|d| d.to_string()),
            at_ms: c.at_ms,
            mine: c.mine,
        })
        .collect()
}

/// A scalar as plain JSON.
pub fn value(v: &Value) -> serde_json::Value {
    match v {
        Value::String(s) => s.clone().into(),
        Value::I64(n) | Value::Timestamp(n) => (*n).into(),
        Value::F64(f) => {
            serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
        }
        Value::Bool(b) => (*b).into(),
        Value::Bytes(b) => hex_encode(b).into(),
        Value::RecordRef(id) => id.to_string().into(),
        _ => serde_json::Value::Null,
    }
}

/// Prints `value` as indented JSON and a newline.
pub fn print(out: &mut dyn std::io::Write, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("output shapes serialize");
    writeln!(out, "{text}").map_err(crate::output_error)
}
