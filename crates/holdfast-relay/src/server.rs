//! The relay server: accepts WebSocket connections (over TLS if configured), runs one
//! [`RelaySession`](holdfast_protocol::RelaySession) per connection against a
//! [`LogStore`] and a [`Fanout`], serves the operations endpoints, and shuts down
//! gracefully.
//!
//! [`Server::bind`] opens the store, loads (or creates) the secret and binds both
//! addresses; [`Server::run`] serves until its shutdown future completes (see
//! [`ShutdownSignal`]).
//!
//! **One task per connection** gives a `driver::RelayDriver` (the session and the glue
//! around it, without I/O) its socket, and carries out what it asks, in order:
//!
//! | the driver's `driver::Out` | what the task does |
//! |---|---|
//! | `frames` | encodes each into the connection's bounded send queue; a writer task drains the queue into the socket |
//! | `close` | queues a WebSocket close with `reason.websocket_code()` and stops |
//! | `subscribe` | registers the connection's live inbox with the fan-out |
//! | `work`: `Store` | `LogStore::store` on the blocking pool, published to the fan-out, then `RelayDriver::done`; a `StoreError` ends the connection with `Error { Internal }` (1011) and no ack, so the device resends. One connection's stores run one at a time, in push order |
//! | `work`: `Pull`, `Bootstrap` | `LogStore::pull` or `LogStore::bootstrap` on the blocking pool, then `done` |
//! | `work`: `Repair` | `LogStore::sync_record` on the blocking pool (what it stores is published), then `done`; at most `REPAIRS_IN_FLIGHT_MAX` per connection |
//!
//! A message is read only while `RelayDriver::wants_read()` holds, so a connection's
//! stores, pulls and repairs in flight are bounded. A message over 64 KiB is decoded on
//! the blocking pool (nothing more is read meanwhile), so a large push never holds up the
//! other connections of a reactor thread. Text messages end the connection as
//! `Malformed`; a message above the frame limit is refused by the WebSocket layer from its
//! header, before it is buffered, and answered `FrameTooLarge` (1009). Every session ticks
//! once a second (keepalive, idle timeout, token expiry).
//!
//! **Fan-out.** A store publishes its `Stored` entries from inside the blocking closure,
//! right after the durable commit, one [`LiveBatch`](crate::LiveBatch) per space with the
//! changes that were pushed (a change the log already held is sent again; applying it is a
//! no-op). Each subscribed connection passes the batch through `RelayDriver::live`, which
//! sends it only for spaces named in the `Hello`; the `Changes` frame is encoded once per
//! batch and shared by every subscriber but the connection that stored it, which is sent
//! the entries without their changes (its device holds them; docs/protocol.md).
//!
//! **Backpressure and slow consumers.** While a connection's send queue is past half of a
//! bound, its requests are not read. A connection whose send queue passes its frame or
//! byte bound, whose live inbox is full, or whose device does not read what is written
//! within the write timeout, is sent a close (1013) if it can be and dropped; others are
//! unaffected (`queue.rs`).
//!
//! **Who gets in** (`admission.rs`). A socket not authenticated yet holds one of
//! `handshakes_max` handshake tickets (at most `handshakes_per_ip_max` per address); past
//! either it is closed at once. A device whose `Hello` is accepted takes one of
//! `connections_max` device permits; past that it is told `Error { ServerBusy }` and closed
//! (1013). Every refusal is counted by reason and logged, within a line budget.
//!
//! **Shutdown.** Stop accepting; each connection stops reading, waits for its stores and
//! pulls in flight (their acks are sent), then sends `Error { ServerBusy }` and closes;
//! after at most the shutdown grace, `run` returns.
//!
//! **Memory.** An idle authenticated connection costs about 12 KB of resident memory
//! (measured: 10,000 connections add 121 MiB to the relay's RSS; see the
//! `idle_connections_cost_little_memory` test): a 4 KiB read buffer, two small tasks and
//! the session. Whatever the device sends, it stays bounded: incoming data frames reach
//! tungstenite cut into 4 KiB fragments (`reframe.rs`), so its read buffer never grows past
//! one and a large message lives in a buffer of its own, freed with it; tungstenite's write
//! buffer is capped (`queue.rs`), which coalesces the pongs of a ping flood.

mod admission;
mod connection;
#[cfg(feature = "internals")]
pub mod driver;
#[cfg(not(feature = "internals"))]
mod driver;
mod queue;
mod reframe;
mod storage;
mod tls;

