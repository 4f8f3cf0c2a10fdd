//! The `holdfast-relay` command line: `serve` and `token`. Every flag can also be set
//! with an environment variable, named in its help (`HOLDFAST_RELAY_*`).
//!
//! ```text
//! holdfast-relay serve [--listen 127.0.0.1:7700] [--http 127.0.0.1:7701]
//!                      [--data holdfast-relay.redb] [--secret-file holdfast-relay.secret]
//!                      [--tls-cert chain.pem --tls-key key.pem] [limits...]
//! holdfast-relay token --space team-notes:write [--space archive:read] [--ttl 30d]
//!                      [--not-before 1h] [--subject alice-laptop]
//!                      [--secret-file holdfast-relay.secret]
//! ```
//!
//! `token` takes each space as `NAME:ROLE` (`read` or `write`), or as a bare `NAME` with
//! the role given once by `--role`; several spaces may also be comma-separated.
//! `--not-before` is a duration from now (`90s`, `1h`, `2d`), like `--ttl`: the token is
//! refused until then (its `nbf` claim), and `--ttl` counts from then. A token longer than
//! a relay reads (8 KiB: too many spaces, or a very long subject) is refused, not printed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use holdfast_protocol::limits::{
    FRAME_BYTES_MAX, HANDSHAKE_TIMEOUT_MS_DEFAULT, IDLE_TIMEOUT_MS_DEFAULT,
    KEEPALIVE_INTERVAL_MS_DEFAULT, PINGS_PER_SEC_MAX_DEFAULT, PUSH_BURST_DEFAULT,
    PUSH_RATE_PER_SEC_DEFAULT,
};
use holdfast_protocol::SpaceId;
use thiserror::Error;

use holdfast_relay::auth::{mint_token, MintError, RoleClaim, TokenRequest};
use holdfast_relay::config::{
    ServerConfig, ServerLimits, TlsFiles, CONNECTIONS_MAX_DEFAULT, DATA_DEFAULT,
    HANDSHAKES_MAX_DEFAULT, HANDSHAKES_PER_IP_MAX_DEFAULT, HTTP_CONNECTIONS_MAX_DEFAULT,
    HTTP_DEFAULT, HTTP_HEADER_TIMEOUT_DEFAULT, LISTEN_DEFAULT, READ_BYTES_PER_SEC_DEFAULT,
    SECRET_FILE_DEFAULT, SEND_QUEUE_BYTES_MAX_DEFAULT, SEND_QUEUE_FRAMES_MAX_DEFAULT,
    SHUTDOWN_GRACE_DEFAULT, WRITE_TIMEOUT_DEFAULT,
};
use holdfast_relay::secret::{Secret, SecretError};
use holdfast_relay::{RedbLogStore, StoreConfig, StoreError};

#[cfg(test)]
mod tests;

/// The Holdfast relay: the server devices sync their spaces through.
#[derive(Debug, Parser)]
#[command(name = "holdfast-relay", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// A subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve devices over WebSocket, with /healthz and /metrics over HTTP.
    Serve(ServeArgs),
    /// Print a token granting roles in spaces, signed with the relay's secret (created if
    /// there is none yet).
    Token(TokenArgs),
    /// Start a new epoch. Run it after restoring the database from a backup, before
    /// serving: devices then repair what the backup lost instead of trusting their cursors.
    RotateEpoch(RotateEpochArgs),
}

/// Flags of `holdfast-relay rotate-epoch`.
#[derive(Debug, Args)]
pub struct RotateEpochArgs {
    /// The relay's database file (it must exist).
    #[arg(long, env = "HOLDFAST_RELAY_DATA", default_value = DATA_DEFAULT)]
    pub data: PathBuf,
}

