//! Analysts' reads of the log (role analyst or auditor): NDJSON from any position, streamed in
//! constant memory, and a live tail over Server-Sent Events.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Caller, LastEventId, Query};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use cinelog_domain::values::Role;
use cinelog_projections::analyst::LogFilter;
use cinelog_projections::analyst_streams;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use utoipa::IntoParams;

/// Most events one NDJSON answer carries; continue with `after`.
pub const MAX_LIMIT: i64 = 100_000;
const DEFAULT_LIMIT: i64 = 1_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/events", get(export))
        .route("/api/events/live", get(live))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ExportParams {
    /// Continue after this global position (the last line's `position`); absent or 0: from the start.
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// At most this many events (default 1000, at most 100000).
    #[param(minimum = 1, maximum = 100000)]
    pub limit: Option<i64>,
    /// Only this stream type (`user`, `account`, `subscription`, `viewing`, …).
    pub stream_type: Option<String>,
    /// Only this event type (`UserRegistered`, `PlaybackStarted`, …).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Only events recorded at or after this time (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only events recorded before this time (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct LiveParams {
    /// Start after this position; the `Last-Event-ID` header, when sent, wins.
    #[param(minimum = 0)]
    pub after: Option<i64>,
    pub stream_type: Option<String>,
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
}

/// The log as NDJSON, one envelope per line, in log order.
#[utoipa::path(get, path = "/api/events", tag = "analysts", params(ExportParams),
    responses((status = 200, description = "one envelope per line, in log order", content_type = "application/x-ndjson", body = String),
        (status = 403, body = ErrorBody), (status = 422, description = "limit out of range, or an unknown position", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<ExportParams>,
) -> ApiResult<Response> {
    caller.require(Role::Analyst)?;
    let (after, filter, limit) = q.parse()?;
    let reader = app.analyst_log.clone();
    let start = reader.start_after(after).await?;
    record(
        &app,
        &caller,
        "events.export",
        &filter,
        start.position,
        Some(limit),
    )
    .await?;
    let lines = analyst_streams::ndjson(reader, start, filter, limit);
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(lines),
    )
        .into_response())
}

impl ExportParams {
    /// Where the export starts, what it keeps, and how many events at most.
    fn parse(self) -> ApiResult<(i64, LogFilter, i64)> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("must be 1 to {MAX_LIMIT}"),
            ));
        }
        let filter = LogFilter {
            stream_type: self.stream_type,
            event_types: self.event_type.into_iter().collect(),
            from: self.from,
            to: self.to,
        };
        Ok((self.after.unwrap_or(0), filter, limit))
    }
}

/// The log as Server-Sent Events: catch up, then follow. `id:` is the position, `event:` the
/// event type; `Last-Event-ID` resumes right after the last event seen.
#[utoipa::path(get, path = "/api/events/live", tag = "analysts", params(LiveParams,
        ("Last-Event-ID" = Option<String>, Header, description = "the last position seen; resumes after it")),
    responses((status = 200, description = "server-sent events, one per envelope", content_type = "text/event-stream", body = String),
        (status = 403, body = ErrorBody), (status = 422, description = "an unknown position", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn live(
    State(app): State<AppState>,
    caller: Caller,
    LastEventId(resume): LastEventId,
    Query(q): Query<LiveParams>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    caller.require(Role::Analyst)?;
    let reader = app.analyst_log.clone();
    let start = reader.start_after(resume.or(q.after).unwrap_or(0)).await?;
    let filter = LogFilter {
        stream_type: q.stream_type,
        event_types: q.event_type.into_iter().collect(),
        from: None,
        to: None,
    };
    record(&app, &caller, "events.live", &filter, start.position, None).await?;
    // Subscribed before catching up, so no batch falls between the two.
    let feed = app.live_feed.subscribe().await;
    let events = analyst_streams::tail(reader, filter, start, feed).map(|e| {
        let sse = Event::default().id(e.position.to_string());
        Ok(sse.event(e.event_type).data(e.json))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Records an analyst's read (who, what, filters) in the audited access log.
async fn record(
    app: &AppState,
    caller: &Caller,
    what: &str,
    filter: &LogFilter,
    after: i64,
    limit: Option<i64>,
) -> Result<(), ApiError> {
    let filters = serde_json::json!({
        "after": after,
        "limit": limit,
        "stream_type": filter.stream_type,
        "types": filter.event_types,
        "from": filter.from,
        "to": filter.to,
    });
    Ok(app.history.record(&caller.meta, what, filters).await?)
}
