//! Opening a WebSocket to the relay: `ws://`, or `wss://` with rustls (the public web
//! roots plus any PEM roots the config adds).

use std::sync::Arc;
use std::time::Duration;

use holdfast_protocol::limits::FRAME_BYTES_MAX;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::{SyncConfig, SyncError};

/// A WebSocket to the relay.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where the relay is and how to reach it, checked once.
pub(crate) struct Endpoint {
    request: Request,
    host: String,
    port: u16,
    tls: Option<Arc<ClientConfig>>,
}

impl Endpoint {
    pub(super) fn new(config: &SyncConfig) -> Result<Endpoint, SyncError> {
        let invalid = |reason: &str| SyncError::InvalidUrl {
            url: config.url.clone(),
            reason: reason.to_owned(),
        };
        let request = config
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| invalid(&e.to_string()))?;
        let uri = request.uri();
        let secure = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            _ => return Err(invalid("it must start with ws:// or wss://")),
        };
        let host = uri
            .host()
            .ok_or_else(|| invalid("it names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let tls = if secure {
            Some(Arc::new(tls_config(&config.root_certificates_pem)?))
        } else {
            None
        };
        Ok(Endpoint {
            request,
            host,
            port,
            tls,
        })
    }

    /// Opens the connection within `timeout`; the error is detail for logs.
    pub(super) async fn connect(&self, timeout: Duration) -> Result<Socket, String> {
        let open = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| format!("connecting to {}:{}: {e}", self.host, self.port))?;
            tcp.set_nodelay(true).ok();
            let connector = match &self.tls {
                Some(tls) => Connector::Rustls(tls.clone()),
                None => Connector::Plain,
            };
            let (socket, _) = tokio_tungstenite::client_async_tls_with_config(
                self.request.clone(),
                tcp,
                Some(websocket_config()),
                Some(connector),
            )
            .await
            .map_err(|e| format!("websocket handshake: {e}"))?;
            Ok(socket)
        };
        tokio::time::timeout(timeout, open)
            .await
            .unwrap_or_else(|_| Err(format!("no connection within {timeout:?}")))
    }
}

/// Messages above the protocol's frame limit are refused from their header.
fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(FRAME_BYTES_MAX))
        .max_frame_size(Some(FRAME_BYTES_MAX))
}

/// rustls with the ring provider, trusting the public web roots and `extra_pem`.
fn tls_config(extra_pem: &[Vec<u8>]) -> Result<ClientConfig, SyncError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for pem in extra_pem {
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| SyncError::Certificate(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| SyncError::Certificate(e.to_string()))?;
            found += 1;
        }
        if found == 0 {
            return Err(SyncError::Certificate(
                "no PEM certificate in the data given".into(),
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SyncError::Certificate(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
