//! A WebSocket client of `holdfast-relay` for load tests: frames, `Hello`, small pushes,
//! the live fan-out measurement shared by `relay_load` and `compare`, and devices syncing
//! at a steady pace (`relay_load`'s attack phase).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT};
use futures_util::{SinkExt, StreamExt};
use holdfast_protocol::{
    decode, encode, DeviceId, EventId, Frame, Outcome, PushEntry, RecordId, SpaceCursor, SpaceId,
    Token,
};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Most connections a load test keeps in their handshake at once from one address: under
/// the relay's default cap per address (`--max-handshakes-per-ip`, 64), past which it
/// closes new sockets at once.
pub const HANDSHAKES_AT_ONCE: usize = 32;

/// Live delivery from one pushing device to many subscribers.
#[derive(Clone, Copy, Debug)]
pub struct Fanout {
    /// Changes the relay acknowledged.
    pub acked: usize,
    /// Entries received live, over all subscribers.
    pub deliveries: usize,
    /// Push sent to entry received, median, in ms.
    pub p50_ms: f64,
    /// The same, 99th percentile.
    pub p99_ms: f64,
}

/// `subscribers` connections subscribe to one space of the relay at `url` (`host:port`)
/// while one device pushes `rate` changes per second, in pushes of 10, for `secs`;
/// each subscriber timestamps every entry it receives live.
pub async fn fanout(
    url: &str,
    token: &str,
    subscribers: usize,
    rate: u64,
    secs: u64,
) -> Result<Fanout, anyhow::Error> {
    let (subscriber_count, mut subscribers) = (subscribers, Vec::new());
    let fan = space("fanout");
    let sent_at: Arc<Mutex<HashMap<EventId, Instant>>> = Arc::default();
    let total = (rate * secs) as usize;
    for _ in 0..subscriber_count {
        let mut ws = connect(url).await?;
        hello(&mut ws, token, vec![fan.clone()]).await?;
        let sent_at = sent_at.clone();
        subscribers.push(tokio::spawn(async move {
            receive_live(ws, sent_at, total).await
        }));
    }
    let mut pusher = connect(url).await?;
    hello(&mut pusher, token, vec![]).await?;
    let entries = small_entries(&fan, total, 1 << 20);
    let (mut sink, mut stream) = pusher.split();
    let acks = tokio::spawn(async move {
        let mut acked = 0;
        while acked < total {
            match stream.next().await {
                Some(Ok(Message::Binary(bytes))) => {
                    if let Ok(Frame::Ack { results }) = decode(&bytes) {
                        acked += results.len();
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        acked
    });
    let per_tick = 10usize;
    let mut tick = tokio::time::interval(Duration::from_micros(
        1_000_000 * per_tick as u64 / rate.max(1),
    ));
    for chunk in entries.chunks(per_tick) {
        tick.tick().await;
        {
            let mut sent_at = sent_at.lock().unwrap();
            let now = Instant::now();
            for entry in chunk {
                sent_at.insert(entry.event_id, now);
            }
        }
        let frame = Frame::Push {
            entries: chunk.to_vec(),
        };
        sink.send(Message::Binary(encode(&frame)?.into())).await?;
    }
    let acked = tokio::time::timeout(Duration::from_secs(60), acks).await??;
    let mut delays = Vec::new();
    for subscriber in subscribers {
        delays.extend(tokio::time::timeout(Duration::from_secs(60), subscriber).await???);
    }
    let p50 = percentile(&mut delays, 0.50);
    let p99 = percentile(&mut delays, 0.99);
    Ok(Fanout {
        acked,
        deliveries: delays.len(),
        p50_ms: p50,
        p99_ms: p99,
    })
}

/// The space id `name` (panics if invalid).
pub fn space(name: &str) -> SpaceId {
    SpaceId::new(name).expect("a valid space id")
}

/// `n` entries of one small change each, every one a new record (a title and a status).
pub fn small_entries(space: &SpaceId, n: usize, salt: u64) -> Vec<PushEntry> {
    (0..n)
        .map(|i| {
            let mut doc = AutoCommit::new();
            doc.put(ROOT, "title", format!("note {salt}-{i}")).unwrap();
            doc.put(ROOT, "status", "draft").unwrap();
            let change = doc.get_last_local_change().unwrap().raw_bytes().to_vec();
            PushEntry {
                event_id: EventId::new_v7(),
                space: space.clone(),
                record: RecordId::new_v7(),
                changes: vec![change],
            }
        })
        .collect()
}

/// Opens a WebSocket to `url` (`host:port`) with small buffers.
pub async fn connect(url: &str) -> Result<Ws, anyhow::Error> {
    let (ws, _) = tokio_tungstenite::connect_async_with_config(
        format!("ws://{url}"),
        Some(small_buffers()),
        false,
    )
    .await?;
    Ok(ws)
}

/// Opens a WebSocket to `to` from the local address `from` (any loopback address, on
/// Linux), with small buffers.
pub async fn connect_from(from: IpAddr, to: SocketAddr) -> Result<Ws, anyhow::Error> {
    let tcp = connect_tcp(from, to, None).await?;
    let (ws, _) = tokio_tungstenite::client_async_with_config(
        format!("ws://{to}/"),
        MaybeTlsStream::Plain(tcp),
        Some(small_buffers()),
    )
    .await?;
    Ok(ws)
}

/// A TCP connection to `to` from the local address `from`, with a receive buffer of
/// `recv_buffer` bytes if given.
pub async fn connect_tcp(
    from: IpAddr,
    to: SocketAddr,
    recv_buffer: Option<u32>,
) -> std::io::Result<TcpStream> {
    let socket = match from {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(bytes) = recv_buffer {
        socket.set_recv_buffer_size(bytes)?;
    }
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

fn small_buffers() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Says `Hello` with `spaces` (never pulled) and waits for the `Welcome`'s push limit.
pub async fn hello(ws: &mut Ws, token: &str, spaces: Vec<SpaceId>) -> Result<u32, anyhow::Error> {
    let frame = Frame::Hello {
        protocol: holdfast_protocol::limits::PROTOCOL_VERSION,
        device: DeviceId::random(),
        token: Token::new(token),
        spaces: spaces
            .into_iter()
            .map(|space| SpaceCursor {
                space,
                cursor: None,
            })
            .collect(),
    };
    ws.send(Message::Binary(encode(&frame)?.into())).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(bytes))) => match decode(&bytes)? {
                Frame::Welcome { limits, .. } => return Ok(limits.pushes_in_flight_max),
                Frame::Error { code, message } => {
                    return Err(anyhow::anyhow!("relay refused hello: {code} ({message})"))
                }
                _ => {}
            },
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err(anyhow::anyhow!("closed before welcome")),
        }
    }
}

/// Opens `n` connections that say `Hello` and then only answer pings.
pub async fn open_idle(
    url: &str,
    token: &str,
    n: usize,
) -> Result<Vec<tokio::task::JoinHandle<()>>, anyhow::Error> {
    let gate = Arc::new(Semaphore::new(HANDSHAKES_AT_ONCE));
    let mut opening = Vec::with_capacity(n);
    for _ in 0..n {
        let (url, token, gate) = (url.to_owned(), token.to_owned(), gate.clone());
        opening.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.expect("open");
            let mut ws = connect(&url).await?;
            hello(&mut ws, &token, vec![space("idle")]).await?;
            drop(permit);
            Ok::<_, anyhow::Error>(tokio::spawn(async move {
                while let Some(Ok(message)) = ws.next().await {
                    if let Message::Binary(bytes) = message {
                        if let Ok(Frame::Ping { nonce }) = decode(&bytes) {
                            let pong = encode(&Frame::Pong { nonce }).expect("encodes");
                            if ws.send(Message::Binary(pong.into())).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }))
        }));
    }
    let mut open = Vec::with_capacity(n);
    for task in opening {
        open.push(task.await??);
    }
    Ok(open)
}

/// Pushes `entries` on one connection, `batch` per push, pipelined within the `Welcome`'s
/// limit. Returns the entries stored and each push's ack latency in milliseconds.
pub async fn push_all(
    url: &str,
    token: &str,
    entries: Vec<PushEntry>,
    batch: usize,
) -> Result<(usize, Vec<f64>), anyhow::Error> {
    let mut ws = connect(url).await?;
    let in_flight_max = hello(&mut ws, token, vec![]).await?.max(1) as usize;
    let mut batches = entries.chunks(batch.max(1));
    let mut in_flight: HashMap<EventId, Instant> = HashMap::new();
    let mut latencies = Vec::new();
    let mut stored = 0;
    loop {
        while in_flight.len() < in_flight_max {
            let Some(chunk) = batches.next() else { break };
            in_flight.insert(chunk[0].event_id, Instant::now());
            let frame = Frame::Push {
                entries: chunk.to_vec(),
            };
            ws.send(Message::Binary(encode(&frame)?.into())).await?;
        }
        if in_flight.is_empty() {
            return Ok((stored, latencies));
        }
        let message = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("relay closed the connection"))??;
        let Message::Binary(bytes) = message else {
            continue;
        };
        match decode(&bytes)? {
            Frame::Ack { results } => {
                let sent = in_flight
                    .remove(&results[0].event_id)
                    .ok_or_else(|| anyhow::anyhow!("ack for no push"))?;
                latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                for result in results {
                    match result.outcome {
                        Outcome::Stored { .. } => stored += 1,
                        other => return Err(anyhow::anyhow!("entry not stored: {other:?}")),
                    }
                }
            }
            Frame::Error { code, message } => {
                return Err(anyhow::anyhow!("relay error: {code} ({message})"))
            }
            _ => {}
        }
    }
}

/// Receives live changes until `total` entries arrived; returns each one's delay in ms.
pub async fn receive_live(
    mut ws: Ws,
    sent_at: Arc<Mutex<HashMap<EventId, Instant>>>,
    total: usize,
) -> Result<Vec<f64>, anyhow::Error> {
    let mut delays = Vec::with_capacity(total);
    while delays.len() < total {
        let Some(message) = ws.next().await else {
            return Err(anyhow::anyhow!("relay closed a subscriber"));
        };
        let Message::Binary(bytes) = message? else {
            continue;
        };
        match decode(&bytes)? {
            Frame::Changes { entries, .. } => {
                let now = Instant::now();
                let sent_at = sent_at.lock().unwrap();
                for entry in entries {
                    if let Some(sent) = sent_at.get(&entry.event_id) {
                        delays.push(now.duration_since(*sent).as_secs_f64() * 1e3);
                    }
                }
            }
            Frame::Ping { nonce } => {
                let pong = encode(&Frame::Pong { nonce })?;
                ws.send(Message::Binary(pong.into())).await?;
            }
            _ => {}
        }
    }
    Ok(delays)
}

/// The `p` quantile (0 to 1) of `values`, sorting them.
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((values.len() - 1) as f64 * p).round() as usize;
    values[rank]
}
