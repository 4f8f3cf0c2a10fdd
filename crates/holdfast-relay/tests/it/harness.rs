//! Runs the real `holdfast-relay` binary in a temporary directory and talks to it as a
//! device would: raw frames over a WebSocket, and plain HTTP to the operations endpoints.
//! Every wait has a timeout, so a hang fails the test instead of blocking it.

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, SystemTime};

use futures_util::{SinkExt, StreamExt};
use holdfast_protocol::{
    decode, encode, ChangeEntry, Cursor, DeviceId, EventId, Frame, Outcome, PushEntry, SpaceCursor,
    SpaceId, Token,
};
use holdfast_relay::config::SECRET_FILE_DEFAULT;
use holdfast_relay::{mint_token, RoleClaim, Secret, TokenRequest};
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
        // "listening on ws://ADDR/ (sync) and http://ADDR/ (health, metrics)"
        let addr = |scheme: &str| -> SocketAddr {
            let field = line
                .split_whitespace()
                .find_map(|word| word.strip_prefix(scheme)?.strip_suffix('/'))
                .unwrap_or_else(|| panic!("no {scheme} in {line:?}"));
            field.parse().unwrap()
        };
        let tls = line.contains(" wss://");
        let (ws, http) = (addr(if tls { "wss://" } else { "ws://" }), addr("http://"));
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
            closed: None,
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

    /// Sends SIGKILL and waits: the process ends at once and runs no shutdown code, as in
    /// a crash (the kernel keeps what was written, as it does when a process crashes).
    pub async fn kill(&mut self) -> ExitStatus {
        let pid = self.child.id().expect("the relay is running") as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        let status = self.exit().await;
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "{status:?}"
        );
        status
    }

    /// Kills the relay with SIGKILL and starts another on the same directory (its data
    /// file and secret) with `args`, on new ports.
    pub async fn crash_and_restart(mut self, args: &[&str]) -> Relay {
        self.kill().await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        drop(self);
        Relay::start_in(dir, args).await
    }

    /// The secret the relay signs and checks tokens with.
    pub fn secret(&self) -> Secret {
        Secret::load(&self.dir.path().join(SECRET_FILE_DEFAULT)).expect("the relay's secret")
    }

    /// A token signed with `secret`, minted at `minted` and valid for `ttl`, granting
    /// `spaces` like `("team", RoleClaim::Write)`.
    pub fn token_signed(
        secret: &Secret,
        spaces: &[(&str, RoleClaim)],
        minted: SystemTime,
        ttl: Duration,
    ) -> String {
        let request = TokenRequest {
            subject: "test-device".into(),
            spaces: spaces
                .iter()
                .map(|(space, role)| (SpaceId::new(*space).unwrap(), *role))
                .collect(),
            not_before: None,
            ttl,
        };
        mint_token(secret, &request, minted).expect("a token")
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
    /// Frames read while waiting for another kind, with the bytes of their message.
    pending: VecDeque<(Frame, Vec<u8>)>,
    /// The code of the relay's close frame, once it came.
    closed: Option<u16>,
}

impl Peer {
    pub async fn send(&mut self, frame: &Frame) {
        let bytes = encode(frame).unwrap();
        self.send_raw(Message::Binary(bytes.into())).await;
    }

    pub async fn send_raw(&mut self, message: Message) {
        within("a send", self.ws.send(message)).await.unwrap();
    }

    /// Writes `messages` back to back, reading meanwhile (as a device reading its socket
    /// all the time would); what is read is kept for the next reads.
    pub async fn send_burst(&mut self, messages: Vec<Message>) {
        let (mut sink, mut stream) = (&mut self.ws).split();
        let mut read = Vec::new();
        let sending = async {
            for message in messages {
                sink.feed(message).await?;
            }
            sink.flush().await
        };
        tokio::pin!(sending);
        within("a burst to be written", async {
            loop {
                tokio::select! {
                    sent = &mut sending => break sent.unwrap(),
                    Some(message) = stream.next() => read.push(message),
                }
            }
        })
        .await;
        for message in read {
            match message {
                Ok(Message::Binary(bytes)) => match decode(&bytes).unwrap() {
                    Frame::Ping { .. } => {}
                    frame => self.pending.push_back((frame, bytes.to_vec())),
                },
                Ok(Message::Close(frame)) => self.closed = frame.map(|f| u16::from(f.code)),
                _ => {}
            }
        }
    }

    /// Sends `Ping { nonce }` and expects its `Pong` as the next frame: the connection is
    /// served.
    pub async fn answers_ping(&mut self, nonce: u64) {
        self.send(&Frame::Ping { nonce }).await;
        assert_eq!(self.frame().await, Frame::Pong { nonce });
    }

    /// Sends `Hello` and returns the answer.
    pub async fn hello(&mut self, token: &str, spaces: &[&SpaceId]) -> Frame {
        self.send(&hello(token, spaces)).await;
        self.frame().await
    }

    /// The next frame or the close, skipping pings.
    pub async fn recv(&mut self) -> Incoming {
        match self.recv_with_bytes().await {
            Some((frame, _)) => Incoming::Frame(frame),
            None => Incoming::Closed(self.closed),
        }
    }

    /// The next frame; panics on a close.
    pub async fn frame(&mut self) -> Frame {
        self.recv_raw().await.0
    }

