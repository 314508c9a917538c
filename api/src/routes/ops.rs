//! Health, readiness (stores reachable, projection lag) and Prometheus metrics.

use crate::app::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Projections further behind than this make the process not ready.
const MAX_READY_LAG_SECONDS: f64 = 30.0;

#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200)))]
pub async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200), (status = 503)))]
pub async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    let store_ok = app.store.ping().await;
    let read_ok = app.projections.db().ping().await;
    let projections = app.projections.status().await;
    let lag_ok = projections
        .as_ref()
        .is_ok_and(|ps| ps.iter().all(|p| p.lag_seconds < MAX_READY_LAG_SECONDS));
    let ready = store_ok && read_ok && lag_ok;
    let body = serde_json::json!({
        "ready": ready,
        "event_store": { "backend": app.store.backend_name(), "ok": store_ok },
        "read_models": { "ok": read_ok },
        "projections": projections.ok(),
    });
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        axum::Json(body),
    )
}

#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let mut out = app.metrics.render();
    if let Ok(statuses) = app.projections.status().await {
        out.push_str(&crate::metrics::projection_gauges(&statuses));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