pub use admission::{Refusal, REFUSAL_LINES_PER_SEC};

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use holdfast_protocol::session::Authenticator;
use thiserror::Error;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use uuid::Uuid;

use crate::auth::JwtAuthenticator;
use crate::config::{ConfigError, ServerConfig, ServerLimits, PRUNE_INTERVAL};
use crate::error::StoreError;
use crate::fanout::{Fanout, LocalFanout};
use crate::http::{self, HttpState};
use crate::metrics::Metrics;
use crate::redb_store::{RedbLogStore, StoreConfig};
use crate::secret::{Secret, SecretError};
use crate::store::LogStore;
use admission::{Admission, Handshake};
use storage::Storage;

/// Connections the kernel queues before the relay accepts them (std's default is 128; a
/// burst of connects overflowed it, leaving sockets outside every timeout).
const LISTEN_BACKLOG: u32 = 1024;

/// Pause after a failed `accept` (out of file descriptors), so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// A bound relay server, ready to [`run`](Self::run).
pub struct Server {
    ws: TcpListener,
    http: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    grace: Duration,
    redb: Option<Arc<RedbLogStore>>,
}

/// The storage and fan-out a server runs on, for [`Server::bind_with`].
#[derive(Clone)]
pub struct Backends {
    /// The log.
    pub store: Arc<dyn LogStore>,
    /// Live delivery between connections.
    pub fanout: Arc<dyn Fanout>,
    /// The relay's identity, sent in `Welcome`.
    pub relay_id: Uuid,
}

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) storage: Storage,
    pub(crate) authenticator: Arc<dyn Authenticator>,
    pub(crate) relay_id: Uuid,
    pub(crate) limits: ServerLimits,
    pub(crate) admission: Arc<Admission>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Server {
    /// Opens (or creates) the database and the secret named in `config`, then binds.
    pub async fn bind(config: ServerConfig) -> Result<Self, ServerError> {
        config.limits.check()?;
        let (data, secret_file) = (config.data.clone(), config.secret_file.clone());
        let (secret, store) = tokio::task::spawn_blocking(move || {
            let secret = Secret::load_or_create(&secret_file)?;
            let store = RedbLogStore::open(&data, StoreConfig::default())?;
            Ok::<_, ServerError>((secret, store))
        })
        .await
        .map_err(|e| ServerError::Io(io::Error::other(e)))??;
        let store = Arc::new(store);
        let backends = Backends {
            store: store.clone(),
            fanout: Arc::new(LocalFanout::new()),
            relay_id: store.relay_id(),
        };
        let authenticator = Arc::new(JwtAuthenticator::new(&secret));
        let mut server = Self::bind_with(&config, authenticator, backends).await?;
        server.redb = Some(store);
        Ok(server)
    }

    /// Binds with storage, fan-out and authentication of the caller's choosing; the
    /// config's `data` and `secret_file` are not used.
    pub async fn bind_with(
        config: &ServerConfig,
        authenticator: Arc<dyn Authenticator>,
        backends: Backends,
    ) -> Result<Self, ServerError> {
        config.limits.check()?;
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let ws = bind(config.listen, "WebSocket").await?;
        let http = bind(config.http, "HTTP").await?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let metrics = Arc::new(Metrics::new());
        let admission = Arc::new(Admission::new(&config.limits, metrics.clone()));
        let storage = Storage {
            store: backends.store,
            fanout: backends.fanout,
            metrics,
        };
        let shared = Arc::new(Shared {
            storage,
            authenticator,
            relay_id: backends.relay_id,
            limits: config.limits.clone(),
            admission,
            shutdown: shutdown_rx,
        });
        Ok(Self {
            ws,
            http,
            tls,
            shared,
            shutdown,
            grace: config.shutdown_grace,
            redb: None,
        })
    }

    /// The address devices connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.ws
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The address of `/healthz` and `/metrics`.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// `"wss"` when serving TLS, else `"ws"`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "wss"
        } else {
            "ws"
        }
    }

    /// The server's metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.storage.metrics.clone()
    }

    /// Serves until `shutdown` completes, then shuts down gracefully: stops accepting,
    /// gives open connections up to the configured grace to finish the stores they have
    /// in flight (their acks are sent), turns them away with `ServerBusy`, and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let Self {
            ws,
            http,
            tls,
            shared,
            shutdown: shutdown_tx,
            grace,
            redb,
        } = self;
        let state = HttpState {
            store: shared.storage.store.clone(),
            metrics: shared.storage.metrics.clone(),
        };
        let mut http_shutdown = shared.shutdown.clone();
        let http_limits = shared.limits.clone();
        let http = tokio::spawn(async move {
            http::serve(http, state, &http_limits, async move {
                let _ = http_shutdown.wait_for(|stop| *stop).await;
            })
            .await
        });
        let pruning = redb.map(|store| tokio::spawn(prune_loop(store)));

        // Each connection task holds a sender; the channel closes once all have ended.
        let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                accepted = ws.accept() => accepted,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    // Past the handshake budget the socket is closed here, at no more cost
                    // than the accept.
                    let Ok(ticket) = shared.admission.handshake(peer) else {
                        continue;
                    };
                    let (shared, tls, open) = (shared.clone(), tls.clone(), open_tx.clone());
                    tokio::spawn(async move {
                        let _open = open;
                        accept(tcp, peer, tls, shared, ticket).await;
                    });
                }
                Err(error) => {
                    tracing::warn!("could not accept a connection: {error}");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            }
        }

        drop(ws);
        let open = shared.storage.metrics.connections_open.get();
        tracing::info!(
            open,
            "shutting down: no new connections, finishing open ones"
        );
        let _ = shutdown_tx.send(true);
        drop(open_tx);
        if tokio::time::timeout(grace, open_rx.recv()).await.is_err() {
            tracing::warn!("connections still open after the shutdown grace period");
        }
        if let Some(pruning) = pruning {
            pruning.abort();
        }
        match http.await {
            Ok(result) => result.map_err(ServerError::Io)?,
            Err(error) => tracing::warn!("the HTTP server task failed: {error}"),
        }
        tracing::info!("shut down");
        Ok(())
    }
}

