//! PayPal against a local fake: checkout, webhooks PayPal vouches for, sales that extend the
//! period once, and what PayPal cannot do from here (resume, plan changes).

use crate::billing::app_with_providers;
use chrono::Utc;
use cinelog_tests::Backend;
use cinelog_tests::fakes;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

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
    let sub = app.subscription(&token, a.body["position"].as_i64()).await;
    assert_eq!(
        (
            sub.status.as_str(),
            sub.plan.as_deref(),
            sub.provider.as_deref()
        ),
        ("active", Some("basic"), Some("paypal"))
    );
    let end = sub.period_end.unwrap();
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
        app.subscription(&token, a.body["position"].as_i64())
            .await
            .period_end
            .as_deref(),
        Some(end.as_str())
    );
    let a = app
        .post_raw(
            "/webhooks/paypal",
            &sale("WH-3"),
            &headers(fakes::PAYPAL_GOOD_SIG),
        )
        .await;
    let sub = app.subscription(&token, a.body["position"].as_i64()).await;
    assert!(sub.period_end.as_deref().unwrap() > end.as_str());
    assert_eq!(sub.payments.len(), 3);
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
