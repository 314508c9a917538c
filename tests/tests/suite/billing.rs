//! Subscriptions and payments: the sandbox checkout, Stripe and PayPal against local fakes,
//! verified and deduplicated webhooks, the lifecycle as the clock moves, and racing checkouts.

use chrono::{Duration, Utc};
use cinelog_api::Outside;
use cinelog_domain::subscription::{GRACE_DAYS, RENEWAL_SLACK_HOURS, next_period_end};
use cinelog_infra::payments::signature;
use cinelog_infra::settings::{PaypalSettings, PlanIds, StripeSettings};
use cinelog_infra::{Secret, Settings};
use cinelog_tests::fakes::{self, Fake, ManualClock};
use cinelog_tests::{Answer, Backend, TempDir, TestApp, settings_for};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

fn plan_ids(prefix: &str) -> PlanIds {
    PlanIds {
        basic: Some(format!("{prefix}basic")),
        standard: Some(format!("{prefix}standard")),
        premium: Some(format!("{prefix}premium")),
    }
}

/// An app offering Stripe and PayPal through local fakes, on a clock the test moves.
async fn app_with_providers(backend: Backend) -> (TestApp, Arc<ManualClock>, Fake, Fake) {
    let (stripe, paypal) = (fakes::fake_stripe().await, fakes::fake_paypal().await);
    let dir = TempDir::new();
    let settings = provider_settings(backend, &dir, &stripe, &paypal).await;
    let (app, clock) = TestApp::spawn_on_clock(settings, dir).await;
    (app, clock, stripe, paypal)
}

/// Settings offering the sandbox and the fake Stripe and PayPal.
async fn provider_settings(
    backend: Backend,
    dir: &TempDir,
    stripe: &Fake,
    paypal: &Fake,
) -> Settings {
    Settings {
        stripe: Some(StripeSettings {
            api_base: stripe.base.clone(),
            secret_key: Secret::new(fakes::STRIPE_KEY),
            webhook_secret: Secret::new(fakes::STRIPE_WEBHOOK_SECRET),
            prices: plan_ids("price_"),
        }),
        paypal: Some(PaypalSettings {
            api_base: paypal.base.clone(),
            client_id: fakes::PAYPAL_CLIENT.into(),
            client_secret: Secret::new(fakes::PAYPAL_SECRET),
            webhook_id: fakes::PAYPAL_WEBHOOK_ID.into(),
            plans: plan_ids("P-"),
        }),
        sandbox_payments: Some(true),
        ..settings_for(backend, dir).await
    }
}

