//! Ratings, My List and recommendations per profile. A profile of another account, or an unknown
//! title, is 404 and nothing is recorded.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Engagement, Json, MinPosition, OwnProfile};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use cinelog_commands::taste::TasteChange;
use cinelog_domain::taste::Rating;
use cinelog_projections::catalog::TitleCard;
use cinelog_projections::engagement::{self, RatingView};
use cinelog_projections::recommendations::Recommendations;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/profiles/{pid}/ratings", get(ratings))
        .route(
            "/api/profiles/{pid}/ratings/{title_id}",
            put(rate).delete(unrate),
        )
        .route("/api/profiles/{pid}/list", get(my_list))
        .route(
            "/api/profiles/{pid}/list/{title_id}",
            put(add).delete(remove),
        )
        .route("/api/profiles/{pid}/recommendations", get(recommendations))
}

#[derive(Deserialize, ToSchema)]
pub struct RateBody {
    /// dislike, like or love.
    #[schema(example = "love", pattern = "^(dislike|like|love)$")]
    pub rating: String,
}

#[derive(Serialize, ToSchema)]
pub struct Rated {
    pub title_id: String,
    pub rating: Option<String>,
    pub on_list: Option<bool>,
    pub position: i64,
}

/// Applies a taste change of the caller's profile to a title it may see.
async fn apply(
    app: &AppState,
    profile: &OwnProfile,
    title_id: &str,
    change: TasteChange,
) -> ApiResult<i64> {
    let caller = &profile.caller;
    Ok(app
        .taste
        .change(
            profile.id,
            profile.ceiling(),
            title_id,
            change,
            &caller.meta,
        )
        .await?)
}

fn no_content(position: i64) -> Response {
    (
        StatusCode::NO_CONTENT,
        [("x-position", position.to_string())],
    )
        .into_response()
}

#[utoipa::path(put, path = "/api/profiles/{pid}/ratings/{title_id}", tag = "engagement", request_body = RateBody,
    params(("pid" = String, Path), ("title_id" = String, Path)),
    responses((status = 200, body = Rated), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn rate(
    State(app): State<AppState>,
    profile: OwnProfile,
    Path((_pid, title_id)): Path<(String, String)>,
    Json(body): Json<RateBody>,
) -> ApiResult<axum::Json<Rated>> {
    let rating = Rating::parse(&body.rating)
        .ok_or_else(|| ApiError::invalid("rating", "must be one of dislike, like, love"))?;
    let position = apply(&app, &profile, &title_id, TasteChange::Rate(rating)).await?;
    Ok(axum::Json(Rated {
        title_id,
        rating: Some(body.rating),
        on_list: None,
        position,
    }))
}

#[utoipa::path(delete, path = "/api/profiles/{pid}/ratings/{title_id}", tag = "engagement",
    params(("pid" = String, Path), ("title_id" = String, Path)), responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn unrate(
    State(app): State<AppState>,
    profile: OwnProfile,
    Path((_pid, title_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let position = apply(&app, &profile, &title_id, TasteChange::Unrate).await?;
    Ok(no_content(position))
}

#[utoipa::path(put, path = "/api/profiles/{pid}/list/{title_id}", tag = "engagement",
    params(("pid" = String, Path), ("title_id" = String, Path)), responses((status = 200, body = Rated), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn add(
    State(app): State<AppState>,
    profile: OwnProfile,
    Path((_pid, title_id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Rated>> {
    let position = apply(&app, &profile, &title_id, TasteChange::AddToList).await?;
    Ok(axum::Json(Rated {
        title_id,
        rating: None,
        on_list: Some(true),
        position,
    }))
}

#[utoipa::path(delete, path = "/api/profiles/{pid}/list/{title_id}", tag = "engagement",
    params(("pid" = String, Path), ("title_id" = String, Path)), responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn remove(
    State(app): State<AppState>,
    profile: OwnProfile,
    Path((_pid, title_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let position = apply(&app, &profile, &title_id, TasteChange::RemoveFromList).await?;
    Ok(no_content(position))
}

#[utoipa::path(get, path = "/api/profiles/{pid}/ratings", tag = "engagement", params(("pid" = String, Path), MinPosition),
    responses((status = 200, body = Vec<RatingView>)), security(("bearer" = [])))]
pub async fn ratings(
    State(app): State<AppState>,
    profile: OwnProfile<Engagement>,
) -> ApiResult<axum::Json<Vec<RatingView>>> {
    let pid = profile.id.to_string();
    let rated = engagement::visible_ratings(app.projections.db(), &pid, profile.ceiling()).await?;
    Ok(axum::Json(rated))
}

#[utoipa::path(get, path = "/api/profiles/{pid}/list", tag = "engagement", params(("pid" = String, Path), MinPosition),
    responses((status = 200, description = "My List, most recently added first")), security(("bearer" = [])))]
pub async fn my_list(
    State(app): State<AppState>,
    profile: OwnProfile<Engagement>,
) -> ApiResult<axum::Json<Vec<TitleCard>>> {
    let pid = profile.id.to_string();
    let list = engagement::visible_list(app.projections.db(), &pid, profile.ceiling()).await?;
    Ok(axum::Json(list))
}

#[utoipa::path(get, path = "/api/profiles/{pid}/recommendations", tag = "engagement", params(("pid" = String, Path), MinPosition),
    responses((status = 200, body = Recommendations), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn recommendations(
    State(app): State<AppState>,
    profile: OwnProfile<Engagement>,
) -> ApiResult<axum::Json<Recommendations>> {
    let (db, pid, name) = (
        app.projections.db(),
        profile.id.to_string(),
        profile.profile.name.as_str(),
    );
    let rows = app
        .recommender
        .rows(db, &pid, name, profile.ceiling(), app.clock.now())
        .await?;
    Ok(axum::Json(rows))
}
