//! Stripe: Checkout Sessions over HTTP, and webhooks checked with `Stripe-Signature`.

use super::{i64_at, send, send_json, signature, str_at};
use crate::settings::{Secret, StripeSettings};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cinelog_commands::ports::{
    CheckoutRequest, CheckoutSession, Clock, PaymentGateway, VerifiedNotice, WebhookError,
    WebhookRequest,
};
use cinelog_domain::plan::PlanId;
use cinelog_domain::subscription::{Notice, Provider};
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

pub struct StripeGateway {
    http: reqwest::Client,
    settings: StripeSettings,
    clock: Arc<dyn Clock>,
}

impl StripeGateway {
    pub fn new(settings: StripeSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            http: super::http_client(),
            settings,
            clock,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.api_base.trim_end_matches('/'))
    }

    fn key(&self) -> &Secret {
        &self.settings.secret_key
    }

    /// Sets whether the subscription ends at the period end (`POST /v1/subscriptions/{id}`).
    async fn set_cancel_at_period_end(
        &self,
        provider_ref: &str,
        cancel: bool,
    ) -> Result<(), String> {
        let request = self
            .http
            .post(self.url(&format!("/v1/subscriptions/{provider_ref}")))
            .bearer_auth(self.key().expose())
            .form(&[(
                "cancel_at_period_end",
                if cancel { "true" } else { "false" },
            )]);
        send("Stripe", request).await.map(drop)
    }
}

#[async_trait]
impl PaymentGateway for StripeGateway {
    fn provider(&self) -> Provider {
        Provider::Stripe
    }

    async fn start_checkout(&self, request: &CheckoutRequest) -> Result<CheckoutSession, String> {
        let price = self.settings.price_for(request.plan).ok_or_else(|| {
            format!(
                "no Stripe price is set for the {} plan",
                request.plan.as_str()
            )
        })?;
        let account = request.account_id.to_string();
        let mut form = vec![
            ("mode", "subscription".to_string()),
            ("line_items[0][price]", price.to_string()),
            ("line_items[0][quantity]", "1".into()),
            ("success_url", request.success_url.clone()),
            ("cancel_url", request.cancel_url.clone()),
            ("client_reference_id", account.clone()),
            ("metadata[account_id]", account.clone()),
            ("metadata[plan]", request.plan.as_str().into()),
            ("subscription_data[metadata][account_id]", account),
            (
                "subscription_data[metadata][plan]",
                request.plan.as_str().into(),
            ),
        ];
        if let Some(email) = &request.email {
            form.push(("customer_email", email.clone()));
        }
        let session = send_json(
            "Stripe",
            self.http
                .post(self.url("/v1/checkout/sessions"))
                .bearer_auth(self.key().expose())
                .header("Idempotency-Key", request.checkout_id.to_string())
                .form(&form),
        )
        .await?;
        match (str_at(&session, &["id"]), str_at(&session, &["url"])) {
            (Some(id), Some(url)) => Ok(CheckoutSession {
                checkout_ref: id.to_string(),
                redirect_url: url.to_string(),
            }),
            _ => Err("Stripe's checkout session has no id or url".into()),
        }
    }

    async fn cancel_at_period_end(&self, provider_ref: &str) -> Result<(), String> {
        self.set_cancel_at_period_end(provider_ref, true).await
    }

    async fn resume(&self, provider_ref: &str) -> Result<bool, String> {
        self.set_cancel_at_period_end(provider_ref, false)
            .await
            .map(|()| true)
    }

    async fn change_plan(&self, provider_ref: Option<&str>, plan: PlanId) -> Result<bool, String> {
        let Some(provider_ref) = provider_ref else {
            return Ok(false);
        };
        let price = self
            .settings
            .price_for(plan)
            .ok_or_else(|| format!("no Stripe price is set for the {} plan", plan.as_str()))?;
        // The subscription's one item is given the new price.
        let url = self.url(&format!("/v1/subscriptions/{provider_ref}"));
        let subscription = send_json(
            "Stripe",
            self.http.get(&url).bearer_auth(self.key().expose()),
        )
        .await?;
        let item = subscription
            .get("items")
            .and_then(|i| i.get("data"))
            .and_then(|d| d.get(0))
            .and_then(|item| str_at(item, &["id"]))
            .ok_or("Stripe's subscription has no item")?;
        let request = self
            .http
            .post(&url)
            .bearer_auth(self.key().expose())
            .form(&[
                ("items[0][id]", item),
                ("items[0][price]", price),
                ("proration_behavior", "none"),
            ]);
        send("Stripe", request).await.map(|_| true)
    }

