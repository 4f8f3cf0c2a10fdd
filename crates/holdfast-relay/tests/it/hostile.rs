//! The relay against hostile clients, over real sockets to the real binary: floods, bursts,
//! slowloris, oversized frames and half-open sockets. Each attack is bounded in count and
//! time, and each test checks what a device with a valid token sees while it runs, and
//! what the attack costs the relay.
//!
//! Attackers connect from other loopback addresses (127.0.0.2, ...) than the devices
//! (127.0.0.1), as they would from another host: the relay caps handshakes per address.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ROOT};
use holdfast_protocol::{encode, ErrorCode, Frame, Outcome, RecordId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{hello, within, Incoming, Relay};
use crate::{entry, space, Doc};

/// A TCP connection to `to` from the loopback address `127.0.0.{from}`, with a small
/// receive buffer (so the relay's writes block soon once it is not read).
async fn tcp_from(from: u8, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .bind(SocketAddr::from(([127, 0, 0, from], 0)))
        .unwrap();
    within("a TCP connection", socket.connect(to))
        .await
        .unwrap()
}

/// A WebSocket upgrade done by hand, so that nothing reads the socket afterwards.
async fn upgraded(from: u8, to: SocketAddr) -> TcpStream {
    let mut tcp = tcp_from(from, to).await;
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {to}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        within("the upgrade answer", tcp.read_exact(&mut byte))
            .await
            .unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    tcp
}

/// A masked client frame.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend((n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend((n as u64).to_be_bytes());
        }
    }
    out.extend(mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn binary(frame_: &Frame) -> Vec<u8> {
    frame(0x2, &encode(frame_).unwrap())
}

/// Writes WebSocket pings as fast as the socket takes them for `duration`, never reading;
/// returns how many were written.
async fn ping_flood(tcp: &mut TcpStream, duration: Duration) -> usize {
    let batch: Vec<u8> = (0..256).flat_map(|_| frame(0x9, b"0123456789")).collect();
    let deadline = Instant::now() + duration;
    let mut pings = 0;
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), tcp.write_all(&batch)).await {
            Ok(Ok(())) => pings += 256,
            Ok(Err(_)) => break,
            Err(_) => {}
        }
    }
    pings
}

