//! `holdfast-relay serve` says where it listens in one line, for people and scripts; with
//! port 0 that is the only way to learn the ports, which change on every start.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use holdfast_relay_harness::{listening, relay_bin, TIMEOUT};

/// Starts `serve` on port 0 in `dir`, returns its first line of output, and stops it.
fn first_line(dir: &std::path::Path) -> String {
    let mut child = Command::new(relay_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let line = line.trim_end().to_owned();
    if let Some((ws, http)) = listening(&line) {
        // The addresses are the ones served.
        let health = get(http, "/healthz");
        assert!(
            health.starts_with("HTTP/1.") && health.contains(" 200 "),
            "{health}"
        );
        TcpStream::connect_timeout(&ws, TIMEOUT).unwrap();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    line
}

fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut tcp = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(tcp, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serve_prints_the_urls_it_listens_on_at_every_start() {
    let dir = tempfile::tempdir().unwrap();
    for _start in 0..2 {
        let line = first_line(dir.path());
        let (ws, http) = listening(&line).unwrap_or_else(|| panic!("{line:?}"));
        assert_ne!(ws.port(), 0, "{line}");
        assert_ne!(http.port(), 0, "{line}");
        assert_eq!(
            line,
            format!("listening on ws://{ws}/ (sync) and http://{http}/ (health, metrics)")
        );
    }
}