/// Runs the TLS handshake if configured, then serves the connection.
async fn accept(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    ticket: Handshake,
) {
    let metrics = shared.storage.metrics.clone();
    metrics.connections_accepted.inc();
    metrics.connections_open.inc();
    let _ = tcp.set_nodelay(true);
    // Each arm is boxed, so that a plain connection's task is not as large as a TLS one's
    // (a task is allocated at the size of its largest state).
    match tls {
        None => Box::pin(connection::serve(tcp, peer, shared, ticket)).await,
        Some(acceptor) => {
            let timeout = shared.limits.handshake_timeout;
            let handshake = Box::pin(tokio::time::timeout(timeout, acceptor.accept(tcp)));
            let admission = &shared.admission;
            match handshake.await {
                Ok(Ok(stream)) => Box::pin(connection::serve(stream, peer, shared, ticket)).await,
                Ok(Err(error)) => {
                    let detail = format!("TLS handshake failed: {error}");
                    admission.refuse(peer, None, Refusal::HandshakeFailed, &detail);
                }
                Err(_) => {
                    let detail = "TLS handshake timed out";
                    admission.refuse(peer, None, Refusal::HandshakeTimeout, detail);
                }
            }
        }
    }
    metrics.connections_open.dec();
}

async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener, ServerError> {
    let bind = || {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    bind().map_err(|source| ServerError::Bind { what, addr, source })
}

/// Removes expired event ids now and every [`PRUNE_INTERVAL`].
async fn prune_loop(store: Arc<RedbLogStore>) {
    let mut interval = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        interval.tick().await;
        let store = store.clone();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        match tokio::task::spawn_blocking(move || store.prune(now_ms)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(pruned)) => tracing::info!(pruned, "pruned expired event ids"),
            Ok(Err(error)) => tracing::warn!("pruning event ids failed: {error}"),
            Err(error) => tracing::warn!("pruning task failed: {error}"),
        }
    }
}

/// Completes on SIGTERM or Ctrl-C (SIGINT). Create it before announcing readiness: the
/// handlers are in place from then on.
#[derive(Debug)]
pub struct ShutdownSignal {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    /// Installs the handlers. Needs a tokio runtime.
    pub fn install() -> io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for a signal.
    pub async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => tracing::info!("SIGTERM received"),
            _ = self.interrupt.recv() => tracing::info!("interrupt received"),
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("interrupt received");
        }
    }
}

/// Why a server could not start or stopped with an error. Messages are plain words.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration cannot be served.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The token secret is missing, unsafe or unreadable.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A TLS file is missing or wrong.
    #[error("TLS file {}: {reason}", path.display())]
    Tls {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An address could not be bound.
    #[error("could not listen for {what} on {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// Serving failed.
    #[error("the relay server failed: {0}")]
    Io(#[from] io::Error),
}