/// Waits until `check` holds, polling; panics naming `what` after 20 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    within(what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// Whether the relay has closed `tcp`: a read finds the end of the stream (after anything
/// it sent) or an error.
async fn closed_by_relay(tcp: &mut TcpStream, within_: Duration) -> bool {
    let deadline = Instant::now() + within_;
    let mut buf = vec![0; 64 << 10];
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(100), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    false
}

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_that_never_reads_costs_bounded_memory_and_no_token_buys_time() {
    // The ping budget off: the write buffer's cap alone bounds the memory.
    let relay = Relay::start(&["--handshake-timeout-secs", "3", "--max-pings-per-sec", "0"]).await;
    let before = relay.rss_bytes();
    let mut attacker = upgraded(2, relay.ws).await;
    let pings = ping_flood(&mut attacker, Duration::from_secs(2)).await;
    let grown = relay.rss_bytes().saturating_sub(before);
    eprintln!(
        "{pings} pings in 2 s, no hello: relay RSS +{} KiB",
        grown >> 10
    );
    assert!(pings > 10_000, "the flood was read: {pings}");
    assert!(grown < 16 * MIB, "grew {} MiB", grown / MIB);
    // Pings are not a hello: the handshake timeout ends the connection.
    assert!(closed_by_relay(&mut attacker, Duration::from_secs(10)).await);
    assert_eq!(
        relay
            .metric("holdfast_relay_connections_refused_total{reason=\"handshake_timeout\"}")
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_client_that_pings_and_never_reads_is_closed_and_bounded() {
    let relay = Relay::start(&[
        "--idle-timeout-secs",
        "4",
        "--keepalive-secs",
        "1",
        "--max-pings-per-sec",
        "0",
    ])
    .await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let before = relay.rss_bytes();
    let mut attacker = upgraded(2, relay.ws).await;
    attacker
        .write_all(&binary(&hello(&token, &[&team])))
        .await
        .unwrap();
    // WebSocket pings in floods, and a protocol Ping every half second (which used to
    // count as hearing from the device), never reading an answer.
    let started = Instant::now();
    let mut pings = 0;
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(12) {
        pings += ping_flood(&mut attacker, Duration::from_millis(500)).await;
        let ping = binary(&Frame::Ping { nonce: 1 });
        if tokio::time::timeout(Duration::from_millis(100), attacker.write_all(&ping))
            .await
            .is_ok_and(|written| written.is_err())
        {
            closed = true;
            break;
        }
        let grown = relay.rss_bytes().saturating_sub(before);
        assert!(
            grown < 16 * MIB,
            "grew {} MiB after {pings} pings",
            grown / MIB
        );
    }
    eprintln!(
        "{pings} pings before the close after {:?}",
        started.elapsed()
    );
    let closed = closed || closed_by_relay(&mut attacker, Duration::from_secs(8)).await;
    assert!(
        closed,
        "the idle timeout closes a device that never answers"
    );
    eventually("the connection to end", async || {
        relay.metric("holdfast_relay_connections_open").await == 0.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_connects_from_one_address_do_not_lock_devices_out() {
    let per_ip = 10;
    let relay = Relay::start(&[
        "--max-connections",
        "50",
        "--max-handshakes-per-ip",
        &per_ip.to_string(),
        "--handshake-timeout-secs",
        "30",
    ])
    .await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    // Just below the cap every socket is held; just above, the next is closed at once.
    let mut held = Vec::new();
    for _ in 0..per_ip {
        held.push(tcp_from(2, relay.ws).await);
    }
    let mut over = tcp_from(2, relay.ws).await;
    assert!(closed_by_relay(&mut over, Duration::from_secs(5)).await);
    for tcp in &mut held {
        assert!(!closed_by_relay(tcp, Duration::from_millis(10)).await);
    }
    // A flood of 200 more from that address: each is closed at once.
    for _ in 0..200 {
        drop(tcp_from(2, relay.ws).await);
    }
    let started = Instant::now();
    let (mut device, _) = relay.device(&token, &[&team]).await;
    eprintln!(
        "a device got in during the flood in {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    device.answers_ping(7).await;
    let refused = relay
        .metric("holdfast_relay_connections_refused_total{reason=\"handshake_limit_per_ip\"}")
        .await;
    assert_eq!(refused, 201.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_budget_is_held_just_below_and_refused_just_above() {
    let budget = 12;
    let relay = Relay::start(&[
        "--max-handshakes",
        &budget.to_string(),
        "--max-handshakes-per-ip",
        "4",
        "--handshake-timeout-secs",
        "30",
    ])
    .await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let mut held = Vec::new();
    for from in 2..5 {
        for _ in 0..4 {
            held.push(tcp_from(from, relay.ws).await);
        }
    }
    let mut over = tcp_from(5, relay.ws).await;
    assert!(closed_by_relay(&mut over, Duration::from_secs(5)).await);
    assert_eq!(
        relay
            .metric("holdfast_relay_connections_refused_total{reason=\"handshake_limit\"}")
            .await,
        1.0
    );
    // One ticket back, and a device gets in; once welcomed it holds no ticket.
    drop(held.pop());
    eventually("the ticket to come back", async || {
        let mut probe = tcp_from(6, relay.ws).await;
        let taken = !closed_by_relay(&mut probe, Duration::from_millis(300)).await;
        drop(probe);
        taken
    })
    .await;
    let (mut device, _) = relay.device(&token, &[&team]).await;
    let mut next = tcp_from(6, relay.ws).await;
    assert!(!closed_by_relay(&mut next, Duration::from_millis(300)).await);
    device.answers_ping(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_forbidden_pushes_cost_their_senders_not_the_relay() {
    let relay = Relay::start(&[]).await;
    let team = space("team");
    let reader = relay.token(&["team:read"]).await;
    let (mut baseline, _) = relay.device(&reader, &[&team]).await;
    baseline.answers_ping(0).await;
    let before = relay.rss_bytes();
    let mut readers = Vec::new();
    let mut rng = crate::Rng(crate::seed());
    for _ in 0..10 {
        let (mut device, _) = relay.device(&reader, &[&team]).await;
        // Incompressible, so the message is 15 MiB on the wire too; the relay refuses
        // the push from its grants, before looking at the change.
        let blob = rng.bytes(15 << 20);
        let push = Frame::Push {
            entries: vec![entry(&team, RecordId::new_v7(), vec![blob])],
        };
        device.send(&push).await;
        match device.frame().await {
            Frame::Ack { results } => assert!(matches!(
                results[0].outcome,
                Outcome::Rejected {
                    permanent: true,
                    ..
                }
            )),
            other => panic!("expected a forbidden ack, got {other:?}"),
        }
        readers.push(device);
    }
    // Idle now: each connection is back to its small buffers.
    let grown = relay.rss_bytes().saturating_sub(before);
    eprintln!(
        "10 idle connections after a 15 MiB push each: relay RSS +{} MiB",
        grown / MIB
    );
    assert!(grown < 16 * MIB, "grew {} MiB", grown / MIB);
    for device in &mut readers {
        device.answers_ping(2).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_requests_from_a_reading_client_is_slowed_not_dropped() {
    let relay = Relay::start(&[]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut device, _) = relay.device(&token, &[&team]).await;
    // 300 pings in one write, read all the while: 300 pongs, no close.
    let burst: Vec<Message> = (0..300)
        .map(|nonce| Message::Binary(encode(&Frame::Ping { nonce }).unwrap().into()))
        .collect();
    device.send_burst(burst).await;
    for nonce in 0..300 {
        match device.recv().await {
            Incoming::Frame(Frame::Pong { nonce: got }) => assert_eq!(got, nonce),
            other => panic!("pong {nonce}: got {other:?}"),
        }
    }
    // 2,000 pushes in one write: every one answered, stored or rate limited, none dropped.
    let mut doc = Doc::new();
    let pushes: Vec<Frame> = (0..2_000)
        .map(|_| Frame::Push {
            entries: vec![entry(&team, doc.record, vec![doc.change()])],
        })
        .collect();
    let burst = pushes
        .iter()
        .map(|push| Message::Binary(encode(push).unwrap().into()))
        .collect();
    device.send_burst(burst).await;
    let (mut stored, mut limited) = (0, 0);
    while stored + limited < 2_000 {
        match device.recv().await {
            Incoming::Frame(Frame::Ack { results }) => match &results[0].outcome {
                Outcome::Stored { .. } => stored += 1,
                Outcome::Rejected {
                    permanent: false, ..
                } => limited += 1,
                other => panic!("unexpected {other:?}"),
            },
            Incoming::Frame(Frame::Changes { .. }) => {}
            other => panic!("after {stored} stored and {limited} limited: {other:?}"),
        }
    }
    eprintln!("2,000 pushes in one write: {stored} stored, {limited} rate limited");
    assert!(stored >= 100, "the burst allowance was stored");
    assert!(limited > 0, "the rest was rate limited, not dropped");
    assert_eq!(
        relay.metric("holdfast_relay_slow_consumers_total").await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repairs_are_charged_to_the_push_rate() {
    let relay = Relay::start(&["--push-rate", "20", "--push-burst", "40"]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut device, _) = relay.device(&token, &[]).await;
    // 120 records the relay has never seen, each repaired with a message carrying its one
    // change, all in one write.
    let mut burst = Vec::new();
    for n in 0..120u32 {
        let record = RecordId::new_v7();
        let mut doc = AutoCommit::new().with_actor(ActorId::from(record.as_bytes().to_vec()));
        doc.put(ROOT, "n", n).unwrap();
        doc.commit();
        let message = crate::wire::carrying_own_changes(&mut doc, &[]);
        let repair = Frame::Repair {
            space: team.clone(),
            record,
            message: message.encode(),
        };
        burst.push(Message::Binary(encode(&repair).unwrap().into()));
    }
    let started = Instant::now();
    device.send_burst(burst).await;
    let stored = async || {
        relay
            .metric("holdfast_relay_push_entries_total{outcome=\"stored\"}")
            .await
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let early = stored().await;
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!("{early} repaired changes stored in {elapsed:.2} s");
    // The burst, what the rate refills meanwhile, and one repair per tick that finds the
    // bucket empty.
    assert!(
        early <= 40.0 + 20.0 * elapsed + 2.0,
        "{early} stored in {elapsed:.2} s"
    );
    // None is refused: every repair is answered, at the rate.
    let mut answered = 0;
    while answered < 120 {
        match device.recv().await {
            Incoming::Frame(Frame::Repair { .. }) => answered += 1,
            other => panic!("after {answered} answers: {other:?}"),
        }
    }
    assert_eq!(stored().await, 120.0);
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "held to the rate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_on_the_operations_port_takes_nothing_from_devices() {
    let relay = Relay::start(&[
        "--http-max-connections",
        "8",
        "--http-header-timeout-secs",
        "1",
    ])
    .await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    // Just at the cap the sockets are served (slowly); past it, closed at once.
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut tcp = tcp_from(2, relay.http).await;
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: r")
            .await
            .unwrap();
        slow.push(tcp);
    }
    let mut over = tcp_from(2, relay.http).await;
    assert!(closed_by_relay(&mut over, Duration::from_secs(1)).await);
    // Devices get in meanwhile.
    let (mut device, _) = relay.device(&token, &[&team]).await;
    device.answers_ping(1).await;
    // The header timeout closes every slow request, and the port answers again.
    for tcp in &mut slow {
        assert!(closed_by_relay(tcp, Duration::from_secs(5)).await);
    }
    let (status, _) = relay.get("/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_and_silent_sockets_are_closed_by_the_handshake_timeout() {
    let relay = Relay::start(&["--handshake-timeout-secs", "2"]).await;
    // A partial upgrade request, a silent upgraded socket, and half a frame header.
    let mut partial = tcp_from(2, relay.ws).await;
    partial.write_all(b"GET / HTTP/1.1\r\nHost:").await.unwrap();
    let mut silent = upgraded(3, relay.ws).await;
    let mut half = upgraded(4, relay.ws).await;
    half.write_all(&[0x82]).await.unwrap();
    for tcp in [&mut partial, &mut silent, &mut half] {
        assert!(closed_by_relay(tcp, Duration::from_secs(6)).await);
    }
    let (_, metrics) = relay.get("/metrics").await;
    let refused: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("holdfast_relay_connections_refused_total{"))
        .collect();
    eprintln!("{refused:#?}");
    eventually("three handshake timeouts counted", async || {
        relay
            .metric("holdfast_relay_connections_refused_total{reason=\"handshake_timeout\"}")
            .await
            == 3.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_protocol_violations_are_closed_with_their_code() {
    let relay = Relay::start(&[]).await;
    let violations: [(&str, Vec<u8>, u16); 3] = [
        ("a reserved opcode", frame(0x3, b"x"), 1002),
        (
            "a reserved bit",
            {
                let mut bytes = frame(0x2, b"x");
                bytes[0] |= 0x40;
                bytes
            },
            1002,
        ),
        ("an unmasked frame", vec![0x82, 0x01, 0x00], 1002),
    ];
    for (what, bytes, code) in violations {
        let mut tcp = upgraded(2, relay.ws).await;
        tcp.write_all(&bytes).await.unwrap();
        let mut read = Vec::new();
        within("the close", tcp.read_to_end(&mut read)).await.ok();
        // The server's close frame: 0x88, a length, then the code.
        let close = read
            .windows(4)
            .find(|w| w[0] == 0x88)
            .unwrap_or_else(|| panic!("{what}: no close frame in {read:?}"));
        assert_eq!(u16::from_be_bytes([close[2], close[3]]), code, "{what}");
    }
    assert_eq!(
        relay
            .metric("holdfast_relay_connections_refused_total{reason=\"malformed\"}")
            .await,
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_logged_once_each_without_the_token_and_counted() {
    let relay = Relay::start(&[]).await;
    let team = space("team");
    let other = space("other");
    let token = relay.token(&["team:read"]).await;
    let bad = format!("{}x", &token[..token.len() - 1]);
    for wrong in ["not-a-jwt", bad.as_str()] {
        let mut peer = relay.connect().await;
        peer.send(&hello(wrong, &[&team])).await;
        peer.expect_error(ErrorCode::Unauthorized, 1008).await;
    }
    let mut peer = relay.connect().await;
    peer.send(&hello(&token, &[&other])).await;
    peer.expect_error(ErrorCode::Forbidden { space: other }, 1008)
        .await;

    eventually("three refusal lines", async || {
        relay.log().matches("refused a connection").count() == 3
    })
    .await;
    let log = relay.log();
    for line in log.lines().filter(|l| l.contains("refused a connection")) {
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("peer=127.0.0.1:"), "{line}");
        assert!(
            !line.contains(&token[20..]),
            "the token is never logged: {line}"
        );
    }
    assert!(log.contains("reason=\"forbidden\"") || log.contains("reason=forbidden"));
    assert!(
        log.contains("test-device"),
        "the subject of the forbidden hello"
    );
    let unauthorized = relay
        .metric("holdfast_relay_connections_refused_total{reason=\"unauthorized\"}")
        .await;
    let forbidden = relay
        .metric("holdfast_relay_connections_refused_total{reason=\"forbidden\"}")
        .await;
    assert_eq!((unauthorized, forbidden), (2.0, 1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_tokens_cannot_fill_the_log() {
    let relay = Relay::start(&[]).await;
    let team = space("team");
    let started = Instant::now();
    let mut refused = 0;
    while refused < 400 {
        let mut tcp = upgraded(2, relay.ws).await;
        tcp.write_all(&binary(&hello("nope", &[&team])))
            .await
            .unwrap();
        assert!(closed_by_relay(&mut tcp, Duration::from_secs(5)).await);
        refused += 1;
    }
    let secs = started.elapsed().as_secs() + 1;
    eventually("every refusal counted", async || {
        relay
            .metric("holdfast_relay_connections_refused_total{reason=\"unauthorized\"}")
            .await
            == 400.0
    })
    .await;
    let lines = relay.log().matches("refused a connection").count() as u64;
    eprintln!("400 refusals in {secs} s: {lines} lines");
    assert!(
        lines <= holdfast_relay::server::REFUSAL_LINES_PER_SEC * (secs + 1),
        "{lines} lines"
    );
    assert!(lines < 400);
}

/// Pushes incompressible 64 KiB changes until `done` says to stop (at most `max`); the
/// subscribers other than `stalled` read. Returns how many were pushed.
async fn push_until(
    relay: &Relay,
    pusher: &mut crate::harness::Peer,
    max: usize,
    done: impl AsyncFn(&Relay) -> bool,
) -> usize {
    let team = space("team");
    let mut rng = crate::Rng(crate::seed());
    let mut pushes = 0;
    while pushes < max && !done(relay).await {
        pushes += 1;
        let mut doc = Doc::new();
        let blob = rng.bytes(64 << 10);
        let change = doc.change_with_bytes(blob);
        let (outcomes, _) = pusher.push(&[entry(&team, doc.record, vec![change])]).await;
        assert!(matches!(outcomes[..], [Outcome::Stored { .. }]));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pushes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_stops_reading_is_dropped_after_the_write_timeout_not_before() {
    // A send queue far larger than what is pushed, so only the write timeout can act.
    let args = |timeout: &'static str| {
        [
            "--write-timeout-secs",
            timeout,
            "--send-queue-bytes",
            "268435456",
            "--send-queue-frames",
            "100000",
        ]
    };
    let slow = || async {
        let relay = Relay::start(&args("2")).await;
        let team = space("team");
        let token = relay.token(&["team:write"]).await;
        let (stalled, _) = Relay::welcome(relay.connect_small().await, &token, &[&team]).await;
        let (pusher, _) = relay.device(&token, &[]).await;
        (relay, stalled, pusher)
    };
    let dropped =
        async |relay: &Relay| relay.metric("holdfast_relay_slow_consumers_total").await > 0.0;

    let (relay, _stalled, mut pusher) = slow().await;
    let pushes = push_until(&relay, &mut pusher, 300, dropped).await;
    eprintln!("dropped after {pushes} pushes of 64 KiB with a 2 s write timeout");
    assert!(
        dropped(&relay).await,
        "the write timeout drops a device that stops reading"
    );
    assert!(relay
        .log()
        .contains("the device does not read what is written"));

    // The same for 8 s with a 30 s timeout: its socket is just as full, and it stays.
    let relay = Relay::start(&args("30")).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (_stalled, _) = Relay::welcome(relay.connect_small().await, &token, &[&team]).await;
    let (mut pusher, _) = relay.device(&token, &[]).await;
    let started = Instant::now();
    push_until(&relay, &mut pusher, pushes + 20, async |_| {
        started.elapsed() > Duration::from_secs(8)
    })
    .await;
    assert!(!dropped(&relay).await, "dropped before its write timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_past_the_ping_budget_is_closed_with_or_without_a_token() {
    let relay = Relay::start(&["--max-pings-per-sec", "10"]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    // Just at the budget, in one write of WebSocket and protocol pings: all answered, the
    // connection stays. (A new second may start within the write; it only gives room.)
    let (mut device, _) = relay.device(&token, &[&team]).await;
    let at_budget: Vec<Message> = (0..5)
        .flat_map(|nonce| {
            [
                Message::Ping(vec![1].into()),
                Message::Binary(encode(&Frame::Ping { nonce }).unwrap().into()),
            ]
        })
        .collect();
    device.send_burst(at_budget).await;
    for nonce in 0..5 {
        match device.recv().await {
            Incoming::Frame(Frame::Pong { nonce: got }) => assert_eq!(got, nonce),
            other => panic!("pong {nonce}: {other:?}"),
        }
    }
    // Past it, within one second: closed as rate limited.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let flood: Vec<Message> = (0..30).map(|_| Message::Ping(vec![2].into())).collect();
    device.send_burst(flood).await;
    let (frames, code) = device.frames_until_close().await;
    assert!(
        frames.iter().any(|f| matches!(
            f,
            Frame::Error {
                code: ErrorCode::RateLimited { .. },
                ..
            }
        )),
        "{frames:?}"
    );
    assert_eq!(code, Some(1013));
    // Before any token, the same.
    let mut stranger = upgraded(2, relay.ws).await;
    let pings: Vec<u8> = (0..50).flat_map(|_| frame(0x9, b"p")).collect();
    stranger.write_all(&pings).await.unwrap();
    assert!(closed_by_relay(&mut stranger, Duration::from_secs(5)).await);
    eventually("both floods counted", async || {
        relay
            .metric("holdfast_relay_connections_refused_total{reason=\"ping_flood\"}")
            .await
            == 2.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_every_operations_connection() {
    let per_ip = holdfast_relay::HTTP_CONNECTIONS_PER_IP_MAX;
    let relay = Relay::start(&["--http-header-timeout-secs", "30"]).await;
    let mut slow = Vec::new();
    for _ in 0..per_ip {
        let mut tcp = tcp_from(2, relay.http).await;
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: r")
            .await
            .unwrap();
        slow.push(tcp);
    }
    for tcp in &mut slow {
        assert!(!closed_by_relay(tcp, Duration::from_millis(20)).await);
    }
    let mut over = tcp_from(2, relay.http).await;
    assert!(closed_by_relay(&mut over, Duration::from_secs(2)).await);
    // Another address (the scraper) is still answered.
    let (status, _) = relay.get("/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_connection_sends_is_read_no_faster_than_its_byte_budget() {
    // 1 MiB a second, 2 MiB at once (the frame limit): of six refused 1 MiB pushes, the
    // last three wait a second each for the budget.
    let relay = Relay::start(&[
        "--max-read-bytes-per-sec",
        "1048576",
        "--max-frame-bytes",
        "2097152",
    ])
    .await;
    let team = space("team");
    let reader = relay.token(&["team:read"]).await;
    let (mut device, _) = relay.device(&reader, &[&team]).await;
    let mut rng = crate::Rng(crate::seed());
    let pushes: Vec<Message> = (0..6)
        .map(|_| {
            let blob = rng.bytes(1 << 20);
            let push = Frame::Push {
                entries: vec![entry(&team, RecordId::new_v7(), vec![blob])],
            };
            Message::Binary(encode(&push).unwrap().into())
        })
        .collect();
    let started = Instant::now();
    device.send_burst(pushes).await;
    for n in 0..6 {
        match device.recv().await {
            Incoming::Frame(Frame::Ack { .. }) => {}
            other => panic!("ack {n}: {other:?}"),
        }
    }
    let took = started.elapsed();
    eprintln!("six 1 MiB pushes read in {took:?} at 1 MiB/s");
    assert!(took >= Duration::from_millis(2_900), "{took:?}");
    // The connection is slowed, not dropped.
    device.answers_ping(9).await;
}
