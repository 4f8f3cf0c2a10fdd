//! Hostile clients of `holdfast-relay` for `relay_load`'s attack phase: five floods, each
//! bounded in sockets and in time and stopping by itself.
//!
//! Every flood binds its sockets to loopback addresses of its own (Linux routes all of
//! 127/8 to loopback), so the relay's cap on handshakes per address falls on the
//! attackers and not on the devices, which connect from 127.0.0.1. They connect only to
//! the relay's own two addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use holdfast_protocol::{
    decode, encode, DeviceId, EventId, Frame, PushEntry, RecordId, SpaceCursor, SpaceId, Token,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout_at, Instant};
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::relay_client::{connect_from, connect_tcp, hello, Ws};

/// One flood of the attack phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Flood {
    /// WebSocket pings written as fast as the socket takes them, never reading, with a
    /// small receive buffer; half the sockets say `Hello` with a valid token first.
    Ping,
    /// Bare TCP connections held open (no upgrade), reopened as they are closed, from
    /// several addresses.
    Connect,
    /// Requests dripped a byte a second: headers on the operations port, upgrades on the
    /// device port.
    Slowloris,
    /// 15 MiB pushes to a space a read-only token may not write, on several connections.
    BigPush,
    /// `Hello`s with an invalid token, reconnecting; and authenticated connections writing
    /// 2,000 protocol `Ping`s at once, every second, while reading.
    BadHello,
}

impl Flood {
    /// Every flood.
    pub const ALL: [Flood; 5] = [
        Flood::Ping,
        Flood::Connect,
        Flood::Slowloris,
        Flood::BigPush,
        Flood::BadHello,
    ];
}

/// What the floods aim at.
#[derive(Clone, Debug)]
pub struct Target {
    /// The relay's device port.
    pub ws: SocketAddr,
    /// The relay's operations port.
    pub http: SocketAddr,
    /// A valid token that may only read `read_space`.
    pub read_token: String,
    /// The space `read_token` may read.
    pub read_space: SpaceId,
}

/// One part of a flood and what it did.
#[derive(Debug)]
pub struct Part {
    /// What the part does, in a few words.
    pub name: &'static str,
    /// What [`Tally::sent`] counts.
    pub sent_unit: &'static str,
    /// What [`Tally::answered`] counts.
    pub answered_unit: &'static str,
    /// Its counts.
    pub tally: Arc<Tally>,
}

/// Counts of one part of a flood, over all its sockets.
#[derive(Debug, Default)]
pub struct Tally {
    /// Sockets connected to the relay.
    pub sockets: AtomicU64,
    /// Connects that failed.
    pub connect_errors: AtomicU64,
    /// Sockets the relay closed or reset.
    pub closed: AtomicU64,
    /// What the part sends (pings, pushes, bytes dripped...), counted as its unit says.
    pub sent: AtomicU64,
    /// The relay's answers, counted as the part's unit says.
    pub answered: AtomicU64,
    /// Bytes written to the relay.
    pub bytes: AtomicU64,
    /// The longest a socket stayed open, in ms (to the end of the run if it did).
    pub longest_ms: AtomicU64,
}

