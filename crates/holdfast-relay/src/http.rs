//! The operations endpoints, plain HTTP on their own address: `GET /healthz` answers
//! `200 ok` while the store answers a read, `503` otherwise; `GET /metrics` gives every
//! metric in the Prometheus (OpenMetrics) text format.

use std::future::Future;
use std::io;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use holdfast_protocol::SpaceId;
use tokio::net::TcpListener;

use crate::config::HEALTH_TIMEOUT;
use crate::metrics::Metrics;
use crate::store::LogStore;

/// The space `/healthz` reads; it is never written, so the read is one empty range.
pub const HEALTH_SPACE: &str = "holdfast.healthz";

/// What the endpoints read.
#[derive(Clone)]
pub(crate) struct HttpState {
    pub(crate) store: Arc<dyn LogStore>,
    pub(crate) metrics: Arc<Metrics>,
}

/// Serves the endpoints on `listener` until `shutdown` completes.
pub(crate) async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
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
