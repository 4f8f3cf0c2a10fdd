use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use super::{scan_head, Reframed, FRAGMENT_BYTES};
use crate::redb_store::tests::{seed, Rng};

const FRAME_BYTES_MAX: usize = 1 << 20;

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .max_frame_size(Some(FRAME_BYTES_MAX))
        .max_message_size(Some(FRAME_BYTES_MAX))
}

/// A masked client frame, as raw bytes.
fn raw_frame(opcode: OpCode, is_final: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let header = FrameHeader {
        is_final,
        opcode,
        mask: Some(mask),
        ..FrameHeader::default()
    };
    let mut out = Vec::new();
    header.format(payload.len() as u64, &mut out).unwrap();
    out.extend(
        payload
            .iter()
            .enumerate()
            .map(|(i, byte)| byte ^ mask[i % 4]),
    );
    out
}

const HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: relay\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// Accepts a WebSocket on `Reframed` over one end of a pipe whose other end gets `bytes`
/// (an HTTP head, then frames) in chunks of `chunk` bytes; returns the messages read,
/// ending with the error that ended reading, if any.
async fn serve_bytes(bytes: Vec<u8>, pipe_bytes: usize) -> (Vec<Message>, Option<WsError>) {
    let (mut client, server) = tokio::io::duplex(pipe_bytes);
    let writer = tokio::spawn(async move {
        // The head, then the frames once it is answered (tungstenite refuses a request
        // with bytes after it); then read (and drop) pongs until the server ends.
        client.write_all(HEAD).await.unwrap();
        let mut answer = Vec::new();
        while !answer.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            client.read_exact(&mut byte).await.unwrap();
            answer.push(byte[0]);
        }
        client.write_all(&bytes[HEAD.len()..]).await.unwrap();
        let mut sink = vec![0; 1024];
        while client.read(&mut sink).await.unwrap_or(0) > 0 {}
    });
    let stream = Reframed::new(server, FRAME_BYTES_MAX);
    let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(config()))
        .await
        .expect("the handshake");
    let mut messages = Vec::new();
    let error = loop {
        match ws.next().await {
            Some(Ok(Message::Close(_))) | None => break None,
            Some(Ok(message)) => messages.push(message),
            Some(Err(error)) => break Some(error),
        }
    };
    drop(ws);
    writer.abort();
    (messages, error)
}

#[test]
fn the_head_ends_at_its_blank_line_however_it_is_cut() {
    for cut in 1..HEAD.len() {
        let (first, rest) = HEAD.split_at(cut);
        let (n, matched, done) = scan_head(first, 0, usize::MAX);
        assert_eq!((n, done), (first.len(), false), "cut at {cut}");
        let (n, _, done) = scan_head(rest, matched, usize::MAX);
        assert_eq!((n, done), (rest.len(), true), "cut at {cut}");
    }
    assert_eq!(scan_head(b"a\r\n\r\nb", 0, usize::MAX), (5, 0, true));
    assert_eq!(scan_head(b"\r\r\n\r\n", 0, usize::MAX), (5, 0, true));
}

