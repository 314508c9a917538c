//! Our own extractors: JSON whose rejections speak our error format, the signed-in caller and
//! their own profile, read-your-writes on the read models a query reads, and the command
//! metadata (actor, correlation id) every event carries.

use crate::app::AppState;
use crate::auth::Claims;
use crate::error::{ApiError, ApiResult};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use cinelog_commands::CommandMeta;
use cinelog_domain::Actor;
use cinelog_domain::account::Profile;
use cinelog_domain::values::{Maturity, Role};
use cinelog_projections as projections;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use uuid::Uuid;

/// A JSON body. Malformed JSON → 400, wrong types or missing fields → 422, wrong content type
/// → 415, too large → 413.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let text = r.body_text();
    match r {
        JsonRejection::JsonDataError(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", text)
        }
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", text)
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is larger than 1 MiB",
            )
        }
        _ => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", text),
    }
}

/// A body that may be empty (some commands take none); anything present must be valid JSON.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        serde_json::from_slice(&bytes)
            .map(|v| OptionalJson(Some(v)))
            .map_err(|e| match e.classify() {
                serde_json::error::Category::Data => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    e.to_string(),
                ),
                _ => ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", e.to_string()),
            })
    }
}

/// The body as bytes (webhooks verify signatures over them), with rejections in our format.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|r| {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        r.status(),
                        "body_too_large",
                        "the request body is larger than 1 MiB",
                    )
                } else {
                    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", r.body_text())
                }
            })
    }
}

/// The signed-in caller, from a valid access token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    pub account_id: Uuid,
    pub role: Role,
    pub session_id: Uuid,
    pub meta: CommandMeta,
}

impl Caller {
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        let allowed = match role {
            Role::Viewer => true,
            Role::Analyst => matches!(self.role, Role::Analyst | Role::Auditor),
            Role::Auditor => self.role == Role::Auditor,
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {} role",
                role.as_str()
            )))
        }
    }
}

/// Correlation id of the request: the caller's `X-Correlation-Id` if it is a UUID, else a new one.
pub fn correlation_id(parts: &Parts) -> Uuid {
    parts
        .headers
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or_else(Uuid::now_v7)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(ApiError::unauthorized)?;
        let claims: Claims = state.jwt.verify(token.trim()).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the access token is invalid or expired",
            )
        })?;
        if state.sessions.is_ended(claims.sid) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "session_ended",
                "this session has ended; sign in again",
            ));
        }
        let meta = CommandMeta {
            actor: Actor::User(claims.sub),
            correlation_id: correlation_id(parts),
            causation_id: None,
        };
        Ok(Caller {
            user_id: claims.sub,
            account_id: claims.acct,
            role: claims.role,
            session_id: claims.sid,
            meta,
        })
    }
}

/// The caller if a token is sent (an invalid one is still refused), else nobody.
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .is_none()
        {
            return Ok(MaybeCaller(None));
        }
        Ok(MaybeCaller(Some(
            Caller::from_request_parts(parts, state).await?,
        )))
    }
}

/// Command metadata for callers who are not signed in.
pub struct AnonymousMeta(pub CommandMeta);

impl<S: Send + Sync> FromRequestParts<S> for AnonymousMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(AnonymousMeta(CommandMeta {
            actor: Actor::Anonymous,
            correlation_id: correlation_id(parts),
            causation_id: None,
        }))
    }
}

/// Query parameters whose rejection speaks our error format (400 `invalid_query`).
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text()))
    }
}

/// `?min_position=N`: read-your-writes for queries.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
pub struct MinPosition {
    /// Wait until the read model has applied the event at this global position.
    pub min_position: Option<i64>,
}

/// The read models a query reads, named by a marker type.
pub trait ReadModels: Send + Sync + 'static {
    /// The projections' names.
    const NAMES: &'static [&'static str];
}

