//! The read commands: `status`, `records`, `show`, `outbox` and `conflicts`.

use std::collections::BTreeMap;
use std::io::Write;
use std::num::NonZeroUsize;
use std::path::Path;

use holdfast::{FieldValue, PageToken, Query, RecordId, Store, STATE_FIELD};
use serde::{Deserialize, Serialize};

use super::{count, path_text, say, time_text, value_text};
use crate::cli::RecordsArgs;
use crate::error::{Error, Result};
use crate::input::{hex_decode, hex_encode, rfc3339_ms};
use crate::json::{self, CandidateJson, RecordJson};

/// Records asked of the store per query page.
const PAGE_RECORDS: usize = 500;

/// `status`.
pub fn status(store: &Store, db: &Path, as_json: bool, out: &mut dyn Write) -> Result<()> {
    let status = status_of(store, db)?;
    if as_json {
        json::print(out, &status)
    } else {
        status_text(&status, out)
    }
}

fn status_of(store: &Store, db: &Path) -> Result<json::StatusJson> {
    let mut collections = BTreeMap::new();
    for name in store.schema().collections.keys() {
        collections.insert(name.clone(), store.all(name)?.len() as u64);
    }
    let summary = store.sync_summary()?;
    let counts = store.conflict_counts()?;
    let status = json::StatusJson {
        db: path_text(db),
        device: store.device_id().to_string(),
        schema_version: store.schema().version,
        records: collections.values().sum(),
        collections,
        spaces: store
            .spaces()?
            .into_iter()
            .map(|s| s.into_string())
            .collect(),
        outbox: json::OutboxCountsJson {
            pending: summary.pending,
            sending: summary.sending,
            failed: summary.failed,
            failed_permanent: summary.failed_permanent,
            oldest_pending_ms: summary.oldest_pending_ms,
            blocked: summary.blocked,
            held: summary.held,
            retry_at_ms: summary.retry_at_ms,
        },
        conflicts: json::ConflictCountsJson {
            open: store.conflicts()?.len() as u64,
            detected: counts.detected,
            resolved: counts.resolved,
        },
        last_synced_ms: summary.last_synced_ms,
    };
    Ok(status)
}

fn status_text(s: &json::StatusJson, out: &mut dyn Write) -> Result<()> {
    say!(out, "Store       {}", s.db)?;
    say!(out, "Device      {}", s.device)?;
    say!(out, "Schema      version {}", s.schema_version)?;
    let per: Vec<String> = s
        .collections
        .iter()
        .map(|(c, n)| format!("{c}: {n}"))
        .collect();
    say!(out, "Records     {} ({})", s.records, per.join(", "))?;
    let spaces = if s.spaces.is_empty() {
        "none yet".to_owned()
    } else {
        s.spaces.join(", ")
    };
    say!(out, "Spaces      {spaces}")?;
    let o = &s.outbox;
    if o.pending == 0 && o.failed == 0 {
        say!(out, "Outbox      empty: nothing waiting to be sent")?;
    } else {
        let oldest = o
            .oldest_pending_ms
            .map(|ms| format!(", oldest saved {}", time_text(ms)))
            .unwrap_or_default();
        say!(
            out,
            "Outbox      {} saved on this device, waiting to sync{oldest}",
            count(o.pending, "change")
        )?;
        if o.held > 0 {
            let until = o
                .retry_at_ms
                .map(|ms| format!(" until {}", rfc3339_ms(ms)))
                .unwrap_or_default();
            say!(
                out,
                "            {} held back by the sync server's rate limit{until}, then sent",
                count(o.held, "change")
            )?;
        }
        if o.failed > 0 {
            let blocked = match o.blocked {
                0 => String::new(),
                n => format!(", {n} of them behind a refused change"),
            };
            say!(
                out,
                "            {} failed ({} waiting for you{blocked}); see `holdfast outbox`",
                count(o.failed, "change"),
                o.failed_permanent
            )?;
        }
    }
    let c = &s.conflicts;
    say!(
        out,
        "Conflicts   {} open ({} detected, {} resolved since the store was created)",
        c.open,
        c.detected,
        c.resolved
    )?;
    let last = s.last_synced_ms.map_or("never".to_owned(), time_text);
    say!(out, "Last synced {last}")
}

