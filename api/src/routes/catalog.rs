//! Browsing and searching the catalog, title details, genres, and generated posters. A profile
//! (`profile_id`) limits everything to the titles its maturity rating allows.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Catalog, Ceiling, Query, ReadAt};
use crate::web::escape;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
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

/// A poster drawn from the title's name and genre, so the catalog needs no images.
pub async fn poster(
    State(app): State<AppState>,
    Path(file): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = file
        .strip_suffix(".svg")
        .ok_or_else(|| ApiError::not_found("poster"))?;
    let title = catalog::details(app.projections.db(), id, None)
        .await?
        .ok_or_else(|| ApiError::not_found("poster"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        poster_svg(&title.card),
    ))
}

/// Two colours from the title's id, its name in lines of about 14 characters, its year and genre.
fn poster_svg(card: &TitleCard) -> String {
    let hash = card.id.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    let (h1, h2) = (hash % 360, (hash / 360) % 360);
    let mut lines: Vec<String> = Vec::new();
    for word in card.name.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.chars().count() + word.chars().count() < 14 => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    let text: String = lines
        .iter()
        .take(5)
        .enumerate()
        .map(|(i, l)| {
            format!(
                r##"<text x="20" y="{}" font-size="26" font-weight="700" fill="#fff">{}</text>"##,
                190 + i * 32,
                escape(l)
            )
        })
        .collect();
    let genre = card.genres.first().map(String::as_str).unwrap_or("");
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="300" height="450" viewBox="0 0 300 450">
<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="hsl({h1},55%,35%)"/><stop offset="1" stop-color="hsl({h2},60%,12%)"/></linearGradient></defs>
<rect width="300" height="450" fill="url(#g)"/><circle cx="240" cy="80" r="60" fill="hsl({h2},70%,60%)" opacity=".35"/>
<text x="20" y="50" font-size="16" fill="#e50914" font-weight="800" font-family="sans-serif">CINELOG</text>
<g font-family="sans-serif">{text}</g>
<text x="20" y="420" font-size="16" fill="#ddd" font-family="sans-serif">{} · {} · {}</text></svg>"##,
        card.year,
        escape(genre),
        escape(&card.maturity_rating)
    )
}