    /// The next frame with the exact bytes of the WebSocket message that carried it;
    /// panics on a close.
    pub async fn recv_raw(&mut self) -> (Frame, Vec<u8>) {
        match self.recv_with_bytes().await {
            Some(received) => received,
            None => panic!("the relay closed ({:?}) instead of sending", self.closed),
        }
    }

    /// The first frame `wanted` accepts; frames read before it are kept for later.
    pub async fn frame_where(&mut self, wanted: impl Fn(&Frame) -> bool) -> Frame {
        self.raw_where(wanted).await.0
    }

    /// The first frame `wanted` accepts, with the bytes of its message; frames read before
    /// it are kept for later.
    pub async fn raw_where(&mut self, wanted: impl Fn(&Frame) -> bool) -> (Frame, Vec<u8>) {
        if let Some(at) = self.pending.iter().position(|(frame, _)| wanted(frame)) {
            return self.pending.remove(at).unwrap();
        }
        loop {
            let Some((frame, bytes)) = self.read().await else {
                panic!("the relay closed ({:?}) while waiting", self.closed);
            };
            if wanted(&frame) {
                return (frame, bytes);
            }
            self.pending.push_back((frame, bytes));
        }
    }

    /// Every frame until the relay closes, and the close code.
    pub async fn frames_until_close(&mut self) -> (Vec<Frame>, Option<u16>) {
        let mut frames = Vec::new();
        loop {
            match self.recv().await {
                Incoming::Frame(frame) => frames.push(frame),
                Incoming::Closed(code) => return (frames, code),
            }
        }
    }

    /// Expects `Error { code }` then a close with `close_code`.
    pub async fn expect_error(&mut self, code: holdfast_protocol::ErrorCode, close_code: u16) {
        match self.frame().await {
            Frame::Error { code: got, .. } => assert_eq!(got, code),
            other => panic!("expected an error frame, got {other:?}"),
        }
        assert_eq!(self.recv().await, Incoming::Closed(Some(close_code)));
    }

    /// Pushes `entries` in one `Push` and waits for its `Ack`: the outcomes, checked to
    /// answer the entries one for one and in order, and the bytes of the ack's message.
    pub async fn push(&mut self, entries: &[PushEntry]) -> (Vec<Outcome>, Vec<u8>) {
        let push = Frame::Push {
            entries: entries.to_vec(),
        };
        self.send(&push).await;
        let (ack, bytes) = self.raw_where(|f| matches!(f, Frame::Ack { .. })).await;
        let Frame::Ack { results } = ack else {
            unreachable!()
        };
        let answered: Vec<EventId> = results.iter().map(|r| r.event_id).collect();
        let pushed: Vec<EventId> = entries.iter().map(|e| e.event_id).collect();
        assert_eq!(answered, pushed, "one result per entry, in order");
        (results.into_iter().map(|r| r.outcome).collect(), bytes)
    }

    /// Sends `Pull` and returns its answer (`Changes` or `Resync`) with the bytes of its
    /// message. Only for a connection subscribed to no space, where no `Changes` arrive
    /// unasked.
    pub async fn pull(
        &mut self,
        space: &SpaceId,
        cursor: Cursor,
        max_bytes: u64,
    ) -> (Frame, Vec<u8>) {
        let pull = Frame::Pull {
            space: space.clone(),
            cursor,
            max_bytes,
        };
        self.send(&pull).await;
        self.raw_where(|f| matches!(f, Frame::Changes { .. } | Frame::Resync { .. }))
            .await
    }

    /// Every entry of `space` after `cursor`, pulling page by page until the log ends
    /// (see [`Peer::pull`]).
    pub async fn pull_all(&mut self, space: &SpaceId, cursor: Cursor) -> Vec<ChangeEntry> {
        let mut all = Vec::new();
        let mut cursor = cursor;
        loop {
            match self.pull(space, cursor, 1 << 20).await.0 {
                Frame::Changes {
                    space: pulled,
                    entries,
                    next_cursor,
                    more,
                } => {
                    assert_eq!(&pulled, space);
                    all.extend(entries);
                    cursor = next_cursor;
                    if !more {
                        return all;
                    }
                }
                other => panic!("expected changes, got {other:?}"),
            }
        }
    }

    async fn recv_with_bytes(&mut self) -> Option<(Frame, Vec<u8>)> {
        match self.pending.pop_front() {
            Some(received) => Some(received),
            None => self.read().await,
        }
    }

    /// The next frame from the socket, skipping pings; `None` once the relay closed.
    async fn read(&mut self) -> Option<(Frame, Vec<u8>)> {
        loop {
            match within("a message from the relay", self.ws.next()).await {
                Some(Ok(Message::Binary(bytes))) => match decode(&bytes).unwrap() {
                    Frame::Ping { .. } => continue,
                    frame => return Some((frame, bytes.to_vec())),
                },
                Some(Ok(Message::Close(frame))) => {
                    self.closed = frame.map(|f| u16::from(f.code));
                    return None;
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}

/// A `Hello` of a new device with `token`, naming `spaces` as never pulled.
pub fn hello(token: &str, spaces: &[&SpaceId]) -> Frame {
    Frame::Hello {
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
    }
}
