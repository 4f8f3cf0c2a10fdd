//! Runs the real `holdfast-relay` binary in a temporary directory and talks to it as a
//! device would: raw frames over a WebSocket, and plain HTTP to the operations endpoints.
//! Every wait has a timeout, so a hang fails the test instead of blocking it.

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use holdfast_protocol::{decode, encode, DeviceId, Frame, SpaceCursor, SpaceId, Token};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub const BIN: &str = env!("CARGO_BIN_EXE_holdfast-relay");

/// How long any one wait may take.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// `future`, or a panic naming `what` once [`TIMEOUT`] passes.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A relay process serving from its own temporary directory.
pub struct Relay {
    pub dir: TempDir,
    child: Child,
    pub ws: SocketAddr,
    pub http: SocketAddr,
    /// Whether it serves `wss://`.
    pub tls: bool,
}

impl Relay {
    /// Starts `holdfast-relay serve` with `args` in a new directory.
    pub async fn start(args: &[&str]) -> Relay {
        Self::start_in(tempfile::tempdir().unwrap(), args).await
    }

    /// Starts `holdfast-relay serve` with `args` in `dir`, on free loopback ports, and
    /// waits for its readiness line.
    pub async fn start_in(dir: TempDir, args: &[&str]) -> Relay {
        let log = File::create(dir.path().join("relay.log")).unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(args)
            .current_dir(dir.path())
            .env("RUST_LOG", "holdfast_relay=debug")
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("the relay binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = within("the readiness line", lines.next_line())
            .await
            .unwrap();
        let Some(line) = line else {
            let log = std::fs::read_to_string(dir.path().join("relay.log")).unwrap();
            panic!("the relay exited before listening:\n{log}");
        };
        let addr = |key: &str| -> SocketAddr {
            let field = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in {line:?}"));
            field.parse().unwrap()
        };
        let tls = line.contains(" wss=");
        let (ws, http) = (addr(if tls { "wss=" } else { "ws=" }), addr("http="));
        Relay {
            dir,
            child,
            ws,
            http,
            tls,
        }
    }

    /// Mints a token with the `token` subcommand, for `spaces` like `team:write`.
    pub async fn token(&self, spaces: &[&str]) -> String {
        let mut args = vec!["token", "--ttl", "1h", "--subject", "test-device"];
        for space in spaces {
            args.extend(["--space", space]);
        }
        let output = run(self.dir.path(), &args).await;
        assert!(output.status.success(), "token: {}", output.stderr);
        let token = output.stdout.trim().to_owned();
        assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
        token
    }

    /// A WebSocket connection to the relay.
    pub async fn connect(&self) -> Peer {
        let tcp = within("a TCP connection", TcpStream::connect(self.ws))
            .await
            .unwrap();
        self.upgrade(tcp).await
    }

    /// A WebSocket connection whose socket buffers little: the relay's writes to it
    /// block soon once it stops reading.
    pub async fn connect_small(&self) -> Peer {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = within("a TCP connection", socket.connect(self.ws))
            .await
            .unwrap();
        self.upgrade(tcp).await
    }

    async fn upgrade(&self, tcp: TcpStream) -> Peer {
        let url = format!("ws://{}/", self.ws);
        let (ws, _) = within(
            "the websocket handshake",
            tokio_tungstenite::client_async(url, tcp),
        )
        .await
        .expect("websocket handshake");
        Peer {
            ws,
            pending: VecDeque::new(),
        }
    }

    /// A connection that said `Hello` with `token` and `spaces` and was welcomed; returns
    /// it with the relay's epoch.
    pub async fn device(&self, token: &str, spaces: &[&SpaceId]) -> (Peer, u64) {
        let peer = self.connect().await;
        Self::welcome(peer, token, spaces).await
    }

    /// Says `Hello` on `peer` and expects a welcome.
    pub async fn welcome(mut peer: Peer, token: &str, spaces: &[&SpaceId]) -> (Peer, u64) {
        match peer.hello(token, spaces).await {
            Frame::Welcome { epoch, .. } => (peer, epoch),
            other => panic!("expected a welcome, got {other:?}"),
        }
    }

    /// `GET path` on the operations address: the status code and the body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        within("an HTTP answer", async {
            let mut tcp = TcpStream::connect(self.http).await.unwrap();
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n");
            tcp.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            tcp.read_to_string(&mut response).await.unwrap();
            let status = response[9..12].parse().unwrap();
            let body = response.split_once("\r\n\r\n").unwrap().1.to_owned();
            (status, body)
        })
        .await
    }

    /// The value of a metric line starting with `name` (labels included).
    pub async fn metric(&self, name: &str) -> f64 {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200);
        body.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no metric {name} in\n{body}"))
            .parse()
            .unwrap()
    }

    /// The relay process's resident memory (`VmRSS`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.child.id().expect("the relay is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .expect("a VmRSS line")
            .trim()
            .parse()
            .unwrap();
        kib << 10
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("the relay is running") as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    }

    /// Waits for the process to exit.
    pub async fn exit(&mut self) -> ExitStatus {
        within("the relay to exit", self.child.wait())
            .await
            .unwrap()
    }

    /// The relay's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("relay.log")).unwrap_or_default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- relay log ---\n{}", self.log());
        }
    }
}

