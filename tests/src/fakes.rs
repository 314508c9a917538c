//! Local stand-ins for the payment providers, speaking their wire formats over HTTP, and a clock
//! tests can move.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use chrono::{DateTime, Duration, Utc};
use cinelog_commands::ports::Clock;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A clock that stands still until moved.
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new() -> Arc<Self> {
        Arc::new(ManualClock(Mutex::new(Utc::now())))
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock().expect("clock") += by;
    }

    pub fn now_time(&self) -> DateTime<Utc> {
        self.now()
    }

    /// Now as Unix seconds.
    pub fn now_ts(&self) -> i64 {
        self.now().timestamp()
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().expect("clock") = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock")
    }
}

/// One request a fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
}

#[derive(Default)]
struct Inner {
    seen: Vec<Seen>,
    sessions: usize,
}

type Shared = Arc<Mutex<Inner>>;

fn remember(shared: &Shared, path: String, headers: &HeaderMap, body: &str) {
    let headers = headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    shared.lock().expect("fake state").seen.push(Seen {
        path,
        headers,
        body: body.to_string(),
    });
}

/// A fake server on a free port; answers its base URL and what it saw.
pub struct Fake {
    pub base: String,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Fake {
    async fn serve(router: Router<Shared>) -> Fake {
        let shared = Shared::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = router.with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake {
            base,
            shared,
            server,
        }
    }

    /// Requests received at paths starting with `prefix`.
    pub fn seen(&self, prefix: &str) -> Vec<Seen> {
        self.shared
            .lock()
            .expect("fake state")
            .seen
            .iter()
            .filter(|s| s.path.starts_with(prefix))
            .cloned()
            .collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub const STRIPE_KEY: &str = "sk_test_cinelog";
pub const STRIPE_WEBHOOK_SECRET: &str = "whsec_cinelog_test";

fn stripe_error(status: StatusCode, message: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({"error": {"type": "invalid_request_error", "message": message}})),
    )
}

/// Stripe's API as far as Cinelog uses it: Checkout Sessions and subscription updates.
pub async fn fake_stripe() -> Fake {
    async fn sessions(
        State(shared): State<Shared>,
        headers: HeaderMap,
        body: String,
    ) -> (StatusCode, Json<Value>) {
        remember(&shared, "/v1/checkout/sessions".into(), &headers, &body);
        if headers.get("authorization").and_then(|v| v.to_str().ok())
            != Some(&format!("Bearer {STRIPE_KEY}"))
        {
            return stripe_error(StatusCode::UNAUTHORIZED, "Invalid API Key provided");
        }
        let form: HashMap<String, String> = url_form(&body);
        for required in [
            "mode",
            "line_items[0][price]",
            "line_items[0][quantity]",
            "success_url",
            "cancel_url",
            "client_reference_id",
        ] {
            if !form.contains_key(required) {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    &format!("Missing required param: {required}."),
                );
            }
        }
        let n = {
            let mut inner = shared.lock().expect("fake state");
            inner.sessions += 1;
            inner.sessions
        };
        let id = format!("cs_test_{n:04}");
        (
            StatusCode::OK,
            Json(json!({
                "id": id,
                "object": "checkout.session",
                "mode": "subscription",
                "status": "open",
                "client_reference_id": form["client_reference_id"],
                "url": format!("https://checkout.stripe.test/c/pay/{id}"),
                "livemode": false,
            })),
        )
    }
    async fn subscription(
        State(shared): State<Shared>,
        Path(id): Path<String>,
        headers: HeaderMap,
        body: String,
    ) -> (StatusCode, Json<Value>) {
        remember(&shared, format!("/v1/subscriptions/{id}"), &headers, &body);
        let form = url_form(&body);
        (
            StatusCode::OK,
            Json(json!({
                "id": id,
                "object": "subscription",
                "status": "active",
                "cancel_at_period_end": form.get("cancel_at_period_end").map(|v| v == "true"),
            })),
        )
    }
    Fake::serve(
        Router::new()
            .route("/v1/checkout/sessions", post(sessions))
            .route("/v1/subscriptions/{id}", post(subscription)),
    )
    .await
}