impl RotateEpochArgs {
    /// Rotates the epoch of the database in `data`; returns the new epoch.
    pub fn run(&self) -> Result<u64, CliError> {
        if !self.data.exists() {
            let shown = self.data.display();
            return Err(usage(format!("{shown} does not exist: nothing to rotate")));
        }
        let store = RedbLogStore::open(&self.data, StoreConfig::default())?;
        Ok(store.rotate_epoch()?)
    }
}

/// Flags of `holdfast-relay serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address devices connect to (port 0: any free port).
    #[arg(long, env = "HOLDFAST_RELAY_LISTEN", default_value = LISTEN_DEFAULT)]
    pub listen: SocketAddr,
    /// Address of /healthz and /metrics (port 0: any free port).
    #[arg(long, env = "HOLDFAST_RELAY_HTTP", default_value = HTTP_DEFAULT)]
    pub http: SocketAddr,
    /// The relay's database file, created if missing.
    #[arg(long, env = "HOLDFAST_RELAY_DATA", default_value = DATA_DEFAULT)]
    pub data: PathBuf,
    /// The token secret, created (readable by its owner only) if missing.
    #[arg(long, env = "HOLDFAST_RELAY_SECRET_FILE", default_value = SECRET_FILE_DEFAULT)]
    pub secret_file: PathBuf,
    /// Most authenticated devices served at once; more are told to retry later.
    #[arg(long, env = "HOLDFAST_RELAY_MAX_CONNECTIONS", default_value_t = CONNECTIONS_MAX_DEFAULT)]
    pub max_connections: usize,
    /// Most connections not authenticated yet (handshakes, waiting for Hello); more are
    /// closed at once.
    #[arg(long, env = "HOLDFAST_RELAY_MAX_HANDSHAKES", default_value_t = HANDSHAKES_MAX_DEFAULT)]
    pub max_handshakes: usize,
    /// Most connections not authenticated yet from one IP address (0: no cap; use 0
    /// behind a proxy, where every connection comes from the proxy's address).
    #[arg(long, env = "HOLDFAST_RELAY_MAX_HANDSHAKES_PER_IP", default_value_t = HANDSHAKES_PER_IP_MAX_DEFAULT)]
    pub max_handshakes_per_ip: usize,
    /// Seconds one write may wait for a device to read before it is dropped as too slow.
    #[arg(long, env = "HOLDFAST_RELAY_WRITE_TIMEOUT_SECS", default_value_t = WRITE_TIMEOUT_DEFAULT.as_secs())]
    pub write_timeout_secs: u64,
    /// Most connections to /healthz and /metrics at once; more are closed at once.
    #[arg(long, env = "HOLDFAST_RELAY_HTTP_MAX_CONNECTIONS", default_value_t = HTTP_CONNECTIONS_MAX_DEFAULT)]
    pub http_max_connections: usize,
    /// Seconds a request to /healthz or /metrics has to send its headers.
    #[arg(long, env = "HOLDFAST_RELAY_HTTP_HEADER_TIMEOUT_SECS", default_value_t = HTTP_HEADER_TIMEOUT_DEFAULT.as_secs())]
    pub http_header_timeout_secs: u64,
    /// Largest message read from a device, in bytes.
    #[arg(long, env = "HOLDFAST_RELAY_MAX_FRAME_BYTES", default_value_t = FRAME_BYTES_MAX as u32)]
    pub max_frame_bytes: u32,
    /// Pushes per second one connection may send on average (0: no limit).
    #[arg(long, env = "HOLDFAST_RELAY_PUSH_RATE", default_value_t = PUSH_RATE_PER_SEC_DEFAULT)]
    pub push_rate: u32,
    /// Pushes one connection may send at once after a quiet spell.
    #[arg(long, env = "HOLDFAST_RELAY_PUSH_BURST", default_value_t = PUSH_BURST_DEFAULT)]
    pub push_burst: u32,
    /// Pings (protocol and WebSocket) one connection may send in a second; more end the
    /// connection (0: no limit).
    #[arg(long, env = "HOLDFAST_RELAY_MAX_PINGS_PER_SEC", default_value_t = PINGS_PER_SEC_MAX_DEFAULT)]
    pub max_pings_per_sec: u32,
    /// Bytes per second one connection may send on average (one frame at once); past it
    /// the relay pauses reading it (0: no limit).
    #[arg(long, env = "HOLDFAST_RELAY_MAX_READ_BYTES_PER_SEC", default_value_t = READ_BYTES_PER_SEC_DEFAULT)]
    pub max_read_bytes_per_sec: u64,
    /// Frames waiting to be sent to one connection before it is dropped as too slow.
    #[arg(long, env = "HOLDFAST_RELAY_SEND_QUEUE_FRAMES", default_value_t = SEND_QUEUE_FRAMES_MAX_DEFAULT)]
    pub send_queue_frames: usize,
    /// Bytes waiting to be sent to one connection before it is dropped as too slow.
    #[arg(long, env = "HOLDFAST_RELAY_SEND_QUEUE_BYTES", default_value_t = SEND_QUEUE_BYTES_MAX_DEFAULT)]
    pub send_queue_bytes: usize,
    /// Seconds without hearing from a device before its connection is closed.
    #[arg(long, env = "HOLDFAST_RELAY_IDLE_TIMEOUT_SECS", default_value_t = IDLE_TIMEOUT_MS_DEFAULT / 1000)]
    pub idle_timeout_secs: u64,
    /// Seconds without hearing from a device before it is pinged.
    #[arg(long, env = "HOLDFAST_RELAY_KEEPALIVE_SECS", default_value_t = KEEPALIVE_INTERVAL_MS_DEFAULT / 1000)]
    pub keepalive_secs: u64,
    /// Seconds a new connection has for its handshakes and its Hello.
    #[arg(long, env = "HOLDFAST_RELAY_HANDSHAKE_TIMEOUT_SECS", default_value_t = HANDSHAKE_TIMEOUT_MS_DEFAULT / 1000)]
    pub handshake_timeout_secs: u64,
    /// Seconds open connections get to finish their stores after SIGTERM or Ctrl-C.
    #[arg(long, env = "HOLDFAST_RELAY_SHUTDOWN_GRACE_SECS", default_value_t = SHUTDOWN_GRACE_DEFAULT.as_secs())]
    pub shutdown_grace_secs: u64,
    /// PEM certificate chain: serve wss:// (needs --tls-key).
    #[arg(long, env = "HOLDFAST_RELAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate (needs --tls-cert).
    #[arg(long, env = "HOLDFAST_RELAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ServeArgs {
    /// The server configuration these flags describe.
    pub fn config(&self) -> ServerConfig {
        let mut limits = ServerLimits::default();
        limits.connections_max = self.max_connections;
        limits.handshakes_max = self.max_handshakes;
        limits.handshakes_per_ip_max = self.max_handshakes_per_ip;
        limits.write_timeout = Duration::from_secs(self.write_timeout_secs);
        limits.http_connections_max = self.http_max_connections;
        limits.http_header_timeout = Duration::from_secs(self.http_header_timeout_secs);
        limits.frame_bytes_max = self.max_frame_bytes;
        limits.push_rate_per_sec = self.push_rate;
        limits.push_burst = self.push_burst;
        limits.pings_per_sec_max = self.max_pings_per_sec;
        limits.read_bytes_per_sec = self.max_read_bytes_per_sec;
        limits.send_queue_frames_max = self.send_queue_frames;
        limits.send_queue_bytes_max = self.send_queue_bytes;
        limits.idle_timeout = Duration::from_secs(self.idle_timeout_secs);
        limits.keepalive_interval = Duration::from_secs(self.keepalive_secs);
        limits.handshake_timeout = Duration::from_secs(self.handshake_timeout_secs);
        let mut config = ServerConfig::new();
        config.listen = self.listen;
        config.http = self.http;
        config.data = self.data.clone();
        config.secret_file = self.secret_file.clone();
        config.tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        config.limits = limits;
        config.shutdown_grace = Duration::from_secs(self.shutdown_grace_secs);
        config
    }
}

