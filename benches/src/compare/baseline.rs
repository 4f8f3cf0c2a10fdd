//! The machine's own limits, measured in the same run: raw redb `Immediate` commits and
//! fsync latency on the same disk, and WebSocket on loopback with no work behind it
//! (throughput into a sink, and fan-out of opaque messages to subscribers), served by a
//! child process (`compare child ws-server`) as the relay is.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::relay_client::{connect, percentile};

/// Mean time of one `Durability::Immediate` redb commit of `payload` bytes, over `count`.
pub fn raw_redb_commit(dir: &Path, payload: usize, count: usize) -> Duration {
    let mut raw = crate::RawRedb::open(&dir.join("raw-commit.redb"), payload);
    for _ in 0..10 {
        raw.commit_one();
    }
    let started = Instant::now();
    for _ in 0..count {
        raw.commit_one();
    }
    started.elapsed() / count as u32
}

/// Mean time of a 4 KiB write plus `fdatasync` on a file in `dir`, over `count`.
pub fn fsync(dir: &Path, count: usize) -> anyhow::Result<Duration> {
    let mut file = std::fs::File::create(dir.join("fsync.bin"))?;
    let block = vec![7u8; 4096];
    let started = Instant::now();
    for _ in 0..count {
        file.write_all(&block)?;
        file.sync_data()?;
    }
    Ok(started.elapsed() / count as u32)
}

/// The bare WebSocket server child: a connection's first text message is its role.
/// `sub` receives every binary message a `pub` sends; `sink` discards binary messages
/// and answers the text `done` with `done`. Each role is answered `ok` once set up.
pub fn serve_ws() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        super::process::announce_listening(listener.local_addr()?);
        let subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Message>>>> = Arc::default();
        loop {
            let (tcp, _) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let subscribers = subscribers.clone();
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let (mut sink, mut stream) = ws.split();
                let Some(Ok(Message::Text(role))) = stream.next().await else {
                    return;
                };
                match role.as_str() {
                    "sub" => {
                        let (tx, mut rx) = mpsc::unbounded_channel();
                        subscribers.lock().unwrap().push(tx);
                        let _ = sink.send(Message::text("ok")).await;
                        while let Some(message) = rx.recv().await {
                            if sink.send(message).await.is_err() {
                                break;
                            }
                        }
                    }
                    "pub" => {
                        let _ = sink.send(Message::text("ok")).await;
                        while let Some(Ok(message)) = stream.next().await {
                            if message.is_binary() {
                                for tx in subscribers.lock().unwrap().iter() {
                                    let _ = tx.send(message.clone());
                                }
                            }
                        }
                    }
                    _ => {
                        let _ = sink.send(Message::text("ok")).await;
                        while let Some(Ok(message)) = stream.next().await {
                            if message.is_text() {
                                let _ = sink.send(Message::text("done")).await;
                            }
                        }
                    }
                }
            });
        }
    })
}

async fn join(url: &str, role: &str) -> anyhow::Result<crate::relay_client::Ws> {
    let mut ws = connect(url).await?;
    ws.send(Message::text(role)).await?;
    match ws.next().await {
        Some(Ok(Message::Text(ok))) if ok.as_str() == "ok" => Ok(ws),
        other => anyhow::bail!("bare server refused {role}: {other:?}"),
    }
}

/// Bytes per second one connection pushes into the sink in messages of `message_bytes`,
/// `total` bytes in all, timed until the server has read them all.
pub async fn ws_throughput(url: &str, message_bytes: usize, total: usize) -> anyhow::Result<f64> {
    let mut ws = join(url, "sink").await?;
    let message = vec![7u8; message_bytes];
    let count = total.div_ceil(message_bytes);
    let started = Instant::now();
    for _ in 0..count {
        ws.feed(Message::binary(message.clone())).await?;
    }
    ws.send(Message::text("done")).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(_))) => break,
            Some(Ok(_)) => {}
            other => anyhow::bail!("sink closed: {other:?}"),
        }
    }
    Ok((count * message_bytes) as f64 / started.elapsed().as_secs_f64())
}

/// The relay fan-out's baseline: `subscribers` connections receive what one connection
/// sends, `rate / 10` messages per second of `message_bytes` each (as the relay gets
/// pushes of 10 entries), for `secs`. Returns p50 and p99 of send-to-receipt, ms.
pub async fn ws_fanout(
    url: &str,
    subscribers: usize,
    rate: u64,
    secs: u64,
    message_bytes: usize,
) -> anyhow::Result<(f64, f64)> {
    let messages = (rate * secs / 10) as usize;
    let sent_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; messages]));
    let mut tasks = Vec::new();
    for _ in 0..subscribers {
        let mut ws = join(url, "sub").await?;
        let sent_at = sent_at.clone();
        tasks.push(tokio::spawn(async move {
            let mut delays = Vec::with_capacity(messages);
            while delays.len() < messages {
                match ws.next().await {
                    Some(Ok(Message::Binary(bytes))) => {
                        let now = Instant::now();
                        let seq = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
                        if let Some(sent) = sent_at.lock().unwrap()[seq as usize] {
                            delays.push(now.duration_since(sent).as_secs_f64() * 1e3);
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                }
            }
            delays
        }));
    }
    let mut publisher = join(url, "pub").await?;
    let mut tick = tokio::time::interval(Duration::from_micros(10_000_000 / rate.max(1)));
    for seq in 0..messages {
        tick.tick().await;
        let mut message = vec![0u8; message_bytes.max(8)];
        message[..8].copy_from_slice(&(seq as u64).to_le_bytes());
        sent_at.lock().unwrap()[seq] = Some(Instant::now());
        publisher.send(Message::binary(message)).await?;
    }
    let mut delays = Vec::new();
    for task in tasks {
        delays.extend(tokio::time::timeout(Duration::from_secs(60), task).await??);
    }
    Ok((percentile(&mut delays, 0.5), percentile(&mut delays, 0.99)))
}
