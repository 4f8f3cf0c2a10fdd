//! The three systems compared, as processes: a server (the `holdfast-relay` binary, the
//! samod sync server child, automerge-repo's node server) behind a byte-counting proxy,
//! and device children that reach it through the proxy.

use std::path::{Path, PathBuf};
use std::process::Command;

use holdfast_relay_harness::Relay;

use super::process::{self, Peer};
use super::proxy::Proxy;

/// A system under comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    /// Holdfast: a store per device, `holdfast-relay`.
    Holdfast,
    /// samod 0.16 repos, a samod sync server.
    Samod,
    /// automerge-repo 2.x on node, its sync server.
    Node,
}

impl System {
    /// Its name in tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            System::Holdfast => "holdfast",
            System::Samod => "samod",
            System::Node => "automerge-repo",
        }
    }
}

/// A running server and the proxy in front of it.
pub struct Server {
    /// Which system.
    pub system: System,
    relay: Option<Relay>,
    peer: Option<Peer>,
    /// The relay's token (Holdfast).
    pub token: String,
    /// Where devices connect.
    pub proxy: Proxy,
}

/// Where the node peer lives (`benches/compare/node`).
pub fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("compare/node")
}

/// Why the node peer cannot run, if it cannot.
pub fn node_missing() -> Option<String> {
    let dir = node_dir();
    if !dir.join("node_modules/@automerge/automerge-repo").exists() {
        return Some(format!(
            "automerge-repo is not installed in {}: run `bash benches/compare/setup.sh`",
            dir.join("node_modules").display()
        ));
    }
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("`node` is not on PATH".into()),
    }
}

impl Server {
    /// Starts `system`'s server with its data in `dir`, and a proxy on `rt`.
    pub fn start(
        system: System,
        dir: &Path,
        rt: &tokio::runtime::Handle,
    ) -> anyhow::Result<Server> {
        std::fs::create_dir_all(dir)?;
        let (relay, peer, addr, token) = match system {
            System::Holdfast => {
                let relay = Relay::start_in(tempfile::tempdir_in(dir)?, &["--push-rate", "0"]);
                let token = relay.token(&[&format!("{}:write", super::device::holdfast_space())]);
                let addr = relay.ws;
                (Some(relay), None, addr, token)
            }
            System::Samod => {
                let mut command = Command::new(std::env::current_exe()?);
                command.args(["child", "samod-server", "--dir"]).arg(dir);
                let mut peer = Peer::spawn("samod server", command)?;
                let addr = peer.listening()?;
                (None, Some(peer), addr, String::new())
            }
            System::Node => {
                let mut command = Command::new("node");
                command.current_dir(node_dir()).arg("server.mjs").arg(dir);
                let mut peer = Peer::spawn("automerge-repo server", command)?;
                let addr = peer.listening()?;
                (None, Some(peer), addr, String::new())
            }
        };
        Ok(Server {
            system,
            relay,
            peer,
            token,
            proxy: Proxy::start(rt, addr)?,
        })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        match (&self.relay, &self.peer) {
            (Some(relay), _) => relay.pid(),
            (_, Some(peer)) => peer.pid(),
            _ => unreachable!("a server is a relay or a peer"),
        }
    }

    /// Resets the server's peak RSS.
    pub fn reset_peak(&self) {
        process::reset_peak(self.pid());
    }

    /// The server's peak RSS since the last reset, in KiB.
    pub fn peak_kib(&self) -> u64 {
        process::rss_kib(self.pid()).map_or(0, |(_, peak)| peak)
    }

    /// The URL devices use (through the proxy).
    pub fn url(&self) -> String {
        format!("ws://{}/", self.proxy.addr)
    }

    /// Starts a device of this system with its data in `dir`; record ids go through `ids`.
    pub fn device(&self, name: &str, dir: &Path, ids: &Path) -> anyhow::Result<Peer> {
        let command = match self.system {
            System::Holdfast | System::Samod => {
                let mut command = Command::new(std::env::current_exe()?);
                command
                    .args(["child", "device", "--system"])
                    .arg(match self.system {
                        System::Holdfast => "holdfast",
                        _ => "samod",
                    })
                    .args(["--url", &self.url(), "--token", &self.token, "--dir"])
                    .arg(dir)
                    .arg("--ids")
                    .arg(ids);
                command
            }
            System::Node => {
                let mut command = Command::new("node");
                command
                    .current_dir(node_dir())
                    .args(["client.mjs", "--url", &self.url(), "--dir"])
                    .arg(dir)
                    .arg("--ids")
                    .arg(ids);
                command
            }
        };
        Peer::spawn(format!("{} {name}", self.system.name()), command)
    }
}
