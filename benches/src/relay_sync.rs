//! Devices syncing with a relay at a steady pace, and fresh devices connecting among them:
//! the measured side of `relay_load`'s attack phase.
//!
//! Each device is one authenticated connection subscribed to one space. It pushes one
//! small change every period (the devices' first pushes spread evenly over the first
//! period, so the relay sees a steady rate, not waves), answers the relay's pings, and
//! counts the live changes the other devices of its space push.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use holdfast_protocol::{decode, encode, EventId, Frame, Outcome, SpaceId};
use tokio::sync::Semaphore;
use tokio::time::{sleep_until, timeout, timeout_at, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;

use crate::relay_client::{connect, hello, small_entries, Ws, HANDSHAKES_AT_ONCE};

/// How long devices wait for the acks of their last pushes after the run.
pub const DRAIN_TIME_MAX: Duration = Duration::from_secs(10);

/// How long a fresh device may take from connecting to its `Welcome`.
pub const WELCOME_TIME_MAX: Duration = Duration::from_secs(10);

/// A welcomed device and the space it syncs.
pub struct Device {
    ws: Ws,
    space: SpaceId,
    pushes_in_flight_max: usize,
}

/// What devices syncing at a steady pace saw, over all of them.
#[derive(Debug, Default)]
pub struct Steady {
    /// Pushes sent.
    pub pushes_sent: usize,
    /// Pushes whose entry came back `Stored`.
    pub pushes_stored: usize,
    /// Pushes whose entry came back rejected (rate limited, too large...).
    pub pushes_rejected: usize,
    /// Pushes without an ack when the device gave up (the relay closed it, or the drain
    /// time ran out); they count in `ack_ms` with the time waited.
    pub pushes_unanswered: usize,
    /// Ticks skipped because the `Welcome`'s pushes in flight were all taken.
    pub ticks_skipped: usize,
    /// Entries received live from the other devices of their spaces.
    pub live_entries: usize,
    /// Devices the relay closed, or whose connection failed, before the end.
    pub disconnects: usize,
    /// The first reason a device was closed, if any.
    pub first_disconnect: Option<String>,
    /// Push sent to ack received, per push, in ms.
    pub ack_ms: Vec<f64>,
}

/// Opens `n` devices with `token`, device `i` subscribed to `spaces[i % spaces.len()]`,
/// [`HANDSHAKES_AT_ONCE`] at a time.
pub async fn open_devices(
    url: &str,
    token: &str,
    spaces: &[SpaceId],
    n: usize,
) -> Result<Vec<Device>, anyhow::Error> {
    let gate = Arc::new(Semaphore::new(HANDSHAKES_AT_ONCE));
    let mut opening = Vec::with_capacity(n);
    for i in 0..n {
        let (url, token, gate) = (url.to_owned(), token.to_owned(), gate.clone());
        let space = spaces[i % spaces.len()].clone();
        opening.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("open");
            let mut ws = connect(&url).await?;
            let in_flight_max = hello(&mut ws, &token, vec![space.clone()]).await?;
            Ok::<_, anyhow::Error>(Device {
                ws,
                space,
                pushes_in_flight_max: in_flight_max.max(1) as usize,
            })
        }));
    }
    let mut devices = Vec::with_capacity(n);
    for task in opening {
        devices.push(task.await??);
    }
    Ok(devices)
}

/// Every device pushes one change every `period` from `start` until `end`, then waits
/// up to [`DRAIN_TIME_MAX`] for its last acks.
pub async fn sync_steadily(
    devices: Vec<Device>,
    period: Duration,
    start: Instant,
    end: Instant,
) -> Steady {
    let n = devices.len().max(1) as u32;
    let tasks: Vec<_> = devices
        .into_iter()
        .enumerate()
        .map(|(i, device)| {
            let first = start + period * i as u32 / n;
            tokio::spawn(sync_one(device, period, first, end, i as u64))
        })
        .collect();
    let mut all = Steady::default();
    for task in tasks {
        let one = task.await.expect("a device task panicked");
        all.pushes_sent += one.pushes_sent;
        all.pushes_stored += one.pushes_stored;
        all.pushes_rejected += one.pushes_rejected;
        all.pushes_unanswered += one.pushes_unanswered;
        all.ticks_skipped += one.ticks_skipped;
        all.live_entries += one.live_entries;
        all.disconnects += one.disconnects;
        all.first_disconnect = all.first_disconnect.or(one.first_disconnect);
        all.ack_ms.extend(one.ack_ms);
    }
    all
}

