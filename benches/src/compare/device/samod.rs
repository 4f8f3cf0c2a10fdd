//! The samod device: a samod repo on filesystem storage in the child's directory, one
//! Automerge document per record, connected to the samod sync server through a dialer.

use std::convert::Infallible;
use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::{Automerge, ObjId, ObjType, ReadDoc, ROOT};
use futures_util::{FutureExt, StreamExt};
use samod::{DialerHandle, DocHandle, DocumentId, Repo};

use super::{read_ids, record, write_ids, Device, DeviceArgs};
use crate::compare::samod_net::{backoff, WsDialer};
use crate::compare::trace::{Edit, Trace, EDITS_PER_COMMIT};

/// Documents created at once while setting up.
const CREATE_CONCURRENCY: usize = 64;

/// A samod repo and its open documents.
pub struct SamodDevice {
    args: DeviceArgs,
    rt: tokio::runtime::Runtime,
    repo: Repo,
    handles: Vec<DocHandle>,
    dialer: Option<DialerHandle<Infallible>>,
    downloader: bool,
}

impl SamodDevice {
    /// Loads the device's repo.
    pub fn new(args: DeviceArgs) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let storage = samod::storage::TokioFilesystemStorage::new(args.dir.join("samod"));
        let repo = rt.block_on(async { Repo::build_tokio().with_storage(storage).load().await });
        Ok(SamodDevice {
            args,
            rt,
            repo,
            handles: Vec::new(),
            dialer: None,
            downloader: false,
        })
    }

    /// Dials the server and waits for the handshake; returns the connection.
    fn connect(&mut self) -> anyhow::Result<samod::ConnectionId> {
        let dialer = self
            .repo
            .dial(backoff(), WsDialer::new(&self.args.url)?)
            .map_err(|_| anyhow::anyhow!("the repo stopped"))?;
        self.rt
            .block_on(dialer.established())
            .map_err(|e| anyhow::anyhow!("dial failed: {e:?}"))?;
        let conn = dialer
            .connection_id()
            .ok_or_else(|| anyhow::anyhow!("no connection after the handshake"))?;
        self.dialer = Some(dialer);
        Ok(conn)
    }

    /// Waits until the server has every change of every open document.
    fn server_has_everything(&self, conn: samod::ConnectionId) {
        let waits: Vec<_> = self
            .handles
            .iter()
            .map(|h| h.they_have_our_changes(conn))
            .collect();
        self.rt.block_on(futures_util::future::join_all(waits));
    }

    fn title(handle: &DocHandle) -> Option<String> {
        handle.with_document(|doc| {
            doc.get(ROOT, "title")
                .ok()
                .flatten()
                .and_then(|(v, _)| v.into_string().ok())
        })
    }

    fn body(handle: &DocHandle) -> anyhow::Result<ObjId> {
        handle.with_document(|doc| {
            Ok(doc
                .get(ROOT, "body")?
                .ok_or_else(|| anyhow::anyhow!("no body"))?
                .1)
        })
    }

    fn load_ids(&self) -> anyhow::Result<Vec<DocumentId>> {
        read_ids(&self.args.ids)?
            .iter()
            .map(|s| s.parse().map_err(|e| anyhow::anyhow!("{e:?}")))
            .collect()
    }
}

/// Record `i` as a document.
fn record_doc(i: usize) -> anyhow::Result<Automerge> {
    let mut doc = Automerge::new();
    doc.transact(|tx| {
        tx.put(ROOT, "title", record::title(i))?;
        let body = tx.put_object(ROOT, "body", ObjType::Text)?;
        tx.splice_text(&body, 0, 0, record::BODY)?;
        tx.put(ROOT, "status", record::STATUS)?;
        tx.put(ROOT, "priority", record::priority(i))?;
        tx.put(ROOT, "done", false)?;
        Ok::<_, automerge::AutomergeError>(())
    })
    .map_err(|f| anyhow::anyhow!("{}", f.error))?;
    Ok(doc)
}

