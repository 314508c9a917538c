//! Browsing and searching the catalog, title details, genres, and generated posters. A profile
//! (`profile_id`) limits everything to the titles its maturity rating allows.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Catalog, Ceiling, Query, ReadAt};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use cinelog_projections::catalog::{self, PAGE_SIZE, TitleCard, TitleQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/titles", get(list))
        .route("/api/titles/{id}", get(show))
        .route("/api/genres", get(genres))
        .route("/posters/{file}", get(poster))
        .route("/backdrops/{file}", get(backdrop))
        .route("/images/tmdb/{size}/{file}", get(tmdb_image))
}

#[derive(Deserialize, IntoParams)]
pub struct TitlesParams {
    /// Words to search for in names, genres and synopses (any text).
    pub query: Option<String>,
    pub genre: Option<String>,
    /// movie or series.
    pub kind: Option<String>,
    /// 1-based page of 24.
    pub page: Option<i64>,
    /// The viewing profile: only titles its maturity rating allows (needs its account's token).
    pub profile_id: Option<String>,
    /// Wait until the catalog has applied the event at this global position.
    pub min_position: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct TitlePage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<TitleCard>,
    pub page: i64,
    pub page_size: i64,
    pub has_more: bool,
    /// Titles matching, on every page.
    pub total: i64,
}

#[utoipa::path(get, path = "/api/titles", tag = "catalog", params(TitlesParams),
    responses((status = 200, body = TitlePage), (status = 404, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn list(
    State(app): State<AppState>,
    _: ReadAt<Catalog>,
    Ceiling(max_maturity): Ceiling,
    Query(q): Query<TitlesParams>,
) -> ApiResult<impl IntoResponse> {
    let page = q.page.unwrap_or(1).clamp(1, 10_000);
    let query = TitleQuery {
        text: q.query,
        genre: q.genre.filter(|g| !g.is_empty()),
        kind: q.kind.filter(|k| !k.is_empty()),
        max_maturity,
        page,
    };
    let answer = app.catalog_cache.browse(&app.projections, &query).await?;
    let (items, has_more, total) = answer.as_ref().clone();
    Ok(axum::Json(TitlePage {
        items,
        page,
        page_size: PAGE_SIZE,
        has_more,
        total,
    }))
}

#[derive(Deserialize, IntoParams)]
pub struct ProfileParam {
    pub profile_id: Option<String>,
    /// Wait until the catalog has applied the event at this global position.
    pub min_position: Option<i64>,
}

#[utoipa::path(get, path = "/api/titles/{id}", tag = "catalog", params(("id" = String, Path), ProfileParam),
    responses((status = 200, description = "the title with seasons and episodes"), (status = 404, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn show(
    State(app): State<AppState>,
    _: ReadAt<Catalog>,
    Ceiling(max_maturity): Ceiling,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let title = app
        .catalog_cache
        .details(&app.projections, &id, max_maturity)
        .await?;
    let title = title
        .as_ref()
        .as_ref()
        .ok_or_else(|| ApiError::not_found("title"))?;
    Ok(axum::Json(title.clone()))
}

#[utoipa::path(get, path = "/api/genres", tag = "catalog", responses((status = 200, body = Vec<String>)))]
pub async fn genres(State(app): State<AppState>) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        app.catalog_cache.genres(&app.projections).await?.to_vec(),
    ))
}

/// A poster drawn from the title's id and genre, so the catalog needs no images.
pub async fn poster(
    State(app): State<AppState>,
    Path(file): Path<String>,
) -> ApiResult<impl IntoResponse> {
    drawn(&app, &file, "poster", crate::artwork::poster).await
}

/// A TMDB poster or backdrop: fetched from TMDB the first time, served from the local copy
/// after that.
pub async fn tmdb_image(
    State(app): State<AppState>,
    Path((size, file)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    use cinelog_infra::images::ImageError;
    let (bytes, kind) = app.images.get(&size, &file).await.map_err(|e| match e {
        ImageError::NotFound => ApiError::not_found("image"),
        ImageError::Upstream(why) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "image_unavailable",
            format!("the image could not be fetched from TMDB ({why})"),
        ),
        ImageError::Io(e) => ApiError::internal(e),
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=604800, immutable"),
        ],
        bytes,
    ))
}

/// A wide picture for a featured title, drawn like its poster but without text.
pub async fn backdrop(
    State(app): State<AppState>,
    Path(file): Path<String>,
) -> ApiResult<impl IntoResponse> {
    drawn(&app, &file, "backdrop", crate::artwork::backdrop).await
}

async fn drawn(
    app: &AppState,
    file: &str,
    what: &'static str,
    draw: fn(&TitleCard) -> String,
) -> ApiResult<impl IntoResponse + use<>> {
    let id = file
        .strip_suffix(".svg")
        .ok_or_else(|| ApiError::not_found(what))?;
    let title = catalog::details(app.projections.db(), id, None)
        .await?
        .ok_or_else(|| ApiError::not_found(what))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        draw(&title.card),
    ))
}
