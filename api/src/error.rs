//! The one error type of the HTTP layer: every failure becomes `{"error", "message"}` with a
//! fitting status. Server faults are logged with their cause chain and answered without internals.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cinelog_commands::ports::WebhookError;
use cinelog_commands::{CommandError, StoreError};
use cinelog_domain::account::AccountError;
use cinelog_domain::email_claim::EmailClaimError;
use cinelog_domain::session::SessionError;
use cinelog_domain::subscription::SubscriptionError;
use cinelog_domain::title::TitleError;
use cinelog_domain::user::UserError;
use cinelog_domain::values::InvalidField;
use cinelog_domain::viewing::{PlaybackError, ViewingError};
use cinelog_infra::history::HistoryError;
use cinelog_projections::analyst::ReadError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

/// The error body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// snake_case error code, stable for clients.
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in first: send Authorization: Bearer <access token>",
        )
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn invalid(field: &str, message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{field}: {message}"),
        )
    }
    /// 429 for a request over one of the abuse limits.
    pub fn throttled(t: cinelog_infra::limits::Throttled) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "too many attempts; try again later",
        )
        .retry_after(t.retry_after)
    }

    /// 503 when the limits' store does not answer: limits are never skipped.
    pub fn limits_down(e: anyhow::Error) -> Self {
        tracing::error!(error = ?e, "abuse limits unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "this is briefly unavailable; try again",
        )
        .retry_after(5)
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
    pub fn internal(e: impl std::fmt::Debug) -> Self {
        tracing::error!(error = ?e, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on our side",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_string(),
            message: self.message,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::internal(e)
    }
}

impl From<InvalidField> for ApiError {
    fn from(f: InvalidField) -> Self {
        ApiError::invalid(f.field, f.message)
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        use StatusCode as S;
        let message = e.to_string();
        let (status, code) = match &e {
            CommandError::Invalid(f) | CommandError::Account(AccountError::Invalid(f)) => {
                return ApiError::from(f.clone());
            }
            CommandError::Playback(refused) => return playback(refused),
            CommandError::Webhook(refused) => return webhook(refused),
            CommandError::Account(AccountError::ProfileLimitReached) => {
                (S::CONFLICT, "profile_limit_reached")
            }
            CommandError::Account(AccountError::ProfileNameTaken) => {
                (S::CONFLICT, "profile_name_taken")
            }
            CommandError::Account(AccountError::ProfileNotFound) => (S::NOT_FOUND, "not_found"),
            CommandError::Account(AccountError::NotOpen) => (S::NOT_FOUND, "not_found"),
            CommandError::Account(AccountError::AlreadyOpen) => (S::CONFLICT, "conflict"),
            CommandError::EmailClaim(EmailClaimError::EmailTaken) => (S::CONFLICT, "email_taken"),
            CommandError::User(UserError::ResetTokenInvalid | UserError::ResetTokenExpired) => {
                (S::UNPROCESSABLE_ENTITY, "invalid_token")
            }
            CommandError::User(UserError::NoPendingVerification) => {
                (S::CONFLICT, "no_pending_verification")
            }
            CommandError::User(UserError::NotRegistered) => (S::UNAUTHORIZED, "unauthenticated"),
            CommandError::User(UserError::AlreadyRegistered) => (S::CONFLICT, "conflict"),
            CommandError::User(UserError::Erased) => (S::UNAUTHORIZED, "account_erased"),
            CommandError::Session(SessionError::Invalid | SessionError::AlreadyStarted) => {
                (S::UNAUTHORIZED, "invalid_refresh_token")
            }
            CommandError::Subscription(SubscriptionError::AlreadySubscribed) => {
                (S::CONFLICT, "already_subscribed")
            }
            CommandError::Subscription(SubscriptionError::NotSubscribed) => {
                (S::CONFLICT, "not_subscribed")
            }
            CommandError::Subscription(SubscriptionError::PlanUnchanged) => {
                (S::CONFLICT, "plan_unchanged")
            }
            CommandError::Subscription(SubscriptionError::AlreadyCanceling) => {
                (S::CONFLICT, "already_canceling")
            }
            CommandError::Subscription(SubscriptionError::ChangeThroughProvider) => {
                (S::CONFLICT, "change_through_provider")
            }
            CommandError::Subscription(SubscriptionError::NotCanceling) => {
                (S::CONFLICT, "not_canceling")
            }
            CommandError::Subscription(SubscriptionError::CannotResume) => {
                (S::CONFLICT, "cannot_resume")
            }
            CommandError::Viewing(ViewingError::StreamLimitReached(_)) => {
                (S::CONFLICT, "stream_limit_reached")
            }
            CommandError::Viewing(ViewingError::SessionNotFound) => (S::NOT_FOUND, "not_found"),
            CommandError::Viewing(ViewingError::BadPosition) => {
                (S::UNPROCESSABLE_ENTITY, "invalid_field")
            }
            CommandError::Title(TitleError::NotFound) => (S::NOT_FOUND, "not_found"),
            CommandError::Title(TitleError::Unnamed) => (S::UNPROCESSABLE_ENTITY, "invalid_field"),
            CommandError::Taste(never) => match *never {},
            CommandError::ProviderNotOffered(_) => {
                (S::UNPROCESSABLE_ENTITY, "provider_not_offered")
            }
            CommandError::BadCredentials => (S::UNAUTHORIZED, "invalid_credentials"),
            CommandError::WrongPin => (S::FORBIDDEN, "wrong_pin"),
            CommandError::WrongCode => (S::UNPROCESSABLE_ENTITY, "wrong_code"),
            CommandError::Contention => (S::CONFLICT, "concurrent_change"),
            CommandError::Service(_) => {
                tracing::warn!(error = %message, "a service this request depends on failed");
                return ApiError::new(
                    S::BAD_GATEWAY,
                    "service_unavailable",
                    "a service this request depends on did not answer in time; try again later",
                );
            }
            CommandError::Store(StoreError::Backend(_)) => {
                tracing::warn!(error = %message, "the event store did not answer");
                return ApiError::new(
                    S::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "the event store did not answer in time; try again",
                )
                .retry_after(1);
            }
            CommandError::Store(_) => return ApiError::internal(e),
        };
        ApiError::new(status, code, message)
    }
}

impl From<HistoryError> for ApiError {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::NoStream(..) => ApiError::not_found("stream"),
            HistoryError::UnknownStreamType(t) => {
                ApiError::invalid("stream_type", format!("{t:?} is not a stream type"))
            }
            HistoryError::Other(e) => ApiError::internal(e),
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::UnknownPosition(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_query",
                e.to_string(),
            ),
            ReadError::Log(e) => ApiError::internal(e),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        CommandError::from(e).into()
    }
}