impl Tally {
    /// `counter`'s value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Runs `flood` against `target` until `until`; returns its parts once all its sockets
/// have stopped.
pub async fn run(flood: Flood, target: Target, until: Instant) -> Vec<Part> {
    let target = Arc::new(target);
    let mut tasks = JoinSet::new();
    let parts = match flood {
        Flood::Ping => {
            let part = part("ping flood, never reading", "ws pings", "-");
            for i in 0..PING_SOCKETS {
                let (target, tally) = (target.clone(), part.tally.clone());
                tasks.spawn(ping_without_reading(target, i % 2 == 1, tally, until));
            }
            vec![part]
        }
        Flood::Connect => {
            let part = part("bare TCP connects held", "connects", "-");
            for from in CONNECT_FROM {
                for _ in 0..CONNECT_SOCKETS_PER_ADDRESS {
                    let (ws, tally) = (target.ws, part.tally.clone());
                    tasks.spawn(hold_bare(IpAddr::V4(from), ws, tally, until));
                }
            }
            vec![part]
        }
        Flood::Slowloris => {
            let http = part("slowloris, operations port", "bytes", "-");
            let ws = part("slowloris, device port", "bytes", "-");
            for _ in 0..SLOWLORIS_SOCKETS_PER_PORT {
                let tally = http.tally.clone();
                tasks.spawn(drip(target.http, SLOWLORIS_HTTP, tally, until));
                let tally = ws.tally.clone();
                tasks.spawn(drip(target.ws, SLOWLORIS_UPGRADE, tally, until));
            }
            vec![http, ws]
        }
        Flood::BigPush => {
            let part = part("15 MiB pushes, read-only token", "pushes", "acks");
            let frame = big_push(&target.read_space);
            for _ in 0..BIG_PUSH_SOCKETS {
                let (target, tally) = (target.clone(), part.tally.clone());
                tasks.spawn(push_big(target, frame.clone(), tally, until));
            }
            vec![part]
        }
        Flood::BadHello => {
            let bad = part("hellos with a bad token", "hellos", "errors");
            let burst = part("bursts of 2,000 pings", "pings", "pongs");
            for _ in 0..BAD_HELLO_SOCKETS {
                let (target, tally) = (target.clone(), bad.tally.clone());
                tasks.spawn(hello_badly(target, tally, until));
            }
            for _ in 0..PING_BURST_SOCKETS {
                let (target, tally) = (target.clone(), burst.tally.clone());
                tasks.spawn(ping_in_bursts(target, tally, until));
            }
            vec![bad, burst]
        }
    };
    while let Some(ended) = tasks.join_next().await {
        ended.expect("a flood task panicked");
    }
    parts
}

/// Sockets of the ping flood.
const PING_SOCKETS: usize = 4;
const PING_FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Receive buffer of the ping flood's sockets: the relay's pongs soon fill it.
const PING_RECV_BUFFER_BYTES: u32 = 4096;
/// Pings in one write of the ping flood.
const PINGS_PER_WRITE: usize = 256;

/// Bare connections held per address.
const CONNECT_SOCKETS_PER_ADDRESS: usize = 100;
const CONNECT_FROM: [Ipv4Addr; 5] = [
    Ipv4Addr::new(127, 0, 0, 3),
    Ipv4Addr::new(127, 0, 0, 7),
    Ipv4Addr::new(127, 0, 0, 8),
    Ipv4Addr::new(127, 0, 0, 9),
    Ipv4Addr::new(127, 0, 0, 10),
];

/// Slowloris sockets on each of the two ports: more than the operations port serves.
const SLOWLORIS_SOCKETS_PER_PORT: usize = 100;
const SLOWLORIS_FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
const SLOWLORIS_DRIP_INTERVAL: Duration = Duration::from_secs(1);
const SLOWLORIS_HTTP: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: relay\r\nX-Slow: ";
const SLOWLORIS_UPGRADE: &[u8] =
    b"GET / HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Slow: ";

/// Connections pushing 15 MiB frames, each waiting for the answer before the next.
const BIG_PUSH_SOCKETS: usize = 4;
const BIG_PUSH_FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 5);
const BIG_PUSH_CHANGE_BYTES: usize = 15 << 20;

/// Connections saying `Hello` with a bad token, in a loop.
const BAD_HELLO_SOCKETS: usize = 4;
/// Authenticated connections sending bursts of protocol pings.
const PING_BURST_SOCKETS: usize = 2;
const PING_BURST_FRAMES: usize = 2_000;
const PING_BURST_INTERVAL: Duration = Duration::from_secs(1);
const BAD_HELLO_FROM: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);

