//! What a relay server is configured with: addresses, files and every limit, with defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use holdfast_protocol::limits::{
    FRAME_BYTES_MAX, HANDSHAKE_TIMEOUT_MS_DEFAULT, IDLE_TIMEOUT_MS_DEFAULT,
    KEEPALIVE_INTERVAL_MS_DEFAULT, PINGS_PER_SEC_MAX_DEFAULT, PUSH_BURST_DEFAULT,
    PUSH_RATE_PER_SEC_DEFAULT,
};
use thiserror::Error;

/// Default WebSocket address: loopback only, so a relay is never exposed by accident.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:7700";

/// Default address of the operations endpoints (`/healthz`, `/metrics`).
pub const HTTP_DEFAULT: &str = "127.0.0.1:7701";

/// Default path of the relay's database.
pub const DATA_DEFAULT: &str = "holdfast-relay.redb";

/// Default path of the secret that signs tokens.
pub const SECRET_FILE_DEFAULT: &str = "holdfast-relay.secret";

/// Default most connections served at once; one more is turned away with `ServerBusy`.
pub const CONNECTIONS_MAX_DEFAULT: usize = 10_000;

/// Default most connections that have not authenticated yet (TLS and WebSocket handshakes,
/// waiting for `Hello`); one more is closed at once.
pub const HANDSHAKES_MAX_DEFAULT: usize = 1_000;

/// Default most connections from one IP address that have not authenticated yet; 0 for
/// no cap (behind a proxy every connection comes from its address).
pub const HANDSHAKES_PER_IP_MAX_DEFAULT: usize = 64;

/// Default time one write to a device may wait for the device to read; past it the
/// connection is dropped as a slow consumer.
pub const WRITE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);

/// Default most connections to the operations endpoints at once; more are closed at once.
pub const HTTP_CONNECTIONS_MAX_DEFAULT: usize = 64;

/// Default time an operations request has to send its headers.
pub const HTTP_HEADER_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);

/// Default bytes one connection may send the relay per second, on average (and one frame
/// at once): past it the relay pauses reading it. A phone uploading a photo-sized record
/// is far below; a client pushing refused 15 MiB frames in a loop is held to it.
pub const READ_BYTES_PER_SEC_DEFAULT: u64 = 4 << 20;

/// Default most frames waiting to be written to one connection.
pub const SEND_QUEUE_FRAMES_MAX_DEFAULT: usize = 256;

/// Default most bytes waiting to be written to one connection. A frame larger than this
/// is still sent when the queue is empty, so a large `Changes` never strands a device.
pub const SEND_QUEUE_BYTES_MAX_DEFAULT: usize = 8 << 20;

/// Default time given to open connections to finish their stores after a shutdown signal.
pub const SHUTDOWN_GRACE_DEFAULT: Duration = Duration::from_secs(30);

/// Read and write buffer of one WebSocket. Small, so that idle connections cost little;
/// a larger message grows the buffer while it is read.
pub const SOCKET_BUFFER_BYTES: usize = 4 << 10;

/// How often every session's `handle_tick` runs (keepalive, idle and token expiry).
pub const TICK_INTERVAL: Duration = Duration::from_secs(1);