fn url_form(body: &str) -> HashMap<String, String> {
    form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

pub const PAYPAL_CLIENT: &str = "paypal-client";
pub const PAYPAL_SECRET: &str = "paypal-secret";
pub const PAYPAL_WEBHOOK_ID: &str = "WH-ID-cinelog";
/// The transmission signature the fake PayPal vouches for; any other fails verification.
pub const PAYPAL_GOOD_SIG: &str = "good-signature";

/// PayPal's REST API as far as Cinelog uses it.
pub async fn fake_paypal() -> Fake {
    async fn token(
        State(shared): State<Shared>,
        headers: HeaderMap,
        body: String,
    ) -> (StatusCode, Json<Value>) {
        remember(&shared, "/v1/oauth2/token".into(), &headers, &body);
        use base64::Engine;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{PAYPAL_CLIENT}:{PAYPAL_SECRET}"))
        );
        let authorized =
            headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&expected);
        if !authorized || body != "grant_type=client_credentials" {
            return (
                StatusCode::UNAUTHORIZED,
                Json(
                    json!({"error": "invalid_client", "error_description": "Client Authentication failed"}),
                ),
            );
        }
        (
            StatusCode::OK,
            Json(
                json!({"scope": "https://uri.paypal.com/services/subscriptions", "access_token": "A21AAtoken", "token_type": "Bearer", "app_id": "APP-80W284485P519543T", "expires_in": 32400, "nonce": "n"}),
            ),
        )
    }
    fn bearer_ok(headers: &HeaderMap) -> bool {
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer A21AAtoken")
    }
    async fn create(
        State(shared): State<Shared>,
        headers: HeaderMap,
        body: String,
    ) -> (StatusCode, Json<Value>) {
        remember(&shared, "/v1/billing/subscriptions".into(), &headers, &body);
        let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if !bearer_ok(&headers) || parsed["plan_id"].as_str().is_none() {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"name": "INVALID_REQUEST", "message": "Request is not well-formed"})),
            );
        }
        let n = {
            let mut inner = shared.lock().expect("fake state");
            inner.sessions += 1;
            inner.sessions
        };
        let id = format!("I-FAKE{n:06}");
        (
            StatusCode::CREATED,
            Json(json!({
                "id": id,
                "status": "APPROVAL_PENDING",
                "plan_id": parsed["plan_id"],
                "custom_id": parsed["custom_id"],
                "links": [
                    {"href": format!("https://www.sandbox.paypal.test/webapps/billing/subscriptions?ba_token=BA-{n}"), "rel": "approve", "method": "GET"},
                    {"href": format!("https://api.paypal.test/v1/billing/subscriptions/{id}"), "rel": "self", "method": "GET"}
                ]
            })),
        )
    }
    async fn cancel(
        State(shared): State<Shared>,
        Path(id): Path<String>,
        headers: HeaderMap,
        body: String,
    ) -> StatusCode {
        remember(
            &shared,
            format!("/v1/billing/subscriptions/{id}"),
            &headers,
            &body,
        );
        if bearer_ok(&headers) {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::UNAUTHORIZED
        }
    }
    async fn verify(
        State(shared): State<Shared>,
        headers: HeaderMap,
        body: String,
    ) -> (StatusCode, Json<Value>) {
        remember(
            &shared,
            "/v1/notifications/verify-webhook-signature".into(),
            &headers,
            &body,
        );
        let check: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let good = bearer_ok(&headers)
            && check["transmission_sig"] == PAYPAL_GOOD_SIG
            && check["webhook_id"] == PAYPAL_WEBHOOK_ID
            && check["webhook_event"]["id"].is_string();
        (
            StatusCode::OK,
            Json(json!({"verification_status": if good { "SUCCESS" } else { "FAILURE" }})),
        )
    }
    Fake::serve(
        Router::new()
            .route("/v1/oauth2/token", post(token))
            .route("/v1/billing/subscriptions", post(create))
            .route("/v1/billing/subscriptions/{id}/cancel", post(cancel))
            .route("/v1/notifications/verify-webhook-signature", post(verify)),
    )
    .await
}