/// Flags of `holdfast-relay token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// A space the token grants, as NAME:ROLE (ROLE is read or write), or NAME with
    /// --role. Repeat it, or separate spaces with commas.
    #[arg(
        long = "space",
        env = "HOLDFAST_RELAY_TOKEN_SPACES",
        value_delimiter = ',',
        required = true
    )]
    pub spaces: Vec<String>,
    /// Role for spaces given without one: read or write.
    #[arg(long, env = "HOLDFAST_RELAY_TOKEN_ROLE")]
    pub role: Option<String>,
    /// How long the token is valid (from --not-before, if given): 90s, 12h, 30d,
    /// "1month 2days"...
    #[arg(long, env = "HOLDFAST_RELAY_TOKEN_TTL", default_value = "30d", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Make the token valid only from this long after now (its nbf claim), as a duration
    /// like --ttl: 90s, 1h, 2d... Relays refuse it until then.
    #[arg(long, env = "HOLDFAST_RELAY_TOKEN_NOT_BEFORE", value_parser = humantime::parse_duration)]
    pub not_before: Option<Duration>,
    /// Who the token names (a user or a device), shown in the relay's logs.
    #[arg(long, env = "HOLDFAST_RELAY_TOKEN_SUBJECT", default_value = "device")]
    pub subject: String,
    /// The relay's token secret.
    #[arg(long, env = "HOLDFAST_RELAY_SECRET_FILE", default_value = SECRET_FILE_DEFAULT)]
    pub secret_file: PathBuf,
}

