//! The command line: where the notes live, which space they are shared in, and the relay.

use std::path::PathBuf;

use clap::Parser;

/// `notes`: a collaborative notes app in the terminal.
#[derive(Debug, Parser)]
#[command(
    name = "notes",
    version,
    about = "Collaborative notes in the terminal, kept on this device with Holdfast",
    long_about = "Collaborative notes in the terminal. Every keystroke is saved on this \
                  device before anything is sent, so the app works fully offline. Given a \
                  relay and a token, it syncs the space with other devices in the \
                  background and shows their edits live.",
    after_help = "Example (two devices sharing the space \"team\" through a local relay):\n  \
        holdfast-relay serve &\n  \
        holdfast-relay token --space team:write     # prints a token: one for each device\n  \
        notes --db a.redb --space team --relay ws://127.0.0.1:7700 --token TOKEN_A\n  \
        notes --db b.redb --space team --relay ws://127.0.0.1:7700 --token TOKEN_B   \
        # in another terminal\n\n\
        Offline only:\n  notes --db notes.redb\n\n\
        Keys: n new note, Enter open, Tab next field, Esc back, Ctrl-S sync panel, \
        Ctrl-R retry now, Ctrl-Q quit. The bottom line of every screen lists its keys."
)]
pub struct Args {
    /// The store file (created if missing).
    #[arg(
        long,
        value_name = "PATH",
        env = "NOTES_DB",
        default_value = "notes.redb"
    )]
    pub db: PathBuf,
    /// The space the notes are shared in: devices syncing the same space see the same notes.
    #[arg(long, value_name = "NAME", default_value = "my-notes")]
    pub space: String,
    /// The relay to sync with, `ws://HOST:PORT` or `wss://HOST:PORT`.
    #[arg(long, value_name = "URL", requires = "token")]
    pub relay: Option<String>,
    /// The token the relay's operator gave you (`holdfast-relay token`).
    #[arg(long, value_name = "T", requires = "relay")]
    pub token: Option<String>,
}