impl Device for SamodDevice {
    fn create(&mut self, n: usize) -> anyhow::Result<()> {
        let docs = (0..n).map(record_doc).collect::<anyhow::Result<Vec<_>>>()?;
        let repo = self.repo.clone();
        let handles = self.rt.block_on(
            futures_util::stream::iter(docs)
                .map(|doc| repo.create(doc))
                .buffered(CREATE_CONCURRENCY)
                .collect::<Vec<_>>(),
        );
        self.handles = handles
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|_| anyhow::anyhow!("the repo stopped"))?;
        let ids: Vec<String> = self
            .handles
            .iter()
            .map(|h| h.document_id().to_string())
            .collect();
        write_ids(&self.args.ids, &ids)
    }

    fn upload(&mut self) -> anyhow::Result<()> {
        let conn = self.connect()?;
        self.server_has_everything(conn);
        Ok(())
    }

    fn download(&mut self) -> anyhow::Result<usize> {
        self.downloader = true;
        let ids = self.load_ids()?;
        self.connect()?;
        let finds: Vec<_> = ids.iter().map(|id| self.repo.find(id.clone())).collect();
        let found = self.rt.block_on(futures_util::future::join_all(finds));
        self.handles.clear();
        for (i, handle) in found.into_iter().enumerate() {
            let handle = handle
                .map_err(|_| anyhow::anyhow!("the repo stopped"))?
                .ok_or_else(|| anyhow::anyhow!("document {i} not found"))?;
            anyhow::ensure!(
                Self::title(&handle) == Some(record::title(i)),
                "document {i} arrived incomplete"
            );
            self.handles.push(handle);
        }
        Ok(self.handles.len())
    }

    fn disconnect(&mut self) -> anyhow::Result<()> {
        if let Some(dialer) = self.dialer.take() {
            dialer.close();
        }
        std::thread::sleep(Duration::from_millis(200));
        Ok(())
    }

    fn change(&mut self, k: usize) -> anyhow::Result<()> {
        for handle in self.handles.iter().take(k) {
            handle.with_document(|doc| {
                doc.transact(|tx| tx.put(ROOT, "title", record::CHANGED))
                    .map_err(|f| anyhow::anyhow!("{}", f.error))
            })?;
        }
        Ok(())
    }

    fn reconnect(&mut self, k: usize) -> anyhow::Result<()> {
        let conn = self.connect()?;
        if self.downloader {
            let waits: Vec<_> = self
                .handles
                .iter()
                .map(|h| h.we_have_their_changes(conn))
                .collect();
            self.rt.block_on(futures_util::future::join_all(waits));
            for handle in self.handles.iter().take(k) {
                let title = Self::title(handle);
                anyhow::ensure!(
                    title.as_deref() == Some(record::CHANGED),
                    "missed a change: {title:?}"
                );
            }
        } else {
            self.server_has_everything(conn);
        }
        Ok(())
    }

    fn trace_create(&mut self) -> anyhow::Result<()> {
        let mut doc = Automerge::new();
        doc.transact(|tx| {
            tx.put(ROOT, "title", "The paper")?;
            tx.put_object(ROOT, "body", ObjType::Text)?;
            Ok::<_, automerge::AutomergeError>(())
        })
        .map_err(|f| anyhow::anyhow!("{}", f.error))?;
        let handle = self
            .rt
            .block_on(self.repo.create(doc))
            .map_err(|_| anyhow::anyhow!("the repo stopped"))?;
        write_ids(&self.args.ids, &[handle.document_id().to_string()])?;
        self.handles = vec![handle];
        self.upload()
    }

    fn trace_follow(&mut self) -> anyhow::Result<()> {
        let id = self
            .load_ids()?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("no id"))?;
        self.connect()?;
        let handle = self
            .rt
            .block_on(self.repo.find(id))
            .map_err(|_| anyhow::anyhow!("the repo stopped"))?
            .ok_or_else(|| anyhow::anyhow!("the note was not found"))?;
        self.handles = vec![handle];
        Ok(())
    }

    fn trace_replay(&mut self, trace: &Trace) -> anyhow::Result<()> {
        let handle = &self.handles[0];
        let body = Self::body(handle)?;
        for chunk in trace.edits.chunks(EDITS_PER_COMMIT) {
            handle.with_document(|doc| {
                let mut tx = doc.transaction();
                for Edit(pos, del, ins) in chunk {
                    tx.splice_text(&body, *pos, *del as isize, ins)?;
                }
                tx.commit();
                Ok::<_, automerge::AutomergeError>(())
            })?;
        }
        Ok(())
    }

    fn trace_wait(&mut self, trace: &Trace) -> anyhow::Result<()> {
        let handle = self.handles[0].clone();
        let mut changes = Box::pin(handle.changes());
        loop {
            let done = handle.with_document(|doc| match doc.get(ROOT, "body") {
                Ok(Some((_, body))) => doc.text(&body).map(|t| t == trace.end).unwrap_or(false),
                _ => false,
            });
            if done {
                return Ok(());
            }
            self.rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_millis(50), changes.next()).await;
            });
            // Check once per burst of changes, not once per change.
            while let Some(Some(_)) = changes.next().now_or_never() {}
        }
    }
}