/// Where a `records` listing continues: a collection and the query's page token there.
#[derive(Serialize, Deserialize)]
struct Continue {
    collection: String,
    page: Option<PageToken>,
}

/// `records`.
pub fn records(store: &Store, args: &RecordsArgs, out: &mut dyn Write) -> Result<()> {
    let page = page_of(store, args)?;
    if args.json {
        return json::print(out, &page);
    }
    if page.records.is_empty() {
        say!(out, "No records.")?;
    }
    for r in &page.records {
        say!(
            out,
            "{}  {:<12} {:<14} {:<8} {}",
            r.id,
            r.collection,
            r.space,
            r.sync.state,
            summary(r)
        )?;
    }
    if let Some(next) = &page.next {
        say!(out, "More records follow: add --after {next}")?;
    }
    Ok(())
}

/// The page `args` asks for, through the query API, collection after collection.
fn page_of(store: &Store, args: &RecordsArgs) -> Result<json::PageJson> {
    let schema = store.schema();
    let mut collections: Vec<&str> = match &args.collection {
        Some(c) => {
            if !schema.collections.contains_key(c) {
                return Err(unknown_collection(store, c));
            }
            vec![c.as_str()]
        }
        None => schema.collections.keys().map(String::as_str).collect(),
    };
    let mut after = None;
    if let Some(token) = &args.after {
        let bad = || Error::input("that --after token was not printed by `holdfast records`");
        let bytes = hex_decode(token).ok_or_else(bad)?;
        let from: Continue = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        let at = collections
            .iter()
            .position(|c| *c == from.collection)
            .ok_or_else(bad)?;
        collections.drain(..at);
        after = from.page;
    }
    let limit = args.limit.map_or(usize::MAX, NonZeroUsize::get);
    let mut page = json::PageJson {
        records: Vec::new(),
        next: None,
    };
    'collections: for (i, collection) in collections.iter().enumerate() {
        let query = match &args.space {
            Some(space) => Query::Space(space, collection),
            None => Query::Collection(collection),
        };
        let mut token = if i == 0 { after.take() } else { None };
        loop {
            let room = limit - page.records.len();
            let found = store.query(&query, room.min(PAGE_RECORDS), token.as_ref())?;
            for id in found.ids {
                page.records.push(listed(store, id)?);
            }
            token = found.next;
            if page.records.len() == limit {
                let next = match token {
                    Some(page) => Some(Continue {
                        collection: collection.to_string(),
                        page: Some(page),
                    }),
                    None => collections.get(i + 1).map(|c| Continue {
                        collection: c.to_string(),
                        page: None,
                    }),
                };
                page.next = next.map(|n| hex_encode(&serde_json::to_vec(&n).expect("serializes")));
                break 'collections;
            }
            if token.is_none() {
                break;
            }
        }
    }
    Ok(page)
}

/// A record the index listed: one the file does not hold means the file is damaged.
fn listed(store: &Store, id: RecordId) -> Result<RecordJson> {
    json::record(store, id).map_err(|e| match e {
        Error::Store(holdfast::Error::NotFound(id)) => Error::Damaged(format!(
            "its index lists record {id}, which the file does not hold"
        )),
        e => e,
    })
}

