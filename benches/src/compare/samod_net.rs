//! samod over WebSockets with the workspace's tokio-tungstenite: a samod `Transport` from a
//! WebSocket (binary messages carry samod's messages), a `Dialer` for devices, and the
//! sync server child (`compare child samod-server`): a samod repo on filesystem storage
//! that accepts every connection and announces nothing, like automerge-repo's sync
//! server.

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;

use futures_util::future::{ready, BoxFuture};
use futures_util::{SinkExt, StreamExt};
use samod::{BackoffConfig, DialError, Dialer, Repo, ShareConfig, Transport};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// A samod transport over an open WebSocket.
pub fn transport<S>(ws: WebSocketStream<S>) -> Transport
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = ws.split();
    let stream = stream
        .filter_map(|message| {
            ready(match message {
                Ok(Message::Binary(bytes)) => Some(Ok(bytes.to_vec())),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
        })
        .boxed();
    let sink = sink.with(|bytes: Vec<u8>| ready(Ok::<_, WsError>(Message::Binary(bytes.into()))));
    Transport::new(stream, sink)
}

/// Dials a samod server at a `ws://` URL.
pub struct WsDialer {
    url: samod::Url,
}

impl WsDialer {
    /// A dialer for `url`.
    pub fn new(url: &str) -> anyhow::Result<Arc<WsDialer>> {
        Ok(Arc::new(WsDialer {
            url: samod::Url::parse(url)?,
        }))
    }
}

impl Dialer for WsDialer {
    type Error = Infallible;

    fn url(&self) -> samod::Url {
        self.url.clone()
    }

    fn connect(&self) -> BoxFuture<'static, Result<Transport, DialError<Infallible>>> {
        let url = self.url.to_string();
        Box::pin(async move {
            let (ws, _) = tokio_tungstenite::connect_async(url)
                .await
                .map_err(DialError::transient)?;
            Ok(transport(ws))
        })
    }
}

/// Reconnects quickly: the server is on loopback.
pub fn backoff() -> BackoffConfig {
    BackoffConfig {
        initial_delay: std::time::Duration::from_millis(20),
        max_delay: std::time::Duration::from_secs(1),
        max_retries: None,
    }
}

/// Runs the sync server child: prints `{"listening": "127.0.0.1:PORT"}`, then serves until
/// its stdin closes.
pub fn serve(dir: &Path) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = dir.to_path_buf();
    rt.block_on(async move {
        let repo = Repo::build_tokio()
            .with_storage(samod::storage::TokioFilesystemStorage::new(&dir))
            .with_share_policy(ShareConfig::read_write().with_announce(false))
            .load()
            .await;
        let acceptor = repo
            .make_acceptor(samod::Url::parse("ws://127.0.0.1/")?)
            .map_err(|_| anyhow::anyhow!("the repo stopped"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        super::process::announce_listening(listener.local_addr()?);
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                    let _ = acceptor.accept(transport(ws));
                }
            });
        }
    })
}