macro_rules! read_models {
    ($($(#[$doc:meta])* $marker:ident => [$($name:expr),*];)*) => {$(
        $(#[$doc])*
        pub struct $marker;
        impl ReadModels for $marker {
            const NAMES: &'static [&'static str] = &[$($name),*];
        }
    )*};
}

read_models! {
    /// No read model: the write side answers.
    WriteSide => [];
    /// Users, accounts and profiles.
    Accounts => [projections::accounts::NAME];
    /// The user with their subscription.
    AccountAndSubscription => [projections::accounts::NAME, projections::subscriptions::NAME];
    /// Subscriptions and payments.
    Subscriptions => [projections::subscriptions::NAME];
    /// The catalog.
    Catalog => [projections::catalog::NAME];
    /// Ratings, My List and what recommendations are built from.
    Engagement => [projections::engagement::NAME];
    /// Playback progress and history.
    Watching => [projections::watching::NAME];
    /// The analysts' dashboard.
    Stats => [projections::stats::NAME];
}

/// Read-your-writes: with `?min_position=N` the request waits until the read models `M` have
/// applied the event at N (503 with Retry-After if they do not in time; 422 for a position no
/// write has reached).
pub struct ReadAt<M>(PhantomData<M>);

impl<M: ReadModels> FromRequestParts<AppState> for ReadAt<M> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Query(q) = Query::<MinPosition>::from_request_parts(parts, state).await?;
        if let Some(position) = q.min_position {
            for name in M::NAMES {
                read_model_at(state, name, position).await?;
            }
        }
        Ok(ReadAt(PhantomData))
    }
}

/// Waits for the named read model to reach `position`.
async fn read_model_at(app: &AppState, projection: &str, position: i64) -> ApiResult<()> {
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

/// A profile of the caller's account, named by the path's `pid` (or `id`), as the write side
/// knows it (no read-model lag), after read-your-writes on the read models `M`. Another
/// account's profile, or a malformed id, is not found.
pub struct OwnProfile<M = WriteSide> {
    /// The signed-in caller.
    pub caller: Caller,
    /// The profile's id.
    pub id: Uuid,
    /// The profile.
    pub profile: Profile,
    read: PhantomData<M>,
}

impl<M> OwnProfile<M> {
    /// The highest rating the profile may watch.
    pub fn ceiling(&self) -> Maturity {
        self.profile.maturity_rating
    }
}

impl<M: ReadModels> FromRequestParts<AppState> for OwnProfile<M> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("profile"))?;
        let pid = params
            .iter()
            .find(|(name, _)| matches!(*name, "pid" | "id"))
            .map(|(_, value)| value.to_string())
            .ok_or_else(|| ApiError::not_found("profile"))?;
        ReadAt::<M>::from_request_parts(parts, state).await?;
        let (id, profile) = own_profile(state, &caller, &pid).await?;
        Ok(OwnProfile {
            caller,
            id,
            profile,
            read: PhantomData,
        })
    }
}

async fn own_profile(app: &AppState, caller: &Caller, pid: &str) -> ApiResult<(Uuid, Profile)> {
    let id = Uuid::parse_str(pid).map_err(|_| ApiError::not_found("profile"))?;
    let profile = app
        .accounts
        .profile(caller.account_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("profile"))?;
    Ok((id, profile))
}

#[derive(serde::Deserialize)]
struct ProfileQuery {
    profile_id: Option<String>,
}

/// The maturity ceiling of the viewing profile named by `?profile_id=`, if one is: catalog
/// reads are limited to what it may see. A profile of another account, or one named without
/// a token, is not found / unauthenticated. Read from its account's events, so a rating just
/// changed counts at once.
pub struct Ceiling(pub Option<Maturity>);

impl FromRequestParts<AppState> for Ceiling {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Query(q) = Query::<ProfileQuery>::from_request_parts(parts, state).await?;
        let Some(pid) = q.profile_id.filter(|p| !p.is_empty()) else {
            return Ok(Ceiling(None));
        };
        let MaybeCaller(caller) = MaybeCaller::from_request_parts(parts, state).await?;
        let caller = caller.ok_or_else(ApiError::unauthorized)?;
        let (_, profile) = own_profile(state, &caller, &pid).await?;
        Ok(Ceiling(Some(profile.maturity_rating)))
    }
}

/// `Last-Event-ID`: the position an SSE client saw last, when it sends one.
pub struct LastEventId(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for LastEventId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(raw) = parts
            .headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(LastEventId(None));
        };
        raw.trim()
            .parse::<i64>()
            .ok()
            .map(|p| LastEventId(Some(p)))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "Last-Event-ID must be a position",
                )
            })
    }
}

/// The client's address: the connection's peer, or, when that peer is a configured trusted
/// proxy, the nearest address in `X-Forwarded-For` that is not one. Limits count per client.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(ClientIp(client_ip(
            peer,
            &parts.headers,
            &state.settings.trusted_proxies,
        )))
    }
}

/// Walks `X-Forwarded-For` from the right while the hop that added an entry is trusted.
pub fn client_ip(
    peer: IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.7, 10.0.0.2".parse().unwrap(),
        );
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(proxy, &headers, &trusted),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(proxy, &headers, &[]), proxy);
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_ip(stranger, &headers, &trusted), stranger);
    }
}