/// Time a closing connection has to write what is queued and its close frame.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How often expired event ids are pruned from the store.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// How long `/healthz` waits for the store to answer.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything `holdfast-relay serve` needs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Where devices connect (WebSocket, or WebSocket over TLS when `tls` is set).
    pub listen: SocketAddr,
    /// Where `/healthz` and `/metrics` are served (plain HTTP).
    pub http: SocketAddr,
    /// The relay's database file, created if missing.
    pub data: PathBuf,
    /// The token-signing secret, created (mode 0600) if missing.
    pub secret_file: PathBuf,
    /// Certificate chain and key to serve `wss://` with; `None` for plain `ws://`.
    pub tls: Option<TlsFiles>,
    /// Every limit.
    pub limits: ServerLimits,
    /// Time open connections get to finish their stores after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl ServerConfig {
    /// The defaults: loopback addresses and files in the working directory.
    pub fn new() -> Self {
        Self {
            listen: LISTEN_DEFAULT.parse().expect("a valid default address"),
            http: HTTP_DEFAULT.parse().expect("a valid default address"),
            data: DATA_DEFAULT.into(),
            secret_file: SECRET_FILE_DEFAULT.into(),
            tls: None,
            limits: ServerLimits::default(),
            shutdown_grace: SHUTDOWN_GRACE_DEFAULT,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// PEM files for TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The limits a server holds every connection to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerLimits {
    /// Authenticated connections served at once.
    pub connections_max: usize,
    /// Connections not authenticated yet, at once.
    pub handshakes_max: usize,
    /// Connections not authenticated yet from one IP address, at once; 0 for no cap.
    pub handshakes_per_ip_max: usize,
    /// Time one write may wait for the device to read before it is dropped.
    pub write_timeout: Duration,
    /// Connections to the operations endpoints at once.
    pub http_connections_max: usize,
    /// Time an operations request has to send its headers.
    pub http_header_timeout: Duration,
    /// Largest WebSocket message read, at most the protocol's `FRAME_BYTES_MAX`; a larger
    /// one is refused before it is buffered.
    pub frame_bytes_max: u32,
    /// `Push` frames per second per connection, on average; 0 for no limit.
    pub push_rate_per_sec: u32,
    /// `Push` frames one connection may send at once after a quiet spell.
    pub push_burst: u32,
    /// Pings (protocol and WebSocket) one connection may send in a second; 0 for no limit.
    pub pings_per_sec_max: u32,
    /// Bytes one connection may send per second on average; 0 for no limit.
    pub read_bytes_per_sec: u64,
    /// Frames waiting to be written to one connection; beyond, it is disconnected.
    pub send_queue_frames_max: usize,
    /// Bytes waiting to be written to one connection; beyond, it is disconnected.
    pub send_queue_bytes_max: usize,
    /// Quiet time after which a connection is closed.
    pub idle_timeout: Duration,
    /// Quiet time after which a connection is pinged.
    pub keepalive_interval: Duration,
    /// Time a connection has for its TLS and WebSocket handshakes and its `Hello`.
    pub handshake_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            connections_max: CONNECTIONS_MAX_DEFAULT,
            handshakes_max: HANDSHAKES_MAX_DEFAULT,
            handshakes_per_ip_max: HANDSHAKES_PER_IP_MAX_DEFAULT,
            write_timeout: WRITE_TIMEOUT_DEFAULT,
            http_connections_max: HTTP_CONNECTIONS_MAX_DEFAULT,
            http_header_timeout: HTTP_HEADER_TIMEOUT_DEFAULT,
            frame_bytes_max: FRAME_BYTES_MAX as u32,
            push_rate_per_sec: PUSH_RATE_PER_SEC_DEFAULT,
            push_burst: PUSH_BURST_DEFAULT,
            pings_per_sec_max: PINGS_PER_SEC_MAX_DEFAULT,
            read_bytes_per_sec: READ_BYTES_PER_SEC_DEFAULT,
            send_queue_frames_max: SEND_QUEUE_FRAMES_MAX_DEFAULT,
            send_queue_bytes_max: SEND_QUEUE_BYTES_MAX_DEFAULT,
            idle_timeout: Duration::from_millis(IDLE_TIMEOUT_MS_DEFAULT),
            keepalive_interval: Duration::from_millis(KEEPALIVE_INTERVAL_MS_DEFAULT),
            handshake_timeout: Duration::from_millis(HANDSHAKE_TIMEOUT_MS_DEFAULT),
        }
    }
}

impl ServerLimits {
    /// Checks that the limits can be served, in plain words if not.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError { message });
        if self.connections_max == 0 {
            return invalid("the connection limit must be at least 1".into());
        }
        if self.handshakes_max == 0 {
            return invalid("the handshake limit must be at least 1".into());
        }
        if self.http_connections_max == 0 {
            return invalid("the operations connection limit must be at least 1".into());
        }
        if self.write_timeout.is_zero() || self.http_header_timeout.is_zero() {
            return invalid("the write and header timeouts must be at least 1 s".into());
        }
        if self.frame_bytes_max as usize > FRAME_BYTES_MAX || self.frame_bytes_max < 1024 {
            return invalid(format!(
                "the frame size limit must be between 1024 and {FRAME_BYTES_MAX} bytes, not {}",
                self.frame_bytes_max
            ));
        }
        if self.send_queue_frames_max == 0 || self.send_queue_bytes_max == 0 {
            return invalid("the send queue limits must be at least 1".into());
        }
        if self.keepalive_interval >= self.idle_timeout {
            return invalid(format!(
                "the keepalive interval ({} s) must be shorter than the idle timeout ({} s)",
                self.keepalive_interval.as_secs(),
                self.idle_timeout.as_secs()
            ));
        }
        Ok(())
    }
}

/// A configuration that cannot be served, with the reason in plain words.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct ConfigError {
    /// What is wrong.
    pub message: String,
}
