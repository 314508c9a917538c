//! Signup, login, tokens, password reset and phone verification.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, within_limit};
use crate::extract::{AnonymousMeta, Caller, ClientIp, Json, OptionalJson};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use cinelog_commands::identity::SessionGrant;
use cinelog_domain::values::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/signup", post(signup))
        .route("/api/auth/login", post(login))
        .route("/api/auth/refresh", post(refresh))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/password-reset", post(password_reset))
        .route(
            "/api/auth/password-reset/confirm",
            post(password_reset_confirm),
        )
        .route("/api/auth/phone/start", post(phone_start))
        .route("/api/auth/phone/verify", post(phone_verify))
        .route("/api/auth/password", post(change_password))
        .route("/api/auth/confirm", post(confirm_password))
}

#[derive(Deserialize, ToSchema)]
pub struct ConfirmRequest {
    /// The account's password, entered again.
    pub password: String,
}

/// Checks the signed-in user's password again, for a step the UI guards (leaving a kids
/// profile). Changes nothing; tries are limited.
#[utoipa::path(post, path = "/api/auth/confirm", request_body = ConfirmRequest, tag = "auth",
    responses((status = 204, description = "the password is right"), (status = 401, description = "wrong password or not signed in", body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn confirm_password(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<ConfirmRequest>,
) -> ApiResult<StatusCode> {
    crate::error::guarded(&app, caller.user_id, async {
        app.identity
            .confirm_password(caller.user_id, &req.password)
            .await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct SignupRequest {
    #[schema(example = "dora@example.com", max_length = 254)]
    pub email: String,
    /// 8 to 128 characters, and not easy to guess.
    #[schema(example = "Corr3ct-horse-battery", min_length = 8, max_length = 128)]
    pub password: String,
    pub phone: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SignupResponse {
    pub user_id: Uuid,
    pub account_id: Uuid,
    pub position: i64,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub position: i64,
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ResetRequest {
    pub email: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ResetConfirm {
    pub token: String,
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct PhoneStart {
    pub phone: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    pub current_password: String,
    #[schema(min_length = 8, max_length = 128)]
    pub new_password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct PhoneVerify {
    pub code: String,
}

#[utoipa::path(post, path = "/api/auth/signup", request_body = SignupRequest, tag = "auth",
    responses((status = 201, body = SignupResponse), (status = 409, description = "email_taken", body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn signup(
    State(app): State<AppState>,
    AnonymousMeta(meta): AnonymousMeta,
    ClientIp(client): ClientIp,
    Json(req): Json<SignupRequest>,
) -> ApiResult<impl IntoResponse> {
    within_limit(app.throttle.signup(client).await)?;
    let done = app
        .identity
        .signup(
            &req.email,
            &req.password,
            req.phone.as_deref(),
            Role::Viewer,
            &meta,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(SignupResponse {
            user_id: done.user_id,
            account_id: done.account_id,
            position: done.position,
        }),
    ))
}

fn tokens(app: &AppState, grant: SessionGrant) -> axum::Json<TokenResponse> {
    let access_token = app.jwt.issue(
        grant.user_id,
        grant.account_id,
        grant.role,
        grant.session_id,
    );
    axum::Json(TokenResponse {
        access_token,
        refresh_token: grant.refresh_token,
        token_type: "Bearer",
        expires_in: app.jwt.ttl_secs,
        position: grant.position,
    })
}

#[utoipa::path(post, path = "/api/auth/login", request_body = LoginRequest, tag = "auth",
    responses((status = 200, body = TokenResponse), (status = 401, body = ErrorBody), (status = 429, description = "too many failed attempts", body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn login(
    State(app): State<AppState>,
    AnonymousMeta(meta): AnonymousMeta,
    ClientIp(client): ClientIp,
    Json(req): Json<LoginRequest>,
) -> ApiResult<impl IntoResponse> {
    within_limit(app.throttle.login_attempt(&req.email, client).await)?;
    let grant = app.identity.login(&req.email, &req.password, &meta).await?;
    app.throttle
        .login_succeeded(&req.email, client)
        .await
        .map_err(ApiError::limits_down)?;
    Ok(tokens(&app, grant))
}

#[utoipa::path(post, path = "/api/auth/refresh", request_body = RefreshRequest, tag = "auth",
    responses((status = 200, body = TokenResponse), (status = 401, description = "unknown, used or revoked", body = ErrorBody)))]
pub async fn refresh(
    State(app): State<AppState>,
    AnonymousMeta(meta): AnonymousMeta,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(tokens(
        &app,
        app.identity.refresh(&req.refresh_token, &meta).await?,
    ))
}

#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", responses((status = 204), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn logout(State(app): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    app.identity.logout(caller.session_id, &caller.meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/auth/password-reset", request_body = ResetRequest, tag = "auth", responses((status = 202, description = "sent if the email exists")))]
pub async fn password_reset(
    State(app): State<AppState>,
    AnonymousMeta(meta): AnonymousMeta,
    ClientIp(client): ClientIp,
    Json(req): Json<ResetRequest>,
) -> ApiResult<StatusCode> {
    within_limit(app.throttle.password_reset(&req.email, client).await)?;
    app.identity
        .request_password_reset(&req.email, &meta)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(post, path = "/api/auth/password-reset/confirm", request_body = ResetConfirm, tag = "auth",
    responses((status = 204), (status = 422, description = "invalid_token or weak password", body = ErrorBody)))]
pub async fn password_reset_confirm(
    State(app): State<AppState>,
    AnonymousMeta(meta): AnonymousMeta,
    Json(req): Json<ResetConfirm>,
) -> ApiResult<StatusCode> {
    app.identity
        .confirm_password_reset(&req.token, &req.new_password, &meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/auth/phone/start", request_body = PhoneStart, tag = "auth", responses((status = 202), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn phone_start(
    State(app): State<AppState>,
    caller: Caller,
    OptionalJson(req): OptionalJson<PhoneStart>,
) -> ApiResult<StatusCode> {
    within_limit(app.throttle.phone_code(caller.user_id).await)?;
    let phone = req.unwrap_or_default().phone;
    app.identity
        .start_phone_verification(caller.user_id, phone.as_deref(), &caller.meta)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(post, path = "/api/auth/phone/verify", request_body = PhoneVerify, tag = "auth", responses((status = 204), (status = 409, description = "no_pending_verification", body = ErrorBody), (status = 422, description = "wrong_code", body = ErrorBody)), security(("bearer" = [])))]
pub async fn phone_verify(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<PhoneVerify>,
) -> ApiResult<StatusCode> {
    app.identity
        .verify_phone(caller.user_id, &req.code, &caller.meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/auth/password", request_body = PasswordChange, tag = "auth",
    responses((status = 204, description = "changed; every session of the user has ended"), (status = 401, body = ErrorBody), (status = 422, description = "weak new password", body = ErrorBody)), security(("bearer" = [])))]
pub async fn change_password(
    State(app): State<AppState>,
    caller: Caller,
    Json(req): Json<PasswordChange>,
) -> ApiResult<StatusCode> {
    app.identity
        .change_password(
            caller.user_id,
            &req.current_password,
            &req.new_password,
            &caller.meta,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
