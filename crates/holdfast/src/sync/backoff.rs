//! Capped exponential backoff with full jitter, for reconnecting and for retrying pushes
//! the relay refused for now.

use std::time::Duration;

/// Shortest wait before reconnecting, the first time.
pub const RECONNECT_DELAY_MIN: Duration = Duration::from_secs(1);

/// Longest wait before reconnecting, however many attempts failed.
pub const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(5 * 60);

/// A connection that was welcomed and stayed up this long was healthy: the next failure
/// starts the backoff from [`RECONNECT_DELAY_MIN`] again.
pub const HEALTHY_SESSION_MIN: Duration = Duration::from_secs(30);

/// Shortest wait before resending entries the relay refused for now (not rate limited).
pub const PUSH_RETRY_DELAY_MIN: Duration = Duration::from_millis(500);

/// Longest wait before resending entries the relay refused for now.
pub const PUSH_RETRY_DELAY_MAX: Duration = Duration::from_secs(60);

/// Capped exponential backoff with full jitter: attempts counted since the last success,
/// and the delay bounds. The worker's reconnect and push-retry delays.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempts: u32,
}

impl Backoff {
    /// Delays between `min` and `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            attempts: 0,
        }
    }

    /// The wait before the next attempt: uniformly random ("full jitter") between zero and
    /// `min · 2^attempts`, capped at `max`, and at least a millisecond so a loop of
    /// failures never spins. `random` is any 64 random bits.
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let ceiling = self.ceiling();
        self.attempts = self.attempts.saturating_add(1);
        let ceiling_us = ceiling.as_micros().min(u128::from(u64::MAX)) as u64;
        let jittered = if ceiling_us == 0 {
            0
        } else {
            random % (ceiling_us + 1)
        };
        Duration::from_micros(jittered).max(Duration::from_millis(1))
    }

    /// The cap of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempts.min(31)).unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// After a success: the next delay is drawn below `min` again.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }
}

/// 64 random bits for the jitter (from the OS, through a v4 UUID).
pub(crate) fn random() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

#[cfg(test)]
mod tests;
