//! A program running in a pseudo-terminal, its screen kept by a terminal emulator
//! (vt100) from everything it writes, and keys typed into it. Every wait has a deadline
//! and fails with the screen as it was.

use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{native_pty_system, Child, CommandBuilder, MasterPty, PtySize};

/// How long a wait for the screen may take.
pub const WAIT_MAX: Duration = Duration::from_secs(45);

const ROWS: u16 = 24;
const COLS: u16 = 100;

/// A program in a pseudo-terminal; killed when dropped.
pub struct Term {
    name: String,
    child: Box<dyn Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    screen: Arc<Mutex<vt100::Parser>>,
    _master: Box<dyn MasterPty + Send>,
}

impl Term {
    /// Starts `program` with `args` in `dir`, in a 100×24 terminal.
    pub fn spawn(name: &str, program: &Path, args: &[&str], dir: &Path) -> Term {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("a pseudo-terminal");
        let mut command = CommandBuilder::new(program);
        command.args(args);
        command.cwd(dir);
        command.env("TERM", "xterm-256color");
        let child = pty
            .slave
            .spawn_command(command)
            .expect("the program starts");
        drop(pty.slave);
        let mut reader = pty.master.try_clone_reader().expect("a reader");
        let writer = pty.master.take_writer().expect("a writer");
        let size = |n| NonZeroU16::new(n).expect("not zero");
        let screen = Arc::new(Mutex::new(vt100::Parser::new(size(ROWS), size(COLS), 0)));
        let feed = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            // Ends when the program exits and the terminal closes.
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                feed.lock().expect("the screen").process(&buf[..n]);
            }
        });
        Term {
            name: name.to_owned(),
            child,
            writer,
            screen,
            _master: pty.master,
        }
    }

    /// The screen's text, rows joined by newlines.
    pub fn screen(&self) -> String {
        self.screen.lock().expect("the screen").screen().contents()
    }

    /// Types `keys` (raw bytes: "\r" is Enter, "\x11" is Ctrl-Q).
    pub fn send(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).expect("typing");
        self.writer.flush().expect("typing");
    }

    /// Waits until the screen shows `text`.
    #[track_caller]
    pub fn wait_for(&self, text: &str) {
        self.wait_until(&format!("{text:?}"), |screen| screen.contains(text));
    }

    /// Waits until `ok` holds for the screen's text.
    #[track_caller]
    pub fn wait_until(&self, what: &str, ok: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + WAIT_MAX;
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: no {what} within {WAIT_MAX:?}; the screen:\n{screen}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits for the program to exit; true if it exited successfully.
    pub fn wait_exit(&mut self) -> bool {
        let deadline = Instant::now() + WAIT_MAX;
        loop {
            if let Some(status) = self.child.try_wait().expect("the program's status") {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit; the screen:\n{}",
                self.name,
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
