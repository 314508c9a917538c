//! Ratings, My List and recommendations per profile. A profile of another account, or an unknown
//! title, is 404 and nothing is recorded.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Caller, Json, MinPosition, Query};
use crate::routes::profiles::{self, read_model_at};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use chrono::Duration;
use cinelog_commands::store::EventStore;
use cinelog_commands::taste::TasteChange;
use cinelog_domain::taste::Rating;
use cinelog_domain::title::Title;
use cinelog_domain::values::Maturity;
use cinelog_infra::groq::Candidate;
use cinelog_projections::catalog::{self, TitleCard};
use cinelog_projections::engagement;
use cinelog_projections::watching;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use utoipa::ToSchema;
use uuid::Uuid;

/// Titles per recommendation row.
const ROW_LEN: usize = 12;
/// Candidates sent to the re-ranker.
const RERANK_CANDIDATES: usize = 20;

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

/// The caller's profile (its name and rating ceiling); another account's is not found.
async fn own_profile(
    app: &AppState,
    caller: &Caller,
    pid: &str,
) -> ApiResult<(Uuid, String, Maturity)> {
    let (id, profile) = profiles::own_profile(app, caller, pid).await?;
    Ok((
        id,
        profile.name.as_str().to_string(),
        profile.maturity_rating,
    ))
}