/// A record in a few words for a listing: its first string value or text, and whether a
/// field is in conflict.
fn summary(r: &RecordJson) -> String {
    let first = |kind: &str| {
        r.fields.values().find_map(|f| match &f.value {
            serde_json::Value::String(s) if f.kind == kind && !s.is_empty() => Some(s),
            _ => None,
        })
    };
    let text = first("lww")
        .or_else(|| first("text"))
        .or_else(|| first("versioned"))
        .map(|s| {
            let one_line = s.replace('\n', " ");
            match one_line.char_indices().nth(48) {
                Some((end, _)) => format!("{}…", &one_line[..end]),
                None => one_line,
            }
        })
        .unwrap_or_default();
    let conflicted: Vec<&str> = r
        .fields
        .iter()
        .filter(|(_, f)| f.conflict)
        .map(|(n, _)| n.as_str())
        .collect();
    if conflicted.is_empty() {
        text
    } else {
        format!("{text} [conflict: {}]", conflicted.join(", "))
    }
}

/// `show`.
pub fn show(store: &Store, id: RecordId, as_json: bool, out: &mut dyn Write) -> Result<()> {
    let r = json::record(store, id)?;
    if as_json {
        return json::print(out, &r);
    }
    say!(out, "Record      {}", r.id)?;
    if r.deleted {
        say!(
            out,
            "            deleted (what it held is below; restore to bring it back)"
        )?;
    }
    say!(out, "Collection  {}   Space {}", r.collection, r.space)?;
    say!(out, "Created     {}", time_text(r.created_ms))?;
    say!(out, "Updated     {}", time_text(r.updated_ms))?;
    let sync = match &r.sync.reason {
        Some(reason) => format!("{}: {reason}", r.sync.state),
        None => r.sync.state.to_owned(),
    };
    say!(out, "Sync        {sync}")?;
    if !r.state_candidates.is_empty() {
        say!(
            out,
            "\nDeleted on one device and edited on another; the record stays hidden until settled:"
        )?;
        candidates_text(out, &r.state_candidates, "          ")?;
        say!(
            out,
            "          restore it: holdfast resolve {id} {STATE_FIELD} --value live\n          \
             or confirm the delete: holdfast resolve {id} {STATE_FIELD} --value deleted"
        )?;
    }
    if r.fields.is_empty() {
        return Ok(());
    }
    say!(out, "\nFields")?;
    let read = store.get_deleted(id)?;
    let width = r
        .fields
        .keys()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0);
    for (name, f) in &r.fields {
        let kind = match f.ty {
            Some(ty) => format!("({} {ty})", f.kind),
            None => format!("({})", f.kind),
        };
        if f.conflict {
            say!(
                out,
                "  {name:<width$}  {kind:<20} in conflict, {}:",
                count(f.candidates.len() as u64, "version")
            )?;
            candidates_text(out, &f.candidates, "      ")?;
            say!(
                out,
                "      settle it: holdfast resolve {id} {name} --keep-mine | --use-theirs | --value V"
            )?;
        } else {
            let value = read.fields.get(name).map_or_else(String::new, field_text);
            say!(out, "  {name:<width$}  {kind:<20} {value}")?;
        }
    }
    Ok(())
}

/// A field's value for people.
fn field_text(value: &FieldValue) -> String {
    match value {
        FieldValue::Value(v) => value_text(v),
        FieldValue::Text(t) => format!("{t:?}"),
        FieldValue::List(items) => {
            let items: Vec<String> = items.iter().map(value_text).collect();
            format!("[{}]", items.join(", "))
        }
        FieldValue::Counter(n) => n.to_string(),
        _ => "(not set)".to_owned(),
    }
}

fn candidates_text(out: &mut dyn Write, candidates: &[CandidateJson], indent: &str) -> Result<()> {
    let values: Vec<String> = candidates
        .iter()
        .map(|c| match &c.value {
            serde_json::Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        })
        .collect();
    let width = values.iter().map(|v| v.chars().count()).max().unwrap_or(0);
    for (c, value) in candidates.iter().zip(&values) {
        let (label, who) = match (c.mine, &c.device) {
            (true, _) => ("mine  ", "this device".to_owned()),
            (false, Some(d)) => ("theirs", format!("device {d}")),
            (false, None) => ("theirs", "another device".to_owned()),
        };
        say!(
            out,
            "{indent}{label}  {value:<width$}  by {who}, {}",
            time_text(c.at_ms)
        )?;
    }
    Ok(())
}

