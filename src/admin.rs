//! The plain-HTTP admin port: `/healthz` (the process answers), `/readyz` (a policy snapshot
//! has been loaded, so admission decisions are meaningful) and `/metrics` (Prometheus).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;
use crate::policy::handle::SnapshotHandle;

#[derive(Clone)]
struct AdminState {
    snapshot: SnapshotHandle,
    metrics: Metrics,
}

pub fn router(snapshot: SnapshotHandle, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AdminState { snapshot, metrics })
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    if state.snapshot.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the first policy snapshot\n",
        )
    }
}

async fn metrics_text(State(state): State<AdminState>) -> impl IntoResponse {
    let snapshot = state.snapshot.load();
    state.metrics.policies.set(snapshot.policies.len() as i64);
    state.metrics.rejected_policies.set(snapshot.rejected.len() as i64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