async fn sync_one(
    mut device: Device,
    period: Duration,
    first: Instant,
    end: Instant,
    salt: u64,
) -> Steady {
    let mut seen = Steady::default();
    let mut in_flight: HashMap<EventId, Instant> = HashMap::new();
    let mut tick = tokio::time::interval_at(first, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let drain_end = end + DRAIN_TIME_MAX;
    let mut pushed = 0u64;
    loop {
        let pushing = Instant::now() < end;
        if !pushing && in_flight.is_empty() {
            break;
        }
        tokio::select! {
            _ = tick.tick(), if pushing => {
                if Instant::now() >= end {
                    continue;
                }
                if in_flight.len() >= device.pushes_in_flight_max {
                    seen.ticks_skipped += 1;
                    continue;
                }
                let entries = small_entries(&device.space, 1, salt << 32 | pushed);
                pushed += 1;
                let frame = encode(&Frame::Push { entries: entries.clone() }).expect("encodes");
                in_flight.insert(entries[0].event_id, Instant::now());
                seen.pushes_sent += 1;
                if let Err(error) = device.ws.send(Message::Binary(frame.into())).await {
                    seen.disconnected(format!("send failed: {error}"));
                    break;
                }
            }
            message = device.ws.next() => {
                if let Err(reason) = handle(&mut device.ws, message, &mut in_flight, &mut seen).await {
                    seen.disconnected(reason);
                    break;
                }
            }
            () = sleep_until(drain_end) => break,
        }
    }
    seen.pushes_unanswered = in_flight.len();
    let now = Instant::now();
    seen.ack_ms.extend(
        in_flight
            .values()
            .map(|sent| now.duration_since(*sent).as_secs_f64() * 1e3),
    );
    seen
}

/// Handles one message of the relay; `Err` with the reason if the device is closed.
async fn handle(
    ws: &mut Ws,
    message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    in_flight: &mut HashMap<EventId, Instant>,
    seen: &mut Steady,
) -> Result<(), String> {
    let bytes = match message {
        Some(Ok(Message::Binary(bytes))) => bytes,
        Some(Ok(Message::Close(frame))) => return Err(format!("closed by the relay: {frame:?}")),
        Some(Ok(_)) => return Ok(()),
        Some(Err(error)) => return Err(format!("connection failed: {error}")),
        None => return Err("connection ended".into()),
    };
    match decode(&bytes).map_err(|e| format!("undecodable frame: {e}"))? {
        Frame::Ack { results } => {
            let now = Instant::now();
            for result in results {
                if let Some(sent) = in_flight.remove(&result.event_id) {
                    seen.ack_ms
                        .push(now.duration_since(sent).as_secs_f64() * 1e3);
                }
                match result.outcome {
                    Outcome::Stored { .. } => seen.pushes_stored += 1,
                    _ => seen.pushes_rejected += 1,
                }
            }
        }
        Frame::Changes { entries, .. } => seen.live_entries += entries.len(),
        Frame::Ping { nonce } => {
            let pong = encode(&Frame::Pong { nonce }).expect("encodes");
            ws.send(Message::Binary(pong.into()))
                .await
                .map_err(|e| format!("send failed: {e}"))?;
        }
        Frame::Error { code, message } => return Err(format!("relay error: {code} ({message})")),
        _ => {}
    }
    Ok(())
}

impl Steady {
    fn disconnected(&mut self, reason: String) {
        self.disconnects += 1;
        self.first_disconnect.get_or_insert(reason);
    }
}

/// Fresh devices connecting one after another, one every `every` until `until`, each
/// closed once welcomed: connect-to-`Welcome` times in ms, and how many were not welcomed
/// within [`WELCOME_TIME_MAX`].
pub async fn probe_welcomes(
    url: String,
    token: String,
    space: SpaceId,
    every: Duration,
    until: Instant,
) -> (Vec<f64>, usize) {
    let (mut welcomed, mut failed) = (Vec::new(), 0);
    let mut tick = tokio::time::interval(every);
    while timeout_at(until, tick.tick()).await.is_ok() {
        let started = Instant::now();
        let attempt = async {
            let mut ws = connect(&url).await?;
            hello(&mut ws, &token, vec![space.clone()]).await?;
            Ok::<_, anyhow::Error>(ws)
        };
        match timeout(WELCOME_TIME_MAX, attempt).await {
            Ok(Ok(mut ws)) => {
                welcomed.push(started.elapsed().as_secs_f64() * 1e3);
                let _ = ws.close(None).await;
            }
            _ => failed += 1,
        }
    }
    (welcomed, failed)
}
