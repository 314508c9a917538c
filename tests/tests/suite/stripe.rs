//! Stripe against a local fake: checkout, signed webhooks that renew once and refuse forgeries,
//! plan changes and cancellation both ways, events out of order, and webhooks across replicas.

use crate::billing::{app_with_providers, deliver, provider_settings, stripe_event};
use chrono::{Duration, Utc};
use cinelog_api::Outside;
use cinelog_domain::subscription::next_period_end;
use cinelog_infra::payments::signature;
use cinelog_infra::{Secret, Settings};
use cinelog_tests::fakes;
use cinelog_tests::{Backend, TempDir, TestApp};
use reqwest::StatusCode;
use serde_json::json;

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
        let sub = second
            .subscription(&token, a.body["position"].as_i64())
            .await;
        assert_eq!(sub.status, "past_due", "{i}");
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
    let sub = app.subscription(&token, a.body["position"].as_i64()).await;
    assert_eq!(
        (sub.status.as_str(), sub.plan.as_deref()),
        ("active", Some("standard"))
    );
    let first_end = sub.period_end.unwrap();

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
    let sub = app.subscription(&token, a.body["position"].as_i64()).await;
    let extended = sub.period_end.unwrap();
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
        app.subscription(&token, None).await.period_end.as_deref(),
        Some(extended.as_str())
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
    let sub = app.subscription(&token, a.body["position"].as_i64()).await;
    assert_eq!(sub.period_end.as_deref(), Some(extended.as_str()));
    assert_eq!(sub.payments[0].outcome, "rejected");
    assert_eq!(sub.payments[0].amount, Some(100));

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
    let sub = app.subscription(&token, a.body["position"].as_i64()).await;
    assert_eq!(
        (sub.plan.as_deref(), sub.max_quality),
        (Some("premium"), 2160)
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
    let sub = app.subscription(&token, a.body["position"].as_i64()).await;
    assert_eq!(
        (sub.plan.as_deref(), sub.pending_plan.as_deref()),
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
    let sub = app.subscription(&token, a.body["position"].as_i64()).await;
    assert_eq!(
        (sub.plan.as_deref(), sub.pending_plan.as_deref()),
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
        app.subscription(&token, a.body["position"].as_i64())
            .await
            .cancel_at_period_end
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
    assert!(
        app.subscription(&token, a.body["position"].as_i64())
            .await
            .cancel_at_period_end
    );
    let renewed_there = stripe_event(
        "evt_5c",
        "customer.subscription.updated",
        json!({"id": "sub_1", "object": "subscription", "cancel_at_period_end": false, "items": {"data": [{"price": {"id": "price_standard"}}]}}),
    );
    let a = deliver(&app, &renewed_there, fakes::STRIPE_WEBHOOK_SECRET, now).await;
    let sub = app.subscription(&token, a.body["position"].as_i64()).await;
    assert_eq!(
        (sub.cancel_at_period_end, sub.status.as_str()),
        (false, "active")
    );
    let deleted = stripe_event(
        "evt_6",
        "customer.subscription.deleted",
        json!({"id": "sub_1", "object": "subscription", "metadata": {"account_id": account}}),
    );
    let a = deliver(&app, &deleted, fakes::STRIPE_WEBHOOK_SECRET, now).await;
    let sub = app.subscription(&token, a.body["position"].as_i64()).await;
    assert_eq!((sub.status.as_str(), sub.entitled), ("canceled", false));
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
    let sub = app.subscription(&token, a.body["position"].as_i64()).await;
    assert_eq!(
        (sub.status.as_str(), sub.plan.as_deref()),
        ("active", Some("premium"))
    );
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(sub.period_end.as_deref().unwrap())
            .unwrap()
            .timestamp(),
        end.timestamp()
    );
    // One payment, counted once.
    assert_eq!(sub.payments.len(), 1);
    assert_eq!(sub.max_quality, 2160);

    // The subscriber moves to Standard at Stripe: the change comes in, and the next invoice at
    // Standard's price is honoured.
    let moved = stripe_event(
        "evt_m",
        "customer.subscription.updated",
        json!({"id": "sub_9", "object": "subscription", "cancel_at_period_end": false,
        "items": {"data": [{"price": {"id": "price_standard"}}]}, "metadata": {"account_id": account}}),
    );
    let a = deliver(&app, &moved, fakes::STRIPE_WEBHOOK_SECRET, now).await;
    let sub = app.subscription(&token, a.body["position"].as_i64()).await;
    assert_eq!(
        (sub.plan.as_deref(), sub.max_quality),
        (Some("standard"), 1080)
    );
    let standard_invoice = stripe_event(
        "evt_m2",
        "invoice.paid",
        json!({"id": "in_m", "subscription": "sub_9", "amount_paid": 1549, "currency": "usd", "metadata": {"account_id": account}}),
    );
    let a = deliver(&app, &standard_invoice, fakes::STRIPE_WEBHOOK_SECRET, now).await;
    let sub = app.subscription(&token, a.body["position"].as_i64()).await;
    assert_eq!(
        (sub.payments[0].outcome.as_str(), sub.payments[0].amount),
        ("paid", Some(1549))
    );

    // A subscription event naming no account is found through the subscription id.
    let failed = stripe_event(
        "evt_c",
        "invoice.payment_failed",
        json!({"id": "in_2", "subscription": "sub_9"}),
    );
    let a = deliver(&app, &failed, fakes::STRIPE_WEBHOOK_SECRET, now).await;
    let sub = app.subscription(&token, a.body["position"].as_i64()).await;
    assert_eq!((sub.status.as_str(), sub.entitled), ("past_due", true));
    app.stop();
}
