//! A TCP proxy on loopback that counts the bytes each way: every system's client talks to
//! its server through one, so wire bytes are counted the same way for all of them
//! (WebSocket framing included, TCP/IP headers not).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes through a [`Proxy`] so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bytes {
    /// Client to server.
    pub up: u64,
    /// Server to client.
    pub down: u64,
}

impl Bytes {
    /// Both directions.
    pub fn total(self) -> u64 {
        self.up + self.down
    }

    /// The bytes since `earlier`.
    pub fn since(self, earlier: Bytes) -> Bytes {
        Bytes {
            up: self.up - earlier.up,
            down: self.down - earlier.down,
        }
    }
}

/// A listening proxy to one server; runs until its runtime stops.
pub struct Proxy {
    /// Where clients connect instead of the server.
    pub addr: SocketAddr,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `server` on a free loopback port, on `runtime`.
    pub fn start(runtime: &tokio::runtime::Handle, server: SocketAddr) -> anyhow::Result<Proxy> {
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let up = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicU64::new(0));
        let (up2, down2) = (up.clone(), down.clone());
        let task = runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (up, down) = (up2.clone(), down2.clone());
                tokio::spawn(async move {
                    let Ok(upstream) = TcpStream::connect(server).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = upstream.into_split();
                    tokio::spawn(pipe(client_read, server_write, up));
                    tokio::spawn(pipe(server_read, client_write, down));
                });
            }
        });
        Ok(Proxy {
            addr,
            up,
            down,
            task,
        })
    }

    /// The bytes carried so far.
    pub fn bytes(&self) -> Bytes {
        Bytes {
            up: self.up.load(Ordering::Relaxed),
            down: self.down.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
    let _ = to.shutdown().await;
}
