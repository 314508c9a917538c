//! Playback: sessions within the plan's limits, signed and expiring stream URLs, HLS playlists
//! capped at the plan's quality, segments with byte ranges, progress, continue watching, history.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Caller, Json, MinPosition, Query};
use crate::routes::profiles::{self, read_model_at};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cinelog_commands::store::EventStore;
use cinelog_domain::title::{Kind, Media};
use cinelog_domain::values::Maturity;
use cinelog_domain::viewing::{Viewing, Watched};
use cinelog_infra::media::safe_component;
use cinelog_projections::watching::{self, WatchEntry};
use cinelog_projections::{catalog, subscriptions};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;
use uuid::Uuid;

/// How long a stream URL works.
pub const STREAM_URL_TTL_SECS: i64 = 6 * 60 * 60;

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

/// What a stream URL grants: one session's ladder, up to a height, until a moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub account: Uuid,
    pub session: Uuid,
    pub ladder: String,
    pub max_height: u32,
    pub expires: i64,
}

fn tag(key: &[u8], payload: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(payload.as_bytes());
    mac.finalize().into_bytes()[..16].to_vec()
}

impl Grant {
    pub fn sign(&self, key: &[u8]) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("serializable"));
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag(key, &payload)))
    }

    /// The grant in a token, if it was signed with `key` and has not expired at `now`.
    pub fn open(key: &[u8], token: &str, now: i64) -> Result<Grant, ApiError> {
        let forbidden =
            |why: &str| ApiError::new(StatusCode::FORBIDDEN, "bad_stream_url", why.to_string());
        let (payload, sig) = token
            .split_once('.')
            .ok_or_else(|| forbidden("malformed stream URL"))?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| forbidden("malformed stream URL"))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(payload.as_bytes());
        mac.verify_truncated_left(&sig)
            .ok()
            .filter(|_| sig.len() == 16)
            .ok_or_else(|| forbidden("the stream URL's signature is wrong"))?;
        let grant: Grant = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .ok_or_else(|| forbidden("malformed stream URL"))?;
        if grant.expires <= now {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "stream_url_expired",
                "this stream URL has expired; start playback again",
            ));
        }
        Ok(grant)
    }
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

/// The caller's profile and its maturity ceiling.
async fn own_profile(app: &AppState, caller: &Caller, pid: &str) -> ApiResult<(Uuid, Maturity)> {
    let (id, profile) = profiles::own_profile(app, caller, pid).await?;
    Ok((id, profile.maturity_rating))
}

/// Whether `episode` (`s<season>e<number>`) exists in the title.
fn episode_exists(details: &catalog::TitleDetails, episode: &str) -> bool {
    details.seasons.iter().any(|s| {
        s.episodes
            .iter()
            .any(|e| format!("s{}e{}", s.number, e.number) == episode)
    })
}