#[tokio::test]
async fn a_webhook_right_after_its_checkout_on_another_replica_is_not_lost() {
    let (stripe, paypal) = (fakes::fake_stripe().await, fakes::fake_paypal().await);
    let dir = TempDir::new();
    let settings = Settings {
        jwt_secret: Some(Secret::new("replicas share this key")),
        ..provider_settings(Backend::Postgres, &dir, &stripe, &paypal).await
    };
    let first = TestApp::spawn_with(settings.clone(), dir, Outside::default()).await;
    let second_dir = TempDir::new();
    let second = TestApp::spawn_with(
        Settings {
            data_dir: second_dir.0.clone(),
            ..settings
        },
        second_dir,
        Outside::default(),
    )
    .await;
    let now = Utc::now().timestamp();
    let server = sqlx::PgPool::connect(first.settings.database_url.as_deref().unwrap())
        .await
        .unwrap();
    for i in 0..6 {
        let (token, _) = first.signup_login(&format!("replica{i}@example.com")).await;
        let account = first.account_id(&token).await;
        // The last round holds a transaction open on the server from before the checkout until
        // after the webhook arrives: the log holds the checkout back, and the webhook waits.
        let mut blocker = None;
        if i == 5 {
            let mut tx = server.begin().await.unwrap();
            sqlx::query("SELECT pg_current_xact_id()")
                .execute(&mut *tx)
                .await
                .unwrap();
            blocker = Some(tx);
        }
        let redirect = first.start_checkout(&token, "basic", Some("stripe")).await;
        let session = redirect.rsplit('/').next().unwrap();
        let completed = stripe_event(
            &format!("evt_done_{i}"),
            "checkout.session.completed",
            json!({"id": session, "client_reference_id": account, "subscription": format!("sub_r{i}"), "amount_total": 799, "currency": "usd"}),
        );
        let a = deliver(&first, &completed, fakes::STRIPE_WEBHOOK_SECRET, now).await;
        assert_eq!(a.body["recorded"], true, "{i}: {:?}", a.body);
        // The next event names only the subscription, and reaches the other replica at once.
        let failed = stripe_event(
            &format!("evt_fail_{i}"),
            "invoice.payment_failed",
            json!({"id": format!("in_{i}"), "subscription": format!("sub_r{i}")}),
        );
        let release = async {
            if let Some(tx) = blocker {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                tx.commit().await.unwrap();
            }
        };
        let (a, ()) = tokio::join!(
            deliver(&second, &failed, fakes::STRIPE_WEBHOOK_SECRET, now),
            release
        );
        assert_eq!(
            (a.status, a.body["recorded"].as_bool()),
            (StatusCode::OK, Some(true)),
            "{i}: {:?}",
            a.body
        );
        let sub = subscription(&second, &token, a.body["position"].as_i64()).await;
        assert_eq!(sub["status"], "past_due", "{i}");
    }
    // A subscription nobody here ever started is answered, and recorded nowhere.
    let events = second.log_len().await;
    let stranger = stripe_event(
        "evt_stranger",
        "invoice.payment_failed",
        json!({"id": "in_x", "subscription": "sub_stranger"}),
    );
    let a = deliver(&second, &stranger, fakes::STRIPE_WEBHOOK_SECRET, now).await;
    assert_eq!(
        (a.status, a.body["recorded"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    assert_eq!(second.log_len().await, events);
    first.stop();
    second.stop();
}

/// A Stripe event envelope.
fn stripe_event(id: &str, kind: &str, object: Value) -> Value {
    json!({"id": id, "object": "event", "type": kind, "created": Utc::now().timestamp(), "livemode": false, "data": {"object": object}})
}

/// Delivers an event to /webhooks/stripe signed with `secret` at `timestamp`.
async fn deliver(app: &TestApp, event: &Value, secret: &str, timestamp: i64) -> Answer {
    let body = serde_json::to_vec(event).unwrap();
    let header = signature::sign(secret.as_bytes(), timestamp, &body);
    app.post_raw("/webhooks/stripe", &body, &[("stripe-signature", header)])
        .await
}

async fn subscription(app: &TestApp, token: &str, position: Option<i64>) -> Value {
    let path = match position {
        Some(p) => format!("/api/subscription?min_position={p}"),
        None => "/api/subscription".into(),
    };
    let a = app.get(&path, Some(token)).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    a.body
}

fn position_in(url: &str) -> Option<i64> {
    url.split("position=")
        .nth(1)?
        .split('&')
        .next()?
        .parse()
        .ok()
}

#[tokio::test]
async fn a_sandbox_checkout_activates_standard_with_the_provider_as_actor() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let plans = app.get("/api/plans", None).await;
    assert_eq!(plans.status, StatusCode::OK);
    let names: Vec<&str> = plans.body["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Basic", "Standard", "Premium"]);
    assert_eq!(plans.body["plans"][1]["max_quality"], 1080);
    assert_eq!(plans.body["plans"][1]["concurrent_streams"], 2);
    assert_eq!(plans.body["providers"], json!(["sandbox"]));

    let (token, _) = app.signup_login("sub@example.com").await;
    assert_eq!(subscription(&app, &token, None).await["status"], "none");
    // Declining leaves no subscription.
    let redirect = app
        .start_checkout(&token, "standard", Some("sandbox"))
        .await;
    let back = app.answer_sandbox(&redirect, "decline").await;
    assert!(back.contains("checkout=canceled"), "{back}");
    assert_eq!(
        subscription(&app, &token, position_in(&back)).await["entitled"],
        false
    );

    let redirect = app.start_checkout(&token, "standard", None).await;
    assert!(
        redirect.starts_with(&app.url("/sandbox/checkout?session=")),
        "{redirect}"
    );
    let back = app.answer_sandbox(&redirect, "approve").await;
    assert!(back.contains("checkout=success"), "{back}");
    let sub = subscription(&app, &token, position_in(&back)).await;
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["plan"], "standard");
    assert_eq!(sub["plan_name"], "Standard");
    assert_eq!(sub["entitled"], true);
    assert_eq!(sub["max_quality"], 1080);
    assert_eq!(sub["concurrent_streams"], 2);
    assert_eq!(sub["provider"], "sandbox");
    assert_eq!(sub["payments"].as_array().unwrap().len(), 1);
    assert_eq!(sub["payments"][0]["amount"], 1549);
    assert_eq!(sub["payments"][0]["outcome"], "paid");
    let me = app.get("/api/me", Some(&token)).await;
    assert_eq!(me.body["subscription"]["status"], "active");
    assert_eq!(me.body["subscription"]["plan"], "standard");

    // The history: the subscriber started the checkout, the provider activated it.
    let log = app.log().await;
    let actor_of = |event_type: &str| {
        log.iter()
            .filter(|e| e.event_type == event_type)
            .map(|e| e.meta.actor.to_string())
            .collect::<Vec<_>>()
    };
    assert!(
        actor_of("CheckoutStarted")
            .iter()
            .all(|a| a.starts_with("user:"))
    );
    assert_eq!(actor_of("CheckoutDeclined"), ["provider:sandbox"]);
    assert_eq!(actor_of("SubscriptionActivated"), ["provider:sandbox"]);

    // A second subscription is refused while this one runs.
    let again = app
        .post(
            "/api/subscription/checkout",
            json!({"plan": "premium"}),
            Some(&token),
        )
        .await;
    assert_eq!(
        (again.status, again.error_code()),
        (StatusCode::CONFLICT, "already_subscribed")
    );
    app.stop();
}

