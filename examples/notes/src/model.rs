//! What a note is: the schema, and a note read from the store into plain values the
//! screens show (title, tags, status or its conflicting versions, body, sync state).

use holdfast::{
    Candidate, Field, FieldValue, Record, RecordId, ScalarType, Schema, Store, SyncState,
};

/// The collection notes are records of.
pub const NOTE: &str = "note";

/// The statuses a note moves through, in order.
pub const STATUSES: [&str; 3] = ["draft", "review", "published"];

/// The store's schema. `status` is versioned: two devices changing it at once get a
/// conflict to settle, never a silent winner.
pub fn schema() -> Schema {
    Schema::new(1).collection(
        NOTE,
        [
            ("title", Field::lww(ScalarType::String)),
            ("body", Field::text()),
            ("tags", Field::list(ScalarType::String)),
            ("status", Field::versioned(ScalarType::String).indexed()),
        ],
    )
}

/// A note's status as read.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Never set.
    Unset,
    /// One value.
    Set(String),
    /// Changed on several devices at once; the versions to choose from.
    Conflict(Vec<Candidate>),
}

impl Status {
    fn read(value: &FieldValue) -> Status {
        match value {
            FieldValue::Value(v) => Status::Set(v.as_str().unwrap_or_default().to_owned()),
            FieldValue::Conflict(c) => Status::Conflict(c.clone()),
            _ => Status::Unset,
        }
    }

    /// Whether it waits for the user to choose.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Status::Conflict(_))
    }
}

/// One note as the screens show it.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    /// Its id.
    pub id: RecordId,
    /// The title ("" when never given).
    pub title: String,
    /// The tags, in list order.
    pub tags: Vec<String>,
    /// The status.
    pub status: Status,
    /// The body text.
    pub body: String,
    /// Where this note's changes stand on their way to the relay.
    pub sync: SyncState,
}

impl Note {
    /// Reads note `id`; `Ok(None)` when it is deleted or unknown.
    pub fn load(store: &Store, id: RecordId) -> holdfast::Result<Option<Note>> {
        let record = match store.get(id) {
            Ok(r) => r,
            Err(holdfast::Error::Deleted(_) | holdfast::Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut note = Note::from_record(&record)?;
        note.sync = store.sync_state(id)?;
        Ok(Some(note))
    }

    /// Reads note `id` whether or not it is deleted, with every edit merged into it: what
    /// restoring it would bring back. `Ok(None)` when it is unknown.
    pub fn load_deleted(store: &Store, id: RecordId) -> holdfast::Result<Option<Note>> {
        let record = match store.get_deleted(id) {
            Ok(r) => r,
            Err(holdfast::Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut note = Note::from_record(&record)?;
        note.sync = store.sync_state(id)?;
        Ok(Some(note))
    }

    fn from_record(record: &Record) -> holdfast::Result<Note> {
        let title = match record.field("title")? {
            FieldValue::Value(v) => v.as_str().unwrap_or_default().to_owned(),
            _ => String::new(),
        };
        Ok(Note {
            id: record.id,
            title,
            tags: strings(record.list("tags")?),
            status: Status::read(record.field("status")?),
            body: record.text("body")?.to_owned(),
            sync: SyncState::Synced,
        })
    }

    /// The title to show: "(untitled)" for an empty one.
    pub fn display_title(&self) -> &str {
        display_title(&self.title)
    }
}

/// The title to show: "(untitled)" for an empty one.
pub fn display_title(title: &str) -> &str {
    if title.trim().is_empty() {
        "(untitled)"
    } else {
        title
    }
}

/// The list's string elements (a non-string element, written by another tool, is skipped).
pub fn strings(items: &[holdfast::Value]) -> Vec<String> {
    items
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// A sync state in one word: queued, syncing, synced, failed.
pub fn sync_word(state: &SyncState) -> &'static str {
    match state {
        SyncState::Queued => "queued",
        SyncState::Syncing => "syncing",
        SyncState::Synced => "synced",
        _ => "failed",
    }
}

/// "1 change", "3 changes".
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// How long ago `then_ms` was, for people: "just now", "12 s ago", "3 min ago".
pub fn ago(now_ms: i64, then_ms: i64) -> String {
    let secs = (now_ms - then_ms).max(0) / 1000;
    match secs {
        0..=4 => "just now".to_owned(),
        5..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => count((secs / 86_400) as u64, "day") + " ago",
    }
}

/// How long until `then_ms`, for people: "now", "in 12 s", "in 3 min".
pub fn until(now_ms: i64, then_ms: i64) -> String {
    let secs = ((then_ms - now_ms).max(0) as u64).div_ceil(1000);
    match secs {
        0 => "now".to_owned(),
        1..=59 => format!("in {secs} s"),
        _ => format!("in {} min", secs.div_ceil(60)),
    }
}