impl TokenArgs {
    /// What the token is to grant.
    pub fn request(&self) -> Result<TokenRequest, CliError> {
        let default_role = self.role.as_deref().map(parse_role).transpose()?;
        let mut spaces = BTreeMap::new();
        for arg in &self.spaces {
            let (name, role) = match arg.rsplit_once(':') {
                Some((name, role)) => (name, parse_role(role)?),
                None => (
                    arg.as_str(),
                    default_role.ok_or_else(|| {
                        usage(format!(
                            "give a role for {arg}: --space {arg}:write, or --role"
                        ))
                    })?,
                ),
            };
            let space = SpaceId::new(name).map_err(|e| usage(format!("{name:?}: {e}")))?;
            spaces.insert(space, role);
        }
        Ok(TokenRequest {
            subject: self.subject.clone(),
            spaces,
            not_before: self.not_before,
            ttl: self.ttl,
        })
    }

    /// The token, signed with the secret in `secret_file`, which is created (mode 0600)
    /// if there is none yet, as `serve` would: tokens can be minted before the relay first
    /// starts. A new secret is announced on stderr.
    pub fn mint(&self) -> Result<String, CliError> {
        let request = self.request()?;
        let existed = self.secret_file.exists();
        let secret = Secret::load_or_create(&self.secret_file)?;
        if !existed {
            eprintln!(
                "holdfast-relay: created the token secret {} (a relay serving with it accepts this token)",
                self.secret_file.display()
            );
        }
        Ok(mint_token(&secret, &request, SystemTime::now())?)
    }
}

fn parse_role(role: &str) -> Result<RoleClaim, CliError> {
    match role {
        "read" => Ok(RoleClaim::Read),
        "write" => Ok(RoleClaim::Write),
        other => Err(usage(format!("unknown role {other:?}: use read or write"))),
    }
}

fn usage(message: String) -> CliError {
    CliError::Usage(message)
}

/// Why a command could not run.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CliError {
    /// The flags do not make sense.
    #[error("{0}")]
    Usage(String),
    /// The secret could not be read.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The token could not be minted.
    #[error(transparent)]
    Mint(#[from] MintError),
    /// The relay's database could not be opened or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}
