//! Auditors' view of the log.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Caller, Query};
use axum::Router;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{DateTime, Utc};
use cinelog_domain::values::Role;
use cinelog_infra::history::{AsOf, Cursor};
use cinelog_infra::store::AuditQuery;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/audit/streams/{stream_type}/{stream_id}", get(stream))
        .route(
            "/api/audit/streams/{stream_type}/{stream_id}/state",
            get(state),
        )
        .route("/api/audit/events", get(events))
        .route("/api/audit/trace/{correlation_id}", get(trace))
        .route(
            "/api/audit/accounts/{account_id}/entitlement",
            get(entitlement),
        )
        .route("/api/audit/verify", get(verify))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct EventsParams {
    /// Only events by this actor: `user:<id>`, `system`, `provider:stripe`, `anonymous`.
    pub actor: Option<String>,
    /// Only this event type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    pub stream_type: Option<String>,
    pub stream_id: Option<String>,
    pub correlation_id: Option<Uuid>,
    /// Recorded at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Recorded before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Events per page (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

impl EventsParams {
    /// The store's query and the cursor to continue from, or why the parameters are refused.
    fn into_query(self) -> Result<(AuditQuery, Option<Cursor>), ApiError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
        }
        let cursor = self
            .cursor
            .map(|c| c.parse::<Cursor>())
            .transpose()
            .map_err(|e| ApiError::invalid("cursor", e))?;
        let query = AuditQuery {
            actor: self.actor,
            event_type: self.event_type,
            stream_type: self.stream_type,
            stream_id: self.stream_id,
            correlation_id: self.correlation_id.map(|c| c.to_string()),
            from: self.from,
            to: self.to,
            limit,
            ..Default::default()
        };
        Ok((query, cursor))
    }
}

/// Events matching every filter given, in log order, a page at a time.
#[utoipa::path(get, path = "/api/audit/events", tag = "audit", params(EventsParams),
    responses((status = 200, description = "`{events, next_cursor}`"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn events(
    State(app): State<AppState>,
    caller: Caller,
    Query(p): Query<EventsParams>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Auditor)?;
    let (query, cursor) = p.into_query()?;
    let page = app.history.events(&caller.meta, query, cursor).await?;
    let events = page
        .events
        .iter()
        .map(|e| e.to_value())
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    Ok(axum::Json(serde_json::json!({
        "events": events,
        "next_cursor": page.next_cursor.map(|c| c.to_string()),
    })))
}

/// Everything one request caused, as a causation tree.
#[utoipa::path(get, path = "/api/audit/trace/{correlation_id}", tag = "audit",
    params(("correlation_id" = Uuid, Path)),
    responses((status = 200, description = "`{correlation_id, events, roots}`; each node's `caused` lists what it caused"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn trace(
    State(app): State<AppState>,
    caller: Caller,
    Path(correlation_id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Auditor)?;
    let correlation_id = uuid_param("correlation_id", &correlation_id)?;
    let tree = app.history.trace(&caller.meta, correlation_id).await?;
    if tree["events"] == 0 {
        return Err(ApiError::not_found("correlation"));
    }
    Ok(axum::Json(tree))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct StateParams {
    /// The moment (RFC 3339); events recorded after it are left out.
    pub at: Option<DateTime<Utc>>,
    /// Or a log position; events after it are left out.
    #[param(minimum = 0)]
    pub position: Option<i64>,
}

/// A stream's state as of a moment, folded with its aggregate, with the events used.
#[utoipa::path(get, path = "/api/audit/streams/{stream_type}/{stream_id}/state", tag = "audit",
    params(("stream_type" = String, Path), ("stream_id" = String, Path), StateParams),
    responses((status = 200, description = "`{stream_type, stream_id, as_of, version, state, events}`"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn state(
    State(app): State<AppState>,
    caller: Caller,
    Path((stream_type, stream_id)): Path<(String, String)>,
    Query(p): Query<StateParams>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Auditor)?;
    let at = match (p.at, p.position) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("at", "give `at` or `position`, not both"));
        }
        (Some(t), None) => AsOf::Time(t),
        (None, Some(n)) if n < 0 => {
            return Err(ApiError::invalid("position", "must not be negative"));
        }
        (None, Some(n)) => AsOf::Position(n),
        (None, None) => AsOf::Now,
    };
    let state = app
        .history
        .state(&caller.meta, &stream_type, &stream_id, at)
        .await?;
    Ok(axum::Json(state))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AtParams {
    /// The moment (RFC 3339); now when left out.
    pub at: Option<DateTime<Utc>>,
}

/// Whether an account could watch at a moment, in which quality, and why.
#[utoipa::path(get, path = "/api/audit/accounts/{account_id}/entitlement", tag = "audit",
    params(("account_id" = Uuid, Path), AtParams),
    responses((status = 200, description = "`{entitled, max_quality, plan, status, access_until, why, events}`"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn entitlement(
    State(app): State<AppState>,
    caller: Caller,
    Path(account_id): Path<String>,
    Query(p): Query<AtParams>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Auditor)?;
    let account_id = uuid_param("account_id", &account_id)?;
    let answer = app
        .history
        .entitlement(&caller.meta, account_id, p.at.unwrap_or_else(Utc::now))
        .await?;
    Ok(axum::Json(answer))
}

/// Recomputes every stream's hash chain and checks every signed anchor.
#[utoipa::path(get, path = "/api/audit/verify", tag = "audit",
    responses((status = 200, description = "`{intact, events_checked, streams_checked, anchors_checked, first_broken, broken, public_key}`"), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn verify(State(app): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Auditor)?;
    let report = app.history.verify(&caller.meta).await?;
    Ok(axum::Json(report))
}

/// A UUID from the path, or the JSON error saying it is not one.
fn uuid_param(name: &str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::invalid(name, "must be a UUID"))
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
    app.history
        .stream(&stream_type, &stream_id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("stream"))
}
