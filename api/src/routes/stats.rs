//! Aggregates for the analysts' dashboard (role analyst or auditor), read from the stats and
//! subscriptions read models.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Caller, Query, ReadAt, Stats};
use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use cinelog_domain::values::Role;
use cinelog_projections::stats;
use serde::Deserialize;
use utoipa::IntoParams;

/// The longest window a dashboard shows.
pub const MAX_DAYS: i64 = 366;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/stats/dashboard", get(dashboard))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct Window {
    /// Days up to today (default 14, at most 366).
    #[param(minimum = 1, maximum = 366)]
    pub days: Option<i64>,
    /// Wait until the dashboard includes the event at this position.
    pub min_position: Option<i64>,
}

/// Signups, plays, watch hours, activations and churn per day; active subscriptions by plan,
/// MRR and the churn rate over the window; the most played titles of each day.
#[utoipa::path(get, path = "/api/stats/dashboard", tag = "analysts", params(Window),
    responses((status = 200, description = "the dashboard's aggregates", body = Object),
        (status = 403, body = ErrorBody), (status = 422, description = "days out of range", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn dashboard(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<Window>,
    _: ReadAt<Stats>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Analyst)?;
    let days = q.days.unwrap_or(14);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ApiError::invalid(
            "days",
            format!("must be 1 to {MAX_DAYS}"),
        ));
    }
    Ok(axum::Json(
        stats::dashboard(app.projections.db(), app.clock.now(), days).await?,
    ))
}