    async fn verify(&self, request: &WebhookRequest) -> Result<VerifiedNotice, WebhookError> {
        verify_and_read(
            self.settings.webhook_secret.expose().as_bytes(),
            request,
            self.clock.now(),
            |price| self.settings.prices.plan_of(price),
        )
    }
}

/// Checks a Stripe-signed delivery and reads the event in it.
pub fn verify_and_read(
    secret: &[u8],
    request: &WebhookRequest,
    now: DateTime<Utc>,
    plan_of_price: impl Fn(&str) -> Option<PlanId>,
) -> Result<VerifiedNotice, WebhookError> {
    let header = request
        .header("stripe-signature")
        .ok_or_else(|| WebhookError::BadSignature("no Stripe-Signature header".into()))?;
    signature::verify(secret, header, &request.body, now.timestamp())
        .map_err(WebhookError::BadSignature)?;
    let event: Value = serde_json::from_slice(&request.body)
        .map_err(|e| WebhookError::Malformed(e.to_string()))?;
    read_event(&event, plan_of_price)
}

/// Reads a Stripe event envelope `{id, type, data: {object}}`; `plan_of_price` names the plan
/// a Stripe price id sells.
pub fn read_event(
    event: &Value,
    plan_of_price: impl Fn(&str) -> Option<PlanId>,
) -> Result<VerifiedNotice, WebhookError> {
    let malformed = |what: &str| WebhookError::Malformed(format!("the event has no {what}"));
    let notice_id = str_at(event, &["id"]).ok_or_else(|| malformed("id"))?;
    let event_type = str_at(event, &["type"]).ok_or_else(|| malformed("type"))?;
    let object = event
        .get("data")
        .and_then(|d| d.get("object"))
        .filter(|o| o.is_object())
        .ok_or_else(|| malformed("data.object"))?;
    let id = || str_at(object, &["id"]).map(str::to_string);
    // The subscription may arrive as an id or expanded into an object.
    let subscription = || {
        object
            .get("subscription")
            .and_then(|s| s.as_str().or_else(|| str_at(s, &["id"])))
            .or_else(|| str_at(object, &["parent", "subscription_details", "subscription"]))
            .map(str::to_string)
    };
    let required = |value: Option<String>, what: &str| value.ok_or_else(|| malformed(what));
    let notice = match event_type {
        // An asynchronous payment method may complete the session before paying: wait for
        // its invoice.
        "checkout.session.completed"
            if str_at(object, &["payment_status"]).is_some_and(|s| s == "unpaid") =>
        {
            None
        }
        "checkout.session.completed" => Some(Notice::CheckoutCompleted {
            checkout_ref: required(id(), "checkout session id")?,
            provider_ref: subscription(),
            amount: i64_at(object, &["amount_total"]),
            currency: str_at(object, &["currency"]).map(str::to_string),
        }),
        "checkout.session.expired" | "checkout.session.async_payment_failed" => {
            Some(Notice::CheckoutDeclined {
                checkout_ref: required(id(), "checkout session id")?,
            })
        }
        "invoice.paid" => Some(Notice::InvoicePaid {
            invoice_id: required(id(), "invoice id")?,
            provider_ref: subscription(),
            amount: i64_at(object, &["amount_paid"]).ok_or_else(|| malformed("amount_paid"))?,
            currency: required(
                str_at(object, &["currency"]).map(str::to_string),
                "currency",
            )?,
            period_end: object
                .get("lines")
                .and_then(|l| l.get("data"))
                .and_then(|d| d.get(0))
                .and_then(|line| i64_at(line, &["period", "end"]))
                .and_then(|t| DateTime::from_timestamp(t, 0)),
        }),
        "invoice.payment_failed" => Some(Notice::PaymentFailed {
            invoice_id: id(),
            provider_ref: subscription(),
        }),
        "customer.subscription.updated" => {
            let price = object
                .get("items")
                .and_then(|i| i.get("data"))
                .and_then(|d| d.get(0))
                .and_then(|item| str_at(item, &["price", "id"]));
            Some(Notice::TermsUpdated {
                provider_ref: id(),
                plan: price.and_then(&plan_of_price),
                cancel_at_period_end: object.get("cancel_at_period_end").and_then(Value::as_bool)
                    == Some(true),
            })
        }
        "customer.subscription.deleted" => Some(Notice::Canceled { provider_ref: id() }),
        _ => None,
    };
    let account_id = [
        &["client_reference_id"][..],
        &["metadata", "account_id"],
        &["subscription_details", "metadata", "account_id"],
        &["parent", "subscription_details", "metadata", "account_id"],
    ]
    .iter()
    .find_map(|path| str_at(object, path))
    .and_then(|raw| Uuid::parse_str(raw).ok());
    Ok(VerifiedNotice {
        notice_id: notice_id.to_string(),
        event_type: event_type.to_string(),
        account_id,
        notice,
    })
}
