//! The Holdfast device: a store in the child's directory, synced with the relay by
//! `Store::sync_once` (workloads 1 and 2) or a background `Store::sync` worker (live
//! typing, workload 3).

use std::time::{Duration, Instant};

use holdfast::{
    Field, RecordId, ScalarType, Schema, SpaceId, Store, StoreConfig, SyncConfig, SyncHandle,
};

use super::{read_ids, record, write_ids, Device, DeviceArgs};
use crate::compare::trace::{Edit, Trace, EDITS_PER_COMMIT};
use crate::count_notes;

/// The space every comparison record is in.
pub const SPACE: &str = "compare";
const DEADLINE: Duration = Duration::from_secs(3600);

/// The comparison's record: a title, a short text, three scalar fields.
pub fn schema() -> Schema {
    Schema::new(1).collection(
        "note",
        [
            ("title", Field::lww(ScalarType::String)),
            ("body", Field::text()),
            ("status", Field::versioned(ScalarType::String).indexed()),
            ("priority", Field::lww(ScalarType::I64)),
            ("done", Field::lww(ScalarType::Bool)),
        ],
    )
}

/// Writes records `range` (their numbers) in durable writes of `per_write` records.
pub fn write_records(
    store: &Store,
    space: &SpaceId,
    range: std::ops::Range<usize>,
    per_write: usize,
) -> anyhow::Result<Vec<RecordId>> {
    let mut ids = Vec::with_capacity(range.len());
    for chunk in range.collect::<Vec<_>>().chunks(per_write) {
        let made = store.write(|tx| {
            let mut made = Vec::new();
            for &i in chunk {
                let id = tx.create("note", space)?;
                tx.set(id, "title", record::title(i))?;
                tx.splice_text(id, "body", 0, 0, record::BODY)?;
                tx.set(id, "status", record::STATUS)?;
                tx.set(id, "priority", record::priority(i))?;
                tx.set(id, "done", false)?;
                made.push(id);
            }
            Ok(made)
        })?;
        ids.extend(made);
    }
    Ok(ids)
}

/// A store and, while typing is synced live, its worker.
pub struct HoldfastDevice {
    args: DeviceArgs,
    store: Store,
    space: SpaceId,
    ids: Vec<RecordId>,
    downloader: bool,
    live: Option<SyncHandle>,
}

impl HoldfastDevice {
    /// Opens (creates) the device's store.
    pub fn new(args: DeviceArgs) -> anyhow::Result<Self> {
        let store = Store::open(args.dir.join("device.redb"), StoreConfig::new(schema()))?;
        Ok(HoldfastDevice {
            args,
            store,
            space: SpaceId::new(SPACE)?,
            ids: Vec::new(),
            downloader: false,
            live: None,
        })
    }

    fn config(&self) -> SyncConfig {
        SyncConfig::new(
            self.args.url.clone(),
            self.args.token.clone(),
            vec![self.space.clone()],
        )
    }

    fn sync_once(&self, what: &str) -> anyhow::Result<holdfast::SyncReport> {
        let report = self
            .store
            .sync_once(self.config(), Instant::now() + DEADLINE)?;
        anyhow::ensure!(report.complete, "{what} incomplete: {report:?}");
        Ok(report)
    }

    fn load_ids(&mut self) -> anyhow::Result<()> {
        self.ids = read_ids(&self.args.ids)?
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?;
        Ok(())
    }
}

impl Device for HoldfastDevice {
    fn create(&mut self, n: usize) -> anyhow::Result<()> {
        self.ids = write_records(&self.store, &self.space, 0..n, 100)?;
        let ids: Vec<String> = self.ids.iter().map(ToString::to_string).collect();
        write_ids(&self.args.ids, &ids)
    }

    fn upload(&mut self) -> anyhow::Result<()> {
        let report = self.sync_once("upload")?;
        anyhow::ensure!(
            report.pushed as usize == self.ids.len(),
            "pushed {} of {}",
            report.pushed,
            self.ids.len()
        );
        Ok(())
    }

    fn download(&mut self) -> anyhow::Result<usize> {
        self.load_ids()?;
        self.downloader = true;
        self.sync_once("download")?;
        let held = count_notes(&self.store)?;
        anyhow::ensure!(held == self.ids.len(), "holds {held} of {}", self.ids.len());
        Ok(held)
    }

    fn disconnect(&mut self) -> anyhow::Result<()> {
        // `sync_once` leaves no connection open.
        Ok(())
    }

    fn change(&mut self, k: usize) -> anyhow::Result<()> {
        for id in self.ids.iter().take(k) {
            self.store
                .update(*id, |tx| tx.set(*id, "title", record::CHANGED))?;
        }
        Ok(())
    }

    fn reconnect(&mut self, k: usize) -> anyhow::Result<()> {
        self.sync_once("reconnect")?;
        if self.downloader {
            for id in self.ids.iter().take(k) {
                let title = self.store.get(*id)?.get("title")?.map(ToString::to_string);
                anyhow::ensure!(
                    title.as_deref() == Some(record::CHANGED),
                    "missed a change: {title:?}"
                );
            }
        }
        Ok(())
    }

    fn trace_create(&mut self) -> anyhow::Result<()> {
        let space = self.space.clone();
        let id = self.store.write(|tx| {
            let id = tx.create("note", &space)?;
            tx.set(id, "title", "The paper")?;
            Ok(id)
        })?;
        self.sync_once("trace upload")?;
        write_ids(&self.args.ids, &[id.to_string()])?;
        self.ids = vec![id];
        self.live = Some(self.store.sync(self.config())?);
        Ok(())
    }

    fn trace_follow(&mut self) -> anyhow::Result<()> {
        self.load_ids()?;
        self.sync_once("trace download")?;
        anyhow::ensure!(self.store.exists(self.ids[0])?, "the note did not arrive");
        self.live = Some(self.store.sync(self.config())?);
        Ok(())
    }

    fn trace_replay(&mut self, trace: &Trace) -> anyhow::Result<()> {
        let id = self.ids[0];
        for chunk in trace.edits.chunks(EDITS_PER_COMMIT) {
            self.store.update(id, |tx| {
                for Edit(pos, del, ins) in chunk {
                    tx.splice_text(id, "body", *pos, *del, ins)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn trace_wait(&mut self, trace: &Trace) -> anyhow::Result<()> {
        let id = self.ids[0];
        let changes = self.store.subscribe();
        loop {
            if self.store.get(id)?.text("body")? == trace.end {
                return Ok(());
            }
            changes.recv_timeout(Duration::from_millis(50));
            while changes.try_recv().is_some() {}
        }
    }
}