#[utoipa::path(post, path = "/api/profiles/{pid}/playback", tag = "playback", request_body = StartBody, params(("pid" = String, Path)),
    responses((status = 201, body = Started), (status = 402, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn start(
    State(app): State<AppState>,
    caller: Caller,
    Path(pid): Path<String>,
    Json(body): Json<StartBody>,
) -> ApiResult<Response> {
    let (profile_id, ceiling) = own_profile(&app, &caller, &pid).await?;
    let db = app.projections.db();
    let title = catalog::details(db, &body.title_id, None)
        .await?
        .ok_or_else(|| ApiError::not_found("title"))?;
    // Read-your-writes: the entitlement read holds the caller's own latest subscription change.
    let own = app.billing.last_position(caller.account_id).await?;
    crate::routes::profiles::read_model_at(
        &app,
        subscriptions::NAME,
        &crate::extract::MinPosition {
            min_position: Some(own),
        },
    )
    .await?;
    let now = app.clock.now();
    let entitlement = subscriptions::entitlement(db, &caller.account_id.to_string(), now).await?;
    if !entitlement.entitled {
        return Err(ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "subscription_required",
            "subscribe to a plan to watch",
        ));
    }
    let rating = Maturity::parse(&title.card.maturity_rating)?;
    if rating > ceiling {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "maturity_blocked",
            format!(
                "this profile may watch titles rated up to {}",
                ceiling.as_str()
            ),
        ));
    }
    let media: Media = title.media.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "not_playable",
            "this title has no video yet",
        )
    })?;
    let episode_id = match (title.card.kind.as_str(), body.episode_id) {
        (k, Some(e)) if k == Kind::Series.as_str() && episode_exists(&title, &e) => Some(e),
        (_, Some(_)) => return Err(ApiError::not_found("episode")),
        (k, None) if k == Kind::Series.as_str() => title.seasons.first().and_then(|s| {
            s.episodes
                .first()
                .map(|e| format!("s{}e{}", s.number, e.number))
        }),
        _ => None,
    };
    let watched = Watched {
        profile_id,
        title_id: body.title_id.clone(),
        episode_id: episode_id.clone(),
        duration_secs: media.duration_secs,
    };
    let (session_id, position) = app
        .playback
        .start(
            caller.account_id,
            watched,
            entitlement.concurrent_streams,
            &caller.meta,
        )
        .await?;
    // The resume position includes every heartbeat before this session started.
    let _ = app
        .projections
        .wait_for(watching::NAME, position, app.read_wait)
        .await?;
    let resume = watching::resume_position(
        db,
        &profile_id.to_string(),
        &body.title_id,
        episode_id.as_deref(),
    )
    .await?;
    let grant = Grant {
        account: caller.account_id,
        session: session_id,
        ladder: media.ladder.clone(),
        max_height: entitlement.max_quality,
        expires: now.timestamp() + STREAM_URL_TTL_SECS,
    };
    let qualities = media
        .renditions
        .iter()
        .filter(|r| r.height <= entitlement.max_quality)
        .map(|r| r.name.clone())
        .collect();
    let started = Started {
        session_id,
        title_name: title.card.name.clone(),
        master_playlist_url: format!(
            "{}/stream/{}/master.m3u8",
            app.public_base(),
            grant.sign(&app.stream_key)
        ),
        resume_position_secs: resume,
        max_quality: entitlement.max_quality,
        qualities,
        episode_id,
        duration_secs: media.duration_secs,
        position,
    };
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
    // A subscription that has ended since the session started ends the session: the position is
    // kept, and its stream URLs stop working.
    let entitled = subscriptions::entitlement(
        app.projections.db(),
        &caller.account_id.to_string(),
        app.clock.now(),
    )
    .await?
    .entitled;
    report(&app, &caller, &sid, body.position_secs, !entitled).await?;
    if !entitled {
        return Err(ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "subscription_ended",
            "your subscription has ended; subscribe again to keep watching",
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Records a session's progress, or its end; answers the log position.
async fn report(
    app: &AppState,
    caller: &Caller,
    sid: &str,
    position_secs: f64,
    stop: bool,
) -> ApiResult<i64> {
    let session = parse_session(sid)?;
    Ok(app
        .playback
        .progress(
            caller.account_id,
            session,
            position_secs,
            stop,
            &caller.meta,
        )
        .await?)
}

#[utoipa::path(post, path = "/api/playback/{sid}/stop", tag = "playback", request_body = ProgressBody, params(("sid" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn stop(
    State(app): State<AppState>,
    caller: Caller,
    Path(sid): Path<String>,
    Json(body): Json<ProgressBody>,
) -> ApiResult<impl IntoResponse> {
    let position = report(&app, &caller, &sid, body.position_secs, true).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [("x-position", position.to_string())],
    ))
}

#[derive(Serialize, ToSchema)]
pub struct ContinueItem {
    #[schema(value_type = Object)]
    pub title: catalog::TitleCard,
    /// For series: the episode to play (the next one once an episode is finished).
    pub episode_id: Option<String>,
    pub position_secs: f64,
    pub duration_secs: f64,
    pub updated_at: String,
}

/// The episode after `episode` in the title, if any.
fn next_episode(details: &catalog::TitleDetails, episode: &str) -> Option<String> {
    let all: Vec<String> = details
        .seasons
        .iter()
        .flat_map(|s| {
            s.episodes
                .iter()
                .map(move |e| format!("s{}e{}", s.number, e.number))
        })
        .collect();
    let i = all.iter().position(|e| e == episode)?;
    all.get(i + 1).cloned()
}

