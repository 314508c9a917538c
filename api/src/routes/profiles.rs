//! The caller's account and its profiles. A profile of another account answers 404.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, guarded};
use crate::extract::{
    AccountAndSubscription, Accounts, Caller, Json, MinPosition, OwnProfile, ReadAt,
};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use cinelog_commands::error::CommandError;
use cinelog_domain::account::{Profile, ProfileChanges};
use cinelog_domain::values::{
    InvalidField, Maturity, ProfileName, check_avatar, check_language, check_pin,
};
use cinelog_projections::accounts::{self, Overview, ProfileView, UserView};
use cinelog_projections::subscriptions;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/me", get(me).delete(erase_me))
        .route("/api/profiles", get(list).post(create))
        .route("/api/profiles/{id}", get(show).patch(update).delete(remove))
        .route("/api/profiles/{id}/pin", put(set_pin).delete(remove_pin))
        .route("/api/profiles/{id}/unlock", post(unlock))
}

#[derive(Deserialize, ToSchema)]
pub struct SetPin {
    /// Four digits.
    #[schema(pattern = "^[0-9]{4}$")]
    pub pin: String,
    /// The PIN locking the profile now, if one does.
    pub current_pin: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct RemovePin {
    /// The PIN locking the profile now.
    pub current_pin: String,
}

#[derive(Deserialize, ToSchema)]
pub struct Unlock {
    pub pin: String,
}

#[derive(Serialize, ToSchema)]
pub struct Position {
    pub position: i64,
}

/// Locks a profile with a 4-digit PIN (stored hashed), or changes it given the current one.
#[utoipa::path(put, path = "/api/profiles/{id}/pin", tag = "accounts", request_body = SetPin, params(("id" = String, Path)),
    responses((status = 200, body = Position), (status = 403, description = "wrong_pin", body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_pin(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<SetPin>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id(&id)?;
    let pin = check_pin(&req.pin)?;
    let position = guarded(&app, id, async {
        app.accounts
            .set_pin(
                caller.account_id,
                id,
                Some(pin),
                req.current_pin.as_deref(),
                &caller.meta,
            )
            .await
    })
    .await?;
    Ok(axum::Json(Position { position }))
}

/// Removes a profile's PIN, given it.
#[utoipa::path(delete, path = "/api/profiles/{id}/pin", tag = "accounts", request_body = RemovePin, params(("id" = String, Path)),
    responses((status = 200, body = Position), (status = 403, description = "wrong_pin", body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove_pin(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<RemovePin>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id(&id)?;
    let position = guarded(&app, id, async {
        app.accounts
            .set_pin(
                caller.account_id,
                id,
                None,
                Some(&req.current_pin),
                &caller.meta,
            )
            .await
    })
    .await?;
    Ok(axum::Json(Position { position }))
}

/// Checks a profile's PIN (a profile without one always opens); tries are limited.
#[utoipa::path(post, path = "/api/profiles/{id}/unlock", tag = "accounts", request_body = Unlock, params(("id" = String, Path)),
    responses((status = 204, description = "the PIN opens the profile"), (status = 403, description = "wrong_pin", body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn unlock(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<Unlock>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id)?;
    guarded(&app, id, async {
        match app
            .accounts
            .pin_opens(caller.account_id, id, Some(&req.pin))
            .await?
        {
            true => Ok(()),
            false => Err(CommandError::WrongPin),
        }
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
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

impl CreateProfile {
    /// The profile asked for, its fields checked; avatar and language defaulted.
    fn parse(&self) -> Result<Profile, InvalidField> {
        Ok(Profile {
            name: ProfileName::parse(&self.name)?,
            kids: self.kids,
            maturity_rating: match self.maturity_rating.as_deref() {
                Some(m) => Maturity::parse(m)?,
                None => Maturity::default_for(self.kids),
            },
            avatar: match self.avatar.as_deref() {
                Some(a) => check_avatar(a)?,
                None => default_avatar(&self.name),
            },
            language: match self.language.as_deref() {
                Some(l) => check_language(l)?,
                None => "en".into(),
            },
        })
    }
}

impl UpdateProfile {
    /// The changes asked for, each field checked.
    fn parse(&self) -> Result<ProfileChanges, InvalidField> {
        Ok(ProfileChanges {
            name: self.name.as_deref().map(ProfileName::parse).transpose()?,
            kids: self.kids,
            maturity_rating: self
                .maturity_rating
                .as_deref()
                .map(Maturity::parse)
                .transpose()?,
            avatar: self.avatar.as_deref().map(check_avatar).transpose()?,
            language: self.language.as_deref().map(check_language).transpose()?,
        })
    }
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

#[utoipa::path(get, path = "/api/me", tag = "accounts", params(MinPosition), responses((status = 200, body = Me), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn me(
    State(app): State<AppState>,
    caller: Caller,
    _: ReadAt<AccountAndSubscription>,
) -> ApiResult<impl IntoResponse> {
    let overview = accounts::overview(
        &app.projections,
        caller.user_id,
        caller.account_id,
        app.read_wait,
    )
    .await?
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_caught_up",
            "your account is still being set up",
        )
        .retry_after(1)
    })?;
    let account = caller.account_id.to_string();
    let entitlement =
        subscriptions::entitlement(app.projections.db(), &account, app.clock.now()).await?;
    Ok(axum::Json(Me::new(overview, entitlement)?))
}

impl Me {
    fn new(o: Overview, entitlement: subscriptions::Entitlement) -> ApiResult<Me> {
        Ok(Me {
            account: serde_json::json!({ "account_id": o.account_id, "profile_count": o.profiles.len(), "max_profiles": cinelog_domain::account::MAX_PROFILES }),
            subscription: serde_json::to_value(entitlement).map_err(ApiError::internal)?,
            user: o.user,
            profiles: o.profiles,
        })
    }
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
    _: ReadAt<Accounts>,
) -> ApiResult<impl IntoResponse> {
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
    profile: OwnProfile<Accounts>,
) -> ApiResult<impl IntoResponse> {
    let account = profile.caller.account_id.to_string();
    accounts::profile(app.projections.db(), &account, &profile.id.to_string())
        .await?
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
    let profile = req.parse()?;
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

/// Edits a profile: the caller's account is the command's stream, so another account's profile
/// is not found there.
#[utoipa::path(patch, path = "/api/profiles/{id}", tag = "accounts", request_body = UpdateProfile, params(("id" = String, Path)),
    responses((status = 200, body = ProfileBody), (status = 404, body = ErrorBody), (status = 409, description = "profile_name_taken", body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<UpdateProfile>,
) -> ApiResult<impl IntoResponse> {
    let id = parse_id(&id)?;
    let changes = req.parse()?;
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
