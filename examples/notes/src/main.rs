//! `notes`: a collaborative notes app in the terminal, on the Holdfast store.
//!
//! Notes live in a redb file on this device and every keystroke is durable before the
//! screen moves on; given a relay, a sync worker shares the space with other devices and
//! their edits appear live. This file only runs the terminal: `app` holds the state and
//! the actions, `ui` draws them, `sync_link` controls the sync worker.

mod app;
mod cli;
mod model;
mod sync_link;
#[cfg(test)]
mod testing;
mod text;
mod ui;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use holdfast::{SpaceId, Store, StoreConfig};
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::DefaultTerminal;

use app::App;
use sync_link::SyncLink;

/// Longest wait for a key before looking at the store again.
const INPUT_WAIT: Duration = Duration::from_millis(40);
/// Longest wait for a store notification in each turn of the loop.
const CHANGES_WAIT: Duration = Duration::from_millis(10);

fn main() -> ExitCode {
    let args = cli::Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("notes: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: cli::Args) -> anyhow::Result<()> {
    let store = Store::open(&args.db, StoreConfig::new(model::schema()))
        .with_context(|| format!("{} could not be opened", args.db.display()))?;
    let space = SpaceId::new(&args.space).context("--space is not a valid space name")?;
    let link = match (&args.relay, &args.token) {
        (Some(url), Some(token)) => Some(SyncLink::start(&store, url, token, space.clone())?),
        _ => None,
    };
    let mut app = App::new(store, space, link)?;
    let mut terminal = ratatui::try_init().context("the terminal could not be set up")?;
    let result = event_loop(&mut terminal, &mut app);
    ratatui::restore();
    result
}

/// Draw, take the keys that came, take the store's notifications, refresh; until quit.
fn event_loop(terminal: &mut DefaultTerminal, app: &mut App) -> anyhow::Result<()> {
    while !app.quit {
        terminal.draw(|frame| ui::draw(frame, app))?;
        if event::poll(INPUT_WAIT)? {
            let mut keys = Vec::new();
            loop {
                if let Event::Key(key) = event::read()? {
                    if key.kind != KeyEventKind::Release {
                        keys.push(key);
                    }
                }
                if !event::poll(Duration::ZERO)? {
                    break;
                }
            }
            app.handle_keys(keys);
        }
        app.poll_changes(CHANGES_WAIT)?;
        app.tick()?;
    }
    Ok(())
}
