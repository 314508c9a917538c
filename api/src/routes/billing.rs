//! Plans, checkout, plan changes, cancellation and its withdrawal, the subscription page's data, provider webhooks,
//! and the sandbox provider's checkout page.

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{
    AnonymousMeta, Caller, Json, MinPosition, Query, RawBody, ReadAt, Subscriptions,
};
use crate::web::escape;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cinelog_commands::ports::WebhookRequest;
use cinelog_domain::plan::{PLANS, Plan, PlanId};
use cinelog_domain::subscription::Provider;
use cinelog_infra::payments::sandbox::{CHECKOUT_PATH, SandboxCheckout, SandboxGateway};
use cinelog_projections::accounts;
use cinelog_projections::subscriptions::{self, Entitlement, PaymentView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/plans", get(plans))
        .route("/api/subscription", get(show))
        .route("/api/subscription/checkout", post(checkout))
        .route("/api/subscription/change", post(change))
        .route("/api/subscription/cancel", post(cancel))
        .route("/api/subscription/resume", post(resume))
        .route("/webhooks/{provider}", post(webhook))
        .route(CHECKOUT_PATH, get(sandbox_page))
        .route("/sandbox/checkout/{answer}", post(sandbox_answer))
}

#[derive(Serialize, ToSchema)]
pub struct PlanBody {
    #[schema(value_type = String)]
    pub id: PlanId,
    pub name: &'static str,
    /// Highest rendition height, e.g. 1080.
    pub max_quality: u32,
    pub concurrent_streams: u32,
    /// Monthly price in minor units (cents).
    pub price_minor: i64,
    pub currency: &'static str,
    /// The price for people, e.g. "15.49".
    pub price: String,
}