/// What a command printed.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary with `args` in `dir`.
pub async fn run(dir: &Path, args: &[&str]) -> Output {
    let output = within(
        "the command",
        Command::new(BIN).args(args).current_dir(dir).output(),
    )
    .await
    .unwrap();
    Output {
        status: output.status,
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// What arrived on a connection.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    Frame(Frame),
    /// The relay closed, with this WebSocket close code.
    Closed(Option<u16>),
}

/// One WebSocket connection, speaking raw frames.
pub struct Peer {
    ws: WebSocketStream<TcpStream>,
    /// Frames read while waiting for another kind.
    pending: VecDeque<Frame>,
}

impl Peer {
    pub async fn send(&mut self, frame: &Frame) {
        let bytes = encode(frame).unwrap();
        self.send_raw(Message::Binary(bytes.into())).await;
    }

    pub async fn send_raw(&mut self, message: Message) {
        within("a send", self.ws.send(message)).await.unwrap();
    }

    /// Sends `Hello` and returns the answer.
    pub async fn hello(&mut self, token: &str, spaces: &[&SpaceId]) -> Frame {
        let hello = Frame::Hello {
            protocol: holdfast_protocol::limits::PROTOCOL_VERSION,
            device: DeviceId::random(),
            token: Token::new(token),
            spaces: spaces
                .iter()
                .map(|space| SpaceCursor {
                    space: (*space).clone(),
                    cursor: None,
                })
                .collect(),
        };
        self.send(&hello).await;
        self.frame().await
    }

    /// The next frame or the close, skipping pings.
    pub async fn recv(&mut self) -> Incoming {
        if let Some(frame) = self.pending.pop_front() {
            return Incoming::Frame(frame);
        }
        loop {
            match within("a message from the relay", self.ws.next()).await {
                Some(Ok(Message::Binary(bytes))) => match decode(&bytes).unwrap() {
                    Frame::Ping { .. } => continue,
                    frame => return Incoming::Frame(frame),
                },
                Some(Ok(Message::Close(frame))) => {
                    return Incoming::Closed(frame.map(|f| u16::from(f.code)))
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Incoming::Closed(None),
            }
        }
    }

    /// The next frame; panics on a close.
    pub async fn frame(&mut self) -> Frame {
        match self.recv().await {
            Incoming::Frame(frame) => frame,
            Incoming::Closed(code) => panic!("the relay closed ({code:?}) instead of sending"),
        }
    }

    /// The first frame `wanted` accepts; frames read before it are kept for later.
    pub async fn frame_where(&mut self, wanted: impl Fn(&Frame) -> bool) -> Frame {
        if let Some(at) = self.pending.iter().position(&wanted) {
            return self.pending.remove(at).unwrap();
        }
        loop {
            let frame = match self.recv_unbuffered().await {
                Incoming::Frame(frame) => frame,
                Incoming::Closed(code) => panic!("the relay closed ({code:?}) while waiting"),
            };
            if wanted(&frame) {
                return frame;
            }
            self.pending.push_back(frame);
        }
    }

    async fn recv_unbuffered(&mut self) -> Incoming {
        let pending = std::mem::take(&mut self.pending);
        let incoming = self.recv().await;
        self.pending = pending;
        incoming
    }

    /// Expects `Error { code }` then a close with `close_code`.
    pub async fn expect_error(&mut self, code: holdfast_protocol::ErrorCode, close_code: u16) {
        match self.frame().await {
            Frame::Error { code: got, .. } => assert_eq!(got, code),
            other => panic!("expected an error frame, got {other:?}"),
        }
        assert_eq!(self.recv().await, Incoming::Closed(Some(close_code)));
    }
}