/// Pause before a closed socket is reopened, so a refused socket does not spin.
const REOPEN_PAUSE: Duration = Duration::from_millis(100);

fn part(name: &'static str, sent_unit: &'static str, answered_unit: &'static str) -> Part {
    Part {
        name,
        sent_unit,
        answered_unit,
        tally: Arc::default(),
    }
}

/// A flood's next connection, made by `connect`: a failed attempt is counted and made
/// again after a pause; `None` once `until` passes.
async fn open<T, E, F>(tally: &Tally, until: Instant, mut connect: impl FnMut() -> F) -> Option<T>
where
    F: std::future::Future<Output = Result<T, E>>,
{
    while Instant::now() < until {
        match timeout_at(until, connect()).await {
            Err(_) => return None,
            Ok(Ok(opened)) => return Some(opened),
            Ok(Err(_)) => {
                add(&tally.connect_errors, 1);
                sleep(REOPEN_PAUSE).await;
            }
        }
    }
    None
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// One connected socket: counts it, and records how long it was open when dropped.
struct Life<'a> {
    tally: &'a Tally,
    opened: Instant,
}

impl<'a> Life<'a> {
    fn start(tally: &'a Tally) -> Life<'a> {
        add(&tally.sockets, 1);
        Life {
            tally,
            opened: Instant::now(),
        }
    }
}

impl Drop for Life<'_> {
    fn drop(&mut self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.tally.longest_ms.fetch_max(ms, Ordering::Relaxed);
    }
}

/// Opens a raw WebSocket, says `Hello` first if `authenticate`, then writes masked pings
/// until the relay closes the socket or `until`; reopens after a pause.
async fn ping_without_reading(
    target: Arc<Target>,
    authenticate: bool,
    tally: Arc<Tally>,
    until: Instant,
) {
    let ping = masked(OPCODE_PING, b"flood!!!");
    let pings = ping.repeat(PINGS_PER_WRITE);
    let hello = masked(
        OPCODE_BINARY,
        &encode(&hello_frame(&target, &target.read_token)).expect("encodes"),
    );
    let from = IpAddr::V4(PING_FROM);
    while Instant::now() < until {
        let opened = || connect_tcp(from, target.ws, Some(PING_RECV_BUFFER_BYTES));
        let Some(mut tcp) = open(&tally, until, opened).await else {
            return;
        };
        let life = Life::start(&tally);
        let mut open = match timeout_at(until, upgrade(&mut tcp, target.ws)).await {
            Err(_) => return,
            Ok(result) => result.is_ok(),
        };
        if open && authenticate {
            open = matches!(timeout_at(until, tcp.write_all(&hello)).await, Ok(Ok(())));
        }
        while open {
            match timeout_at(until, tcp.write_all(&pings)).await {
                Err(_) => return,
                Ok(Ok(())) => {
                    add(&tally.sent, PINGS_PER_WRITE as u64);
                    add(&tally.bytes, pings.len() as u64);
                }
                Ok(Err(_)) => open = false,
            }
        }
        drop(life);
        add(&tally.closed, 1);
        sleep(REOPEN_PAUSE).await;
    }
}

/// Holds bare TCP connections from `from` until the relay closes them; reopens after a
/// pause.
async fn hold_bare(from: IpAddr, ws: SocketAddr, tally: Arc<Tally>, until: Instant) {
    while Instant::now() < until {
        let Some(mut tcp) = open(&tally, until, || connect_tcp(from, ws, None)).await else {
            return;
        };
        let life = Life::start(&tally);
        add(&tally.sent, 1);
        let mut buf = [0u8; 64];
        if timeout_at(until, tcp.read(&mut buf)).await.is_err() {
            return;
        }
        drop(life);
        add(&tally.closed, 1);
        sleep(REOPEN_PAUSE).await;
    }
}