#[tokio::test]
async fn every_message_arrives_whole_whatever_its_size_and_the_read_sizes() {
    let mut rng = Rng(seed());
    for round in 0..12 {
        let mut bytes = HEAD.to_vec();
        let mut expected = Vec::new();
        for _ in 0..20 {
            let len = match rng.below(4) {
                0 => rng.below(200),
                1 => FRAGMENT_BYTES as u64 - 4 + rng.below(9),
                _ => rng.below(3 * FRAGMENT_BYTES as u64 * 8),
            } as usize;
            let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let mask = (rng.next() as u32).to_be_bytes();
            if rng.below(5) == 0 {
                bytes.extend(raw_frame(OpCode::Control(Control::Ping), true, b"hi", mask));
            }
            if rng.below(3) == 0 && len > 2 {
                // Sent by the client in two fragments of its own.
                let cut = rng.below(len as u64) as usize;
                let (a, b) = payload.split_at(cut);
                bytes.extend(raw_frame(OpCode::Data(Data::Binary), false, a, mask));
                bytes.extend(raw_frame(OpCode::Control(Control::Ping), true, b"", mask));
                bytes.extend(raw_frame(OpCode::Data(Data::Continue), true, b, mask));
                expected.push(Message::Ping(Bytes::new()));
            } else {
                bytes.extend(raw_frame(OpCode::Data(Data::Binary), true, &payload, mask));
            }
            expected.push(Message::Binary(payload.into()));
        }
        bytes.extend(raw_frame(
            OpCode::Control(Control::Close),
            true,
            &[],
            [1, 2, 3, 4],
        ));
        let pipe_bytes = 1 + rng.below(9000) as usize;
        let (messages, error) = serve_bytes(bytes, pipe_bytes).await;
        assert!(error.is_none(), "round {round}: {error:?}");
        let messages: Vec<Message> = messages
            .into_iter()
            .filter(|m| !matches!(m, Message::Ping(p) if p.as_ref() == b"hi"))
            .collect();
        assert_eq!(messages.len(), expected.len(), "round {round}");
        for (i, (got, want)) in messages.iter().zip(&expected).enumerate() {
            assert!(got == want, "round {round}, message {i} differs");
        }
    }
}

#[tokio::test]
async fn a_frame_over_the_limit_is_still_refused_from_its_header() {
    let mut bytes = HEAD.to_vec();
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Binary),
        mask: Some([1, 2, 3, 4]),
        ..FrameHeader::default()
    };
    header
        .format(FRAME_BYTES_MAX as u64 + 1, &mut bytes)
        .unwrap();
    // No payload follows: the refusal must come from the header alone.
    let (messages, error) = serve_bytes(bytes, 64).await;
    assert!(messages.is_empty());
    assert!(
        matches!(
            error,
            Some(WsError::Capacity(CapacityError::MessageTooLong { .. }))
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_header_that_does_not_parse_is_refused_by_tungstenite_as_before() {
    let mut bytes = HEAD.to_vec();
    // Opcode 3 is reserved.
    bytes.extend([0x83, 0x80, 1, 2, 3, 4]);
    let (messages, error) = serve_bytes(bytes, 64).await;
    assert!(messages.is_empty());
    assert!(matches!(error, Some(WsError::Protocol(_))), "{error:?}");
}

#[tokio::test]
async fn reserved_bits_on_a_long_frame_are_refused_as_before() {
    let mut bytes = HEAD.to_vec();
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Binary),
        rsv1: true,
        mask: Some([1, 2, 3, 4]),
        ..FrameHeader::default()
    };
    let payload = vec![7u8; 3 * FRAGMENT_BYTES];
    header.format(payload.len() as u64, &mut bytes).unwrap();
    bytes.extend(&payload);
    let (_, error) = serve_bytes(bytes, 1 << 16).await;
    assert!(matches!(error, Some(WsError::Protocol(_))), "{error:?}");
}

#[tokio::test]
async fn a_real_client_round_trips_through_the_rewrite() {
    let (client, server) = tokio::io::duplex(1 << 16);
    let server = tokio::spawn(async move {
        let stream = Reframed::new(server, FRAME_BYTES_MAX);
        let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(config()))
            .await
            .unwrap();
        while let Some(Ok(message)) = ws.next().await {
            if message.is_binary() {
                ws.send(message).await.unwrap();
            }
        }
    });
    let (mut ws, _) = tokio_tungstenite::client_async("ws://relay/", client)
        .await
        .unwrap();
    for len in [0, 1, FRAGMENT_BYTES, FRAGMENT_BYTES + 1, 300_000] {
        let payload: Bytes = (0..len).map(|i| (i % 251) as u8).collect::<Vec<_>>().into();
        ws.send(Message::Binary(payload.clone())).await.unwrap();
        match ws.next().await {
            Some(Ok(Message::Binary(echo))) => assert_eq!(echo, payload, "{len} bytes"),
            other => panic!("{len} bytes: {other:?}"),
        }
    }
    ws.close(None).await.unwrap();
    server.await.unwrap();
}