#[utoipa::path(get, path = "/api/profiles/{pid}/continue-watching", tag = "playback", params(("pid" = String, Path), MinPosition),
    responses((status = 200, body = Vec<ContinueItem>)), security(("bearer" = [])))]
pub async fn continue_watching(
    State(app): State<AppState>,
    caller: Caller,
    Path(pid): Path<String>,
    Query(q): Query<MinPosition>,
) -> ApiResult<impl IntoResponse> {
    read_model_at(&app, watching::NAME, &q).await?;
    let (profile_id, ceiling) = own_profile(&app, &caller, &pid).await?;
    let db = app.projections.db();
    let entries = watching::latest_per_title(db, &profile_id.to_string()).await?;
    let ids: Vec<String> = entries.iter().map(|e| e.title_id.clone()).collect();
    // Only titles the profile may see (its rating may have been lowered since).
    let mut cards = catalog::cards(db, &ids, Some(ceiling)).await?;
    let mut items = Vec::new();
    for entry in entries {
        let Some(card) = cards.remove(&entry.title_id) else {
            continue;
        };
        let (episode_id, position) = match (&entry.episode_id, entry.finished) {
            (_, false) if entry.position_secs > 0.0 => {
                (entry.episode_id.clone(), entry.position_secs)
            }
            // Only a finished episode needs the seasons, to find the next one.
            (Some(done), true) => {
                let next = catalog::details(db, &entry.title_id, Some(ceiling))
                    .await?
                    .and_then(|title| next_episode(&title, done));
                match next {
                    Some(next) => (Some(next), 0.0),
                    None => continue,
                }
            }
            _ => continue,
        };
        items.push(ContinueItem {
            title: card,
            episode_id,
            position_secs: position,
            duration_secs: entry.duration_secs,
            updated_at: entry.updated_at,
        });
    }
    Ok(axum::Json(items))
}

#[utoipa::path(get, path = "/api/profiles/{pid}/history", tag = "playback", params(("pid" = String, Path), MinPosition),
    responses((status = 200, description = "what the profile played, most recent first")), security(("bearer" = [])))]
pub async fn history(
    State(app): State<AppState>,
    caller: Caller,
    Path(pid): Path<String>,
    Query(q): Query<MinPosition>,
) -> ApiResult<impl IntoResponse> {
    read_model_at(&app, watching::NAME, &q).await?;
    let (profile_id, ceiling) = own_profile(&app, &caller, &pid).await?;
    let db = app.projections.db();
    let mut entries: Vec<WatchEntry> = watching::history(db, &profile_id.to_string()).await?;
    // Only titles the profile may see (its rating may have been lowered since).
    let mut ids: Vec<String> = entries.iter().map(|e| e.title_id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let visible = catalog::cards(db, &ids, Some(ceiling)).await?;
    entries.retain(|e| visible.contains_key(&e.title_id));
    Ok(axum::Json(entries))
}

/// Whether the grant's session still plays: started, not stopped, and heard from within the
/// liveness window. The in-memory stream state answers first; a refusal is confirmed against
/// the log, so a heartbeat taken by another replica is never missed.
async fn session_live(app: &AppState, grant: &Grant) -> ApiResult<()> {
    let now = app.clock.now();
    let live = |state: &cinelog_domain::viewing::ViewingState| {
        state.sessions.get(&grant.session).is_some_and(|s| {
            now - s.last_seen < chrono::Duration::seconds(cinelog_domain::viewing::LIVE_SECS)
        })
    };
    let account = grant.account.to_string();
    let cached = app
        .store
        .load_for_append::<Viewing>(&account)
        .await
        .map_err(ApiError::internal)?;
    if live(&cached.state) {
        return Ok(());
    }
    let fresh = app
        .store
        .load::<Viewing>(&account)
        .await
        .map_err(ApiError::internal)?;
    if live(&fresh.state) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "session_ended",
            "this playback session has ended; start playback again",
        ))
    }
}

