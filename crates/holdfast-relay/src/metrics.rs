//! The relay's Prometheus metrics, served as text on `/metrics`.
//!
//! Byte counters come in two kinds. *Wire* bytes are WebSocket message payloads as sent
//! or received (frame header and possibly compressed body). *Plain* bytes are the same
//! frames with their bodies uncompressed: for frames sent, the size `encode_with_stats`
//! reports; for frames received, the content size the zstd frame header declares (the
//! protocol's encoder always writes it), or the wire size for an uncompressed frame or
//! a compressed one that declares no size. WebSocket framing and TLS are not counted.

use std::time::Duration;

use holdfast_protocol::{Frame, Outcome, RejectCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Every metric of one relay process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Connections open now (refused ones included while they are turned away).
    pub connections_open: Gauge,
    /// Connections accepted and served.
    pub connections_accepted: Counter,
    /// Connections turned away, by reason (see `server::admission::Refusal`).
    pub connections_refused: Family<ReasonLabel, Counter>,
    /// WebSocket messages received.
    pub frames_received: Counter,
    /// Frames sent.
    pub frames_sent: Counter,
    /// Bytes received, as on the wire.
    pub wire_bytes_received: Counter,
    /// Bytes sent, as on the wire.
    pub wire_bytes_sent: Counter,
    /// Bytes received, bodies uncompressed.
    pub plain_bytes_received: Counter,
    /// Bytes sent, bodies uncompressed.
    pub plain_bytes_sent: Counter,
    /// Pushed entries by outcome: `stored`, `duplicate`, `rejected`.
    pub push_entries: Family<OutcomeLabel, Counter>,
    /// Time a `LogStore::store` call took, durable commit included.
    pub commit_seconds: Histogram,
    /// Time from a store returning to its entries entering a subscriber's send queue.
    pub fanout_seconds: Histogram,
    /// Connections dropped because they did not read fast enough.
    pub slow_consumers: Counter,
}

/// The `reason` label of [`Metrics::connections_refused`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why the connection was turned away.
    pub reason: &'static str,
}

/// The `outcome` label of [`Metrics::push_entries`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `stored`, `duplicate`, `rejected` (by the log store), or refused before storage:
    /// `forbidden` (no write grant) and `rate_limited` (the push rate).
    pub outcome: &'static str,
}

impl Metrics {
    /// Every metric at zero, registered under the prefix `holdfast_relay`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("holdfast_relay");
        let connections_open = Gauge::default();
        let connections_accepted = Counter::default();
        let connections_refused = Family::<ReasonLabel, Counter>::default();
        for reason in crate::server::Refusal::ALL {
            // Every reason shows, at 0, before its first refusal.
            connections_refused
                .get_or_create(&ReasonLabel {
                    reason: reason.label(),
                })
                .get();
        }
        let frames_received = Counter::default();
        let frames_sent = Counter::default();
        let wire_bytes_received = Counter::default();
        let wire_bytes_sent = Counter::default();
        let plain_bytes_received = Counter::default();
        let plain_bytes_sent = Counter::default();
        let push_entries = Family::<OutcomeLabel, Counter>::default();
        // 100 µs to about 13 s.
        let commit_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        // 10 µs to about 1.3 s.
        let fanout_seconds = Histogram::new(exponential_buckets(0.00001, 2.0, 18));
        let slow_consumers = Counter::default();

        let r = &mut registry;
        r.register(
            "connections_open",
            "WebSocket connections open now",
            connections_open.clone(),
        );
        r.register(
            "connections_accepted",
            "WebSocket connections accepted and served",
            connections_accepted.clone(),
        );
        r.register(
            "connections_refused",
            "Connections turned away, by reason",
            connections_refused.clone(),
        );
        r.register(
            "frames_received",
            "WebSocket messages received",
            frames_received.clone(),
        );
        r.register("frames_sent", "Frames sent", frames_sent.clone());
        r.register(
            "wire_bytes_received",
            "Frame bytes received, as on the wire",
            wire_bytes_received.clone(),
        );
        r.register(
            "wire_bytes_sent",
            "Frame bytes sent, as on the wire",
            wire_bytes_sent.clone(),
        );
        r.register(
            "plain_bytes_received",
            "Frame bytes received, bodies uncompressed",
            plain_bytes_received.clone(),
        );
        r.register(
            "plain_bytes_sent",
            "Frame bytes sent, bodies uncompressed",
            plain_bytes_sent.clone(),
        );
        r.register(
            "push_entries",
            "Pushed entries by outcome",
            push_entries.clone(),
        );
        r.register(
            "commit_seconds",
            "Time a store call took, durable commit included",
            commit_seconds.clone(),
        );
        r.register(
            "fanout_seconds",
            "Time from a durable store to its entries entering a subscriber's send queue",
            fanout_seconds.clone(),
        );
        r.register(
            "slow_consumers",
            "Connections dropped because they did not read fast enough",
            slow_consumers.clone(),
        );
        Self {
            registry,
            connections_open,
            connections_accepted,
            connections_refused,
            frames_received,
            frames_sent,
            wire_bytes_received,
            wire_bytes_sent,
            plain_bytes_received,
            plain_bytes_sent,
            push_entries,
            commit_seconds,
            fanout_seconds,
            slow_consumers,
        }
    }

    /// Counts one pushed entry's outcome.
    pub fn push_entry(&self, outcome: &'static str) {
        self.push_entries
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// Counts the entries an outgoing `frame` refuses before storage: the session answers
    /// those itself (no write grant, the push rate), so they never reach the log store,
    /// which counts the rest.
    pub(crate) fn refused_before_storage(&self, frame: &Frame) {
        let Frame::Ack { results } = frame else {
            return;
        };
        for result in results {
            let outcome = match &result.outcome {
                Outcome::Rejected {
                    code: RejectCode::Forbidden { .. },
                    ..
                } => "forbidden",
                Outcome::Rejected {
                    code: RejectCode::RateLimited { .. },
                    ..
                } => "rate_limited",
                _ => continue,
            };
            self.push_entry(outcome);
        }
    }

    /// Counts one connection turned away for `reason`.
    pub fn refused(&self, reason: &'static str) {
        self.connections_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Counts one frame received of `wire` bytes.
    pub fn received(&self, wire: &[u8]) {
        self.frames_received.inc();
        self.wire_bytes_received.inc_by(wire.len() as u64);
        self.plain_bytes_received
            .inc_by(holdfast_protocol::plain_bytes(wire) as u64);
    }

    /// Counts one frame sent.
    pub fn sent(&self, wire_bytes: usize, plain_bytes: usize) {
        self.frames_sent.inc();
        self.wire_bytes_sent.inc_by(wire_bytes as u64);
        self.plain_bytes_sent.inc_by(plain_bytes as u64);
    }

    /// Records a duration in a histogram, in seconds.
    pub fn observe(histogram: &Histogram, elapsed: Duration) {
        histogram.observe(elapsed.as_secs_f64());
    }

    /// Every metric in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
