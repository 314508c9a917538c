//! The caller's account and its profiles. A profile of another account answers 404.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Caller, Json, MinPosition, Query};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use cinelog_domain::account::{Profile, ProfileChanges};
use cinelog_domain::values::{Maturity, ProfileName, check_avatar, check_language};
use cinelog_projections::accounts::{self, ProfileView, UserView};
use cinelog_projections::subscriptions;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/me", get(me).delete(erase_me))
        .route("/api/profiles", get(list).post(create))
        .route("/api/profiles/{id}", get(show).patch(update).delete(remove))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateProfile {
    #[schema(min_length = 1, max_length = 40)]
    pub name: String,
    #[serde(default)]
    pub kids: bool,
    /// all, 7+, 13+, 16+ or 18+ (kids profiles at most 13+).
    #[schema(pattern = "^(all|7\\+|13\\+|16\\+|18\\+)$")]
    pub maturity_rating: Option<String>,
    pub avatar: Option<String>,
    pub language: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateProfile {
    pub name: Option<String>,
    pub kids: Option<bool>,
    pub maturity_rating: Option<String>,
    pub avatar: Option<String>,
    pub language: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Created {
    pub profile_id: Uuid,
    pub position: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ProfileBody {
    pub id: String,
    pub profile_id: String,
    pub name: String,
    pub kids: bool,
    pub maturity_rating: String,
    pub avatar: String,
    pub language: String,
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    #[schema(value_type = Object)]
    pub user: UserView,
    #[schema(value_type = Object)]
    pub account: serde_json::Value,
    #[schema(value_type = Vec<Object>)]
    pub profiles: Vec<ProfileView>,
    #[schema(value_type = Object)]
    pub subscription: serde_json::Value,
}

/// A profile of the caller's account as the write side knows it (no read-model lag); another
/// account's profile, or a malformed id, is not found.
pub async fn own_profile(
    app: &AppState,
    caller: &Caller,
    pid: &str,
) -> ApiResult<(Uuid, cinelog_domain::account::Profile)> {
    let id = Uuid::parse_str(pid).map_err(|_| ApiError::not_found("profile"))?;
    let profile = app
        .accounts
        .profile(caller.account_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("profile"))?;
    Ok((id, profile))
}

/// Waits for the accounts read model to reach `min_position`; 503 with Retry-After if it does not in time.
pub async fn read_your_writes(app: &AppState, q: &MinPosition) -> ApiResult<()> {
    read_model_at(app, accounts::NAME, q).await
}

/// Waits for the named read model to reach `min_position`; 503 with Retry-After if it does not in time.
pub async fn read_model_at(app: &AppState, projection: &str, q: &MinPosition) -> ApiResult<()> {
    let Some(position) = q.min_position else {
        return Ok(());
    };
    // A position no write has reached yet will not come by waiting: it is the caller's mistake.
    if position > 0 && position > app.projections.log_head().await? {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
            "min_position is past the end of the log",
        ));
    }
    if app
        .projections
        .wait_for(projection, position, app.read_wait)
        .await?
    {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_caught_up",
            "the read model has not reached that position yet",
        )
        .retry_after(1))
    }
}

