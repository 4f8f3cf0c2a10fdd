//! The operations endpoints, plain HTTP on their own address: `GET /healthz` answers
//! `200 ok` while the store answers a read, `503` otherwise; `GET /metrics` gives every
//! metric in the Prometheus (OpenMetrics) text format.
//!
//! The port is guarded like the device port, so that flooding it takes nothing from the
//! devices: at most `http_connections_max` connections are served at once, at most
//! [`HTTP_CONNECTIONS_PER_IP_MAX`] from one address (one more is closed as soon as it is
//! accepted), a request has `http_header_timeout` to send its headers (a slowloris request
//! is closed), and a connection lives at most [`HTTP_CONNECTION_TIME_MAX`].

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use holdfast_protocol::SpaceId;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::{ServerLimits, HEALTH_TIMEOUT};
use crate::metrics::Metrics;
use crate::store::LogStore;

/// The space `/healthz` reads; it is never written, so the read is one empty range.
pub const HEALTH_SPACE: &str = "holdfast.healthz";

/// Most connections to the operations endpoints from one address at once, so one client
/// cannot hold them all (a scraper needs one or two).
pub const HTTP_CONNECTIONS_PER_IP_MAX: usize = 8;

/// Longest time one connection to the operations endpoints is served.
pub const HTTP_CONNECTION_TIME_MAX: Duration = Duration::from_secs(60);

/// What the endpoints read.
#[derive(Clone)]
pub(crate) struct HttpState {
    pub(crate) store: Arc<dyn LogStore>,
    pub(crate) metrics: Arc<Metrics>,
}

/// Serves the endpoints on `listener` until `shutdown` completes, within the connection
/// limit and timeouts of `limits`; connections still open then are closed.
pub(crate) async fn serve(
    listener: TcpListener,
    state: HttpState,
    limits: &ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state);
    let permits = Arc::new(Semaphore::new(limits.http_connections_max));
    let header_timeout = limits.http_header_timeout;
    let mut connections = JoinSet::new();
    let per_ip = Arc::new(Mutex::new(HashMap::new()));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!("could not accept an operations connection: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "operations connection limit reached: closing a connection");
            continue;
        };
        let Some(per_ip) = PerIp::take(&per_ip, peer.ip()) else {
            tracing::debug!(%peer, "operations connections from one address: closing one");
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        connections.spawn(async move {
            let _held = (permit, per_ip);
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(tcp), service);
            match tokio::time::timeout(HTTP_CONNECTION_TIME_MAX, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%peer, "operations connection: {error}"),
                Err(_) => tracing::debug!(%peer, "operations connection open too long: closed"),
            }
        });
    }
    connections.shutdown().await;
    Ok(())
}

/// One connection's place among those of its address, given back when dropped.
struct PerIp {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIp {
    fn take(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr) -> Option<PerIp> {
        let mut held = counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.entry(ip).or_insert(0);
        if *count >= HTTP_CONNECTIONS_PER_IP_MAX {
            return None;
        }
        *count += 1;
        Some(PerIp {
            ip,
            counts: counts.clone(),
        })
    }
}

impl Drop for PerIp {
    fn drop(&mut self) {
        let mut held = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

async fn healthz(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    let space = SpaceId::new(HEALTH_SPACE).expect("a valid space id");
    let read = tokio::task::spawn_blocking(move || state.store.pull(&space, None, 1));
    match tokio::time::timeout(HEALTH_TIMEOUT, read).await {
        Ok(Ok(Ok(_))) => (StatusCode::OK, "ok\n"),
        Ok(Ok(Err(error))) => {
            tracing::warn!("health check: the store failed: {error}");
            (StatusCode::SERVICE_UNAVAILABLE, "store failed\n")
        }
        Ok(Err(_)) => (StatusCode::SERVICE_UNAVAILABLE, "store failed\n"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store did not answer\n"),
    }
}

async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    (
        [(header::CONTENT_TYPE, content_type)],
        state.metrics.encode(),
    )
}