#[tokio::test]
async fn bad_billing_input_is_a_clear_4xx_and_appends_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (token, _) = app.signup_login("picky@example.com").await;
    let before = app.log_len().await;
    let cases = [
        (
            "/api/subscription/checkout",
            json!({"plan": "gold"}),
            422,
            "invalid_field",
        ),
        (
            "/api/subscription/checkout",
            json!({"plan": "basic", "provider": "bank"}),
            422,
            "invalid_field",
        ),
        (
            "/api/subscription/checkout",
            json!({"plan": "basic", "provider": "stripe"}),
            422,
            "provider_not_offered",
        ),
        (
            "/api/subscription/checkout",
            json!({"plan": 3}),
            422,
            "invalid_body",
        ),
        (
            "/api/subscription/change",
            json!({"plan": "premium"}),
            409,
            "not_subscribed",
        ),
        ("/api/subscription/cancel", json!({}), 409, "not_subscribed"),
    ];
    for (path, body, status, code) in cases {
        let a = app.post(path, body.clone(), Some(&token)).await;
        assert_eq!(a.status.as_u16(), status, "{path} {body}: {:?}", a.body);
        if !code.is_empty() {
            assert_eq!(a.error_code(), code, "{path} {body}");
        }
    }
    assert_eq!(
        app.post("/api/subscription/checkout", json!({"plan": "basic"}), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Webhooks for providers that are not configured, or do not exist, are not found.
    let forged = stripe_event("evt_x", "invoice.paid", json!({}));
    assert_eq!(
        deliver(&app, &forged, "whsec_guess", Utc::now().timestamp())
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post_raw("/webhooks/bank", b"{}", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    // A sandbox delivery with a forged signature, or none, or a tampered checkout link.
    let a = app
        .post_raw(
            "/webhooks/sandbox",
            &serde_json::to_vec(&forged).unwrap(),
            &[("stripe-signature", "t=1,v1=00".into())],
        )
        .await;
    assert_eq!(
        (a.status, a.error_code()),
        (StatusCode::BAD_REQUEST, "bad_signature")
    );
    assert_eq!(
        app.post_raw("/webhooks/sandbox", b"not json", &[])
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get("/sandbox/checkout?session=abc.def", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post_raw("/sandbox/checkout/approve?session=abc.def", b"", &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.log_len().await,
        before,
        "refused requests appended events"
    );
    app.stop();
}

#[tokio::test]
async fn stripe_checkout_and_signed_webhooks_renew_once_and_refuse_forgeries() {
    let (app, clock, stripe, _paypal) = app_with_providers(Backend::Postgres).await;
    let plans = app.get("/api/plans", None).await;
    assert_eq!(
        plans.body["providers"],
        json!(["sandbox", "stripe", "paypal"])
    );
    let (token, _) = app.signup_login("stripe@example.com").await;
    let account = app.account_id(&token).await;
    assert_eq!(
        app.start_checkout(&token, "standard", Some("stripe")).await,
        "https://checkout.stripe.test/c/pay/cs_test_0001"
    );
    let sent = &stripe.seen("/v1/checkout/sessions")[0];
    let form: Vec<(String, String)> = form_pairs(&sent.body);
    let has = |k: &str, v: &str| form.iter().any(|(a, b)| a == k && b == v);
    assert!(has("mode", "subscription"));
    assert!(has("line_items[0][price]", "price_standard"));
    assert!(has("client_reference_id", &account.to_string()));
    assert!(has(
        "subscription_data[metadata][account_id]",
        &account.to_string()
    ));
    assert!(sent.headers.contains_key("idempotency-key"));

    let now = clock.now_ts();
    let completed = stripe_event(
        "evt_1",
        "checkout.session.completed",
        json!({"id": "cs_test_0001", "object": "checkout.session", "client_reference_id": account, "subscription": "sub_1", "customer": "cus_1", "amount_total": 1549, "currency": "usd", "unknown_field": {"nested": true}}),
    );
    // Sent with a correlation id of the provider's request: its events carry it.
    let correlation = uuid::Uuid::now_v7();
    let body = serde_json::to_vec(&completed).unwrap();
    let header = signature::sign(fakes::STRIPE_WEBHOOK_SECRET.as_bytes(), now, &body);
    let a = app
        .post_raw(
            "/webhooks/stripe",
            &body,
            &[
                ("stripe-signature", header),
                ("x-correlation-id", correlation.to_string()),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let recorded = app.log().await;
    let at = recorded
        .iter()
        .find(|e| Some(e.position) == a.body["position"].as_i64())
        .expect("the webhook's event");
    assert_eq!(at.meta.correlation_id, correlation);
    let sub = subscription(&app, &token, a.body["position"].as_i64()).await;
    assert_eq!(
        (sub["status"].as_str(), sub["plan"].as_str()),
        (Some("active"), Some("standard"))
    );
    let first_end = sub["period_end"].as_str().unwrap().to_string();

    // A correctly signed invoice.paid for the next period extends it.
    let next_end = next_period_end(next_period_end(clock.now_time()));
    let invoice = stripe_event(
        "evt_2",
        "invoice.paid",
        json!({"id": "in_2", "object": "invoice", "subscription": "sub_1", "amount_paid": 1549, "currency": "usd",
               "lines": {"data": [{"period": {"start": 0, "end": next_end.timestamp()}}]},
               "parent": {"subscription_details": {"metadata": {"account_id": account}, "subscription": "sub_1"}}}),
    );
    let a = deliver(&app, &invoice, fakes::STRIPE_WEBHOOK_SECRET, now).await;
    assert_eq!(
        (a.status, a.body["recorded"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{:?}",
        a.body
    );
    let sub = subscription(&app, &token, a.body["position"].as_i64()).await;
    let extended = sub["period_end"].as_str().unwrap().to_string();
    assert!(
        extended > first_end,
        "{extended} should be after {first_end}"
    );
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(&extended)
            .unwrap()
            .timestamp(),
        next_end.timestamp()
    );

    // The same delivery again changes nothing.
    let events = app.log_len().await;
    let a = deliver(&app, &invoice, fakes::STRIPE_WEBHOOK_SECRET, now + 5).await;
    assert_eq!(
        (a.status, a.body["recorded"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    assert_eq!(app.log_len().await, events);
    assert_eq!(
        subscription(&app, &token, None).await["period_end"],
        extended.as_str()
    );

    // Forged, tampered and stale deliveries are refused and recorded nowhere.
    let forged = stripe_event(
        "evt_3",
        "invoice.paid",
        json!({"id": "in_3", "subscription": "sub_1", "amount_paid": 1549, "currency": "usd", "metadata": {"account_id": account}}),
    );
    for (secret, at) in [
        ("whsec_forged", now),
        (fakes::STRIPE_WEBHOOK_SECRET, now - 301),
        (fakes::STRIPE_WEBHOOK_SECRET, now + 301),
    ] {
        let a = deliver(&app, &forged, secret, at).await;
        assert_eq!(
            (a.status, a.error_code()),
            (StatusCode::BAD_REQUEST, "bad_signature"),
            "{secret} at {at}"
        );
    }
    let body = serde_json::to_vec(&forged).unwrap();
    let header = signature::sign(fakes::STRIPE_WEBHOOK_SECRET.as_bytes(), now, &body);
    let mut tampered = body.clone();
    let i = tampered.iter().position(|b| *b == b'3').unwrap();
    tampered[i] = b'4';
    assert_eq!(
        app.post_raw(
            "/webhooks/stripe",
            &tampered,
            &[("stripe-signature", header.clone())]
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.post_raw("/webhooks/stripe", &body, &[]).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.log_len().await, events);

    // A payment of the wrong amount is recorded as rejected and not honoured.
    let cheap = stripe_event(
        "evt_4",
        "invoice.paid",
        json!({"id": "in_4", "subscription": "sub_1", "amount_paid": 100, "currency": "usd", "metadata": {"account_id": account}}),
    );
    let a = deliver(&app, &cheap, fakes::STRIPE_WEBHOOK_SECRET, now).await;
    let sub = subscription(&app, &token, a.body["position"].as_i64()).await;
    assert_eq!(sub["period_end"], extended.as_str());
    assert_eq!(sub["payments"][0]["outcome"], "rejected");
    assert_eq!(sub["payments"][0]["amount"], 100);

    // Plan changes are sent to Stripe, priced from the next invoice with no proration: an upgrade
    // plays at once, a downgrade starts with the next period. Stripe's echo of each changes nothing.
    let change = |plan: &'static str| {
        app.post(
            "/api/subscription/change",
            json!({"plan": plan}),
            Some(&token),
        )
    };
    let echo = |id: &str, price: &str| {
        stripe_event(
            id,
            "customer.subscription.updated",
            json!({"id": "sub_1", "object": "subscription", "cancel_at_period_end": false, "items": {"data": [{"id": "si_sub_1", "price": {"id": price}}]}}),
        )
    };
    let up = change("premium").await;
    assert_eq!(up.status, StatusCode::OK, "{:?}", up.body);
    let told = stripe.seen("/v1/subscriptions/sub_1").pop().unwrap();
    let form = form_pairs(&told.body);
    for pair in [
        ("items[0][id]", "si_sub_1"),
        ("items[0][price]", "price_premium"),
        ("proration_behavior", "none"),
    ] {
        assert!(
            form.contains(&(pair.0.to_string(), pair.1.to_string())),
            "{form:?}"
        );
    }
    let a = deliver(
        &app,
        &echo("evt_p1", "price_premium"),
        fakes::STRIPE_WEBHOOK_SECRET,
        now,
    )
    .await;
    let sub = subscription(&app, &token, a.body["position"].as_i64()).await;
    assert_eq!(
        (sub["plan"].as_str(), sub["max_quality"].as_i64()),
        (Some("premium"), Some(2160))
    );
    let down = change("basic").await;
    assert_eq!(down.status, StatusCode::OK, "{:?}", down.body);
    let a = deliver(
        &app,
        &echo("evt_p2", "price_basic"),
        fakes::STRIPE_WEBHOOK_SECRET,
        now,
    )
    .await;
    let sub = subscription(&app, &token, a.body["position"].as_i64()).await;
    assert_eq!(
        (sub["plan"].as_str(), sub["pending_plan"].as_str()),
        (Some("premium"), Some("basic")),
        "the downgrade waits for the next period"
    );
    // Staying on Premium after all tells Stripe too.
    let stay = change("premium").await;
    assert_eq!(stay.status, StatusCode::OK, "{:?}", stay.body);
    assert!(
        stripe
            .seen("/v1/subscriptions/sub_1")
            .pop()
            .unwrap()
            .body
            .contains("price_premium")
    );
    let a = deliver(
        &app,
        &echo("evt_p3", "price_premium"),
        fakes::STRIPE_WEBHOOK_SECRET,
        now,
    )
    .await;
    let sub = subscription(&app, &token, a.body["position"].as_i64()).await;
    assert_eq!(
        (sub["plan"].as_str(), sub["pending_plan"].as_str()),
        (Some("premium"), None)
    );

    // Cancelling asks Stripe to end at the period end; access stays until then.
    let a = app
        .post("/api/subscription/cancel", json!({}), Some(&token))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["access_until"], extended.as_str());
    let cancel = stripe.seen("/v1/subscriptions/sub_1").pop().unwrap();
    assert_eq!(cancel.body, "cancel_at_period_end=true");
    // Stripe's own confirmation of it is a no-op; its deletion ends the subscription.
    let updated = stripe_event(
        "evt_5",
        "customer.subscription.updated",
        json!({"id": "sub_1", "object": "subscription", "cancel_at_period_end": true, "metadata": {"account_id": account}}),
    );
    let a = deliver(&app, &updated, fakes::STRIPE_WEBHOOK_SECRET, now).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        subscription(&app, &token, a.body["position"].as_i64()).await["cancel_at_period_end"]
            == true
    );

    // Kept after all: here, which tells Stripe, or at Stripe (its portal), which tells us.
    let a = app
        .post("/api/subscription/resume", json!({}), Some(&token))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["cancel_at_period_end"], false);
    assert_eq!(
        stripe.seen("/v1/subscriptions/sub_1").pop().unwrap().body,
        "cancel_at_period_end=false"
    );
    let again = app
        .post("/api/subscription/resume", json!({}), Some(&token))
        .await;
    assert_eq!(
        (again.status, again.error_code()),
        (StatusCode::CONFLICT, "not_canceling")
    );
    let canceled_there = stripe_event(
        "evt_5b",
        "customer.subscription.updated",
        json!({"id": "sub_1", "object": "subscription", "cancel_at_period_end": true, "items": {"data": [{"price": {"id": "price_standard"}}]}}),
    );
    let a = deliver(&app, &canceled_there, fakes::STRIPE_WEBHOOK_SECRET, now).await;
    assert_eq!(
        subscription(&app, &token, a.body["position"].as_i64()).await["cancel_at_period_end"],
        true
    );
    let renewed_there = stripe_event(
        "evt_5c",
        "customer.subscription.updated",
        json!({"id": "sub_1", "object": "subscription", "cancel_at_period_end": false, "items": {"data": [{"price": {"id": "price_standard"}}]}}),
    );
    let a = deliver(&app, &renewed_there, fakes::STRIPE_WEBHOOK_SECRET, now).await;
    let sub = subscription(&app, &token, a.body["position"].as_i64()).await;
    assert_eq!(
        (
            sub["cancel_at_period_end"].as_bool(),
            sub["status"].as_str()
        ),
        (Some(false), Some("active"))
    );
    let deleted = stripe_event(
        "evt_6",
        "customer.subscription.deleted",
        json!({"id": "sub_1", "object": "subscription", "metadata": {"account_id": account}}),
    );
    let a = deliver(&app, &deleted, fakes::STRIPE_WEBHOOK_SECRET, now).await;
    let sub = subscription(&app, &token, a.body["position"].as_i64()).await;
    assert_eq!(
        (sub["status"].as_str(), sub["entitled"].as_bool()),
        (Some("canceled"), Some(false))
    );
    app.stop();
}

fn form_pairs(body: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

#[tokio::test]
async fn webhooks_out_of_order_end_in_the_right_state() {
    let (app, clock, _stripe, _paypal) = app_with_providers(Backend::Sqlite).await;
    let (token, _) = app.signup_login("early@example.com").await;
    let account = app.account_id(&token).await;
    app.start_checkout(&token, "premium", Some("stripe")).await;
    let now = clock.now_ts();
    let end = clock.now_time() + Duration::days(31);
    // invoice.paid arrives before checkout.session.completed.
    let invoice = stripe_event(
        "evt_b",
        "invoice.paid",
        json!({"id": "in_1", "subscription": "sub_9", "amount_paid": 2299, "currency": "usd",
        "lines": {"data": [{"period": {"start": now, "end": end.timestamp()}}]}, "subscription_details": {"metadata": {"account_id": account}}}),
    );
    let completed = stripe_event(
        "evt_a",
        "checkout.session.completed",
        json!({"id": "cs_test_0001", "client_reference_id": account, "subscription": "sub_9", "amount_total": 2299, "currency": "usd"}),
    );
    let a = deliver(&app, &invoice, fakes::STRIPE_WEBHOOK_SECRET, now).await;
    assert_eq!(a.body["recorded"], true, "{:?}", a.body);
    let a = deliver(&app, &completed, fakes::STRIPE_WEBHOOK_SECRET, now).await;
    assert_eq!(a.body["recorded"], true, "{:?}", a.body);
    let sub = subscription(&app, &token, a.body["position"].as_i64()).await;
    assert_eq!(
        (sub["status"].as_str(), sub["plan"].as_str()),
        (Some("active"), Some("premium"))
    );
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(sub["period_end"].as_str().unwrap())
            .unwrap()
            .timestamp(),
        end.timestamp()
    );
    // One payment, counted once.
    assert_eq!(sub["payments"].as_array().unwrap().len(), 1);
    assert_eq!(sub["max_quality"], 2160);

    // The subscriber moves to Standard at Stripe: the change comes in, and the next invoice at
    // Standard's price is honoured.
    let moved = stripe_event(
        "evt_m",
        "customer.subscription.updated",
        json!({"id": "sub_9", "object": "subscription", "cancel_at_period_end": false,
        "items": {"data": [{"price": {"id": "price_standard"}}]}, "metadata": {"account_id": account}}),
    );
    let a = deliver(&app, &moved, fakes::STRIPE_WEBHOOK_SECRET, now).await;
    let sub = subscription(&app, &token, a.body["position"].as_i64()).await;
    assert_eq!(
        (sub["plan"].as_str(), sub["max_quality"].as_u64()),
        (Some("standard"), Some(1080))
    );
    let standard_invoice = stripe_event(
        "evt_m2",
        "invoice.paid",
        json!({"id": "in_m", "subscription": "sub_9", "amount_paid": 1549, "currency": "usd", "metadata": {"account_id": account}}),
    );
    let a = deliver(&app, &standard_invoice, fakes::STRIPE_WEBHOOK_SECRET, now).await;
    let sub = subscription(&app, &token, a.body["position"].as_i64()).await;
    assert_eq!(
        (
            sub["payments"][0]["outcome"].as_str(),
            sub["payments"][0]["amount"].as_i64()
        ),
        (Some("paid"), Some(1549))
    );

    // A subscription event naming no account is found through the subscription id.
    let failed = stripe_event(
        "evt_c",
        "invoice.payment_failed",
        json!({"id": "in_2", "subscription": "sub_9"}),
    );
    let a = deliver(&app, &failed, fakes::STRIPE_WEBHOOK_SECRET, now).await;
    let sub = subscription(&app, &token, a.body["position"].as_i64()).await;
    assert_eq!(
        (sub["status"].as_str(), sub["entitled"].as_bool()),
        (Some("past_due"), Some(true))
    );
    app.stop();
}

#[tokio::test]
async fn paypal_checkout_verified_webhooks_and_cancel() {
    let (app, clock, _stripe, paypal) = app_with_providers(Backend::Sqlite).await;
    let (token, _) = app.signup_login("pal@example.com").await;
    let account = app.account_id(&token).await;
    assert!(
        app.start_checkout(&token, "basic", Some("paypal"))
            .await
            .starts_with("https://www.sandbox.paypal.test/")
    );
    let created: Value =
        serde_json::from_str(&paypal.seen("/v1/billing/subscriptions")[0].body).unwrap();
    assert_eq!(created["plan_id"], "P-basic");
    assert_eq!(created["custom_id"], account.to_string());
    assert_eq!(paypal.seen("/v1/oauth2/token").len(), 1);

    let headers = |sig: &str| {
        vec![
            ("paypal-auth-algo", "SHA256withRSA".to_string()),
            (
                "paypal-cert-url",
                "https://api.paypal.test/v1/notifications/certs/CERT-1".to_string(),
            ),
            ("paypal-transmission-id", Uuid::now_v7().to_string()),
            ("paypal-transmission-sig", sig.to_string()),
            ("paypal-transmission-time", clock.now_time().to_rfc3339()),
        ]
    };
    let event = |id: &str, kind: &str, resource: Value| {
        serde_json::to_vec(&json!({"id": id, "event_version": "1.0", "create_time": Utc::now().to_rfc3339(), "resource_type": "subscription", "event_type": kind, "resource": resource})).unwrap()
    };
    let activated = event(
        "WH-1",
        "BILLING.SUBSCRIPTION.ACTIVATED",
        json!({"id": "I-FAKE000001", "plan_id": "P-basic", "status": "ACTIVE", "custom_id": account,
        "billing_info": {"last_payment": {"amount": {"currency_code": "USD", "value": "7.99"}}}}),
    );
    // A delivery PayPal does not vouch for is refused.
    let events = app.log_len().await;
    let a = app
        .post_raw("/webhooks/paypal", &activated, &headers("forged"))
        .await;
    assert_eq!(
        (a.status, a.error_code()),
        (StatusCode::BAD_REQUEST, "bad_signature")
    );
    assert_eq!(
        app.post_raw("/webhooks/paypal", &activated, &[])
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.log_len().await, events);

    let a = app
        .post_raw(
            "/webhooks/paypal",
            &activated,
            &headers(fakes::PAYPAL_GOOD_SIG),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let sub = subscription(&app, &token, a.body["position"].as_i64()).await;
    assert_eq!(
        (
            sub["status"].as_str(),
            sub["plan"].as_str(),
            sub["provider"].as_str()
        ),
        (Some("active"), Some("basic"), Some("paypal"))
    );
    let end = sub["period_end"].as_str().unwrap().to_string();
    // The first sale pays for the period already granted; the next one extends it.
    let sale = |id: &str| {
        event(
            id,
            "PAYMENT.SALE.COMPLETED",
            json!({"id": format!("SALE-{id}"), "state": "completed", "amount": {"total": "7.99", "currency": "USD"}, "billing_agreement_id": "I-FAKE000001"}),
        )
    };
    let a = app
        .post_raw(
            "/webhooks/paypal",
            &sale("WH-2"),
            &headers(fakes::PAYPAL_GOOD_SIG),
        )
        .await;
    assert_eq!(
        subscription(&app, &token, a.body["position"].as_i64()).await["period_end"],
        end.as_str()
    );
    let a = app
        .post_raw(
            "/webhooks/paypal",
            &sale("WH-3"),
            &headers(fakes::PAYPAL_GOOD_SIG),
        )
        .await;
    let sub = subscription(&app, &token, a.body["position"].as_i64()).await;
    assert!(sub["period_end"].as_str().unwrap() > end.as_str());
    assert_eq!(sub["payments"].as_array().unwrap().len(), 3);
    // Redelivery of a sale is a no-op.
    let a = app
        .post_raw(
            "/webhooks/paypal",
            &sale("WH-3"),
            &headers(fakes::PAYPAL_GOOD_SIG),
        )
        .await;
    assert_eq!(a.body["recorded"], false);

    let a = app
        .post("/api/subscription/cancel", json!({}), Some(&token))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["cancel_at_period_end"], true);
    assert_eq!(
        paypal.seen("/v1/billing/subscriptions/I-FAKE000001").len(),
        1
    );
    let again = app
        .post("/api/subscription/cancel", json!({}), Some(&token))
        .await;
    assert_eq!(
        (again.status, again.error_code()),
        (StatusCode::CONFLICT, "already_canceling")
    );
    // PayPal cannot take a cancellation back, and revises plans only with the subscriber's
    // approval at PayPal: both are refused clearly, and nothing is recorded.
    let events = app.log_len().await;
    let change = app
        .post(
            "/api/subscription/change",
            json!({"plan": "premium"}),
            Some(&token),
        )
        .await;
    assert_eq!(
        (change.status, change.error_code()),
        (StatusCode::CONFLICT, "change_through_provider")
    );
    let resume = app
        .post("/api/subscription/resume", json!({}), Some(&token))
        .await;
    assert_eq!(
        (resume.status, resume.error_code()),
        (StatusCode::CONFLICT, "cannot_resume")
    );
    assert_eq!(app.log_len().await, events);
    app.stop();
}

#[tokio::test]
async fn the_lifecycle_follows_the_clock_renew_fail_grace_expire() {
    let (app, clock, _stripe, _paypal) = app_with_providers(Backend::Sqlite).await;
    let billing = &app.running.state.billing;

    // Sandbox: the sandbox bills each renewal itself, through the webhook path.
    let (token, _) = app.signup_login("sandboxed@example.com").await;
    let redirect = app.start_checkout(&token, "basic", None).await;
    let back = app.answer_sandbox(&redirect, "approve").await;
    let sub = subscription(&app, &token, position_in(&back)).await;
    let end = chrono::DateTime::parse_from_rfc3339(sub["period_end"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    // Upgrade now, downgrade at the period end.
    let up = app
        .post(
            "/api/subscription/change",
            json!({"plan": "premium"}),
            Some(&token),
        )
        .await;
    assert_eq!(
        (up.status, up.body["plan"].as_str()),
        (StatusCode::OK, Some("premium")),
        "{:?}",
        up.body
    );
    let down = app
        .post(
            "/api/subscription/change",
            json!({"plan": "standard"}),
            Some(&token),
        )
        .await;
    assert_eq!(
        (
            down.body["plan"].as_str(),
            down.body["pending_plan"].as_str()
        ),
        (Some("premium"), Some("standard"))
    );
    let same = app
        .post(
            "/api/subscription/change",
            json!({"plan": "standard"}),
            Some(&token),
        )
        .await;
    assert_eq!(
        (same.status, same.error_code()),
        (StatusCode::CONFLICT, "plan_unchanged")
    );

    // Stripe: a subscription whose renewals stop coming.
    let (stoken, _) = app.signup_login("lapsing@example.com").await;
    let account = app.account_id(&stoken).await;
    app.start_checkout(&stoken, "standard", Some("stripe"))
        .await;
    let completed = stripe_event(
        "evt_l1",
        "checkout.session.completed",
        json!({"id": "cs_test_0001", "client_reference_id": account, "subscription": "sub_l", "amount_total": 1549, "currency": "usd"}),
    );
    let a = deliver(
        &app,
        &completed,
        fakes::STRIPE_WEBHOOK_SECRET,
        clock.now_ts(),
    )
    .await;
    assert_eq!(
        subscription(&app, &stoken, a.body["position"].as_i64()).await["status"],
        "active"
    );

    // Nothing is due before the period ends.
    clock.advance(Duration::days(20));
    wait_caught_up(&app).await;
    billing.tick().await.unwrap();
    assert_eq!(
        subscription(&app, &token, None).await["payments"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The period ends: the sandbox renews (at the downgraded price), Stripe's renewal is missing.
    clock.set(end + Duration::hours(RENEWAL_SLACK_HOURS) + Duration::minutes(1));
    billing.tick().await.unwrap();
    wait_caught_up(&app).await;
    let sub = subscription(&app, &token, None).await;
    assert_eq!(
        (sub["status"].as_str(), sub["plan"].as_str()),
        (Some("active"), Some("standard"))
    );
    assert_eq!(sub["payments"][0]["amount"], 1549);
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(sub["period_end"].as_str().unwrap())
            .unwrap()
            .timestamp(),
        next_period_end(end).timestamp()
    );
    let lapsing = subscription(&app, &stoken, None).await;
    assert_eq!(
        (lapsing["status"].as_str(), lapsing["entitled"].as_bool()),
        (Some("past_due"), Some(true))
    );
    // Ticking again, from another replica say, changes nothing.
    let events = app.log_len().await;
    billing.tick().await.unwrap();
    assert_eq!(app.log_len().await, events);

    // The grace period runs out.
    clock.set(end + Duration::days(GRACE_DAYS) + Duration::minutes(2));
    billing.tick().await.unwrap();
    wait_caught_up(&app).await;
    let lapsed = subscription(&app, &stoken, None).await;
    assert_eq!(
        (
            lapsed["status"].as_str(),
            lapsed["entitled"].as_bool(),
            lapsed["max_quality"].as_u64()
        ),
        (Some("expired"), Some(false), Some(0))
    );
    // It can start over.
    let again = app
        .post(
            "/api/subscription/checkout",
            json!({"plan": "basic"}),
            Some(&stoken),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);

    // The sandbox subscriber cancels: plays until the period end, then ends.
    let c = app
        .post("/api/subscription/cancel", json!({}), Some(&token))
        .await;
    assert_eq!(c.status, StatusCode::OK);
    let sub = subscription(&app, &token, c.body["position"].as_i64()).await;
    assert_eq!(
        (
            sub["entitled"].as_bool(),
            sub["cancel_at_period_end"].as_bool()
        ),
        (Some(true), Some(true))
    );
    clock.set(next_period_end(end) + Duration::minutes(1));
    // Even before the scheduler runs, access ends with the period.
    assert_eq!(subscription(&app, &token, None).await["entitled"], false);
    billing.tick().await.unwrap();
    wait_caught_up(&app).await;
    assert_eq!(subscription(&app, &token, None).await["status"], "canceled");
    app.stop();
}

async fn wait_caught_up(app: &TestApp) {
    let head = app.log().await.last().map_or(0, |e| e.position);
    assert!(
        app.running
            .state
            .projections
            .wait_for(
                cinelog_projections::subscriptions::NAME,
                head,
                std::time::Duration::from_secs(10)
            )
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn racing_checkouts_for_one_account_leave_one_live_subscription() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::spawn(backend).await;
        let (token, _) = app.signup_login("racer@example.com").await;
        let starts = futures::future::join_all((0..6).map(|i| {
            let plan = ["basic", "standard", "premium"][i % 3];
            app.post(
                "/api/subscription/checkout",
                json!({"plan": plan}),
                Some(&token),
            )
        }))
        .await;
        let links: Vec<String> = starts
            .iter()
            .map(|a| {
                assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
                a.body["redirect_url"].as_str().unwrap().to_string()
            })
            .collect();
        // The subscriber approves every one of them at once.
        let backs =
            futures::future::join_all(links.iter().map(|l| app.answer_sandbox(l, "approve"))).await;
        let latest = backs.iter().filter_map(|b| position_in(b)).max();
        let sub = subscription(&app, &token, latest).await;
        assert_eq!(sub["status"], "active");
        let log = app.log().await;
        let count = |t: &str| log.iter().filter(|e| e.event_type == t).count();
        assert_eq!(count("SubscriptionActivated"), 1, "{backend:?}");
        assert_eq!(count("NoticeIgnored"), 5, "{backend:?}");
        assert_eq!(sub["payments"].as_array().unwrap().len(), 1);
        // And once active, a new checkout is refused.
        let late = app
            .post(
                "/api/subscription/checkout",
                json!({"plan": "basic"}),
                Some(&token),
            )
            .await;
        assert_eq!(late.status, StatusCode::CONFLICT, "{backend:?}");
        app.stop();
    }
}

#[tokio::test]
async fn with_a_real_provider_configured_the_sandbox_is_not_offered() {
    let stripe = fakes::fake_stripe().await;
    let dir = TempDir::new();
    let settings = Settings {
        stripe: Some(StripeSettings {
            api_base: stripe.base.clone(),
            secret_key: Secret::new(fakes::STRIPE_KEY),
            webhook_secret: Secret::new(fakes::STRIPE_WEBHOOK_SECRET),
            prices: plan_ids("price_"),
        }),
        ..settings_for(Backend::Sqlite, &dir).await
    };
    let app = TestApp::spawn_with(settings, dir, Outside::default()).await;
    assert_eq!(
        app.get("/api/plans", None).await.body["providers"],
        json!(["stripe"])
    );
    let (token, _) = app.signup_login("nofree@example.com").await;
    let free = app
        .post(
            "/api/subscription/checkout",
            json!({"plan": "premium", "provider": "sandbox"}),
            Some(&token),
        )
        .await;
    assert_eq!(
        (free.status, free.error_code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "provider_not_offered")
    );
    assert_eq!(
        app.post_raw("/webhooks/sandbox", b"{}", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/sandbox/checkout?session=a.b", None).await.status,
        StatusCode::NOT_FOUND
    );
    // An overflowing signature timestamp is a refusal, not a crash.
    let a = app
        .post_raw(
            "/webhooks/stripe",
            b"{}",
            &[("stripe-signature", "t=-9223372036854775808,v1=00".into())],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    app.stop();
}