impl From<&Plan> for PlanBody {
    fn from(p: &Plan) -> Self {
        PlanBody {
            id: p.id,
            name: p.name,
            max_quality: p.max_quality,
            concurrent_streams: p.concurrent_streams,
            price_minor: p.price_minor,
            currency: p.currency,
            price: format!("{}.{:02}", p.price_minor / 100, p.price_minor % 100),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Plans {
    pub plans: Vec<PlanBody>,
    /// Payment providers offered here (`sandbox`, and `stripe` / `paypal` when configured).
    #[schema(value_type = Vec<String>)]
    pub providers: Vec<Provider>,
}

#[utoipa::path(get, path = "/api/plans", tag = "subscriptions", responses((status = 200, body = Plans)))]
pub async fn plans(State(app): State<AppState>) -> impl IntoResponse {
    axum::Json(Plans {
        plans: PLANS.iter().map(PlanBody::from).collect(),
        providers: app.billing.providers(),
    })
}

#[derive(Deserialize, ToSchema)]
pub struct CheckoutBody {
    /// basic, standard or premium.
    #[schema(example = "standard", pattern = "^(basic|standard|premium)$")]
    pub plan: String,
    /// sandbox (default), stripe or paypal.
    #[schema(pattern = "^(sandbox|stripe|paypal)$")]
    pub provider: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CheckoutStarted {
    /// Where to send the subscriber to pay.
    pub redirect_url: String,
    pub position: i64,
}

fn provider_named(raw: Option<&str>) -> ApiResult<Provider> {
    let raw = raw.unwrap_or("sandbox");
    Provider::parse(raw)
        .ok_or_else(|| ApiError::invalid("provider", "must be one of sandbox, stripe, paypal"))
}

#[utoipa::path(post, path = "/api/subscription/checkout", tag = "subscriptions", request_body = CheckoutBody,
    responses((status = 200, body = CheckoutStarted), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn checkout(
    State(app): State<AppState>,
    caller: Caller,
    Json(body): Json<CheckoutBody>,
) -> ApiResult<impl IntoResponse> {
    let plan = PlanId::parse(&body.plan)?;
    let provider = provider_named(body.provider.as_deref())?;
    let email = accounts::email(app.projections.db(), caller.user_id).await?;
    let base = app.public_base();
    let (redirect_url, position) = app
        .billing
        .checkout(
            caller.account_id,
            plan,
            provider,
            email,
            &format!("{base}/"),
            &caller.meta,
        )
        .await?;
    // The sandbox's page is ours: its URL comes relative.
    let redirect_url = match redirect_url.starts_with('/') {
        true => format!("{base}{redirect_url}"),
        false => redirect_url,
    };
    Ok(axum::Json(CheckoutStarted {
        redirect_url,
        position,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct ChangeBody {
    /// The plan to move to: upgrades apply now, downgrades at the period end.
    #[schema(example = "premium", pattern = "^(basic|standard|premium)$")]
    pub plan: String,
}

#[derive(Serialize, ToSchema)]
pub struct Changed {
    pub status: String,
    #[schema(value_type = Option<String>)]
    pub plan: Option<PlanId>,
    /// A downgrade waiting for the period end.
    #[schema(value_type = Option<String>)]
    pub pending_plan: Option<PlanId>,
    pub period_end: Option<String>,
    pub cancel_at_period_end: bool,
    /// Until when the subscription plays.
    pub access_until: Option<String>,
    pub position: i64,
}

fn changed(state: &cinelog_domain::subscription::SubscriptionState, position: i64) -> Changed {
    let time =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map(cinelog_domain::envelope::format_time);
    Changed {
        status: state.status.as_str().into(),
        plan: state.plan,
        pending_plan: state.pending_plan,
        period_end: time(state.period_end),
        cancel_at_period_end: state.cancel_at_period_end,
        access_until: time(state.access_until()),
        position,
    }
}

#[utoipa::path(post, path = "/api/subscription/change", tag = "subscriptions", request_body = ChangeBody,
    responses((status = 200, body = Changed), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn change(
    State(app): State<AppState>,
    caller: Caller,
    Json(body): Json<ChangeBody>,
) -> ApiResult<impl IntoResponse> {
    let plan = PlanId::parse(&body.plan)?;
    let (state, position) = app
        .billing
        .change_plan(caller.account_id, plan, &caller.meta)
        .await?;
    Ok(axum::Json(changed(&state, position)))
}

#[utoipa::path(post, path = "/api/subscription/cancel", tag = "subscriptions",
    responses((status = 200, body = Changed), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn cancel(State(app): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    let (state, position) = app.billing.cancel(caller.account_id, &caller.meta).await?;
    Ok(axum::Json(changed(&state, position)))
}

#[utoipa::path(post, path = "/api/subscription/resume", tag = "subscriptions",
    responses((status = 200, body = Changed), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn resume(State(app): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    let (state, position) = app.billing.resume(caller.account_id, &caller.meta).await?;
    Ok(axum::Json(changed(&state, position)))
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionBody {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub entitlement: Entitlement,
    pub plan_name: Option<&'static str>,
    pub provider: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub payments: Vec<PaymentView>,
}

#[utoipa::path(get, path = "/api/subscription", tag = "subscriptions", params(MinPosition),
    responses((status = 200, body = SubscriptionBody)), security(("bearer" = [])))]
pub async fn show(
    State(app): State<AppState>,
    caller: Caller,
    _: ReadAt<Subscriptions>,
) -> ApiResult<impl IntoResponse> {
    let db = app.projections.db();
    let account = caller.account_id.to_string();
    let entitlement = subscriptions::entitlement(db, &account, app.clock.now()).await?;
    let provider = app.billing.state(caller.account_id).await?.provider;
    Ok(axum::Json(SubscriptionBody {
        plan_name: entitlement.plan.map(|p| p.plan().name),
        provider: provider.map(|p| p.as_str().to_string()),
        payments: subscriptions::payments(db, &account).await?,
        entitlement,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct WebhookAnswer {
    pub received: bool,
    /// False for a duplicate delivery or a fact about no known subscription.
    pub recorded: bool,
    pub position: Option<i64>,
}

#[utoipa::path(post, path = "/webhooks/{provider}", tag = "subscriptions", request_body(content = String, description = "the provider's event, signed", content_type = "application/json"), params(("provider" = String, Path, description = "stripe, paypal or sandbox")),
    responses((status = 200, body = WebhookAnswer), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn webhook(
    State(app): State<AppState>,
    AnonymousMeta(meta): AnonymousMeta,
    Path(provider): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<impl IntoResponse> {
    let provider = Provider::parse(&provider)
        .filter(|p| app.billing.offers(*p))
        .ok_or_else(|| ApiError::not_found("payment provider"))?;
    let request = WebhookRequest {
        headers: headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: body.to_vec(),
    };
    let received = app
        .billing
        .receive(provider, &request, meta.correlation_id)
        .await?;
    Ok(axum::Json(WebhookAnswer {
        received: true,
        recorded: received.recorded,
        position: received.position,
    }))
}

#[derive(Deserialize, IntoParams)]
pub struct SandboxSession {
    /// The signed checkout token from the checkout's redirect URL.
    pub session: String,
}

/// The sandbox and the checkout its signed token names.
fn sandbox_checkout<'a>(
    app: &'a AppState,
    token: &str,
) -> ApiResult<(&'a SandboxGateway, SandboxCheckout)> {
    app.sandbox
        .as_deref()
        .and_then(|s| Some((s, s.open(token)?)))
        .ok_or_else(|| ApiError::not_found("sandbox checkout"))
}

/// The sandbox's checkout page: the plan, its price, and approve / decline.
pub async fn sandbox_page(
    State(app): State<AppState>,
    Query(q): Query<SandboxSession>,
) -> ApiResult<Response> {
    let (_, checkout) = sandbox_checkout(&app, &q.session)?;
    let page = sandbox_html(&PlanBody::from(checkout.plan.plan()), &escape(&q.session));
    Ok((
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        ],
        Html(page),
    )
        .into_response())
}

/// The checkout page's HTML for a plan; `session` is already escaped.
fn sandbox_html(plan: &PlanBody, session: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sandbox checkout · Cinelog</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;background:#111;color:#eee;display:grid;place-items:center;min-height:100vh;margin:0}}
main{{background:#1d1d1d;padding:2rem 2.5rem;border-radius:12px;max-width:26rem}}h1{{margin-top:0}}.price{{font-size:2rem}}
.note{{color:#aaa;font-size:.9rem}}form{{display:inline}}button{{font-size:1rem;padding:.6rem 1.2rem;margin:.4rem .4rem 0 0;border-radius:6px;border:0;cursor:pointer}}
#approve{{background:#e50914;color:#fff}}#decline{{background:#444;color:#eee}}</style></head>
<body><main><h1>Sandbox checkout</h1><p>{name} plan · up to {quality}p · {streams} screen(s)</p>
<p class="price">{price} {currency}/month</p><p class="note">This is Cinelog's local payment sandbox: no money moves. Approving pays the first month.</p>
<form method="post" action="/sandbox/checkout/approve?session={session}"><button id="approve" type="submit">Approve payment</button></form>
<form method="post" action="/sandbox/checkout/decline?session={session}"><button id="decline" type="submit">Decline</button></form>
</main></body></html>"#,
        name = plan.name,
        quality = plan.max_quality,
        streams = plan.concurrent_streams,
        price = plan.price,
        currency = plan.currency.to_uppercase(),
    )
}

/// The subscriber's answer on the sandbox checkout page: the sandbox turns it into a signed
/// webhook delivery and hands it to the same path as the real providers' webhooks; the
/// subscriber goes back to the app with the position to read their subscription at.
pub async fn sandbox_answer(
    State(app): State<AppState>,
    AnonymousMeta(meta): AnonymousMeta,
    Path(answer): Path<String>,
    Query(q): Query<SandboxSession>,
) -> ApiResult<Response> {
    let approved = match answer.as_str() {
        "approve" => true,
        "decline" => false,
        _ => return Err(ApiError::not_found("sandbox answer")),
    };
    let (sandbox, checkout) = sandbox_checkout(&app, &q.session)?;
    let delivery = sandbox.settle(&checkout, approved);
    let received = app
        .billing
        .receive(Provider::Sandbox, &delivery, meta.correlation_id)
        .await?;
    let back = match approved {
        true => &checkout.success_url,
        false => &checkout.cancel_url,
    };
    Ok(Redirect::to(&with_position(back, received.position)).into_response())
}

/// `url` with `position=` added to its query, when there is one.
fn with_position(url: &str, position: Option<i64>) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    match position {
        Some(p) => format!("{url}{separator}position={p}"),
        None => url.to_string(),
    }
}