/// Sends `request` a byte a second, then `a`s forever, until the relay answers or closes;
/// reopens after a pause.
async fn drip(to: SocketAddr, request: &'static [u8], tally: Arc<Tally>, until: Instant) {
    let from = IpAddr::V4(SLOWLORIS_FROM);
    while Instant::now() < until {
        let Some(mut tcp) = open(&tally, until, || connect_tcp(from, to, None)).await else {
            return;
        };
        let life = Life::start(&tally);
        let (mut reader, mut writer) = tcp.split();
        let mut tick = tokio::time::interval(SLOWLORIS_DRIP_INTERVAL);
        let mut buf = [0u8; 256];
        for byte in request.iter().chain(std::iter::repeat(&b'a')) {
            tokio::select! {
                _ = tick.tick() => {
                    if writer.write_all(std::slice::from_ref(byte)).await.is_err() {
                        break;
                    }
                    add(&tally.sent, 1);
                    add(&tally.bytes, 1);
                }
                // An answer (a 408, say), an end or an error: the relay is done with it.
                _ = reader.read(&mut buf) => break,
                () = sleep_until(until) => return,
            }
        }
        drop(life);
        add(&tally.closed, 1);
        sleep(REOPEN_PAUSE).await;
    }
}

/// Says `Hello` with the read-only token, then pushes `frame` and waits for its ack,
/// again and again; reconnects when closed.
async fn push_big(target: Arc<Target>, frame: Bytes, tally: Arc<Tally>, until: Instant) {
    let from = IpAddr::V4(BIG_PUSH_FROM);
    while Instant::now() < until {
        let opened = || async {
            let mut ws = connect_from(from, target.ws).await?;
            hello(&mut ws, &target.read_token, vec![target.read_space.clone()]).await?;
            Ok::<_, anyhow::Error>(ws)
        };
        let Some(mut ws) = open(&tally, until, opened).await else {
            return;
        };
        let life = Life::start(&tally);
        loop {
            let sent = ws.send(Message::Binary(frame.clone()));
            match timeout_at(until, sent).await {
                Err(_) => return,
                Ok(Err(_)) => break,
                Ok(Ok(())) => {
                    add(&tally.sent, 1);
                    add(&tally.bytes, frame.len() as u64);
                }
            }
            match timeout_at(until, next_ack(&mut ws)).await {
                Err(_) => return,
                Ok(true) => add(&tally.answered, 1),
                Ok(false) => break,
            }
        }
        drop(life);
        add(&tally.closed, 1);
        sleep(REOPEN_PAUSE).await;
    }
}

/// Reads until an `Ack`: `false` if the connection ended first.
async fn next_ack(ws: &mut Ws) -> bool {
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Binary(bytes) = message {
            match decode(&bytes) {
                Ok(Frame::Ack { .. }) => return true,
                Ok(Frame::Error { .. }) | Err(_) => return false,
                Ok(_) => {}
            }
        }
    }
    false
}

/// Connects, says `Hello` with a token the relay never signed, reads the refusal, and
/// again.
async fn hello_badly(target: Arc<Target>, tally: Arc<Tally>, until: Instant) {
    let from = IpAddr::V4(BAD_HELLO_FROM);
    let frame = encode(&hello_frame(
        &target,
        "eyJhbGciOiJIUzI1NiJ9.e30.not-signed-here",
    ))
    .expect("encodes");
    while Instant::now() < until {
        let Some(mut ws) = open(&tally, until, || connect_from(from, target.ws)).await else {
            return;
        };
        let life = Life::start(&tally);
        let refused = async {
            ws.send(Message::Binary(frame.clone().into())).await.ok()?;
            add(&tally.sent, 1);
            add(&tally.bytes, frame.len() as u64);
            while let Some(Ok(message)) = ws.next().await {
                if let Message::Binary(bytes) = message {
                    if let Ok(Frame::Error { .. }) = decode(&bytes) {
                        return Some(());
                    }
                }
            }
            None
        };
        match timeout_at(until, refused).await {
            Err(_) => return,
            Ok(Some(())) => add(&tally.answered, 1),
            Ok(None) => {}
        }
        drop(life);
        add(&tally.closed, 1);
    }
}