/// The title must be in the catalog (as the log knows it, so a just-imported title counts) and
/// within the profile's rating; otherwise it is not found.
async fn known_title(app: &AppState, title_id: &str, ceiling: Maturity) -> ApiResult<()> {
    if !catalog::plausible_id(title_id) {
        return Err(ApiError::not_found("title"));
    }
    let loaded = app
        .store
        .load::<Title>(title_id)
        .await
        .map_err(ApiError::internal)?;
    match loaded.state.info {
        Some(info) if loaded.state.published && info.maturity <= ceiling => Ok(()),
        _ => Err(ApiError::not_found("title")),
    }
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

#[utoipa::path(put, path = "/api/profiles/{pid}/ratings/{title_id}", tag = "engagement", request_body = RateBody,
    params(("pid" = String, Path), ("title_id" = String, Path)),
    responses((status = 200, body = Rated), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn rate(
    State(app): State<AppState>,
    caller: Caller,
    Path((pid, title_id)): Path<(String, String)>,
    Json(body): Json<RateBody>,
) -> ApiResult<impl IntoResponse> {
    let rating = Rating::parse(&body.rating);
    let position = apply_taste(&app, &caller, &pid, &title_id, || {
        let rating = rating
            .ok_or_else(|| ApiError::invalid("rating", "must be one of dislike, like, love"))?;
        Ok(TasteChange::Rate(rating))
    })
    .await?;
    Ok(axum::Json(Rated {
        title_id,
        rating: Some(body.rating),
        on_list: None,
        position,
    }))
}

/// Applies a taste change for the caller's profile to a title it may see; the change is made
/// once the profile is known, so a bad field of another account's profile is still not found.
async fn apply_taste(
    app: &AppState,
    caller: &Caller,
    pid: &str,
    title_id: &str,
    change: impl FnOnce() -> ApiResult<TasteChange>,
) -> ApiResult<i64> {
    let (profile, _, ceiling) = own_profile(app, caller, pid).await?;
    let change = change()?;
    known_title(app, title_id, ceiling).await?;
    Ok(app
        .taste
        .change(profile, title_id, change, &caller.meta)
        .await?)
}

fn no_content(position: i64) -> Response {
    (
        StatusCode::NO_CONTENT,
        [("x-position", position.to_string())],
    )
        .into_response()
}

#[utoipa::path(delete, path = "/api/profiles/{pid}/ratings/{title_id}", tag = "engagement",
    params(("pid" = String, Path), ("title_id" = String, Path)), responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn unrate(
    State(app): State<AppState>,
    caller: Caller,
    Path((pid, title_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let position = apply_taste(&app, &caller, &pid, &title_id, || Ok(TasteChange::Unrate)).await?;
    Ok(no_content(position))
}

#[utoipa::path(put, path = "/api/profiles/{pid}/list/{title_id}", tag = "engagement",
    params(("pid" = String, Path), ("title_id" = String, Path)), responses((status = 200, body = Rated), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn add(
    State(app): State<AppState>,
    caller: Caller,
    Path((pid, title_id)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let position = apply_taste(&app, &caller, &pid, &title_id, || {
        Ok(TasteChange::AddToList)
    })
    .await?;
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
    caller: Caller,
    Path((pid, title_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let position = apply_taste(&app, &caller, &pid, &title_id, || {
        Ok(TasteChange::RemoveFromList)
    })
    .await?;
    Ok(no_content(position))
}

#[derive(Serialize, ToSchema)]
pub struct RatingView {
    pub title_id: String,
    pub rating: String,
}

#[utoipa::path(get, path = "/api/profiles/{pid}/ratings", tag = "engagement", params(("pid" = String, Path), MinPosition),
    responses((status = 200, body = Vec<RatingView>)), security(("bearer" = [])))]
pub async fn ratings(
    State(app): State<AppState>,
    caller: Caller,
    Path(pid): Path<String>,
    Query(q): Query<MinPosition>,
) -> ApiResult<impl IntoResponse> {
    read_model_at(&app, engagement::NAME, &q).await?;
    let (profile, _, ceiling) = own_profile(&app, &caller, &pid).await?;
    let rated = engagement::ratings(app.projections.db(), &profile.to_string()).await?;
    let ids: Vec<String> = rated.iter().map(|(t, _, _)| t.clone()).collect();
    // Only titles the profile may see (its rating may have been lowered since).
    let visible = catalog::cards(app.projections.db(), &ids, Some(ceiling)).await?;
    let out: Vec<RatingView> = rated
        .into_iter()
        .filter(|(title_id, _, _)| visible.contains_key(title_id))
        .map(|(title_id, r, _)| RatingView {
            title_id,
            rating: r.as_str().into(),
        })
        .collect();
    Ok(axum::Json(out))
}

/// Cards of these titles that the profile may see, in order.
async fn cards(
    app: &AppState,
    ids: impl IntoIterator<Item = String>,
    ceiling: Maturity,
) -> ApiResult<Vec<TitleCard>> {
    let ids: Vec<String> = ids.into_iter().collect();
    let mut found = catalog::cards(app.projections.db(), &ids, Some(ceiling)).await?;
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

#[utoipa::path(get, path = "/api/profiles/{pid}/list", tag = "engagement", params(("pid" = String, Path), MinPosition),
    responses((status = 200, description = "My List, most recently added first")), security(("bearer" = [])))]
pub async fn my_list(
    State(app): State<AppState>,
    caller: Caller,
    Path(pid): Path<String>,
    Query(q): Query<MinPosition>,
) -> ApiResult<impl IntoResponse> {
    read_model_at(&app, engagement::NAME, &q).await?;
    let (profile, _, ceiling) = own_profile(&app, &caller, &pid).await?;
    let ids = engagement::list(app.projections.db(), &profile.to_string()).await?;
    Ok(axum::Json(cards(&app, ids, ceiling).await?))
}

#[derive(Serialize, ToSchema)]
pub struct RecommendedTitle {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub title: TitleCard,
    /// Why this title, when there is more to say than the row's reason.
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RecommendationRow {
    /// because_you_liked, top_picks, trending or popular.
    pub kind: String,
    /// The row's reason, for people: "Because you liked X", "Top picks for Sam", "Trending now".
    pub reason: String,
    pub items: Vec<RecommendedTitle>,
}

#[derive(Serialize, ToSchema)]
pub struct Recommendations {
    pub rows: Vec<RecommendationRow>,
    /// Whether the top picks were re-ordered by the LLM re-ranker.
    pub reranked: bool,
}

fn plain(items: Vec<TitleCard>) -> Vec<RecommendedTitle> {
    items
        .into_iter()
        .map(|title| RecommendedTitle {
            title,
            reason: None,
        })
        .collect()
}

#[utoipa::path(get, path = "/api/profiles/{pid}/recommendations", tag = "engagement", params(("pid" = String, Path), MinPosition),
    responses((status = 200, body = Recommendations), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn recommendations(
    State(app): State<AppState>,
    caller: Caller,
    Path(pid): Path<String>,
    Query(q): Query<MinPosition>,
) -> ApiResult<impl IntoResponse> {
    read_model_at(&app, engagement::NAME, &q).await?;
    let (profile, name, ceiling) = own_profile(&app, &caller, &pid).await?;
    let db = app.projections.db();
    let pid = profile.to_string();
    let rated = engagement::ratings(db, &pid).await?;
    let played = engagement::played(db, &pid).await?;
    let finished: HashSet<String> = watching::history(db, &pid)
        .await?
        .into_iter()
        .filter(|w| w.finished && w.episode_id.is_none())
        .map(|w| w.title_id)
        .collect();
    let liked: Vec<String> = rated
        .iter()
        .filter(|(_, r, _)| *r != Rating::Dislike)
        .map(|(t, _, _)| t.clone())
        .collect();
    let mut history: Vec<(String, f64)> = rated
        .iter()
        .map(|(t, r, _)| (t.clone(), r.weight()))
        .collect();
    for title in &played {
        if !rated.iter().any(|(t, _, _)| t == title) {
            history.push((title.clone(), 0.5));
        }
    }
    let seeds: Vec<String> = history.iter().map(|(t, _)| t.clone()).take(30).collect();
    let model = engagement::model(db, &seeds).await?;
    let exclude: HashSet<String> = rated
        .iter()
        .map(|(t, _, _)| t.clone())
        .chain(finished)
        .collect();
    let max_rank = catalog::rank(ceiling);
    let mut rows = Vec::new();
    let mut reranked = false;

    for seed in liked
        .iter()
        .filter(|s| {
            model
                .items
                .get(*s)
                .is_some_and(|i| i.maturity_rank <= max_rank)
        })
        .take(2)
    {
        let Some(item) = model.items.get(seed) else {
            continue;
        };
        let picks = model.like(seed, &exclude, max_rank, ROW_LEN);
        if !picks.is_empty() {
            rows.push(RecommendationRow {
                kind: "because_you_liked".into(),
                reason: format!("Because you liked {}", item.name),
                items: plain(cards(&app, picks.into_iter().map(|(id, _)| id), ceiling).await?),
            });
        }
    }
    if !history.is_empty() {
        let picks = model.personal(&history, &exclude, max_rank, RERANK_CANDIDATES);
        let mut ordered: Vec<(String, Option<String>)> =
            picks.into_iter().map(|(id, _)| (id, None)).collect();
        if let Some(groq) = app.groq.as_ref().filter(|_| ordered.len() > 1) {
            let candidates: Vec<Candidate> = ordered
                .iter()
                .filter_map(|(id, _)| model.items.get(id))
                .map(|i| Candidate {
                    id: i.id.clone(),
                    name: i.name.clone(),
                    genres: i.genres.clone(),
                })
                .collect();
            let recent: Vec<String> = seeds
                .iter()
                .filter_map(|s| model.items.get(s))
                .map(|i| i.name.clone())
                .take(10)
                .collect();
            match groq.rerank(&name, &recent, &candidates).await {
                Ok(better) => {
                    ordered = better;
                    reranked = true;
                }
                Err(why) => tracing::warn!(%why, "re-ranking failed; keeping the local order"),
            }
        }
        ordered.truncate(ROW_LEN);
        let mut reasons: HashMap<String, Option<String>> = ordered.iter().cloned().collect();
        let items: Vec<RecommendedTitle> =
            cards(&app, ordered.into_iter().map(|(id, _)| id), ceiling)
                .await?
                .into_iter()
                .map(|title| RecommendedTitle {
                    reason: reasons.remove(&title.id).flatten(),
                    title,
                })
                .collect();
        rows.push(RecommendationRow {
            kind: "top_picks".into(),
            reason: format!("Top picks for {name}"),
            items,
        });
    }
    let trending_now = match &app.trending {
        Some(redis) => match redis.top(app.clock.now(), 100).await {
            Ok(top) => Some(top),
            Err(e) => {
                tracing::warn!(error = %e, "trending unavailable in Redis; reading it from SQL");
                None
            }
        },
        None => None,
    };
    let trending_now = match trending_now {
        Some(top) => top,
        None => {
            let since = (app.clock.now() - Duration::days(6))
                .format("%Y-%m-%d")
                .to_string();
            engagement::trending(db, &since, 100).await?
        }
    };
    let trending: Vec<String> = trending_now
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| {
            !exclude.contains(id)
                && model
                    .items
                    .get(id)
                    .is_some_and(|i| i.maturity_rank <= max_rank)
        })
        .take(ROW_LEN)
        .collect();
    if !trending.is_empty() {
        rows.push(RecommendationRow {
            kind: "trending".into(),
            reason: "Trending now".into(),
            items: plain(cards(&app, trending, ceiling).await?),
        });
    }
    let popular = model.popular(&exclude, max_rank, ROW_LEN);
    rows.push(RecommendationRow {
        kind: "popular".into(),
        reason: "Popular on Cinelog".into(),
        items: plain(cards(&app, popular.into_iter().map(|(id, _)| id), ceiling).await?),
    });
    Ok(axum::Json(Recommendations { rows, reranked }))
}
