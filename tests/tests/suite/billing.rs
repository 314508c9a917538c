//! Subscriptions and payments: plans, the sandbox checkout, refused input, the lifecycle as the
//! clock moves, racing checkouts, and which providers are offered. The Stripe and PayPal tests
//! are in `stripe.rs` and `paypal.rs`; the helpers they share with these are here.

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

// Helpers shared with the provider tests (`crate::stripe`, `crate::paypal`).

/// An app offering Stripe and PayPal through local fakes, on a clock the test moves.
pub(crate) async fn app_with_providers(
    backend: Backend,
) -> (TestApp, Arc<ManualClock>, Fake, Fake) {
    let (stripe, paypal) = (fakes::fake_stripe().await, fakes::fake_paypal().await);
    let dir = TempDir::new();
    let settings = provider_settings(backend, &dir, &stripe, &paypal).await;
    let (app, clock) = TestApp::spawn_on_clock(settings, dir).await;
    (app, clock, stripe, paypal)
}

/// Settings offering the sandbox and the fake Stripe and PayPal.
pub(crate) async fn provider_settings(
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

/// A Stripe event envelope.
pub(crate) fn stripe_event(id: &str, kind: &str, object: Value) -> Value {
    json!({"id": id, "object": "event", "type": kind, "created": Utc::now().timestamp(), "livemode": false, "data": {"object": object}})
}

/// Delivers an event to /webhooks/stripe signed with `secret` at `timestamp`.
pub(crate) async fn deliver(app: &TestApp, event: &Value, secret: &str, timestamp: i64) -> Answer {
    let body = serde_json::to_vec(event).unwrap();
    let header = signature::sign(secret.as_bytes(), timestamp, &body);
    app.post_raw("/webhooks/stripe", &body, &[("stripe-signature", header)])
        .await
}

// Helpers of this file's tests.

/// Provider ids for the three plans: `{prefix}basic`, `{prefix}standard`, `{prefix}premium`.
fn plan_ids(prefix: &str) -> PlanIds {
    PlanIds {
        basic: Some(format!("{prefix}basic")),
        standard: Some(format!("{prefix}standard")),
        premium: Some(format!("{prefix}premium")),
    }
}

/// The log position a sandbox checkout's return URL carries.
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
    assert_eq!(app.subscription(&token, None).await.status, "none");
    // Declining leaves no subscription.
    let redirect = app
        .start_checkout(&token, "standard", Some("sandbox"))
        .await;
    let back = app.answer_sandbox(&redirect, "decline").await;
    assert!(back.contains("checkout=canceled"), "{back}");
    assert!(!app.subscription(&token, position_in(&back)).await.entitled);

    let redirect = app.start_checkout(&token, "standard", None).await;
    assert!(
        redirect.starts_with(&app.url("/sandbox/checkout?session=")),
        "{redirect}"
    );
    let back = app.answer_sandbox(&redirect, "approve").await;
    assert!(back.contains("checkout=success"), "{back}");
    let sub = app.subscription(&token, position_in(&back)).await;
    assert_eq!(sub.status, "active");
    assert_eq!(sub.plan.as_deref(), Some("standard"));
    assert_eq!(sub.plan_name.as_deref(), Some("Standard"));
    assert!(sub.entitled);
    assert_eq!(sub.max_quality, 1080);
    assert_eq!(sub.concurrent_streams, 2);
    assert_eq!(sub.provider.as_deref(), Some("sandbox"));
    assert_eq!(sub.payments.len(), 1);
    assert_eq!(sub.payments[0].amount, Some(1549));
    assert_eq!(sub.payments[0].outcome, "paid");
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
async fn the_lifecycle_follows_the_clock_renew_fail_grace_expire() {
    let (app, clock, _stripe, _paypal) = app_with_providers(Backend::Sqlite).await;
    let billing = &app.running.state.billing;

    // Sandbox: the sandbox bills each renewal itself, through the webhook path.
    let (token, _) = app.signup_login("sandboxed@example.com").await;
    let redirect = app.start_checkout(&token, "basic", None).await;
    let back = app.answer_sandbox(&redirect, "approve").await;
    let sub = app.subscription(&token, position_in(&back)).await;
    let end = chrono::DateTime::parse_from_rfc3339(sub.period_end.as_deref().unwrap())
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
        app.subscription(&stoken, a.body["position"].as_i64())
            .await
            .status,
        "active"
    );

    // Nothing is due before the period ends.
    clock.advance(Duration::days(20));
    wait_caught_up(&app).await;
    billing.tick().await.unwrap();
    assert_eq!(app.subscription(&token, None).await.payments.len(), 1);

    // The period ends: the sandbox renews (at the downgraded price), Stripe's renewal is missing.
    clock.set(end + Duration::hours(RENEWAL_SLACK_HOURS) + Duration::minutes(1));
    billing.tick().await.unwrap();
    wait_caught_up(&app).await;
    let sub = app.subscription(&token, None).await;
    assert_eq!(
        (sub.status.as_str(), sub.plan.as_deref()),
        ("active", Some("standard"))
    );
    assert_eq!(sub.payments[0].amount, Some(1549));
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(sub.period_end.as_deref().unwrap())
            .unwrap()
            .timestamp(),
        next_period_end(end).timestamp()
    );
    let lapsing = app.subscription(&stoken, None).await;
    assert_eq!(
        (lapsing.status.as_str(), lapsing.entitled),
        ("past_due", true)
    );
    // Ticking again, from another replica say, changes nothing.
    let events = app.log_len().await;
    billing.tick().await.unwrap();
    assert_eq!(app.log_len().await, events);

    // The grace period runs out.
    clock.set(end + Duration::days(GRACE_DAYS) + Duration::minutes(2));
    billing.tick().await.unwrap();
    wait_caught_up(&app).await;
    let lapsed = app.subscription(&stoken, None).await;
    assert_eq!(
        (lapsed.status.as_str(), lapsed.entitled, lapsed.max_quality),
        ("expired", false, 0)
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
    let sub = app.subscription(&token, c.body["position"].as_i64()).await;
    assert_eq!((sub.entitled, sub.cancel_at_period_end), (true, true));
    clock.set(next_period_end(end) + Duration::minutes(1));
    // Even before the scheduler runs, access ends with the period.
    assert!(!app.subscription(&token, None).await.entitled);
    billing.tick().await.unwrap();
    wait_caught_up(&app).await;
    assert_eq!(app.subscription(&token, None).await.status, "canceled");
    app.stop();
}

async fn wait_caught_up(app: &TestApp) {
    let head = app.log().await.last().map_or(0, |e| e.position);
    assert!(
        app.reaches(cinelog_projections::subscriptions::NAME, head)
            .await
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
        let sub = app.subscription(&token, latest).await;
        assert_eq!(sub.status, "active");
        let log = app.log().await;
        let count = |t: &str| log.iter().filter(|e| e.event_type == t).count();
        assert_eq!(count("SubscriptionActivated"), 1, "{backend:?}");
        assert_eq!(count("NoticeIgnored"), 5, "{backend:?}");
        assert_eq!(sub.payments.len(), 1);
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
