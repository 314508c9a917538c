//! Analysts' reads of the log (role analyst or auditor): NDJSON from any position, streamed in
//! constant memory, and a live tail over Server-Sent Events.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Caller, Query};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use cinelog_domain::values::Role;
use cinelog_projections::Checkpoint;
use cinelog_projections::analyst::{FeedBatch, LogFilter, ReadError};
use futures::Stream;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;
use utoipa::IntoParams;

/// Most events one NDJSON answer carries; continue with `after`.
pub const MAX_LIMIT: i64 = 100_000;
const DEFAULT_LIMIT: i64 = 1_000;
/// How long the live tail waits for an append before looking again (other processes append too).
const FOLLOW_POLL: Duration = Duration::from_millis(500);

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

fn read_error(e: ReadError) -> ApiError {
    match e {
        ReadError::UnknownPosition(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
            e.to_string(),
        ),
        ReadError::Log(e) => ApiError::internal(e),
    }
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
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be 1 to {MAX_LIMIT}"),
        ));
    }
    let reader = app.analyst_log.clone();
    let start = reader
        .start_after(q.after.unwrap_or(0))
        .await
        .map_err(read_error)?;
    let filter = LogFilter {
        stream_type: q.stream_type,
        event_types: q.event_type.into_iter().collect(),
        from: q.from,
        to: q.to,
    };
    record(
        &app,
        &caller,
        "events.export",
        &filter,
        start.position,
        Some(limit),
    )
    .await?;
    // One batch in memory at a time, however long the answer.
    struct Cursor {
        next: Checkpoint,
        left: i64,
        done: bool,
        erased: HashMap<uuid::Uuid, bool>,
    }
    let cursor = Cursor {
        next: start,
        left: limit,
        done: false,
        erased: HashMap::new(),
    };
    let lines = futures::stream::unfold(cursor, move |mut c| {
        let (reader, filter) = (reader.clone(), filter.clone());
        async move {
            if c.done || c.left <= 0 {
                return None;
            }
            let batch = match reader.next_batch(c.next, &filter, &mut c.erased).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = ?e, "reading the log for an export failed");
                    return Some((
                        Err(std::io::Error::other("log read failed")),
                        Cursor { done: true, ..c },
                    ));
                }
            };
            let mut out = Vec::new();
            for event in batch.events.iter().take(c.left as usize) {
                event.write_json(&mut out).ok()?;
                out.push(b'\n');
                c.left -= 1;
            }
            c.next = batch.next;
            c.done = batch.at_end;
            Some((Ok::<_, std::io::Error>(Bytes::from(out)), c))
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(lines),
    )
        .into_response())
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
    headers: HeaderMap,
    Query(q): Query<LiveParams>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    caller.require(Role::Analyst)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim().parse::<i64>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "Last-Event-ID must be a position",
                )
            })
        })
        .transpose()?;
    let reader = app.analyst_log.clone();
    let start = reader
        .start_after(resume.or(q.after).unwrap_or(0))
        .await
        .map_err(read_error)?;
    let filter = LogFilter {
        stream_type: q.stream_type,
        event_types: q.event_type.into_iter().collect(),
        from: None,
        to: None,
    };
    record(&app, &caller, "events.live", &filter, start.position, None).await?;
    // Subscribed before catching up, so no batch falls between the two.
    let feed = app.live_feed.subscribe().await;
    let events = follow(reader, filter, start, feed);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The live tail after `start`: from the log until it is caught up, then from the shared feed,
/// back to the log whenever it falls behind the feed.
fn follow(
    reader: cinelog_projections::analyst::AnalystLog,
    filter: LogFilter,
    start: Checkpoint,
    feed: tokio::sync::broadcast::Receiver<std::sync::Arc<FeedBatch>>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    struct Tail {
        next: Checkpoint,
        queue: VecDeque<Event>,
        erased: HashMap<uuid::Uuid, bool>,
        feed: tokio::sync::broadcast::Receiver<std::sync::Arc<FeedBatch>>,
        /// Reading the shared feed rather than the log.
        following: bool,
    }
    let tail = Tail {
        next: start,
        queue: VecDeque::new(),
        erased: HashMap::new(),
        feed,
        following: false,
    };
    let sse = |id: i64, name: &str, data: String| {
        Event::default().id(id.to_string()).event(name).data(data)
    };
    futures::stream::unfold(tail, move |mut t| {
        let (reader, filter) = (reader.clone(), filter.clone());
        async move {
            loop {
                if let Some(event) = t.queue.pop_front() {
                    return Some((Ok(event), t));
                }
                if t.following {
                    match t.feed.recv().await {
                        Ok(batch) if batch.to <= t.next => {}
                        // Events between where this follower is and the batch: from the log.
                        Ok(batch) if batch.after > t.next => t.following = false,
                        Ok(batch) => {
                            for e in batch
                                .events
                                .iter()
                                .filter(|e| e.at > t.next && e.matches(&filter))
                            {
                                t.queue.push_back(sse(
                                    e.at.position,
                                    &e.event_type,
                                    e.json.clone(),
                                ));
                            }
                            t.next = batch.to;
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            t.following = false
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                    continue;
                }
                match reader.next_batch(t.next, &filter, &mut t.erased).await {
                    Ok(batch) => {
                        t.next = batch.next;
                        for safe in batch.events {
                            let mut data = Vec::new();
                            safe.write_json(&mut data).ok()?;
                            t.queue.push_back(sse(
                                safe.event.position,
                                &safe.event.event_type,
                                String::from_utf8(data).ok()?,
                            ));
                        }
                        t.following = batch.at_end;
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "live tail read failed; trying again");
                        tokio::time::sleep(FOLLOW_POLL).await;
                    }
                }
            }
        }
    })
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
    app.history
        .record(&caller.meta, what, filters)
        .await
        .map_err(ApiError::internal)
}
