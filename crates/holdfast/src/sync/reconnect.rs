//! What to do when a connection is lost: one policy, without I/O, for the live worker,
//! `sync_once` and the deterministic simulation, so the simulation checks the policy the
//! worker runs.
//!
//! [`Reconnect::on_lost`] takes the [`Lost`] a connection ended with and answers a
//! [`Next`]:
//!
//! 1. A connection that was welcomed and stayed up long enough (`Lost::healthy`) resets
//!    the backoff: its failure is news, not one more in a run.
//! 2. A space the relay refused to let this device read (a revoked grant) stops being
//!    synced; if others are left, the worker reconnects at once with them.
//! 3. A permanent refusal (a bad token, a version the relay does not speak) stops the
//!    worker until the user acts ([`Reconnect::user_acted`]).
//! 4. Anything else waits a capped exponential backoff with full jitter, at least what the
//!    relay asked for (`retry_after`).

use std::time::Duration;

use holdfast_protocol::SpaceId;

use super::backoff::Backoff;
use super::driver::Lost;

#[cfg(test)]
mod tests;

/// What to do after a lost connection. Not `#[non_exhaustive]`: a caller must carry out
/// every kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Connect again after this long (zero: at once).
    Reconnect(Duration),
    /// Do not connect until the user acts: reconnecting cannot help.
    Stop,
}

/// The reconnect policy of one worker; see the [module](self).
#[derive(Clone, Debug)]
pub struct Reconnect {
    backoff: Backoff,
}

impl Reconnect {
    /// Backoff delays between `delay_min` and `delay_max`.
    pub fn new(delay_min: Duration, delay_max: Duration) -> Self {
        Self {
            backoff: Backoff::new(delay_min, delay_max),
        }
    }

    /// The connection ended with `lost`. `refuse` stops syncing the space the relay
    /// refused, if any, and says whether any space is left to sync. `random` gives 64
    /// random bits for the jitter, called only when there is a delay to draw.
    pub fn on_lost(
        &mut self,
        lost: &Lost,
        random: impl FnOnce() -> u64,
        refuse: impl FnOnce(&SpaceId) -> bool,
    ) -> Next {
        if lost.healthy {
            self.backoff.reset();
        }
        if let Some(space) = &lost.refused_space {
            if refuse(space) {
                self.backoff.reset();
                return Next::Reconnect(Duration::ZERO);
            }
        }
        if lost.permanent {
            self.backoff.reset();
            return Next::Stop;
        }
        let delay = self.backoff.next_delay(random());
        Next::Reconnect(delay.max(lost.retry_after.unwrap_or_default()))
    }

    /// The user retried, resumed, or the worker waited out a pause: the backoff starts
    /// again from its shortest delay.
    pub fn user_acted(&mut self) {
        self.backoff.reset();
    }
}
