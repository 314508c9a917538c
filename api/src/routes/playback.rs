//! Playback: sessions within the plan's limits, signed and expiring stream URLs, HLS playlists
//! capped at the plan's quality, segments with byte ranges, progress, continue watching, history.
//! The rules live in the playback service; these handlers parse, call it and map its answer.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Caller, Json, MinPosition, OwnProfile, Watching};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cinelog_commands::playback;
use cinelog_infra::media::master_playlist;
use cinelog_projections::watching::{self, ContinueItem, WatchEntry};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/profiles/{pid}/playback", post(start))
        .route("/api/playback/{sid}/heartbeat", post(heartbeat))
        .route("/api/playback/{sid}/stop", post(stop))
        .route(
            "/api/profiles/{pid}/continue-watching",
            get(continue_watching),
        )
        .route("/api/profiles/{pid}/history", get(history))
        .route("/stream/{token}/master.m3u8", get(master))
        .route("/stream/{token}/{rendition}/{file}", get(media_file))
}

#[derive(Deserialize, ToSchema)]
pub struct StartBody {
    pub title_id: String,
    /// For series, e.g. `s1e2`; the first episode if absent.
    pub episode_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Started {
    pub session_id: Uuid,
    /// The title's name, for the player.
    pub title_name: String,
    pub master_playlist_url: String,
    pub resume_position_secs: f64,
    /// Highest height the plan plays, e.g. 1080.
    pub max_quality: u32,
    /// The renditions offered, e.g. ["240p", "480p", "720p", "1080p"].
    pub qualities: Vec<String>,
    pub episode_id: Option<String>,
    pub duration_secs: f64,
    pub position: i64,
}

impl Started {
    /// The session as the player needs it, its stream URL under `base`.
    fn new(s: playback::Started, base: &str) -> Self {
        Started {
            session_id: s.session_id,
            title_name: s.title_name,
            master_playlist_url: format!("{base}/stream/{}/master.m3u8", s.token),
            resume_position_secs: s.resume_position_secs,
            max_quality: s.max_quality,
            qualities: s.qualities,
            episode_id: s.episode_id,
            duration_secs: s.duration_secs,
            position: s.position,
        }
    }
}

#[utoipa::path(post, path = "/api/profiles/{pid}/playback", tag = "playback", request_body = StartBody, params(("pid" = String, Path)),
    responses((status = 201, body = Started), (status = 402, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn start(
    State(app): State<AppState>,
    profile: OwnProfile,
    Json(body): Json<StartBody>,
) -> ApiResult<Response> {
    let OwnProfile { caller, id, .. } = &profile;
    let started = app
        .playback
        .start(
            caller.account_id,
            *id,
            profile.ceiling(),
            &body.title_id,
            body.episode_id,
            &caller.meta,
        )
        .await?;
    let started = Started::new(started, &app.public_base());
    Ok((StatusCode::CREATED, axum::Json(started)).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct ProgressBody {
    pub position_secs: f64,
}

fn parse_session(sid: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(sid).map_err(|_| ApiError::not_found("playback session"))
}

#[utoipa::path(post, path = "/api/playback/{sid}/heartbeat", tag = "playback", request_body = ProgressBody, params(("sid" = String, Path)),
    responses((status = 204), (status = 402, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn heartbeat(
    State(app): State<AppState>,
    caller: Caller,
    Path(sid): Path<String>,
    Json(body): Json<ProgressBody>,
) -> ApiResult<impl IntoResponse> {
    let session = parse_session(&sid)?;
    app.playback
        .heartbeat(caller.account_id, session, body.position_secs, &caller.meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/playback/{sid}/stop", tag = "playback", request_body = ProgressBody, params(("sid" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn stop(
    State(app): State<AppState>,
    caller: Caller,
    Path(sid): Path<String>,
    Json(body): Json<ProgressBody>,
) -> ApiResult<impl IntoResponse> {
    let session = parse_session(&sid)?;
    let position = app
        .playback
        .stop(caller.account_id, session, body.position_secs, &caller.meta)
        .await?;
    Ok((
        StatusCode::NO_CONTENT,
        [("x-position", position.to_string())],
    ))
}

#[utoipa::path(get, path = "/api/profiles/{pid}/continue-watching", tag = "playback", params(("pid" = String, Path), MinPosition),
    responses((status = 200, body = Vec<ContinueItem>)), security(("bearer" = [])))]
pub async fn continue_watching(
    State(app): State<AppState>,
    profile: OwnProfile<Watching>,
) -> ApiResult<axum::Json<Vec<ContinueItem>>> {
    let pid = profile.id.to_string();
    let items = watching::continue_watching(app.projections.db(), &pid, profile.ceiling()).await?;
    Ok(axum::Json(items))
}

#[utoipa::path(get, path = "/api/profiles/{pid}/history", tag = "playback", params(("pid" = String, Path), MinPosition),
    responses((status = 200, description = "what the profile played, most recent first")), security(("bearer" = [])))]
pub async fn history(
    State(app): State<AppState>,
    profile: OwnProfile<Watching>,
) -> ApiResult<axum::Json<Vec<WatchEntry>>> {
    let pid = profile.id.to_string();
    let entries = watching::visible_history(app.projections.db(), &pid, profile.ceiling()).await?;
    Ok(axum::Json(entries))
}

/// The master playlist, listing only the renditions the plan allows.
#[utoipa::path(get, path = "/stream/{token}/master.m3u8", tag = "playback",
    params(("token" = String, Path, description = "the signed, expiring grant from playback start")),
    responses((status = 200, description = "HLS master playlist", content_type = "application/vnd.apple.mpegurl", body = String),
        (status = 403, description = "bad or expired signature, or the playback session has ended", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn master(State(app): State<AppState>, Path(token): Path<String>) -> ApiResult<Response> {
    let access = app.playback.stream(&token, None).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.apple.mpegurl"),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        master_playlist(&access.renditions),
    )
        .into_response())
}

/// A rendition's playlist or segment, within the plan's quality, with byte ranges.
#[utoipa::path(get, path = "/stream/{token}/{rendition}/{file}", tag = "playback",
    params(("token" = String, Path, description = "the signed, expiring grant from playback start"),
        ("rendition" = String, Path, description = "e.g. 720p"), ("file" = String, Path, description = "index.m3u8 or a segment"),
        ("Range" = Option<String>, Header, description = "bytes=START-END")),
    responses((status = 200, description = "the playlist or segment", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "the requested byte range", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 403, description = "bad or expired signature, a rendition above the plan, or the playback session has ended", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 416, description = "unsatisfiable range", body = ErrorBody)))]
pub async fn media_file(
    State(app): State<AppState>,
    Path((token, rendition, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let access = app.playback.stream(&token, Some(&rendition)).await?;
    let (bytes, content_type) = app
        .media
        .stream_file(&access.grant.ladder, &rendition, &file)
        .await
        .ok_or_else(|| ApiError::not_found("file"))?;
    Ok(ranged(bytes, content_type, headers.get(header::RANGE)))
}

/// The body, or the part of it a `Range: bytes=…` header asks for.
pub fn ranged(bytes: Bytes, content_type: &'static str, range: Option<&HeaderValue>) -> Response {
    let size = bytes.len() as u64;
    let ask = range.map_or(RangeAsk::Whole, |r| {
        parse_range(r.to_str().unwrap_or(""), size)
    });
    let base = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "private, max-age=3600");
    match ask {
        RangeAsk::Whole => base
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(bytes))
            .expect("valid response"),
        RangeAsk::Part(start, end) => base
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"))
            .body(Body::from(bytes.slice(start as usize..=end as usize)))
            .expect("valid response"),
        RangeAsk::Unsatisfiable => {
            let mut refused = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the range lies outside the file's {size} bytes"),
            )
            .into_response();
            refused.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"),
            );
            refused
        }
    }
}

