//! Load test of a real `holdfast-relay` process on loopback: memory per idle connection,
//! small changes stored per second with acks, and live fan-out latency.
//!
//! ```sh
//! cargo build --release -p holdfast-relay -p holdfast-benches
//! target/release/relay_load            # starts target/release/holdfast-relay itself
//! ```
//!
//! The relay runs in its own process on a temporary directory, so its RSS is its own. The
//! phases run one after another on the same relay:
//!
//! 1. **Idle connections**: `--idle` WebSocket connections each say `Hello` and get their
//!    `Welcome`, then stay open. Reported: the relay's RSS before and after, per connection.
//! 2. **Pushes**: `--pushers` connections push `--changes` small Automerge changes (one new
//!    record each) in batches of `--batch`, as many pushes in flight as the `Welcome`
//!    allows. Reported: changes stored and acked per second, ack latency per push.
//! 3. **Fan-out**: `--subscribers` connections subscribe to one space while one device
//!    pushes `--fanout-rate` changes per second in batches of 10. Reported: time from
//!    sending a push to each subscriber receiving its entries live, p50/p99.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use holdfast_protocol::{
    decode, encode, DeviceId, EventId, Frame, Outcome, PushEntry, RecordId, SpaceCursor, SpaceId,
    Token,
};
use holdfast_relay_harness::Relay;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Parser, Debug)]
#[command(about = "Load test of a holdfast-relay process on loopback")]
struct Args {
    /// Idle connections to open in phase 1.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Connections pushing in phase 2.
    #[arg(long, default_value_t = 8)]
    pushers: usize,
    /// Changes pushed in phase 2, in all.
    #[arg(long, default_value_t = 200_000)]
    changes: usize,
    /// Entries (one change each) per push in phase 2.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Subscribers in phase 3.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Changes per second pushed in phase 3.
    #[arg(long, default_value_t = 1_000)]
    fanout_rate: u64,
    /// Length of phase 3.
    #[arg(long, default_value_t = 10)]
    fanout_secs: u64,
}

#[tokio::main]
async fn main() -> Result<(), anyhow::Error> {
    let args = Args::parse();
    let connections = (args.idle + 1_000).to_string();
    let relay = Relay::start_in(
        tempfile::tempdir()?,
        &["--max-connections", &connections, "--push-rate", "0"],
    );
    let ws = relay.ws.to_string();
    println!("relay pid {} at ws://{}", relay.pid(), relay.ws);
    let token = relay.token(&["load:write", "fanout:write", "idle:read"]);
    run(&args, &relay, &ws, &token).await
}

async fn run(args: &Args, relay: &Relay, ws: &str, token: &str) -> Result<(), anyhow::Error> {
    // --- Phase 1: idle connections -------------------------------------------------------
    let rss_before = relay.rss_kib();
    let started = Instant::now();
    let idle = open_idle(ws, token, args.idle).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = relay.rss_kib();
    let per_connection = (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / args.idle as f64;
    println!(
        "idle: {} connections welcomed in {:.1} s; relay RSS {:.1} MiB before, {:.1} MiB after: \
         {:.1} KiB per idle connection",
        args.idle,
        started.elapsed().as_secs_f64(),
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        per_connection / 1024.0,
    );
    drop(idle);

    // --- Phase 2: pushes stored with acks ---------------------------------------------------
    let per_pusher = args.changes / args.pushers.max(1);
    let mut batches = Vec::new();
    for p in 0..args.pushers {
        batches.push(small_entries(&space("load"), per_pusher, p as u64));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for entries in batches {
        let (url, token, batch) = (ws.to_owned(), token.to_owned(), args.batch);
        tasks.push(tokio::spawn(async move {
            push_all(&url, &token, entries, batch).await
        }));
    }
    let mut latencies = Vec::new();
    let mut stored = 0usize;
    for task in tasks {
        let (n, mut lat) = task.await??;
        stored += n;
        latencies.append(&mut lat);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "pushes: {stored} changes stored and acked in {elapsed:.2} s = {:.0} changes/s \
         ({} connections, {} per push); ack latency per push p50 {:.1} ms, p99 {:.1} ms",
        stored as f64 / elapsed,
        args.pushers,
        args.batch,
        percentile(&mut latencies, 0.50),
        percentile(&mut latencies, 0.99),
    );

    // --- Phase 3: fan-out latency ------------------------------------------------------------
    let fan = space("fanout");
    let sent_at: Arc<Mutex<HashMap<EventId, Instant>>> = Arc::default();
    let total = (args.fanout_rate * args.fanout_secs) as usize;
    let mut subscribers = Vec::new();
    for _ in 0..args.subscribers {
        let mut ws = connect(ws).await?;
        hello(&mut ws, token, vec![fan.clone()]).await?;
        let sent_at = sent_at.clone();
        subscribers.push(tokio::spawn(async move {
            receive_live(ws, sent_at, total).await
        }));
    }
    let mut pusher = connect(ws).await?;
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
        1_000_000 * per_tick as u64 / args.fanout_rate.max(1),
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
    println!(
        "fan-out: {acked} changes at {}/s to {} subscribers, {} deliveries; push to live \
         delivery p50 {:.1} ms, p99 {:.1} ms",
        args.fanout_rate,
        args.subscribers,
        delays.len(),
        percentile(&mut delays, 0.50),
        percentile(&mut delays, 0.99),
    );
    Ok(())
}

fn space(name: &str) -> SpaceId {
    SpaceId::new(name).expect("a valid space id")
}

/// `n` entries of one small change each, every one a new record (a title and a status).
fn small_entries(space: &SpaceId, n: usize, salt: u64) -> Vec<PushEntry> {
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

async fn connect(url: &str) -> Result<Ws, anyhow::Error> {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (ws, _) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{url}"), Some(config), false)
            .await?;
    Ok(ws)
}

/// Says `Hello` with `spaces` (never pulled) and waits for the `Welcome`'s push limit.
async fn hello(ws: &mut Ws, token: &str, spaces: Vec<SpaceId>) -> Result<u32, anyhow::Error> {
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
async fn open_idle(
    url: &str,
    token: &str,
    n: usize,
) -> Result<Vec<tokio::task::JoinHandle<()>>, anyhow::Error> {
    let gate = Arc::new(Semaphore::new(256));
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
async fn push_all(
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
async fn receive_live(
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

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((values.len() - 1) as f64 * p).round() as usize;
    values[rank]
}