fn ladder_of(app: &AppState, grant: &Grant) -> ApiResult<Media> {
    app.media
        .read_ladder(&grant.ladder)
        .map_err(|_| ApiError::not_found("media"))
}

/// The master playlist, listing only the renditions the plan allows.
#[utoipa::path(get, path = "/stream/{token}/master.m3u8", tag = "playback",
    params(("token" = String, Path, description = "the signed, expiring grant from playback start")),
    responses((status = 200, description = "HLS master playlist", content_type = "application/vnd.apple.mpegurl", body = String),
        (status = 403, description = "bad or expired signature", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "the playback session has ended", body = ErrorBody)))]
pub async fn master(State(app): State<AppState>, Path(token): Path<String>) -> ApiResult<Response> {
    let grant = Grant::open(&app.stream_key, &token, app.clock.now().timestamp())?;
    session_live(&app, &grant).await?;
    let media = ladder_of(&app, &grant)?;
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for r in media
        .renditions
        .iter()
        .filter(|r| r.height <= grant.max_height)
    {
        out.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={},RESOLUTION={}x{},CODECS=\"{}\",NAME=\"{}\"\n{}/index.m3u8\n",
            r.bandwidth, r.width, r.height, r.codecs, r.name, r.name
        ));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.apple.mpegurl"),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        out,
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
        (status = 403, description = "bad or expired signature, or a rendition above the plan", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "the playback session has ended", body = ErrorBody),
        (status = 416, description = "unsatisfiable range", body = ErrorBody)))]
pub async fn media_file(
    State(app): State<AppState>,
    Path((token, rendition, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let grant = Grant::open(&app.stream_key, &token, app.clock.now().timestamp())?;
    session_live(&app, &grant).await?;
    let media = ladder_of(&app, &grant)?;
    let allowed = media
        .renditions
        .iter()
        .find(|r| r.name == rendition)
        .ok_or_else(|| ApiError::not_found("rendition"))?;
    if allowed.height > grant.max_height {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "quality_not_in_plan",
            format!("your plan plays up to {}p", grant.max_height),
        ));
    }
    if !safe_component(&file) || !safe_component(&rendition) {
        return Err(ApiError::not_found("file"));
    }
    let content_type = if file.ends_with(".m3u8") {
        "application/vnd.apple.mpegurl"
    } else if file.ends_with(".ts") {
        "video/mp2t"
    } else {
        return Err(ApiError::not_found("file"));
    };
    let dir = app
        .media
        .ladder_dir(&grant.ladder)
        .ok_or_else(|| ApiError::not_found("media"))?;
    let bytes = tokio::fs::read(dir.join(&rendition).join(&file))
        .await
        .map_err(|_| ApiError::not_found("file"))?;
    Ok(ranged(bytes, content_type, headers.get(header::RANGE)))
}

/// The body, or the part of it a `Range: bytes=…` header asks for.
pub fn ranged(bytes: Vec<u8>, content_type: &'static str, range: Option<&HeaderValue>) -> Response {
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
            .body(Body::from(bytes[start as usize..=end as usize].to_vec()))
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

    #[test]
    fn grants_refuse_tampering_and_expiry() {
        let grant = Grant {
            account: Uuid::nil(),
            session: Uuid::nil(),
            ladder: "bundled/aurora".into(),
            max_height: 720,
            expires: 1_000,
        };
        let token = grant.sign(b"key");
        assert_eq!(Grant::open(b"key", &token, 999).unwrap(), grant);
        assert_eq!(
            Grant::open(b"key", &token, 1_000).unwrap_err().code,
            "stream_url_expired"
        );
        assert_eq!(
            Grant::open(b"other", &token, 999).unwrap_err().code,
            "bad_stream_url"
        );
        let richer = Grant {
            max_height: 2160,
            ..grant.clone()
        }
        .sign(b"attacker");
        let forged = format!(
            "{}.{}",
            richer.split_once('.').unwrap().0,
            token.split_once('.').unwrap().1
        );
        assert_eq!(
            Grant::open(b"key", &forged, 999).unwrap_err().code,
            "bad_stream_url"
        );
        assert_eq!(
            Grant::open(b"key", "garbage", 999).unwrap_err().code,
            "bad_stream_url"
        );
    }
}