/// What a `Range` header asks of a body.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAsk {
    /// The whole body: no range, or one this server ignores as HTTP allows (another unit,
    /// several ranges, or text that is not a range).
    Whole,
    /// The bytes between two inclusive offsets.
    Part(u64, u64),
    /// A well-formed range that selects nothing of the body.
    Unsatisfiable,
}

/// Reads one `bytes=a-b`, `bytes=a-` or `bytes=-n` range against a body of `size` bytes.
pub fn parse_range(header: &str, size: u64) -> RangeAsk {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    let Some((a, b)) = spec.split_once('-') else {
        return RangeAsk::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let number = |s: &str| {
        let digits = !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        // A number too long for u64 lies past the end of any body.
        digits.then(|| s.parse().unwrap_or(u64::MAX))
    };
    let (start, end) = match (number(a), number(b)) {
        (None, Some(n)) if a.is_empty() => (
            size.saturating_sub(n),
            (size > 0 && n > 0).then(|| size - 1),
        ),
        (Some(start), None) if b.is_empty() => (start, size.checked_sub(1)),
        (Some(start), Some(end)) if start <= end => {
            (start, size.checked_sub(1).map(|last| end.min(last)))
        }
        (Some(_), Some(_)) => return RangeAsk::Unsatisfiable,
        _ => return RangeAsk::Whole,
    };
    match end {
        Some(end) if start <= end => RangeAsk::Part(start, end),
        _ => RangeAsk::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_as_http_says() {
        use RangeAsk::{Part, Unsatisfiable, Whole};
        for (header, ask) in [
            ("bytes=0-99", Part(0, 99)),
            ("bytes=900-", Part(900, 999)),
            ("bytes=-100", Part(900, 999)),
            ("bytes=-5000", Part(0, 999)),
            ("bytes=990-2000", Part(990, 999)),
            ("bytes=0-99999999999999999999", Part(0, 999)),
            ("bytes=-99999999999999999999", Part(0, 999)),
            ("bytes=1000-", Unsatisfiable),
            ("bytes=99999999999999999999-", Unsatisfiable),
            ("bytes=5-4", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=a-b", Whole),
            ("bytes=", Whole),
            ("bytes=--1", Whole),
            ("bytes=+1-2", Whole),
            ("items=0-1", Whole),
            ("bytes=0-1,3-4", Whole),
            ("", Whole),
        ] {
            assert_eq!(parse_range(header, 1000), ask, "{header}");
        }
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-1", 0), Unsatisfiable);
    }
}
