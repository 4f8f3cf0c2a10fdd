//! Real typing: an editing trace of the `editing-traces` format (gzipped JSON of
//! `startContent`, `endContent` and transactions of `[position, deleted, inserted]`
//! patches, positions in Unicode code points), and the bare-Automerge baseline that
//! replays it with no store.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{Automerge, ObjType, ReadDoc, ROOT};
use serde::Deserialize;

/// Edits per commit (per durable write, per Automerge transaction) when replaying.
pub const EDITS_PER_COMMIT: usize = 100;

/// One patch: at `pos`, delete `del` characters and insert `ins`.
#[derive(Clone, Debug, Deserialize)]
pub struct Edit(pub usize, pub usize, pub String);

/// A trace flattened to its edits, with the text they must produce.
pub struct Trace {
    /// Every patch of every transaction, in order.
    pub edits: Vec<Edit>,
    /// The text after all of them.
    pub end: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    start_content: String,
    end_content: String,
    txns: Vec<Txn>,
}

#[derive(Deserialize)]
struct Txn {
    patches: Vec<Edit>,
}

/// `automerge-paper.json.gz` in the shared data directory next to the workspace
/// (`../shared/data/editing-traces/`), or `HOLDFAST_TRACE` when set.
pub fn default_path() -> PathBuf {
    if let Some(path) = std::env::var_os("HOLDFAST_TRACE") {
        return path.into();
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/editing-traces/automerge-paper.json.gz")
}

/// Reads a gzipped trace.
pub fn load(path: &Path) -> anyhow::Result<Trace> {
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("editing trace {}: {e}", path.display()))?;
    let file: File =
        serde_json::from_reader(std::io::BufReader::new(flate2::read::GzDecoder::new(file)))?;
    anyhow::ensure!(file.start_content.is_empty(), "trace does not start empty");
    let edits = file.txns.into_iter().flat_map(|t| t.patches).collect();
    Ok(Trace {
        edits,
        end: file.end_content,
    })
}

impl Trace {
    /// The first `edits` edits only, with the text they produce (for quick runs).
    pub fn truncated(mut self, edits: usize) -> Trace {
        if edits >= self.edits.len() {
            return self;
        }
        self.edits.truncate(edits);
        let mut text: Vec<char> = Vec::new();
        for Edit(pos, del, ins) in &self.edits {
            text.splice(*pos..*pos + *del, ins.chars());
        }
        self.end = text.into_iter().collect();
        self
    }
}

/// A new in-memory document with an empty text at `body`, and that text's id.
fn text_doc() -> anyhow::Result<(Automerge, automerge::ObjId)> {
    let mut doc = Automerge::new();
    let text = doc
        .transact(|tx| tx.put_object(ROOT, "body", ObjType::Text))
        .map_err(|f| anyhow::anyhow!("{:?}", f.error))?
        .result;
    Ok((doc, text))
}

/// The baseline: the trace applied to one in-memory Automerge document, a transaction per
/// [`EDITS_PER_COMMIT`] edits; no store, no I/O, no sync. Returns the time and the change
/// bytes produced.
pub fn bare_automerge(trace: &Trace) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let (mut doc, text) = text_doc()?;
    for chunk in trace.edits.chunks(EDITS_PER_COMMIT) {
        let mut tx = doc.transaction();
        for Edit(pos, del, ins) in chunk {
            tx.splice_text(&text, *pos, *del as isize, ins)?;
        }
        tx.commit();
    }
    let elapsed = started.elapsed();
    // Counted after the clock stops: the baseline does no work a store would add. The first
    // change makes the empty text.
    let bytes = doc
        .get_changes(&[])
        .iter()
        .skip(1)
        .map(|c| c.raw_bytes().len() as u64)
        .sum();
    anyhow::ensure!(
        doc.text(&text)? == trace.end,
        "bare Automerge ends differently"
    );
    Ok((elapsed, bytes))
}

/// The same replay, with every change also applied to a second document as it is made:
/// the least work any live sync of the trace to a second device must do.
pub fn bare_automerge_two_docs(trace: &Trace) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let (mut doc, text) = text_doc()?;
    let mut other = Automerge::new();
    other.apply_changes(doc.get_changes(&[]))?;
    for chunk in trace.edits.chunks(EDITS_PER_COMMIT) {
        let mut tx = doc.transaction();
        for Edit(pos, del, ins) in chunk {
            tx.splice_text(&text, *pos, *del as isize, ins)?;
        }
        tx.commit();
        let change = doc.get_last_local_change().expect("a change").clone();
        other.apply_changes([change])?;
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(other.text(&text)? == trace.end, "second document differs");
    Ok(elapsed)
}