/// Playback refusals: the plan (402), the profile or the URL (403), what does not exist (404),
/// a title without media (409).
fn playback(refused: &PlaybackError) -> ApiError {
    use PlaybackError as P;
    use StatusCode as S;
    let (status, code) = match refused {
        P::TitleNotFound | P::EpisodeNotFound | P::RenditionNotFound | P::MediaNotFound => {
            (S::NOT_FOUND, "not_found")
        }
        P::SubscriptionRequired => (S::PAYMENT_REQUIRED, "subscription_required"),
        P::SubscriptionEnded => (S::PAYMENT_REQUIRED, "subscription_ended"),
        P::MaturityBlocked(_) => (S::FORBIDDEN, "maturity_blocked"),
        P::NotPlayable => (S::CONFLICT, "not_playable"),
        P::SessionEnded => (S::FORBIDDEN, "session_ended"),
        P::UrlExpired => (S::FORBIDDEN, "stream_url_expired"),
        P::BadUrl => (S::FORBIDDEN, "bad_stream_url"),
        P::QualityNotInPlan(_) => (S::FORBIDDEN, "quality_not_in_plan"),
    };
    ApiError::new(status, code, refused.to_string())
}

/// A webhook refused: a bad signature or body is the sender's (400, the reason logged, not
/// told); a provider that cannot confirm it asks for a redelivery later (503).
fn webhook(refused: &WebhookError) -> ApiError {
    match refused {
        WebhookError::BadSignature(why) => {
            tracing::warn!(%why, "webhook refused");
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_signature",
                "the webhook signature is missing, wrong or stale",
            )
        }
        WebhookError::Malformed(why) => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_event", why.clone())
        }
        WebhookError::Unavailable(why) => {
            tracing::warn!(%why, "webhook could not be verified");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "verification_unavailable",
                "the provider could not confirm the webhook; deliver it again later",
            )
            .retry_after(30)
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A limit's verdict as an answer: 429 when over, 503 when the limits cannot be counted.
pub fn within_limit(
    verdict: anyhow::Result<Result<(), cinelog_infra::limits::Throttled>>,
) -> ApiResult<()> {
    verdict
        .map_err(ApiError::limits_down)?
        .map_err(ApiError::throttled)
}

/// Runs a try at a secret (a profile's PIN, the password to leave a kids profile) within the
/// limit on guesses at `what`; a success is not counted.
pub(crate) async fn guarded<T>(
    app: &crate::app::AppState,
    what: uuid::Uuid,
    attempt: impl std::future::Future<Output = Result<T, CommandError>>,
) -> ApiResult<T> {
    within_limit(app.throttle.unlock_attempt(what).await)?;
    let answer = attempt.await?;
    app.throttle
        .unlock_succeeded(what)
        .await
        .map_err(ApiError::limits_down)?;
    Ok(answer)
}
