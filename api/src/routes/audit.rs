//! Auditors' view of the log.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Caller;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use cinelog_domain::values::Role;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/audit/streams/{stream_type}/{stream_id}", get(stream))
}

/// A stream's full history, every event with its envelope, and whether its hash chain holds.
#[utoipa::path(get, path = "/api/audit/streams/{stream_type}/{stream_id}", tag = "audit",
    params(("stream_type" = String, Path), ("stream_id" = String, Path)),
    responses((status = 200, description = "events with envelopes"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn stream(
    State(app): State<AppState>,
    caller: Caller,
    Path((stream_type, stream_id)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Auditor)?;
    let events = app
        .store
        .read_stream(&stream_type, &stream_id)
        .await
        .map_err(ApiError::internal)?;
    if events.is_empty() {
        return Err(ApiError::not_found("stream"));
    }
    let mut prev = cinelog_domain::envelope::GENESIS_HASH.to_string();
    let mut chain_intact = true;
    for e in &events {
        chain_intact &= e.meta.prev_hash == prev && e.computed_hash() == e.meta.hash;
        prev = e.meta.hash.clone();
    }
    let version = events.len();
    let mut events = serde_json::to_value(&events).map_err(ApiError::internal)?;
    redact(&mut events);
    Ok(axum::Json(serde_json::json!({
        "stream_type": stream_type,
        "stream_id": stream_id,
        "version": version,
        "chain_intact": chain_intact,
        "events": events,
    })))
}

/// Credentials never leave through the audit API, though the chain is verified over them.
fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "password_hash" {
                    *v = serde_json::Value::String("[redacted]".into());
                } else {
                    redact(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}