#[utoipa::path(get, path = "/api/me", tag = "accounts", params(MinPosition), responses((status = 200, body = Me), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn me(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<MinPosition>,
) -> ApiResult<impl IntoResponse> {
    read_your_writes(&app, &q).await?;
    read_model_at(&app, subscriptions::NAME, &q).await?;
    let db = app.projections.db();
    let mut user = accounts::user(db, &caller.user_id.to_string()).await?;
    // A signed-in user is in the log: a read model without them has not applied it yet.
    if user.is_none()
        && app
            .projections
            .catch_up_with_log(accounts::NAME, app.read_wait)
            .await?
    {
        user = accounts::user(db, &caller.user_id.to_string()).await?;
    }
    let user = user.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_caught_up",
            "your account is still being set up",
        )
        .retry_after(1)
    })?;
    let profiles = accounts::profiles_of(db, &caller.account_id.to_string()).await?;
    Ok(axum::Json(Me {
        account: serde_json::json!({ "account_id": caller.account_id, "profile_count": profiles.len(), "max_profiles": cinelog_domain::account::MAX_PROFILES }),
        subscription: serde_json::to_value(
            subscriptions::entitlement(db, &caller.account_id.to_string(), app.clock.now()).await?,
        )
        .map_err(ApiError::internal)?,
        user,
        profiles,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct EraseRequest {
    /// The account's password, entered again.
    pub password: String,
}

#[utoipa::path(delete, path = "/api/me", tag = "accounts", request_body = EraseRequest,
    responses((status = 204, description = "personal data erased, every session ended, the email free again"), (status = 401, description = "wrong password or not signed in", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn erase_me(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<EraseRequest>,
) -> ApiResult<StatusCode> {
    app.identity
        .erase_self(caller.user_id, &req.password, &caller.meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/profiles", tag = "accounts", params(MinPosition), responses((status = 200, body = Vec<ProfileBody>)), security(("bearer" = [])))]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<MinPosition>,
) -> ApiResult<impl IntoResponse> {
    read_your_writes(&app, &q).await?;
    Ok(axum::Json(
        accounts::profiles_of(app.projections.db(), &caller.account_id.to_string()).await?,
    ))
}

fn parse_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("profile"))
}

#[utoipa::path(get, path = "/api/profiles/{id}", tag = "accounts", params(("id" = String, Path), MinPosition), responses((status = 200, body = ProfileBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn show(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<MinPosition>,
) -> ApiResult<impl IntoResponse> {
    read_your_writes(&app, &q).await?;
    let id = parse_id(&id)?;
    let profile = accounts::profile(
        app.projections.db(),
        &caller.account_id.to_string(),
        &id.to_string(),
    )
    .await?;
    profile
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("profile"))
}

/// A colour picked from the name, so new profiles do not all look alike.
fn default_avatar(name: &str) -> String {
    const COLOURS: [&str; 5] = ["blue", "red", "green", "yellow", "purple"];
    let sum: usize = name.trim().to_lowercase().bytes().map(usize::from).sum();
    COLOURS[sum % COLOURS.len()].to_string()
}

#[utoipa::path(post, path = "/api/profiles", tag = "accounts", request_body = CreateProfile,
    responses((status = 201, body = Created), (status = 409, description = "profile_limit_reached or profile_name_taken", body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<CreateProfile>,
) -> ApiResult<impl IntoResponse> {
    let maturity_rating = match req.maturity_rating.as_deref() {
        Some(m) => Maturity::parse(m).map_err(|e| ApiError::invalid(e.field, e.message))?,
        None => Maturity::default_for(req.kids),
    };
    let profile = Profile {
        name: ProfileName::parse(&req.name).map_err(|e| ApiError::invalid(e.field, e.message))?,
        kids: req.kids,
        maturity_rating,
        avatar: req
            .avatar
            .as_deref()
            .map(check_avatar)
            .transpose()
            .map_err(|e| ApiError::invalid(e.field, e.message))?
            .unwrap_or_else(|| default_avatar(&req.name)),
        language: req
            .language
            .as_deref()
            .map(check_language)
            .transpose()
            .map_err(|e| ApiError::invalid(e.field, e.message))?
            .unwrap_or_else(|| "en".into()),
    };
    let (profile_id, position) = app
        .accounts
        .create_profile(caller.account_id, profile, &caller.meta)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(Created {
            profile_id,
            position,
        }),
    ))
}

#[utoipa::path(patch, path = "/api/profiles/{id}", tag = "accounts", request_body = UpdateProfile, params(("id" = String, Path)),
    responses((status = 200, body = ProfileBody), (status = 404, body = ErrorBody), (status = 409, description = "profile_name_taken", body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<UpdateProfile>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id(&id)?;
    let invalid = |e: cinelog_domain::values::InvalidField| ApiError::invalid(e.field, e.message);
    let changes = ProfileChanges {
        name: req
            .name
            .as_deref()
            .map(ProfileName::parse)
            .transpose()
            .map_err(invalid)?,
        kids: req.kids,
        maturity_rating: req
            .maturity_rating
            .as_deref()
            .map(Maturity::parse)
            .transpose()
            .map_err(invalid)?,
        avatar: req
            .avatar
            .as_deref()
            .map(check_avatar)
            .transpose()
            .map_err(invalid)?,
        language: req
            .language
            .as_deref()
            .map(check_language)
            .transpose()
            .map_err(invalid)?,
    };
    let (p, position) = app
        .accounts
        .update_profile(caller.account_id, id, changes, &caller.meta)
        .await?;
    Ok(axum::Json(serde_json::json!({
        "id": id, "profile_id": id, "name": p.name.as_str(), "kids": p.kids, "maturity_rating": p.maturity_rating.as_str(),
        "avatar": p.avatar, "language": p.language, "position": position,
    })))
}

#[utoipa::path(delete, path = "/api/profiles/{id}", tag = "accounts", params(("id" = String, Path)), responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    app.accounts
        .delete_profile(caller.account_id, id, &caller.meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
