//! `wss://`: the binary serving TLS from PEM files, and refusing files it cannot use.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use holdfast_protocol::{decode, encode, DeviceId, Frame, SpaceCursor, Token};
use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{run, within, Relay};
use crate::space;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_serves_wss_with_a_pem_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        certified.signing_key.serialize_pem(),
    )
    .unwrap();
    let relay = Relay::start_in(dir, &["--tls-cert", "cert.pem", "--tls-key", "key.pem"]).await;
    assert!(relay.tls);
    let token = relay.token(&["team:write"]).await;

    let mut roots = RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = within("a TCP connection", TcpStream::connect(relay.ws))
        .await
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = within(
        "the TLS handshake",
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .unwrap();
    let url = format!("wss://localhost:{}/", relay.ws.port());
    let (mut ws, _) = within(
        "the websocket handshake",
        tokio_tungstenite::client_async(url, tls),
    )
    .await
    .unwrap();

    let hello = Frame::Hello {
        protocol: holdfast_protocol::limits::PROTOCOL_VERSION,
        device: DeviceId::random(),
        token: Token::new(token),
        spaces: vec![SpaceCursor {
            space: space("team"),
            cursor: None,
        }],
    };
    let bytes = encode(&hello).unwrap();
    within("a send", ws.send(Message::Binary(bytes.into())))
        .await
        .unwrap();
    match within("the welcome", ws.next()).await {
        Some(Ok(Message::Binary(bytes))) => {
            assert!(matches!(decode(&bytes).unwrap(), Frame::Welcome { .. }));
        }
        other => panic!("expected a welcome, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_tls_files_stop_the_relay_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    let serve = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--tls-cert",
        "cert.pem",
        "--tls-key",
        "key.pem",
    ];
    let output = run(dir.path(), &serve).await;
    assert!(!output.status.success());
    assert!(
        output.stderr.contains("TLS file cert.pem"),
        "{}",
        output.stderr
    );

    let output = run(dir.path(), &serve[..7]).await;
    assert!(!output.status.success(), "a certificate needs its key");
    assert!(output.stderr.contains("--tls-key"), "{}", output.stderr);
}