/// `outbox`.
pub fn outbox(
    store: &Store,
    limit: Option<NonZeroUsize>,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let limit = limit.map_or(usize::MAX, NonZeroUsize::get);
    let mut entries = Vec::new();
    let mut after = None;
    while entries.len() < limit {
        let room = (limit - entries.len()).min(PAGE_RECORDS);
        let page = store.outbox().list(after, room)?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        for e in page {
            let state = json::SyncJson::from(&e.state);
            entries.push(json::OutboxEntryJson {
                seq: e.seq,
                event_id: e.event_id.to_string(),
                record: e.record,
                space: e.space.into_string(),
                changes: e.change_hashes.len(),
                bytes: e.bytes,
                created_ms: e.created_ms,
                attempts: e.attempts,
                state: state.state,
                reason: state.reason,
                permanent: state.permanent,
                blocked_by: e.blocked_by,
                retry_at_ms: e.retry_at_ms,
            });
        }
    }
    if as_json {
        return json::print(out, &json::OutboxJson { entries });
    }
    if entries.is_empty() {
        return say!(out, "The outbox is empty: nothing is waiting to be sent.");
    }
    for e in &entries {
        let attempts = match e.attempts {
            0 => String::new(),
            n => format!(", {} so far", count(n, "attempt")),
        };
        say!(
            out,
            "{:>6}  {}  {:<14} {:<8} {}, {} bytes, saved {}{attempts}",
            e.seq,
            e.record,
            e.space,
            e.state,
            count(e.changes as u64, "change"),
            e.bytes,
            time_text(e.created_ms)
        )?;
        if let Some(reason) = &e.reason {
            let next = if e.permanent {
                "waits for you (retry from the app, or discard)"
            } else {
                "sent again automatically"
            };
            say!(out, "        {reason} — {next}")?;
        }
        if let Some(parent) = e.blocked_by {
            say!(
                out,
                "        blocked by {parent}: retrying either sends both; discarding {parent} \
                 discards this one too"
            )?;
        }
        if let Some(at) = e.retry_at_ms {
            say!(
                out,
                "        held back by the sync server's rate limit until {} — sent again \
                 automatically",
                rfc3339_ms(at)
            )?;
        }
    }
    Ok(())
}

/// `conflicts`.
pub fn conflicts(store: &Store, as_json: bool, out: &mut dyn Write) -> Result<()> {
    let mut list = Vec::new();
    for c in store.conflicts()? {
        let collection = store.get_deleted(c.record)?.collection;
        list.push(json::ConflictJson {
            record: c.record,
            collection,
            candidates: json::candidates(&store.candidates(c.record, &c.field)?),
            field: c.field,
            detected_ms: c.detected_ms,
        });
    }
    if as_json {
        return json::print(out, &json::ConflictsJson { conflicts: list });
    }
    if list.is_empty() {
        return say!(out, "No conflicts.");
    }
    for c in &list {
        let what = if c.field == STATE_FIELD {
            "deleted on one device, edited on another".to_owned()
        } else {
            format!("field {:?}", c.field)
        };
        say!(
            out,
            "{} ({}) {what}, detected {}",
            c.record,
            c.collection,
            time_text(c.detected_ms)
        )?;
        candidates_text(out, &c.candidates, "    ")?;
        say!(
            out,
            "    settle it: holdfast resolve {} {} --keep-mine | --use-theirs | --value V",
            c.record,
            c.field
        )?;
    }
    Ok(())
}

/// The message for a collection the store's schema lacks, naming those it has.
pub fn unknown_collection(store: &Store, name: &str) -> Error {
    let known: Vec<&str> = store
        .schema()
        .collections
        .keys()
        .map(String::as_str)
        .collect();
    Error::input(format!(
        "this store has no collection {name:?} (its collections: {})",
        if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        }
    ))
}

#[cfg(test)]
mod tests;