/// An authenticated connection that writes [`PING_BURST_FRAMES`] protocol pings at once
/// every [`PING_BURST_INTERVAL`] while reading the pongs; reconnects when closed.
async fn ping_in_bursts(target: Arc<Target>, tally: Arc<Tally>, until: Instant) {
    let from = IpAddr::V4(BAD_HELLO_FROM);
    while Instant::now() < until {
        let opened = || async {
            let mut ws = connect_from(from, target.ws).await?;
            hello(&mut ws, &target.read_token, vec![target.read_space.clone()]).await?;
            Ok::<_, anyhow::Error>(ws)
        };
        let Some(ws) = open(&tally, until, opened).await else {
            return;
        };
        let life = Life::start(&tally);
        let (mut sink, mut stream) = ws.split();
        let read = async {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Binary(bytes) = message {
                    if let Ok(Frame::Pong { .. }) = decode(&bytes) {
                        add(&tally.answered, 1);
                    }
                }
            }
        };
        let write = async {
            let mut tick = tokio::time::interval(PING_BURST_INTERVAL);
            let mut nonce = 0u64;
            loop {
                tick.tick().await;
                for _ in 0..PING_BURST_FRAMES {
                    nonce += 1;
                    let ping = encode(&Frame::Ping { nonce }).expect("encodes");
                    add(&tally.bytes, ping.len() as u64);
                    if sink.feed(Message::Binary(ping.into())).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
                add(&tally.sent, PING_BURST_FRAMES as u64);
            }
        };
        // Either ending means the connection is gone; the timeout means the run is over.
        let ended = async {
            tokio::select! {
                () = read => {}
                () = write => {}
            }
        };
        if timeout_at(until, ended).await.is_err() {
            return;
        }
        drop(life);
        add(&tally.closed, 1);
        sleep(REOPEN_PAUSE).await;
    }
}

/// A `Hello` naming the read space, with `token`.
fn hello_frame(target: &Target, token: &str) -> Frame {
    Frame::Hello {
        protocol: holdfast_protocol::limits::PROTOCOL_VERSION,
        device: DeviceId::random(),
        token: Token::new(token),
        spaces: vec![SpaceCursor {
            space: target.read_space.clone(),
            cursor: None,
        }],
    }
}

/// A push of one entry to `space` whose one change is [`BIG_PUSH_CHANGE_BYTES`] of
/// pseudo-random bytes (incompressible, so the frame is as large on the wire).
fn big_push(space: &SpaceId) -> Bytes {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let change: Vec<u8> = (0..BIG_PUSH_CHANGE_BYTES / 8)
        .flat_map(|_| {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    let frame = Frame::Push {
        entries: vec![PushEntry {
            event_id: EventId::new_v7(),
            space: space.clone(),
            record: RecordId::new_v7(),
            changes: vec![change],
        }],
    };
    encode(&frame).expect("a 15 MiB push encodes").into()
}

const OPCODE_BINARY: u8 = 0x2;
const OPCODE_PING: u8 = 0x9;

/// One final WebSocket frame from a client: masked, as RFC 6455 requires.
fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend((n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend((n as u64).to_be_bytes());
        }
    }
    frame.extend(MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

/// The client's side of the WebSocket upgrade, by hand; reads no byte past the
/// response's head.
async fn upgrade(tcp: &mut TcpStream, host: SocketAddr) -> Result<(), anyhow::Error> {
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let byte = tcp.read_u8().await?;
        head.push(byte);
        anyhow::ensure!(head.len() < 4096, "an upgrade response without an end");
    }
    anyhow::ensure!(head.starts_with(b"HTTP/1.1 101"), "the upgrade was refused");
    Ok(())
}
