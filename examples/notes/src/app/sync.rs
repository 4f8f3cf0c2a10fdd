//! The sync actions (the sync panel's controls, retry now) and what the screens say
//! about sync: online or not, the last sync, and what is wrong in plain words.

use anyhow::Context;
use holdfast::{ConnectionState, SyncState};

use super::{App, Screen, NO_RELAY};
use crate::model;

impl App {
    /// Shows the sync panel, or goes back from it.
    pub fn toggle_sync_panel(&mut self) -> anyhow::Result<()> {
        if self.screen == Screen::Sync {
            self.go_back(self.sync_back);
        } else {
            self.sync_back = self.screen;
            self.screen = Screen::Sync;
            self.outbox_scroll = 0;
            self.refresh()?;
        }
        Ok(())
    }

    /// Retries sync now, changes that failed for good included.
    pub fn retry_now(&mut self) -> anyhow::Result<()> {
        match &self.link {
            Some(link) => {
                link.retry_now().context("Retrying failed")?;
                self.message = Some("Trying to sync now.".into());
            }
            None => self.message = Some(NO_RELAY.into()),
        }
        self.refresh()
    }

    /// Pauses sync, or resumes it.
    pub fn toggle_pause(&mut self) -> anyhow::Result<()> {
        let Some(link) = &mut self.link else {
            self.message = Some(NO_RELAY.into());
            return Ok(());
        };
        link.toggle_pause();
        self.message = Some(if link.paused() {
            "Sync is paused: changes are saved on this device and wait.".into()
        } else {
            "Sync resumed.".into()
        });
        self.refresh()
    }

    /// Simulates being offline, or goes back online (see `sync_link`).
    pub fn toggle_offline(&mut self) -> anyhow::Result<()> {
        let Some(link) = &mut self.link else {
            self.message = Some(NO_RELAY.into());
            return Ok(());
        };
        if let Err(e) = link.toggle_offline() {
            self.message = Some(format!("The sync worker could not restart: {e}."));
            return self.refresh();
        }
        self.message = Some(if link.simulated_offline() {
            "Offline (simulated): the sync server cannot be reached until you press o again.".into()
        } else {
            "Back online: sending what was saved meanwhile.".into()
        });
        self.refresh()
    }

    /// Whether the device is connected to the relay now.
    pub fn online(&self) -> bool {
        matches!(
            self.status.as_ref().map(|s| &s.connection),
            Some(ConnectionState::Syncing | ConnectionState::Idle)
        )
    }

    /// The latest time this device was in sync with the relay, as far as it knows: now,
    /// while it is connected with nothing left to send or receive.
    pub fn last_synced_ms(&self) -> Option<i64> {
        let status = self.status.as_ref();
        let idle = status.is_some_and(|s| s.is_idle());
        if idle && self.summary.pending == 0 && self.summary.failed == 0 {
            return Some(self.now_ms());
        }
        let caught_up = status.and_then(|s| s.last_caught_up_ms);
        self.summary.last_synced_ms.max(caught_up)
    }

    /// What is wrong with sync, in plain words, when something is; `None` when all is well
    /// or sync is paused on purpose.
    pub fn sync_problem(&self) -> Option<String> {
        if let Some(status) = &self.status {
            if let ConnectionState::Offline { reason, permanent } = &status.connection {
                if !status.paused {
                    let mut line = format!("Can't sync: {reason}.");
                    if let Some(at) = status.next_retry_ms.filter(|_| !permanent) {
                        line += &format!(" Trying again {}.", model::until(self.now_ms(), at));
                    }
                    return Some(line);
                }
            }
        }
        let failed = self.notes.iter().find_map(|n| match &n.sync {
            SyncState::Failed { reason, .. } => Some(reason.clone()),
            _ => None,
        });
        if self.summary.failed > 0 {
            let what = model::count(self.summary.failed, "change");
            let why = failed.unwrap_or_else(|| "the sync server refused it".into());
            return Some(format!("{what} could not be sent: {why}."));
        }
        None
    }
}
